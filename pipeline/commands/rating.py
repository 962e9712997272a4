"""Offline commands: ``rate`` a JSONL file of CDRs, ``export`` a store's call history."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.commands.options import positive_int, with_store
from pipeline.config import RATE_BATCH_SIZE


def add_commands(commands: Any) -> None:
    """Add ``rate`` and ``export``."""
    rate = commands.add_parser(
        "rate",
        help="rate a JSONL file of CDRs into Parquet (and optionally the embedded store)",
        description="Rate every CDR of a JSONL file against a plans folder. Rated and unrated "
        "rows go to --out as Parquet (amounts as decimal columns); lines that are not valid "
        "cdr.v1 go to --dlq with their line number, reason and original text. Prints a summary.",
    )
    rate.add_argument("--plans", type=Path, required=True, help="plans folder (reference data)")
    rate.add_argument("--cdrs", type=Path, required=True, help="JSONL file, one CDR per line")
    rate.add_argument("--out", type=Path, required=True, help="Parquet file for the rated rows")
    rate.add_argument(
        "--dlq",
        type=Path,
        help="JSONL file for rejected lines (default: next to --out, named <out>.dlq.jsonl)",
    )
    rate.add_argument("--store", type=Path, help="also write call history to this embedded store")
    rate.add_argument(
        "--batch-size",
        type=positive_int,
        default=RATE_BATCH_SIZE,
        help=f"CDRs per batch (default {RATE_BATCH_SIZE})",
    )
    rate.add_argument(
        "--jobs",
        type=positive_int,
        default=1,
        help="processes rating parts of the file in parallel (default 1; each loads the "
        "plans folder, so memory grows with it); the outputs are the same",
    )
    rate.add_argument("--json", action="store_true", help="print the summary as JSON")

    export = commands.add_parser(
        "export",
        help="write the call history of a store to Parquet, one row per cdr_id",
        description="Export the current call history (the latest rating of each CDR) of a "
        "store (embedded at --store, or the ClickHouse server at $CLICKHOUSE_URL) to Parquet.",
    )
    export.add_argument(
        "--store",
        type=Path,
        default=Path("store"),
        help="embedded store folder (./store); ignored when $CLICKHOUSE_URL is set",
    )
    export.add_argument("--out", type=Path, required=True, help="Parquet file to write")
    rate.set_defaults(run=_rate)
    export.set_defaults(run=_export)


def _rate(args: argparse.Namespace) -> int:
    from pipeline.progress import Progress
    from pipeline.reference.loader import load_plans_folder
    from pipeline.services.offline import rate_file, rate_file_in_parallel
    from pipeline.services.read_ahead import ReadAhead

    # One process: the file is read and decoded while the plans folder loads.
    ahead = ReadAhead(args.cdrs, args.batch_size) if args.jobs == 1 else None
    try:
        reference = load_plans_folder(args.plans)  # validated here, before any worker starts
    except BaseException:
        if ahead is not None:
            ahead.close()
        raise
    about = (
        f"reference data {reference.version}: {reference.plan_count} plans, "
        f"{reference.deck_row_count:,} deck rows"
    )
    dlq = args.dlq or args.out.with_name(args.out.name + ".dlq.jsonl")
    rated_at = datetime.now(UTC)
    store = None
    if args.store:
        from pipeline.sinks.embedded import EmbeddedStore  # the engine only when asked for

        store = EmbeddedStore(args.store).open()
    try:
        if store is not None:
            store.migrate()
        if args.jobs > 1:
            del reference  # every worker loads its own copy
            summary = rate_file_in_parallel(
                args.plans,
                args.cdrs,
                args.out,
                dlq,
                rated_at,
                args.jobs,
                store=store,
                batch_size=args.batch_size,
                progress=Progress("lines"),
            )
        else:
            summary = rate_file(
                reference,
                args.cdrs,
                args.out,
                dlq,
                rated_at,
                store=store,
                batch_size=args.batch_size,
                progress=Progress("lines"),
                ahead=ahead,
            )
    finally:
        if ahead is not None:
            ahead.close()
        if store is not None:
            store.close()
    if args.json:
        print(json.dumps({**summary.as_dict(), "out": str(args.out), "dlq": str(dlq)}))
    else:
        print(about)
        for line in summary.lines():
            print(line)
        print(f"wrote {args.out} and {dlq}" + (f" and store {args.store}" if args.store else ""))
    return 0


def _export(args: argparse.Namespace) -> int:
    import pyarrow.parquet as pq

    from pipeline.storage.reports import export_call_history

    store = with_store(args)
    try:
        table = export_call_history(store)
    finally:
        store.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, args.out, compression="zstd")
    print(f"exported {table.num_rows:,} call-history rows to {args.out}")
    return 0
