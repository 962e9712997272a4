"""The ``vmgate-rating`` command line: the parser, and the one place errors become exit statuses.

The commands live in :mod:`pipeline.commands`, one module per group; each adds its subcommands
and names the function that runs them. Every command is a thin adapter: parse arguments, read
the clock where a rated-at instant is needed, call the pipeline, print a summary. What the user
typed is refused while parsing, in one line (:mod:`pipeline.commands.options`); errors the user
can fix later (bad reference data, a missing file) are printed without a traceback. Exit
statuses: 0 done, 1 money alerts present (``alerts`` only), 2 refused input, 3 a rater
stopped on what retrying cannot mend (or a server did not come up within the startup wait).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline import __version__
from pipeline.commands import (
    alerts,
    clients,
    decks,
    money,
    rating,
    reconcile,
    resellers,
    statements,
    streaming,
    tools,
)
from pipeline.commands.options import Parser, refuse_after_parsing

_EPILOG = """
Files: a plans folder holds plans.csv, decks/<plan_id>.csv, associations.csv and memberships.csv,
and optionally origin_groups.csv, time_bands.csv and holidays.csv (tariff v2: caller origins,
peak/off-peak bands in the plan's time zone, holidays) and accounts.csv, join_codes.csv and
enrollments.csv (the roster; a client's reseller from its join code); see docs/reference-data.md.
CDRs are JSONL, one cdr.v1 object per line.

Exit status: 0 done (also when SIGTERM/SIGINT ended a wait); 2 refused input: an option's
value, in one line naming the option and the value, or reference data, naming file, line,
column and value; 3 a rater stopped on a failure retrying cannot mend, or Kafka or ClickHouse
did not accept connections within $VMGATE_STARTUP_WAIT_S (see docs/operations.md);
`alerts` exits 1 when at least one money alert is present (0: none).
"""


def build_parser() -> Parser:
    """The whole command line: global options and every command group."""
    parser = Parser(
        prog="vmgate-rating",
        description="Rate VMGate SIP CDRs against customer, client and reseller rate decks, "
        "exactly, and keep call history in ClickHouse.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--config",
        type=Path,
        help="TOML settings file (default: $VMGATE_CONFIG); environment variables override it",
    )
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=os.environ.get("VMGATE_LOG_FORMAT", "text"),
        help="log lines on stderr: text, or one JSON object per line (default: "
        "$VMGATE_LOG_FORMAT or text)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (
        rating,
        streaming,
        money,
        statements,
        reconcile,
        clients,
        resellers,
        alerts,
        decks,
        tools,
    ):
        group.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (2, in one line, for refused input)."""
    # The pipeline does no linear algebra: without this, numpy's BLAS starts a worker thread
    # per core that spins for a while on the cores the commands use (read when numpy loads,
    # which the commands do lazily, after this).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    refuse_after_parsing(parser, args)
    from pipeline.logs import configure_logging
    from pipeline.rating.exceptions import ReferenceDataError

    configure_logging(args.log_format)
    try:
        status: int = args.run(args)
    except ReferenceDataError as exc:
        print(f"vmgate-rating: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"vmgate-rating: {exc.strerror or exc}: {exc.filename or ''}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        print(f"vmgate-rating: {exc}", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":
    sys.exit(main())
