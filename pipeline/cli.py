"""The ``vmgate-rating`` command line.

Each subcommand is a thin adapter: parse arguments, read the clock where a rated-at instant is
needed, call the pipeline, print a summary. Errors the user can fix (bad reference data, a
missing file) are printed without a traceback and exit with status 2. What the user typed is
checked while parsing (counts, ports, RFC 3339 instants, a window whose --from is before its
--to, paths that must exist, choices), so a bad value is refused in one line before anything
is opened.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn

import pyarrow.parquet as pq

from pipeline import __version__

if TYPE_CHECKING:
    from pipeline.config import Settings
    from pipeline.sinks.contracts import CallHistoryStore

_EPILOG = """
Files: a plans folder holds plans.csv, decks/<plan_id>.csv, associations.csv and memberships.csv
(see docs/reference-data.md). CDRs are JSONL, one cdr.v1 object per line.

Exit status: 0 done; 2 refused input: an option's value, in one line naming the option and
the value, or reference data, naming file, line, column and value.
"""


class _Parser(argparse.ArgumentParser):
    """argparse, refusing bad input in one line on stderr (the usage is in --help)."""

    def error(self, message: str) -> NoReturn:
        """Print ``prog: error: message`` and exit 2."""
        self.refuse(self.prog, message)

    def refuse(self, prog: str, message: str) -> NoReturn:
        """Exit 2 with one line saying what ``prog`` refused and where its help is."""
        self.exit(2, f"{prog}: error: {message} (see {prog} --help)\n")


def _whole_number(text: str, minimum: int, maximum: int | None = None, what: str = "") -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < minimum or (maximum is not None and value > maximum):
        bound = f"from {minimum} to {maximum}" if maximum is not None else f"of {minimum} or more"
        msg = f"{text!r} is not a {what or 'whole number'} {bound}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _positive_int(text: str) -> int:
    """A count or size of at least 1."""
    return _whole_number(text, 1)


def _non_negative_int(text: str) -> int:
    """A count that may be 0."""
    return _whole_number(text, 0)


def _port(text: str) -> int:
    """A TCP port to listen on."""
    return _whole_number(text, 1, 65_535, "port number")


def _seconds(text: str) -> float:
    """A duration in seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        msg = f"{text!r} is not a number of seconds, 0 or more"
        raise argparse.ArgumentTypeError(msg)
    return value


def _instant(text: str) -> datetime:
    """An RFC 3339 instant, as UTC."""
    from pipeline.storage.payments import _rfc3339

    parsed = _rfc3339(text)
    if parsed is None:
        msg = f"{text!r} is not an RFC 3339 timestamp (like 2026-03-01T00:00:00Z)"
        raise argparse.ArgumentTypeError(msg)
    return parsed


# Path arguments that must exist when the command starts: dest -> (option, folder or file).
_EXISTING_PATHS: Final = {
    "config": ("--config", "file"),
    "plans": ("--plans", "folder"),
    "cdrs": ("--cdrs", "file"),
    "old": ("old", "folder"),
    "new": ("new", "folder"),
}


def _refuse_after_parsing(parser: _Parser, args: argparse.Namespace) -> None:
    """Refuse what argparse cannot check option by option: an empty window, a missing path.

    Paths are checked here, not by argparse types, so that the parser still accepts a command
    line written for another machine (a container's paths in docker-compose.yml).
    """
    words = [parser.prog, args.command, getattr(args, "decks_command", None)]
    prog = " ".join(w for w in words if w)
    start, end = getattr(args, "start", None), getattr(args, "end", None)
    if start is not None and end is not None and start >= end:
        start_text, end_text = (t.isoformat().replace("+00:00", "Z") for t in (start, end))
        parser.refuse(prog, f"--from {start_text} is not before --to {end_text}")
    for dest, (option, kind) in _EXISTING_PATHS.items():
        path = getattr(args, dest, None)
        if isinstance(path, Path) and not (path.is_dir() if kind == "folder" else path.is_file()):
            shown = repr(str(path))
            problem = f"{shown} is not a {kind}" if path.exists() else f"{kind} {shown} not found"
            parser.refuse(prog, f"argument {option}: {problem}")


