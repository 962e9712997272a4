"""Balances over ten million call-history rows: live, refreshed, and after new traffic.

Fills call_history in an embedded store with N synthetic rated rows spread over 90 days (made by
SQL in the engine, fast), plus 5% re-deliveries, and backfills the key index cdr_days with the
statement of migration 006; then measures the `balances` view: cold (every partition summed
live), the refresh that pre-aggregates it, warm (pre-aggregated), and after a batch of new calls
lands in one day (one stale partition); and the refresh's safety net alone (the scan of cdr_days
for CDRs live in two days). Checks the three answers are equal.

    python -m benchmarks.balances_10m [--rows 10000000] [--store DIR]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from pipeline.sinks.embedded import EmbeddedStore
from pipeline.storage.balances import refresh_balances
from pipeline.storage.migrations import load_migrations

_FILL = """
INSERT INTO call_history
    (cdr_id, session_id, tenant_id, customer_id, client_id, reseller_id, caller, callee,
     start_time, end_time, duration_ms, status, rated_at, reference_version,
     customer_plan_id, customer_amount, customer_currency,
     client_plan_id, client_amount, client_currency,
     reseller_plan_id, reseller_amount, reseller_currency)
SELECT
    toString(cityHash64(number + {offset:UInt64})), 's', 't' || toString(number % 3),
    'cus-' || toString(number % 400), 'gw-' || toString(number % 60),
    if(number % 3 = 0, NULL, 'res-' || toString(number % 12)), '1', '4420794612',
    toDateTime64('2026-01-01 00:00:00', 6, 'UTC') + toIntervalSecond(number % (86400 * 90)),
    toDateTime64('2026-01-01 00:00:00', 6, 'UTC') + toIntervalSecond(number % (86400 * 90) + 60),
    60000, 'rated', now64(6), 'bench',
    'P', toDecimal128((number % 1000) / 997, 6), 'EUR',
    'C', toDecimal128((number % 100) / 991, 6), 'EUR',
    if(number % 3 = 0, NULL, 'R'), if(number % 3 = 0, NULL, toDecimal128((number % 10) / 983, 6)),
    if(number % 3 = 0, NULL, 'USD')
FROM numbers({rows:UInt64})
"""


def _time(store: EmbeddedStore, sql: str) -> tuple[float, list[dict[str, object]]]:
    started = time.perf_counter()
    rows = store.query(sql).to_pylist()
    return time.perf_counter() - started, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--store", type=Path)
    args = parser.parse_args()
    folder = args.store or Path(tempfile.mkdtemp(prefix="vmgate-balances-"))
    query = "SELECT * FROM balances ORDER BY ALL"
    try:
        with EmbeddedStore(folder) as store:
            store.migrate()
            started = time.perf_counter()
            store.execute(_FILL, {"rows": args.rows, "offset": 0})
            store.execute(_FILL, {"rows": args.rows // 20, "offset": 0})  # 5% re-delivered
            fill = time.perf_counter() - started
            (backfill_sql,) = [
                s
                for m in load_migrations()
                for s in m.statements
                if s.startswith("INSERT INTO cdr_days")
            ]
            started = time.perf_counter()
            store.execute(backfill_sql)
            backfill = time.perf_counter() - started
            raw = store.query("SELECT count() AS n FROM call_history").to_pylist()[0]["n"]
            cold, cold_rows = _time(store, query)
            started = time.perf_counter()
            summary = refresh_balances(store)
            refresh = time.perf_counter() - started
            warm, warm_rows = _time(store, query)
            warm2, _ = _time(store, query)
            store.execute(_FILL, {"rows": 50_000, "offset": 10**12})  # new traffic
            started = time.perf_counter()
            refresh_balances(store)
            incremental = time.perf_counter() - started
            after, _ = _time(store, query)
            nets = []
            for _ in range(3):
                started = time.perf_counter()
                assert store.repair_moved_cdrs() == 0
                nets.append(time.perf_counter() - started)
        assert cold_rows == warm_rows, "pre-aggregated balances differ from live ones"
        print(f"call_history rows (raw, with re-deliveries): {raw:,}; filled in {fill:.1f} s")
        print(f"cdr_days backfilled (migration 006) in {backfill:.1f} s")
        print("| step | seconds |")
        print("| --- | --- |")
        print(f"| balances, nothing pre-aggregated (FINAL over all rows) | {cold:.3f} |")
        print(f"| first refresh ({summary.stored} partitions pre-aggregated) | {refresh:.3f} |")
        print(f"| balances, pre-aggregated | {min(warm, warm2):.3f} |")
        print(f"| refresh after 50,000 new calls (stale partitions only) | {incremental:.3f} |")
        print(f"| balances after that refresh | {after:.3f} |")
        net = sorted(nets)[1]
        print(f"| safety net alone (cdr_days scan, no conflict; median of 3) | {net:.3f} |")
    finally:
        if args.store is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
