"""What the key index and tombstones cost a call-history write, as the store grows.

For each store size N: fills call_history with N synthetic rated rows over 90 daily partitions
(made by SQL in the engine, as benchmarks/balances_10m.py does) and backfills cdr_days with the
statement of migration 006; then writes 50,000-row batches of new CDRs

- **before**: one plain INSERT of the batch (the write path before cdr_days),
- **after**: ``write_call_history`` (last row per CDR, key lookup, rows + tombstones, cdr_days),
- **after, 5% moved**: the same with 2,500 of the batch's rows being stored CDRs published
  again on another day (2,500 tombstones),

and times the key lookup alone and the refresh's safety net (``repair_moved_cdrs``: a scan of
cdr_days for keys live in two days; none here). Every timed write has its own cdr_ids. Medians
of ``--runs`` runs; the embedded engine (chdb), or with ``--http`` also the server path
(clickhouse-connect to the chdb HTTP test server, ids sent as external data).

    python -m benchmarks.moves_write [--sizes 1000000 10000000] [--runs 3] [--http]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa

from benchmarks.balances_10m import _FILL
from pipeline.rating.columns import CALL_HISTORY_SCHEMA
from pipeline.storage import moved_cdrs
from pipeline.storage.migrations import load_migrations

BATCH = 50_000
MOVED = 2_500
_CHUNK = 2_000_000  # rows per fill statement (bounded memory)

# Rows shaped like _FILL's; ``moved`` of them are stored CDRs (numbers below the store size)
# one day later, the rest new cdr_ids.
_BATCH_SQL = """
SELECT
    if(number < {moved:UInt64}, toString(cityHash64(k)), concat({tag:String}, toString(number)))
        AS cdr_id,
    's' AS session_id, 't' || toString(k % 3) AS tenant_id,
    'cus-' || toString(k % 400) AS customer_id, 'gw-' || toString(k % 60) AS client_id,
    if(k % 3 = 0, NULL, 'res-' || toString(k % 12)) AS reseller_id, '1' AS caller,
    '4420794612' AS callee,
    toDateTime64('2026-01-01 00:00:00', 6, 'UTC') + toIntervalSecond(k % (86400 * 90))
        + toIntervalDay(if(number < {moved:UInt64}, 1, 0)) AS start_time,
    start_time + toIntervalSecond(60) AS end_time,
    toInt64(60000) AS duration_ms, 'rated' AS status, now64(6, 'UTC') AS rated_at,
    'bench' AS reference_version,
    'P' AS customer_plan_id, toDecimal128((k % 1000) / 997, 6) AS customer_amount,
    'EUR' AS customer_currency
FROM (SELECT number,
             if(number < {moved:UInt64}, (number + {first:UInt64}) * 7919 % {size:UInt64}, number)
                 AS k
      FROM numbers({rows:UInt64}))
"""


def _batch(store: Any, size: int, moved: int, tag: str, run: int) -> pa.Table:
    parameters = {"moved": moved, "tag": tag, "size": size, "rows": BATCH, "first": run * moved}
    partial = store.query(_BATCH_SQL, parameters)
    columns = [
        partial.column(f.name).cast(f.type)
        if f.name in partial.column_names
        else pa.nulls(partial.num_rows, f.type)
        for f in CALL_HISTORY_SCHEMA
    ]
    return pa.Table.from_arrays(columns, schema=CALL_HISTORY_SCHEMA)


def _fill(store: Any, size: int) -> tuple[float, float]:
    """N rows into call_history, then cdr_days by migration 006's backfill; seconds of each."""
    started = time.perf_counter()
    # numbers(start, rows): the row numbers (and so cdr_ids, tenants, days) of one big fill.
    fill = _FILL.replace(
        "FROM numbers({rows:UInt64})", "FROM numbers({start:UInt64}, {rows:UInt64})"
    )
    for start in range(0, size, _CHUNK):
        store.execute(fill, {"start": start, "rows": min(_CHUNK, size - start), "offset": 0})
    filled = time.perf_counter() - started
    (backfill,) = [
        s for m in load_migrations() for s in m.statements if s.startswith("INSERT INTO cdr_days")
    ]
    store.execute("TRUNCATE TABLE cdr_days")
    started = time.perf_counter()
    store.execute(backfill)
    return filled, time.perf_counter() - started


def _median(work: Callable[[int], None], runs: int) -> float:
    seconds = []
    for run in range(runs):
        started = time.perf_counter()
        work(run)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def _measure(store: Any, size: int, runs: int, label: str) -> dict[str, float]:
    fill, backfill = _fill(store, size)
    raw = store.query("SELECT count() AS n FROM call_history").column("n")[0].as_py()
    print(f"[{label}] {raw:,} rows filled in {fill:.1f} s; cdr_days backfilled in {backfill:.1f} s")
    batches = {
        kind: [_batch(store, size, moved, f"{kind}-{r}-", r) for r in range(runs + 1)]
        for kind, moved in (("before", 0), ("after", 0), ("moved", MOVED), ("lookup", 0))
    }
    store.write_call_history(batches["after"][runs])  # warm-up
    out = {
        "before": _median(lambda r: store._insert("call_history", batches["before"][r]), runs),
        "after": _median(lambda r: store.write_call_history(batches["after"][r]), runs),
        "moved": _median(lambda r: store.write_call_history(batches["moved"][r]), runs),
        "lookup": _median(
            lambda r: store._known_days(moved_cdrs.lookup_ids(batches["lookup"][r])), runs
        ),
        "repair": _median(lambda _: store.repair_moved_cdrs(), runs),
    }
    stones = store.query("SELECT count() AS n FROM call_history WHERE status = 'superseded'")
    expected = MOVED * runs
    if stones.column("n")[0].as_py() < expected:
        msg = f"expected at least {expected} tombstones"
        raise RuntimeError(msg)
    return out


@contextmanager
def _store(kind: str, folder: Path) -> Iterator[Any]:
    if kind == "embedded":
        from pipeline.sinks.embedded import EmbeddedStore

        with EmbeddedStore(folder) as store:
            store.migrate()
            yield store
    else:
        from benchmarks.http_store import server_store

        with server_store(folder, "bench") as store:
            store.migrate()
            yield store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--http", action="store_true", help="also the server path")
    parser.add_argument("--store", type=Path, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    root = args.store or Path(tempfile.mkdtemp(prefix="vmgate-moves-"))
    results: list[tuple[str, int, dict[str, float]]] = []
    try:
        for size in args.sizes:
            for kind in ("embedded", "http") if args.http else ("embedded",):
                folder = root / f"{kind}-{size}"
                with _store(kind, folder) as store:
                    results.append((kind, size, _measure(store, size, args.runs, kind)))
                shutil.rmtree(folder, ignore_errors=True)
    finally:
        if args.store is None:
            shutil.rmtree(root, ignore_errors=True)
    print(f"\nwrite of a {BATCH:,}-row batch (median of {args.runs}), seconds")
    print("| store | rows stored | before (plain INSERT) | after | after, 5% moved | "
          "key lookup alone | safety net (repair, no conflict) |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for kind, size, r in results:
        print(
            f"| {kind} | {size:,} | {r['before']:.3f} | {r['after']:.3f} | {r['moved']:.3f} | "
            f"{r['lookup']:.3f} | {r['repair']:.3f} |"
        )


if __name__ == "__main__":
    main()
