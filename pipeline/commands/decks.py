"""``decks``: publish a plans folder to the raters, compare two versions, simulate one."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pipeline.commands.carrier_decks import add_actions as add_carrier_actions
from pipeline.commands.options import (
    STORE_HELP,
    currency_code,
    format_option,
    kafka_options,
    settings_of,
    window_options,
    with_store,
)


def add_commands(commands: Any) -> None:
    """Add ``decks import``, ``diff``, ``simulate``, ``convert`` and ``notify``."""
    decks = commands.add_parser(
        "decks",
        help="rate decks: import and publish to the raters, diff, simulate a new version, "
        "convert a carrier's deck, write a customer's rate notification",
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
    kafka_options(imports)
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
    format_option(diff)
    simulate = actions.add_parser(
        "simulate",
        help="what a new version would change in revenue, cost and margin (writes nothing)",
        description="Re-rate the call history with start_time in [--from, --to) using the "
        "plans folder given, without writing anything, and report revenue (customer leg), cost "
        "(client and reseller legs) and margin before, after and the change, per currency, by "
        "leg, destination, customer and reseller. Re-rating the same window for real "
        "(`rerate`) moves balances by exactly these changes. With --currency C, every amount "
        "before and after converted into C at the rate in effect at its call's start_time (as "
        "billing-overview --currency); amounts with no rate in effect stay in their currency on "
        "'unconverted' rows.",
    )
    simulate.add_argument("--plans", type=Path, required=True, help="new plans folder")
    simulate.add_argument("--store", type=Path, default=Path("store"), help=STORE_HELP)
    window_options(simulate)
    simulate.add_argument("--tenant", help="only this tenant (default: every tenant)")
    simulate.add_argument(
        "--by",
        choices=["all", "leg", "destination", "customer", "reseller"],
        default="all",
        help="which breakdown to print (all)",
    )
    simulate.add_argument(
        "--currency",
        type=currency_code,
        help="report in this ISO 4217 currency, converted at each call's own rate",
    )
    format_option(simulate)
    add_carrier_actions(actions)
    imports.set_defaults(run=_decks_import)
    diff.set_defaults(run=_decks_diff)
    simulate.set_defaults(run=_decks_simulate)


def _decks_import(args: argparse.Namespace) -> int:
    from pipeline.reference.feed import ReferenceFeed
    from pipeline.reference.files import FolderPlanFiles
    from pipeline.reference.loader import load_plans_folder
    from pipeline.reference.publisher import publish_reference
    from pipeline.sinks.topics import ensure_topics, reference_topic_specs

    settings = settings_of(args)
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
    store = with_store(args)
    try:
        result = simulate(
            store,
            reference,
            args.start,
            args.end,
            args.tenant,
            Progress("days"),
            currency=args.currency,
        )
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