def _parser() -> _Parser:
    from pipeline.storage.payments import KINDS

    parser = _Parser(
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
        "--batch-size", type=_positive_int, default=100_000, help="CDRs per batch (default 100000)"
    )
    rate.add_argument(
        "--jobs",
        type=_positive_int,
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

    setup = commands.add_parser(
        "setup",
        help="create the Kafka topics and apply the ClickHouse DDL (idempotent)",
        description="Create the pipeline's topics (cdr.v1 with several partitions, cdr.dlq.v1) "
        "with explicit settings if they do not exist, and apply the ClickHouse DDL to the store "
        "(the embedded one at --store, or the server at $CLICKHOUSE_URL). Safe to run again.",
    )
    _kafka_options(setup)
    setup.add_argument("--store", type=Path, help="embedded store folder (default ./store)")
    setup.add_argument(
        "--replication-factor", type=_positive_int, default=1, help="for new topics (1)"
    )
    setup.add_argument("--no-kafka", action="store_true", help="only apply the DDL")

    produce = commands.add_parser(
        "produce",
        help="publish a JSONL file of CDRs to cdr.v1",
        description="Publish each non-blank line of a JSONL file as one cdr.v1 message with an "
        "idempotent producer, keyed by cdr_id; prints how many the broker acknowledged.",
    )
    _kafka_options(produce)
    produce.add_argument("--cdrs", type=Path, required=True, help="JSONL file, one CDR per line")
    produce.add_argument("--topic", help="topic (default cdr.v1 or $VMGATE_CDR_TOPIC)")

    run = commands.add_parser(
        "run",
        help="run a rater: consume cdr.v1, rate, write call history, commit",
        description="Join the consumer group and rate CDRs from Kafka in large batches into call "
        "history (the embedded store at --store, or the ClickHouse server at $CLICKHOUSE_URL). "
        "Rejected messages go to cdr.dlq.v1 with the reason. Offsets are committed, together "
        "with the dead letters in one Kafka transaction, only after the store acknowledged the "
        "batch. SIGTERM/SIGINT: finish the batch in flight, commit, exit 0.",
    )
    _kafka_options(run)
    run.add_argument(
        "--plans",
        type=Path,
        help="plans folder (reference data); default: the version published with "
        "`decks import`, swapped in between batches whenever a new one is published",
    )
    run.add_argument("--store", type=Path, help="embedded store folder (default ./store)")
    run.add_argument("--group", help="consumer group (default raters or $VMGATE_GROUP)")
    run.add_argument("--batch-size", type=_positive_int, help="max CDRs per batch (default 50000)")
    run.add_argument(
        "--metrics-port",
        type=_port,
        help="serve Prometheus metrics on this port (/metrics); default: "
        "$VMGATE_METRICS_PORT, else none",
    )
    run.add_argument(
        "--metrics-address",
        help="address the metrics listen on (default: $VMGATE_METRICS_ADDRESS or 127.0.0.1; "
        "0.0.0.0 in a container)",
    )
    run.add_argument(
        "--exit-when-idle",
        type=_seconds,
        metavar="SECONDS",
        help="exit once no CDR arrived for this long (batch jobs, tests); default: run forever",
    )

    store_help = "embedded store folder (./store); ignored when $CLICKHOUSE_URL is set"

    balances = commands.add_parser(
        "balances",
        help="what each customer owes and what is owed to each client and reseller",
        description="Balances per tenant, scope (customer, client, reseller), account and "
        "currency: the rated amount, the payments recorded, and balance = amount - payments. "
        "Exact under duplicates and re-rating. Brings the pre-aggregated sums up to date first.",
    )
    balances.add_argument("--store", type=Path, default=Path("store"), help=store_help)
    balances.add_argument("--tenant", help="only this tenant")
    balances.add_argument("--scope", choices=["customer", "client", "reseller"], help="one scope")
    balances.add_argument("--account", help="only this account")
    _format_option(balances)

    history = commands.add_parser(
        "call-history",
        help="rated sessions with their reseller (or Direct) and reseller cost",
        description="Call history, one current row per CDR (the latest rating), newest first.",
    )
    history.add_argument("--store", type=Path, default=Path("store"), help=store_help)
    who = history.add_mutually_exclusive_group()
    who.add_argument("--reseller", help="only sessions attributed to this reseller")
    who.add_argument("--direct", action="store_true", help="only Direct sessions (no reseller)")
    history.add_argument("--tenant", help="only this tenant")
    history.add_argument("--customer", help="only this customer")
    history.add_argument(
        "--from", dest="start", type=_instant, help="start_time at or after (RFC 3339)"
    )
    history.add_argument("--to", dest="end", type=_instant, help="start_time before (RFC 3339)")
    history.add_argument(
        "--limit", type=_non_negative_int, default=100, help="at most this many rows (100)"
    )
    _format_option(history)

    overview = commands.add_parser(
        "billing-overview",
        help="per tenant and currency: customer totals, client totals, owed to resellers",
        description="Finance -> Billing: per tenant and currency, customer totals and payments "
        "in, VMGateClient totals and payouts, reseller totals, payouts and what is still owed "
        "to resellers.",
    )
    overview.add_argument("--store", type=Path, default=Path("store"), help=store_help)
    overview.add_argument("--tenant", help="only this tenant")
    _format_option(overview)

    payment = commands.add_parser(
        "record-payment",
        help="record a payment in (customer) or a payout (client, reseller)",
        description="Record one payment against an account. Idempotent by --payment-id: the "
        "same payment recorded twice is kept once; a different payment under a used id is "
        "refused. Kinds: customer_payment_in, client_payout_out, reseller_payout_out. With "
        "Kafka configured ($KAFKA_BOOTSTRAP or --bootstrap) the payment is published to "
        "payments.v1 and the raters write it; otherwise it is written to the store directly.",
    )
    _kafka_options(payment)
    payment.add_argument("--store", type=Path, default=Path("store"), help=store_help)
    payment.add_argument("--payment-id", required=True, help="unique id of this payment")
    payment.add_argument("--tenant", required=True, help="tenant id")
    payment.add_argument(
        "--kind",
        required=True,
        choices=list(KINDS),
        help="payment in from a customer, or payout to a client or a reseller",
    )
    payment.add_argument("--account", required=True, help="customer, client or reseller id")
    payment.add_argument("--amount", required=True, help="positive decimal, e.g. 125.50")
    payment.add_argument("--currency", required=True, help="ISO 4217 code, e.g. EUR")
    payment.add_argument("--recorded-at", type=_instant, help="RFC 3339 instant (default: now)")
    payment.add_argument("--note", default="", help="free text")

    rerate = commands.add_parser(
        "rerate",
        help="re-rate a tenant's call history in a time window with corrected plans",
        description="Rate again every CDR of --tenant with start_time in [--from, --to) using "
        "the plans folder given, replacing the earlier rating: afterwards every query and "
        "balance reflects only the new rating. Re-rating again with the same data changes no "
        "amount. Prints the change per leg and currency.",
    )
    rerate.add_argument("--store", type=Path, default=Path("store"), help=store_help)
    rerate.add_argument("--plans", type=Path, required=True, help="corrected plans folder")
    rerate.add_argument("--tenant", required=True, help="tenant whose calls are re-rated")
    _window_options(rerate)

    _decks_parser(commands, store_help)
    from pipeline.storage.schema import add_schema_parser

    add_schema_parser(commands)

    config = commands.add_parser(
        "config",
        help="show the effective configuration (secrets masked)",
        description="Configuration comes from defaults, then the TOML file (--config or "
        "$VMGATE_CONFIG), then environment variables, then flags. See docs/configuration.md.",
    )
    config.add_argument("action", choices=["show"], help="show: print the effective settings")

    demo = commands.add_parser(
        "demo",
        help="build a synthetic network, rate it into an embedded store and report",
        description="Generate a realistic synthetic VMGate network (tenants, customers, "
        "clients, resellers, plans of every scope, memberships, CDRs with some malformed), rate "
        "it into an embedded store and print a report: call history with reseller or Direct, "
        "totals per leg and currency, owed to resellers, unrated by reason, rejected.",
    )
    demo.add_argument("--dir", type=Path, default=Path("demo-data"), help="where (./demo-data)")
    demo.add_argument("--cdrs", type=_positive_int, default=50_000, help="how many CDRs (50000)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (7)")
    return parser


def _decks_parser(commands: Any, store_help: str) -> None:
    decks = commands.add_parser(
        "decks",
        help="rate decks: import and publish to the raters, diff, simulate a new version",
        description="Reference data (plans, decks, associations, memberships) as a stream: "
        "validate a plans folder and publish it to the compacted topics the raters read; "
        "compare two versions; or re-rate a window of call history with a new version "
        "without writing, to see the money it would move before publishing it.",
    )
    actions = decks.add_subparsers(dest="decks_command", required=True, metavar="ACTION")
    imports = actions.add_parser(
        "import",
        help="validate a plans folder and publish it as one new version",
        description="Validate the plans folder (every problem listed with file, line, column "
        "and value; nothing is published then) and publish it to rateplans.v1, "
        "associations.v1 and memberships.v1 in one Kafka transaction: raters see the whole "
        "version or nothing of it, and switch to it between two batches. Publishing the "
        "version already published does nothing (unless --force).",
    )
    _kafka_options(imports)
    imports.add_argument("--plans", type=Path, required=True, help="plans folder to publish")
    imports.add_argument("--force", action="store_true", help="publish even if current")
    diff = actions.add_parser(
        "diff",
        help="deck rows added, removed and changed between two plans folders",
        description="Compare the deck rows of two plans folders (both validated first): one "
        "line per added, removed or changed row (plan, prefix, effective_from) with the old and "
        "the new destination, rate, connection fee and increments. For an added row the old "
        "rate is the one the old deck had in effect at its effective_from.",
    )
    diff.add_argument("old", type=Path, help="plans folder in use")
    diff.add_argument("new", type=Path, help="plans folder to compare with it")
    _format_option(diff)
    simulate = actions.add_parser(
        "simulate",
        help="what a new version would change in revenue, cost and margin (writes nothing)",
        description="Re-rate the call history with start_time in [--from, --to) using the "
        "plans folder given, without writing anything, and report revenue (customer leg), cost "
        "(client and reseller legs) and margin before, after and the change, per currency, by "
        "leg, destination, customer and reseller. Re-rating the same window for real "
        "(`rerate`) moves balances by exactly these changes.",
    )
    simulate.add_argument("--plans", type=Path, required=True, help="new plans folder")
    simulate.add_argument("--store", type=Path, default=Path("store"), help=store_help)
    _window_options(simulate)
    simulate.add_argument("--tenant", help="only this tenant (default: every tenant)")
    simulate.add_argument(
        "--by",
        choices=["all", "leg", "destination", "customer", "reseller"],
        default="all",
        help="which breakdown to print (all)",
    )
    _format_option(simulate)


def _window_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--from", dest="start", type=_instant, required=True, help="window start (RFC 3339)"
    )
    command.add_argument(
        "--to", dest="end", type=_instant, required=True, help="window end, exclusive"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (2, in one line, for refused input)."""
    parser = _parser()
    args = parser.parse_args(argv)
    _refuse_after_parsing(parser, args)
    from pipeline.logs import configure_logging

    configure_logging(args.log_format)
    from pipeline.rating.exceptions import ReferenceDataError

    try:
        if args.command == "rate":
            return _rate(args)
        if args.command == "export":
            return _export(args)
        if args.command == "setup":
            return _setup(args)
        if args.command == "produce":
            return _produce(args)
        if args.command == "run":
            return _run(args)
        if args.command in _STORE_COMMANDS:
            return _STORE_COMMANDS[args.command](args)
        if args.command == "decks":
            return _decks(args)
        if args.command == "schema":
            return _schema(args)
        if args.command == "config":
            print(json.dumps(_settings(args).masked(), indent=2, default=str))
            return 0
        if args.command == "demo":
            from pipeline.services.demo import run_demo

            return run_demo(args.dir, cdrs=args.cdrs, seed=args.seed)
    except ReferenceDataError as exc:
        print(f"vmgate-rating: {exc}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            print(f"vmgate-rating: {exc.strerror or exc}: {exc.filename or ''}", file=sys.stderr)
            return 2
        print(f"vmgate-rating: {exc}", file=sys.stderr)
        return 2
    return 2  # pragma: no cover - argparse requires a command


def _rate(args: argparse.Namespace) -> int:
    from pipeline.progress import Progress
    from pipeline.reference.loader import load_plans_folder
    from pipeline.services.offline import rate_file, rate_file_in_parallel
    from pipeline.sinks.embedded import EmbeddedStore

    reference = load_plans_folder(args.plans)  # validated here, before any worker starts
    about = (
        f"reference data {reference.version}: {reference.plan_count} plans, "
        f"{reference.deck_row_count:,} deck rows"
    )
    dlq = args.dlq or args.out.with_name(args.out.name + ".dlq.jsonl")
    rated_at = datetime.now(UTC)
    store = EmbeddedStore(args.store).open() if args.store else None
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
            )
    finally:
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
    from pipeline.storage.reports import export_call_history

    store = _with_store(args)
    try:
        table = export_call_history(store)
    finally:
        store.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, args.out, compression="zstd")
    print(f"exported {table.num_rows:,} call-history rows to {args.out}")
    return 0


def _kafka_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--bootstrap", help="Kafka bootstrap servers host:port (default $KAFKA_BOOTSTRAP)"
    )


def _settings(args: argparse.Namespace) -> Settings:
    from dataclasses import replace

    from pipeline.config import load_settings

    settings = load_settings(args.config)
    overrides: dict[str, Any] = {}
    if getattr(args, "bootstrap", None):
        overrides["kafka_bootstrap"] = args.bootstrap
    if getattr(args, "group", None):
        overrides["group_id"] = args.group
    if getattr(args, "batch_size", None) and args.command == "run":
        overrides["batch_size"] = args.batch_size
    return replace(settings, **overrides)


def _open_store(settings: Settings, store_dir: Path | None) -> CallHistoryStore:
    from pipeline.sinks.open_store import open_store

    url = settings.clickhouse_url.reveal() if settings.clickhouse_url else None
    return open_store(
        store_dir or Path("store"),
        url,
        settings.database,
        username=settings.clickhouse_user,
        password=settings.clickhouse_password,
    )


def _setup(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if not args.no_kafka:
        from pipeline.sinks.topics import ensure_topics

        for name, outcome in ensure_topics(settings, args.replication_factor).items():
            print(f"topic {name}: {outcome}")
    store = _open_store(settings, args.store)
    try:
        applied = store.migrate()
    finally:
        store.close()
    print(f"DDL applied: {', '.join(applied) if applied else 'already up to date'}")
    return 0


def _produce(args: argparse.Namespace) -> int:
    from pipeline.sinks.cdr_producer import publish
    from pipeline.sources.files import read_jsonl_batches

    settings = _settings(args)
    lines = (line for batch in read_jsonl_batches(args.cdrs, 10_000) for line in batch.lines)
    summary = publish(settings, lines, args.topic)
    print(
        f"sent {summary.sent:,}, acknowledged {summary.acknowledged:,}, failed {summary.failed:,}"
    )
    for error in summary.errors:
        print(f"  {error}", file=sys.stderr)
    return 0 if summary.failed == 0 and summary.acknowledged == summary.sent else 1


def _run(args: argparse.Namespace) -> int:
    from pipeline.metrics import RaterMetrics
    from pipeline.reference.feed import ReferenceFeed, ReferenceWatcher
    from pipeline.reference.loader import load_plans_folder
    from pipeline.services.payments_ingest import PaymentsIngest
    from pipeline.services.rater import Rater, RaterStoppedError
    from pipeline.sinks.kafka_dlq import TransactionalCommitter
    from pipeline.sources.kafka import KafkaCdrSource

    settings = _settings(args)
    metrics = RaterMetrics()
    port = args.metrics_port if args.metrics_port is not None else settings.metrics_port
    if port is not None:
        metrics.serve(port, args.metrics_address or settings.metrics_address)
    watcher = None
    if args.plans is not None:
        reference = load_plans_folder(args.plans)
    else:
        watcher = ReferenceWatcher(ReferenceFeed(settings.kafka(), settings.reference_topics()))
        watcher.start()
        try:
            reference = watcher.wait_first()
        except KeyboardInterrupt:
            watcher.close()
            return 130
    logging.getLogger(__name__).info(
        "reference data %s: %d plans, %d deck rows",
        reference.version,
        reference.plan_count,
        reference.deck_row_count,
    )
    store = _open_store(settings, args.store)
    try:
        store.migrate()
        rater = Rater(
            KafkaCdrSource(settings.kafka(), settings.group_id, settings.cdr_topic),
            TransactionalCommitter(settings.kafka(), settings.dlq_topic, settings.group_id),
            store,
            reference,
            batch_size=settings.batch_size,
            batch_timeout_s=settings.batch_timeout_s,
            batch_linger_s=settings.batch_linger_s,
            exit_when_idle_s=args.exit_when_idle,
            payments=PaymentsIngest(
                settings.kafka(),
                f"{settings.group_id}-payments",
                settings.payments_topic,
                settings.payments_dlq_topic,
                store,
            ),
            reference_updates=watcher,
            metrics=metrics,
        )
        try:
            stats = rater.run()
        except RaterStoppedError as exc:
            print(f"vmgate-rating: rater stopped, batch not committed: {exc}", file=sys.stderr)
            return 3
    finally:
        store.close()
        if watcher is not None:
            watcher.close()
    print(
        f"consumed {stats.consumed:,}, rated {stats.rated:,}, unrated {stats.unrated:,}, "
        f"rejected {stats.rejected:,}, batches {stats.batches:,}, "
        f"store failures {stats.store_failures:,}"
    )
    return 0


def _format_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--format", choices=["table", "json", "csv"], default="table", help="output (table)"
    )


def _with_store(args: argparse.Namespace) -> CallHistoryStore:
    settings = _settings(args)
    if settings.clickhouse_url is None and not args.store.is_dir():
        raise FileNotFoundError(2, "--store folder not found", str(args.store))
    store = _open_store(settings, args.store)
    store.migrate()
    return store


def _balances(args: argparse.Namespace) -> int:
    from pipeline.rating.reference import Scope
    from pipeline.storage.balances import balances, refresh_balances
    from pipeline.storage.reports import render

    store = _with_store(args)
    try:
        refresh_balances(store)
        table = balances(
            store, args.tenant, Scope(args.scope) if args.scope else None, args.account
        )
    finally:
        store.close()
    if args.format != "table":
        table = table.drop(["calls"])
    print(render(table, args.format))
    return 0


def _billing_overview(args: argparse.Namespace) -> int:
    from pipeline.storage.balances import billing_overview, refresh_balances
    from pipeline.storage.reports import render

    store = _with_store(args)
    try:
        refresh_balances(store)
        table = billing_overview(store, args.tenant)
    finally:
        store.close()
    print(render(table, args.format))
    return 0


def _call_history(args: argparse.Namespace) -> int:
    from pipeline.storage.reports import call_history, render

    store = _with_store(args)
    try:
        table = call_history(
            store,
            reseller=args.reseller,
            direct=args.direct,
            tenant=args.tenant,
            customer=args.customer,
            start=args.start,
            end=args.end,
            limit=args.limit,
        )
    finally:
        store.close()
    print(render(table, args.format))
    return 0


def _record_payment(args: argparse.Namespace) -> int:
    from pipeline.storage.payments import Payment, record_payment

    payment = Payment.parse(
        payment_id=args.payment_id,
        tenant_id=args.tenant,
        kind=args.kind,
        account_id=args.account,
        amount=args.amount,
        currency=args.currency,
        recorded_at=args.recorded_at.isoformat() if args.recorded_at else None,
        note=args.note,
    )
    settings = _settings(args)
    if settings.kafka_bootstrap:
        from pipeline.services.payments_ingest import publish_payment

        publish_payment(settings.kafka(), settings.payments_topic, payment)
        what = f"published to {settings.payments_topic}"
    else:
        store = _with_store(args)
        try:
            new = record_payment(store, payment)
        finally:
            store.close()
        what = "recorded" if new else "already recorded, nothing changed"
    print(
        f"payment {payment.payment_id}: {payment.kind} {payment.amount} {payment.currency} "
        f"({payment.account_id}, tenant {payment.tenant_id}) {what}"
    )
    return 0


def _rerate(args: argparse.Namespace) -> int:
    from pipeline.progress import Progress
    from pipeline.reference.loader import load_plans_folder
    from pipeline.services.rerate import rerate_window

    reference = load_plans_folder(args.plans)
    store = _with_store(args)
    try:
        summary = rerate_window(
            store, reference, args.tenant, args.start, args.end, progress=Progress("days")
        )
    finally:
        store.close()
    print(f"reference data {reference.version}")
    for line in summary.lines():
        print(line)
    return 0


_STORE_COMMANDS = {
    "balances": _balances,
    "billing-overview": _billing_overview,
    "call-history": _call_history,
    "record-payment": _record_payment,
    "rerate": _rerate,
}


def _schema(args: argparse.Namespace) -> int:
    from pipeline.storage.schema import render_schema

    print(render_schema(args, args.database or _settings(args).database), end="")
    return 0


def _decks(args: argparse.Namespace) -> int:
    if args.decks_command == "import":
        return _decks_import(args)
    if args.decks_command == "diff":
        return _decks_diff(args)
    return _decks_simulate(args)


def _decks_import(args: argparse.Namespace) -> int:
    from pipeline.reference.feed import ReferenceFeed
    from pipeline.reference.files import FolderPlanFiles
    from pipeline.reference.loader import load_plans_folder
    from pipeline.reference.publisher import publish_reference
    from pipeline.sinks.topics import ensure_topics, reference_topic_specs

    settings = _settings(args)
    reference = load_plans_folder(args.plans)  # every problem listed; nothing published
    files = FolderPlanFiles(args.plans).all_files()
    ensure_topics(settings, specs=reference_topic_specs(settings))
    feed = ReferenceFeed(settings.kafka(), settings.reference_topics())
    feed.start()
    try:
        current = feed.read_to_end()
    finally:
        feed.close()
    done = publish_reference(
        settings.kafka(),
        settings.reference_topics(),
        reference.version,
        files,
        current,
        force=args.force,
    )
    if done.already_current:
        print(f"reference data {done.version} is already the published version: nothing sent")
        return 0
    print(
        f"published reference data {done.version}: {reference.plan_count} plans, "
        f"{reference.deck_row_count:,} deck rows, {done.files} files in {done.chunks} chunks "
        f"({done.bytes:,} bytes), {done.tombstones} stale keys deleted, at {done.published_at}"
    )
    return 0


def _decks_diff(args: argparse.Namespace) -> int:
    from pipeline.reference.diff import diff_decks
    from pipeline.reference.files import FolderPlanFiles
    from pipeline.reference.loader import load_plans_folder
    from pipeline.storage.reports import render

    old, new = load_plans_folder(args.old), load_plans_folder(args.new)
    diff = diff_decks(FolderPlanFiles(args.old), FolderPlanFiles(args.new))
    print(render(diff.rows, args.format))
    if args.format == "table":
        counts = diff.counts()
        print(
            f"{old.version} -> {new.version}: {counts['added']:,} added, "
            f"{counts['removed']:,} removed, {counts['changed']:,} changed"
        )
    return 0


def _decks_simulate(args: argparse.Namespace) -> int:
    from pipeline.progress import Progress
    from pipeline.reference.loader import load_plans_folder
    from pipeline.services.simulate import DIMENSIONS, simulate
    from pipeline.storage.reports import format_table, render

    reference = load_plans_folder(args.plans)
    store = _with_store(args)
    try:
        result = simulate(store, reference, args.start, args.end, args.tenant, Progress("days"))
    finally:
        store.close()
    dimensions = DIMENSIONS if args.by == "all" else (args.by,)
    if args.format == "json":
        tables = {d: json.loads(render(result.by(d), "json")) for d in dimensions}
        print(json.dumps({"cdrs": result.cdrs, "changed_cdrs": result.changed_cdrs, **tables}))
        return 0
    for dimension in dimensions:
        table = result.by(dimension)
        if args.format == "csv":
            print(render(table, "csv"))
        else:
            print(format_table(table, title=f"by {dimension}"))
            print()
    if args.format == "table":
        print(
            f"simulated reference data {reference.version} over {result.cdrs:,} CDRs: "
            f"{result.changed_cdrs:,} would change (nothing written)"
        )
    return 0


if __name__ == "__main__":  # pragma: no cover - after every helper it calls is defined
    sys.exit(main())
