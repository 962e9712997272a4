"""Streaming commands: ``setup`` topics and DDL, ``produce`` CDRs, ``run`` a rater."""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.commands.options import (
    kafka_options,
    port,
    positive_int,
    seconds,
    settings_of,
)


def add_commands(commands: Any) -> None:
    """Add ``setup``, ``produce`` and ``run``."""
    setup = commands.add_parser(
        "setup",
        help="create the Kafka topics and apply the ClickHouse DDL (idempotent)",
        description="Create the pipeline's topics (cdr.v1 with several partitions, cdr.dlq.v1, "
        "payments.v1, client-status.v1 and their dead-letter topics, the reference topics) "
        "with explicit settings if they do not exist, and apply the ClickHouse DDL to the store "
        "(the embedded one at --store, or the server at $CLICKHOUSE_URL). Safe to run again. "
        "Waits for Kafka and a ClickHouse server still starting ($VMGATE_STARTUP_WAIT_S, 120 s).",
    )
    kafka_options(setup)
    setup.add_argument("--store", type=Path, help="embedded store folder (default ./store)")
    setup.add_argument(
        "--replication-factor", type=positive_int, default=1, help="for new topics (1)"
    )
    setup.add_argument("--no-kafka", action="store_true", help="only apply the DDL")

    produce = commands.add_parser(
        "produce",
        help="publish a JSONL file of CDRs to cdr.v1",
        description="Publish each non-blank line of a JSONL file as one cdr.v1 message with an "
        "idempotent producer, keyed by cdr_id; prints how many the broker acknowledged.",
    )
    kafka_options(produce)
    produce.add_argument("--cdrs", type=Path, required=True, help="JSONL file, one CDR per line")
    produce.add_argument("--topic", help="topic (default cdr.v1 or $VMGATE_CDR_TOPIC)")

    run = commands.add_parser(
        "run",
        help="run a rater: consume cdr.v1, rate, write call history, commit",
        description="Join the consumer group and rate CDRs from Kafka in large batches into call "
        "history (the embedded store at --store, or the ClickHouse server at $CLICKHOUSE_URL). "
        "Rejected messages go to cdr.dlq.v1 with the reason. Payments (payments.v1) and client "
        "online status (client-status.v1) are stored too, each by a consumer group of its own. "
        "Offsets are committed, together "
        "with the dead letters in one Kafka transaction, only after the store acknowledged the "
        "batch. Kafka and a ClickHouse server still starting are waited for "
        "($VMGATE_STARTUP_WAIT_S, 120 s). SIGTERM/SIGINT: end any wait, or finish the batch in "
        "flight and commit; exit 0.",
    )
    kafka_options(run)
    run.add_argument(
        "--plans",
        type=Path,
        help="plans folder (reference data); default: the version published with "
        "`decks import`, swapped in between batches whenever a new one is published",
    )
    run.add_argument("--store", type=Path, help="embedded store folder (default ./store)")
    run.add_argument("--group", help="consumer group (default raters or $VMGATE_GROUP)")
    run.add_argument("--batch-size", type=positive_int, help="max CDRs per batch (default 50000)")
    run.add_argument(
        "--metrics-port",
        type=port,
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
        type=seconds,
        metavar="SECONDS",
        help="exit once no CDR arrived for this long (batch jobs, tests); default: run forever",
    )
    setup.set_defaults(run=_waiting_for_servers(_setup))
    produce.set_defaults(run=_produce)
    run.set_defaults(run=_waiting_for_servers(_run))


def _waiting_for_servers(command: Callable[[argparse.Namespace], int]) -> Any:
    """``command``, exiting 0 on a stop request during a startup wait, 3 when a server is down.

    A server that did not come up within the startup wait, or refused the pipeline for good
    (wrong password), is one line on stderr naming the server, exit status 3.
    """

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        from pipeline.services.startup import ServerUnavailableError, StopRequestedError

        try:
            return command(args)
        except StopRequestedError as exc:
            logging.getLogger(__name__).info("%s: exiting, nothing was done half-way", exc)
            return 0
        except ServerUnavailableError as exc:
            print(f"vmgate-rating: {exc}", file=sys.stderr)
            return 3

    return run


