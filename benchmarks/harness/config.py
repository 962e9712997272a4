"""What a run measures and how often: ``--quick`` (:data:`QUICK`) and ``--full`` (:data:`FULL`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunConfig:
    """How much of everything a benchmark run does: the sizes of the generated data, the rounds
    of each measurement, and the extras only the full run takes (the core on two cores,
    profiles, the HTTP store, the naive 1M-prefix deck, faust's ``json.loads`` mode).
    """

    name: str
    batch: int
    e2e_cdrs: int
    stage_runs: int
    whole_runs: int
    naive_count: int
    naive_inserts: int
    sql_runs: int
    sql_rows: int
    naive_in_core: int  # naive messages timed in each whole-core round
    store_runs: int
    deck_prefixes: int
    deck_cdrs: int
    deck_runs: int
    naive_deck_count: int  # 0: skip the naive 1M-prefix dict (about 20 s and 1.2 GB)
    latency_loads: tuple[tuple[int, float], ...]  # (offered CDR/s, seconds) per latency run
    faust_events: int
    faust_loads_only: bool
    unpinned: bool
    profile: bool
    http_store: bool
    # issue 17: the whole command vs the per-row rater and its floor, on a fresh file of this
    # many lines (1% malformed), rounds back to back; the latency run at half the measured
    # capacity (seconds, at most ``latency_max_messages``) next to the fixed loads above.
    command_cdrs: int = 600_000
    command_rounds: int = 1
    latency_seconds: float = 5.0
    latency_max_messages: int = 300_000


QUICK = RunConfig(
    name="quick",
    batch=100_000,
    e2e_cdrs=100_000,
    stage_runs=1,
    whole_runs=3,
    naive_count=10_000,
    naive_inserts=3_000,
    sql_runs=1,
    sql_rows=30_000,
    naive_in_core=5_000,
    store_runs=2,
    deck_prefixes=1_000_000,
    deck_cdrs=50_000,
    deck_runs=1,
    naive_deck_count=0,
    latency_loads=((50_000, 5.0),),
    faust_events=6_000,
    faust_loads_only=False,
    unpinned=False,
    profile=False,
    http_store=False,
    command_cdrs=600_000,  # the Done-when file of issue 17: fixed costs weigh as they will there
    command_rounds=2,
    latency_seconds=5.0,
    latency_max_messages=250_000,
)
FULL = RunConfig(
    name="full",
    batch=100_000,
    e2e_cdrs=1_000_000,
    stage_runs=5,
    whole_runs=7,
    naive_count=100_000,
    naive_inserts=20_000,
    sql_runs=3,
    sql_rows=100_000,
    naive_in_core=10_000,
    store_runs=5,
    deck_prefixes=1_000_000,
    deck_cdrs=100_000,
    deck_runs=3,
    naive_deck_count=20_000,
    latency_loads=((50_000, 20.0), (20_000, 15.0)),
    faust_events=30_000,
    faust_loads_only=True,
    unpinned=True,
    profile=True,
    http_store=True,
    command_cdrs=600_000,
    command_rounds=3,
    latency_seconds=15.0,
    latency_max_messages=1_500_000,
)
#: The sections of a run, in the order they run (``--only`` picks some of them).
SECTIONS = ("core", "command", "naive", "sql", "deck", "store", "kafka", "faust")
