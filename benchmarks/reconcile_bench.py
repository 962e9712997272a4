"""What ``reconcile`` costs for a million carrier calls, stage by stage, against a per-row matcher.

Fills an embedded store with ``--calls`` answered calls of one gateway over 30 days (SQL in the
engine, 200,000 distinct callees, so a number is called about five times a month), reads them
back as ``reconcile`` does (``client_calls``), and makes the carrier's file from them: 1%
dropped, 1% extra calls, every start jittered by up to +-1 s, 2% of durations +5 s, 1% of
amounts +10%. Then times, each the median of ``--runs``:

- **read**: the carrier CSV (semicolon, decimal comma, Berlin time, ``dd/mm/yyyy``) through a
  CDR profile (``read_carrier_cdrs``);
- **match**: ``match_calls`` alone, and ``classify`` (match + classes), vectorised;
- **per-row baseline**: what one would write first: a dict from callee to our calls, and per
  carrier call a scan for the nearest unused one within the tolerance (Python objects, one
  carrier call at a time: first come, first served, not nearest first globally);

and checks that both matchers find the same number of pairs.

    python -m benchmarks.reconcile_bench [--calls 1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import polars as pl

from pipeline.reference.carrier_cdrs import read_carrier_cdrs, read_cdr_profile
from pipeline.services.reconciliation import Tolerances, classify, match_calls
from pipeline.sinks.embedded import EmbeddedStore
from pipeline.storage.reconciliation import client_calls

_FILL = """
INSERT INTO call_history
    (cdr_id, session_id, tenant_id, customer_id, client_id, caller, callee, start_time,
     end_time, duration_ms, status, rated_at, reference_version,
     client_plan_id, client_billed_seconds, client_amount, client_currency)
SELECT
    toString(number), 's', 't1', 'cust', 'gw', '1',
    toString(440000000000 + cityHash64(number) % 200000),
    toDateTime64('2026-03-01 00:00:00', 6, 'UTC') + toIntervalMillisecond(number * {step:UInt64}),
    toDateTime64('2026-03-01 00:00:00', 6, 'UTC') + toIntervalMillisecond(number * {step:UInt64}),
    (1 + cityHash64(number, 1) % 600) * 1000, 'rated', now64(6), 'bench',
    'C', 1 + cityHash64(number, 1) % 600,
    toDecimal128(1 + cityHash64(number, 1) % 600, 6) / 1000, 'EUR'
FROM numbers({rows:UInt64})
"""
_PROFILE = """
delimiter = ";"
decimal_separator = ","
timezone = "Europe/Berlin"
date_format = "%d/%m/%Y %H:%M:%S"
duration_unit = "seconds"
currency = "EUR"