def _setup(args: argparse.Namespace) -> int:
    from pipeline.services.startup import StopSignal, open_store_when_ready, wait_for_kafka

    stop = StopSignal()
    stop.install()  # before any wait: a stop request ends it (PID 1 in a container too)
    settings = settings_of(args)
    if not args.no_kafka:
        from pipeline.sinks.topics import ensure_topics

        wait_for_kafka(settings, stop)
        for name, outcome in ensure_topics(settings, args.replication_factor).items():
            print(f"topic {name}: {outcome}")
    store = open_store_when_ready(settings, args.store, stop)
    try:
        applied = store.migrate()
    finally:
        store.close()
    print(f"DDL applied: {', '.join(applied) if applied else 'already up to date'}")
    return 0


def _produce(args: argparse.Namespace) -> int:
    from pipeline.sinks.cdr_producer import publish
    from pipeline.sources.files import read_jsonl_batches

    settings = settings_of(args)
    lines = (line for batch in read_jsonl_batches(args.cdrs, 10_000) for line in batch.lines)
    summary = publish(settings, lines, args.topic)
    print(
        f"sent {summary.sent:,}, acknowledged {summary.acknowledged:,}, failed {summary.failed:,}"
    )
    for error in summary.errors:
        print(f"  {error}", file=sys.stderr)
    return 0 if summary.failed == 0 and summary.acknowledged == summary.sent else 1


def _run(args: argparse.Namespace) -> int:
    from pipeline.services.startup import (
        StopRequestedError,
        StopSignal,
        open_store_when_ready,
        wait_for_kafka,
    )

    # First thing, before any wait: SIGTERM/SIGINT end every wait of the startup promptly
    # (a rater that is PID 1 in a container ignores a signal it has no handler for).
    stop = StopSignal()
    stop.install()
    from pipeline.reference.feed import ReferenceFeed, ReferenceWatcher
    from pipeline.reference.loader import load_plans_folder
    from pipeline.services.client_status_ingest import ClientStatusIngest
    from pipeline.services.metrics import RaterMetrics
    from pipeline.services.payments_ingest import PaymentsIngest
    from pipeline.services.rater import Rater, RaterStoppedError
    from pipeline.sinks.kafka_dlq import TransactionalCommitter
    from pipeline.sources.kafka import KafkaCdrSource

    log = logging.getLogger(__name__)
    settings = settings_of(args)
    metrics = RaterMetrics()
    port = args.metrics_port if args.metrics_port is not None else settings.metrics_port
    if port is not None:
        metrics.serve(port, args.metrics_address or settings.metrics_address)
    wait_for_kafka(settings, stop)
    store = open_store_when_ready(settings, args.store, stop)
    watcher = None
    try:
        store.migrate()
        if args.plans is not None:
            reference = load_plans_folder(args.plans)
        else:
            watcher = ReferenceWatcher(ReferenceFeed(settings.kafka(), settings.reference_topics()))
            watcher.start()
            first = watcher.wait_first(stopped=lambda: stop.requested)
            if first is None:
                raise StopRequestedError(
                    stop.signal_name or "a stop request", "published reference data"
                )
            reference = first
        log.info(
            "reference data %s: %d plans, %d deck rows",
            reference.version,
            reference.plan_count,
            reference.deck_row_count,
        )
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
            client_status=ClientStatusIngest(
                settings.kafka(),
                f"{settings.group_id}-client-status",
                settings.client_status_topic,
                settings.client_status_dlq_topic,
                store,
            ),
            reference_updates=watcher,
            metrics=metrics,
        )
        stop.on_stop(rater.stop)  # a signal before rater.run() installs its own handlers
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
    print(
        f"client status: stored {stats.client_status_stored:,}, refused "
        f"{stats.client_status_refused:,}, tombstones skipped {stats.client_status_tombstones:,}"
    )
    return 0
