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
    latency_loads=((20_000, 5.0),),
    faust_events=6_000,
    faust_loads_only=False,
    unpinned=False,
    profile=False,
    http_store=False,
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
)
#: The sections of a run, in the order they run (``--only`` picks some of them).
SECTIONS = ("core", "naive", "sql", "deck", "store", "kafka", "faust")
