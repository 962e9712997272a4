"""Call-history writes: ``EmbeddedStore.write_call_history`` (chdb in-process) and, for the
scale-out path, ``ServerStore.write_call_history`` through clickhouse-connect to the chdb HTTP
test server (worker task).

The batches are the engine's real output (the 1%-malformed batch rated by ``rate_batch``), so
column types and null patterns are those of production; each timed write carries its own
cdr_ids (a ReplacingMergeTree would otherwise fold the copies together in background merges).
Every write is checked by counting.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.common import JSON, RATED_AT, PeakRss, median


def _rated_table(params: JSON) -> Any:
    from benchmarks.datagen import read_lines
    from pipeline.rating.decode import decode_cdrs
    from pipeline.rating.engine import rate_batch
    from pipeline.reference.loader import load_plans_folder

    messages = read_lines(Path(params["cdrs"]), int(params["batch"]))
    reference = load_plans_folder(Path(params["plans"]))
    return rate_batch(decode_cdrs(messages).good, reference, RATED_AT)


def _copies(table: Any, count: int, tag: str) -> list[Any]:
    """``count`` copies of the batch with distinct cdr_ids (no copy replaces another)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    position = table.schema.get_field_index("cdr_id")
    ids = table.column("cdr_id")
    return [
        table.set_column(
            position,
            table.schema.field(position),
            pc.binary_join_element_wise(ids, pa.scalar(f"-{tag}{k}"), ""),
        )
        for k in range(count)
    ]


def _writes(store: Any, tables: list[Any], rss: PeakRss) -> tuple[list[float], float]:
    seconds: list[float] = []
    rss.reset()
    for table in tables:
        started = time.perf_counter()
        store.write_call_history(table)
        seconds.append(time.perf_counter() - started)
    return seconds, rss.peak_mb()


def _count(store: Any) -> int:
    return int(store.query("SELECT count() AS n FROM call_history").column("n")[0].as_py())


def store_task(params: JSON) -> JSON:
    """Write the rated batch ``runs`` times to each store; rows per second, peak RSS."""
    from pipeline.sinks.embedded import EmbeddedStore

    table = _rated_table(params)
    runs = int(params["runs"])
    rss = PeakRss()
    out: JSON = {"rows": table.num_rows}
    with EmbeddedStore(Path(params["store"]) / "embedded") as store:
        store.migrate()
        store.write_call_history(table)  # warm-up (first part, caches)
        seconds, peak = _writes(store, _copies(table, runs, "e"), rss)
        stored = _count(store)
    if stored != table.num_rows * (runs + 1):
        msg = f"embedded store holds {stored} rows, expected {table.num_rows * (runs + 1)}"
        raise RuntimeError(msg)
    out["embedded"] = {"seconds": seconds, "median_s": median(seconds), "peak_mb": peak}
    if params.get("http"):
        out["http"] = _http_writes(params, table, runs, rss)
    return out


def _http_writes(params: JSON, table: Any, runs: int, rss: PeakRss) -> JSON:
    """The same writes through clickhouse-connect to the chdb HTTP server in this process."""
    from benchmarks.http_store import server_store

    with server_store(Path(params["store"]) / "http", "bench_http") as store:
        store.migrate()
        store.write_call_history(table)
        seconds, peak = _writes(store, _copies(table, runs, "h"), rss)
        stored = _count(store)
    if stored != table.num_rows * (runs + 1):
        msg = f"HTTP store holds {stored} rows, expected {table.num_rows * (runs + 1)}"
        raise RuntimeError(msg)
    return {"seconds": seconds, "median_s": median(seconds), "peak_mb": peak}