[columns]
callee = "B-Number"
start_time = "Start"
duration = "Dur"
amount = "Charge"
"""
_MONTH_MS = 30 * 86_400_000


def carrier_file(ours: pl.DataFrame, path: Path) -> int:
    """Write the carrier's CSV made from ``ours`` with planted differences; return its rows."""
    n = ours.height
    keyed = ours.with_columns(_k=pl.int_range(n).hash(7) % 1000)
    kept = keyed.filter(pl.col("_k") >= 10)  # 1% dropped
    # Up to +-1 s; the file's whole seconds then put a start up to 2 s early, 1 s late.
    jitter = (pl.int_range(pl.len()).hash(11) % 2_000_001).cast(pl.Int64) - 1_000_000
    theirs = kept.select(
        "callee",
        start_us=pl.col("start_us") + jitter,
        duration_ms=pl.col("duration_ms") + pl.when(pl.col("_k") < 30).then(5_000).otherwise(0),
        amount_units=pl.when(pl.col("_k").is_between(30, 39))
        .then(pl.col("amount_units") * 11 // 10)
        .otherwise(pl.col("amount_units")),
    )
    extra = ours.head(n // 100).select(
        callee=pl.lit("449999") + pl.int_range(pl.len()).cast(pl.String),
        start_us="start_us",
        duration_ms="duration_ms",
        amount_units="amount_units",
    )
    both = pl.concat([theirs, extra]).sort("start_us")
    local = (
        (both["start_us"] // 1_000_000 * 1_000_000)
        .cast(pl.Datetime("us", "UTC"))
        .dt.convert_time_zone("Europe/Berlin")
        .dt.strftime("%d/%m/%Y %H:%M:%S")
    )
    seconds = both["duration_ms"] // 1000
    amount = both["amount_units"]
    fraction = (amount % 1_000_000_000).cast(pl.String).str.zfill(9)
    text = (amount // 1_000_000_000).cast(pl.String) + "," + fraction
    pl.DataFrame(
        {"B-Number": both["callee"], "Start": local, "Dur": seconds, "Charge": text}
    ).write_csv(path, separator=";")
    return both.height


def per_row_match(theirs: pl.DataFrame, ours: pl.DataFrame, tolerance_us: int) -> int:
    """The baseline: per carrier call, the nearest unused call of ours to the same number."""
    by_callee: dict[str, list[list[Any]]] = {}
    for callee, start in ours.select("callee", "start_us").iter_rows():
        by_callee.setdefault(callee, []).append([start, False])
    pairs = 0
    for callee, start in theirs.select("callee", "start_us").iter_rows():
        best = None
        for candidate in by_callee.get(callee, ()):
            gap = abs(candidate[0] - start)
            if not candidate[1] and gap <= tolerance_us and (best is None or gap < best[0]):
                best = (gap, candidate)
        if best is not None:
            best[1][1] = True
            pairs += 1
    return pairs


def timed(work: Callable[[], Any], runs: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="vmgate-reconcile-"))
    tolerances = Tolerances(2_000_000, 1_000, Fraction(1, 200))
    try:
        with EmbeddedStore(folder / "store") as store:
            store.migrate()
            started = time.perf_counter()
            store.execute(_FILL, {"rows": args.calls, "step": _MONTH_MS // args.calls})
            fill = time.perf_counter() - started
            end_us = 1_775_000_000_000_000  # after every call
            fetch, ours = timed(lambda: client_calls(store, "gw", 0, end_us), args.runs)
        (folder / "profile.toml").write_text(_PROFILE)
        rows = carrier_file(ours, folder / "carrier.csv")
        size_mb = (folder / "carrier.csv").stat().st_size / 1e6
        profile = read_cdr_profile(folder / "profile.toml")
        read, theirs = timed(lambda: read_carrier_cdrs(folder / "carrier.csv", profile), args.runs)
        match, pairs = timed(lambda: match_calls(theirs, ours, tolerances.time_us), args.runs)
        whole, lines = timed(lambda: classify(theirs, ours, tolerances, 0, end_us), args.runs)
        naive, naive_pairs = timed(lambda: per_row_match(theirs, ours, tolerances.time_us), 1)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    counts = dict(lines.group_by("class").len().iter_rows())
    print(
        f"calls of ours {ours.height:,} (filled in {fill:.2f} s); carrier rows {rows:,} "
        f"({size_mb:.0f} MB of CSV); pairs {pairs.height:,} (per-row baseline {naive_pairs:,})"
    )
    print(f"classes: {counts}")
    print(f"{'stage':44} {'seconds':>8} {'carrier rows/s':>15}")
    for name, seconds in (
        ("fetch ours from the embedded store", fetch),
        ("read the carrier CSV through the profile", read),
        ("match_calls (vectorised)", match),
        ("classify = match + classes (vectorised)", whole),
        ("per-row baseline matcher (1 run)", naive),
    ):
        print(f"{name:44} {seconds:8.2f} {rows / seconds:15,.0f}")
    print(f"vectorised match vs per-row baseline: {naive / match:.1f}x")


if __name__ == "__main__":
    main()
