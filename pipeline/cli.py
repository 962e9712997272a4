"""The ``vmgate-rating`` command line.

Each subcommand is a thin adapter: parse arguments, read the clock where a rated-at instant is
needed, call the pipeline, print a summary. Errors the user can fix (bad reference data, a
missing file) are printed without a traceback and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq

from pipeline import __version__

_EPILOG = """
Files: a plans folder holds plans.csv, decks/<plan_id>.csv, associations.csv and memberships.csv
(see docs/reference-data.md). CDRs are JSONL, one cdr.v1 object per line.

Exit status: 0 done; 2 refused input (the message names file, line, column and value).
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vmgate-rating",
        description="Rate VMGate SIP CDRs against customer, client and reseller rate decks, "
        "exactly, and keep call history in ClickHouse.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
        "--batch-size", type=int, default=100_000, help="CDRs per batch (default 100000)"
    )
    rate.add_argument("--json", action="store_true", help="print the summary as JSON")

    export = commands.add_parser(
        "export",
        help="write the call history of a store to Parquet, one row per cdr_id",
        description="Export the current call history (the latest rating of each CDR) of an "
        "embedded store to a Parquet file.",
    )
    export.add_argument("--store", type=Path, required=True, help="embedded store folder")
    export.add_argument("--out", type=Path, required=True, help="Parquet file to write")

    demo = commands.add_parser(
        "demo",
        help="build a synthetic network, rate it into an embedded store and report",
        description="Generate a realistic synthetic VMGate network (tenants, customers, "
        "clients, resellers, plans of every scope, memberships, CDRs with some malformed), rate "
        "it into an embedded store and print a report: call history with reseller or Direct, "
        "totals per leg and currency, owed to resellers, unrated by reason, rejected.",
    )
    demo.add_argument("--dir", type=Path, default=Path("demo-data"), help="where (./demo-data)")
    demo.add_argument("--cdrs", type=int, default=50_000, help="how many CDRs (50000)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (7)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    from pipeline.rating.exceptions import ReferenceDataError

    try:
        if args.command == "rate":
            return _rate(args)
        if args.command == "export":
            return _export(args)
        if args.command == "demo":
            from pipeline.demo import run_demo

            return run_demo(args.dir, cdrs=args.cdrs, seed=args.seed)
    except ReferenceDataError as exc:
        print(f"vmgate-rating: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"vmgate-rating: {exc.strerror or exc}: {exc.filename or ''}", file=sys.stderr)
        return 2
    return 2  # pragma: no cover - argparse requires a command


def _rate(args: argparse.Namespace) -> int:
    from pipeline.offline import rate_file
    from pipeline.progress import Progress
    from pipeline.rating.reference import load_plans_folder
    from pipeline.sinks.embedded import EmbeddedStore

    if not args.cdrs.exists():
        raise FileNotFoundError(2, "CDR file not found", str(args.cdrs))
    reference = load_plans_folder(args.plans)
    dlq = args.dlq or args.out.with_name(args.out.name + ".dlq.jsonl")
    rated_at = datetime.now(UTC)
    store = EmbeddedStore(args.store).open() if args.store else None
    try:
        if store is not None:
            store.migrate()
        summary = rate_file(
            reference,
            args.cdrs,
            args.out,
            dlq,
            rated_at,
            store=store,
            batch_size=args.batch_size,
            progress=Progress("lines"),
        )
    finally:
        if store is not None:
            store.close()
    if args.json:
        print(json.dumps({**summary.as_dict(), "out": str(args.out), "dlq": str(dlq)}))
    else:
        print(
            f"reference data {reference.version}: {reference.plan_count} plans, "
            f"{reference.deck_row_count:,} deck rows"
        )
        for line in summary.lines():
            print(line)
        print(f"wrote {args.out} and {dlq}" + (f" and store {args.store}" if args.store else ""))
    return 0


def _export(args: argparse.Namespace) -> int:
    from pipeline.reports import export_call_history
    from pipeline.sinks.embedded import EmbeddedStore

    if not args.store.is_dir():
        raise FileNotFoundError(2, "store folder not found", str(args.store))
    with EmbeddedStore(args.store) as store:
        store.migrate()
        table = export_call_history(store)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, args.out, compression="zstd")
    print(f"exported {table.num_rows:,} call-history rows to {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
