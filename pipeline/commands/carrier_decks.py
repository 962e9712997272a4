"""``decks convert`` and ``decks notify``: the part of ``decks`` in other people's layouts.

``convert`` turns a carrier's deck into a plan's deck; ``notify`` writes the rate notification
a customer receives.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.commands.options import identifier, non_negative_int


def add_actions(actions: Any) -> None:
    """Add ``decks convert`` and ``decks notify``."""
    convert = actions.add_parser(
        "convert",
        help="convert a carrier's rate deck (CSV or Excel, its own layout) into a plan's deck",
        description="Read a carrier's A-Z deck or rate notification through a profile (TOML: "
        "layout, decimal separator, date format and time zone, column mapping, change words; "
        "see examples/carrier-profiles/) and write it into the plan's deck in the plans folder "
        "as dated rows: each code's row in effect ends at the file's effective date, rows "
        "before stay (history), and the whole folder is validated before anything is "
        "written. Every problem of the file is named with its row, header and value, and "
        "nothing is written then. Prints what changes: new, increased, decreased, unchanged "
        "and closed codes per destination, change words the numbers contradict, and (with "
        "--notified-at and --notice-days) increases and new codes effective too soon.",
    )
    convert.add_argument("--input", type=Path, required=True, help="the carrier's file")
    convert.add_argument("--profile", type=Path, required=True, help="the carrier's profile")
    convert.add_argument("--plans", type=Path, required=True, help="plans folder to write into")
    convert.add_argument("--plan", type=identifier, required=True, help="plan id of the deck")
    convert.add_argument(
        "--mode",
        choices=["update", "replace"],
        default="update",
        help="update (default): only the listed codes change, 'closed' rows end a code; "
        "replace: the file is the whole A-Z, a code of the deck absent from it is closed at "
        "the file's earliest effective date",
    )
    convert.add_argument(
        "--notified-at",
        type=_notice_date,
        help="when the carrier sent the file (RFC 3339, or a date YYYY-MM-DD: midnight in "
        "the profile's time zone)",
    )
    convert.add_argument(
        "--notice-days",
        type=non_negative_int,
        help="days of notice the contract requires for increases and new codes",
    )
    convert.add_argument(
        "--strict", action="store_true", help="refuse the file when notice is too short"
    )
    convert.add_argument(
        "--dry-run", action="store_true", help="print what would change, write nothing"
    )
    convert.add_argument(
        "--format", choices=["table", "json"], default="table", help="summary format (table)"
    )
    notify = actions.add_parser(
        "notify",
        help="the rate notification file to send a customer (CSV or Excel)",
        description="Compare a plan's deck in two plans folders (both validated first; the "
        "same comparison as `decks diff`) and write what changes for the customer: code, "
        "destination, old rate, new rate, change word (new, increase, decrease, unchanged, "
        "changed, closed) and effective date, sorted by destination. --out names the file: "
        ".csv or .xlsx.",
    )
    notify.add_argument(
        "--old", dest="old_plans", type=Path, required=True, help="plans folder in use"
    )
    notify.add_argument(
        "--new", dest="new_plans", type=Path, required=True, help="plans folder to announce"
    )
    notify.add_argument("--plan", type=identifier, required=True, help="the customer's plan id")
    notify.add_argument("--out", type=_notice_file, required=True, help="file.csv or file.xlsx")
    convert.set_defaults(run=_convert)
    notify.set_defaults(run=_notify)


def _notice_date(text: str) -> str:
    """An RFC 3339 instant or a date; checked here, read in the profile's zone later."""
    from pipeline.rating.timeparse import parse_instant

    try:
        datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        if parse_instant(text) is None:
            msg = f"{text!r} is not a date (YYYY-MM-DD) or an RFC 3339 timestamp"
            raise argparse.ArgumentTypeError(msg) from None
    return text


def _notice_file(text: str) -> Path:
    path = Path(text)
    if path.suffix.lower() not in (".csv", ".xlsx"):
        msg = f"{text!r} must end in .csv or .xlsx"
        raise argparse.ArgumentTypeError(msg)
    return path


def _convert(args: argparse.Namespace) -> int:
    import polars as pl

    from pipeline.rating.timeparse import parse_instant, to_micros
    from pipeline.reference.carrier_decks import (
        convert_deck,
        read_deck_profile,
        write_conversion,
    )
    from pipeline.reference.carrier_files import ROW, local_instants
    from pipeline.reference.files import FolderPlanFiles
    from pipeline.reference.loader import load_plans_folder
    from pipeline.storage.reports import format_table

    if (args.notified_at is None) != (args.notice_days is None):
        msg = "--notified-at and --notice-days go together"
        raise ValueError(msg)
    reference = load_plans_folder(args.plans)  # the folder must be good before it changes
    if args.plan not in reference.plans["plan_id"].to_list():
        msg = f"plan {args.plan!r} is not in {args.plans / 'plans.csv'}"
        raise ValueError(msg)
    profile = read_deck_profile(args.profile)
    notified_at_us = None
    if args.notified_at is not None:
        moment = parse_instant(args.notified_at)
        if moment is not None:
            notified_at_us = to_micros(moment)
        else:
            day = pl.Series([args.notified_at])
            notified_at_us = local_instants(day, "%Y-%m-%d", profile.layout.timezone).item()
    conversion = convert_deck(
        FolderPlanFiles(args.plans),
        args.plan,
        args.input,
        profile,
        mode=args.mode,
        notified_at_us=notified_at_us,
        notice_days=args.notice_days,
    )
    counts = conversion.counts()
    refused = args.strict and conversion.notice.height > 0
    if not args.dry_run and not refused:
        write_conversion(args.plans, conversion)
    if args.format == "json":
        print(
            json.dumps(
                {
                    "plan": args.plan,
                    "written": not args.dry_run and not refused,
                    "counts": counts,
                    "by_destination": conversion.by_destination().to_dicts(),
                    "closed_absent": conversion.closed_absent.to_dicts(),
                    "notice_violations": conversion.notice.to_dicts(),
                    "contradictions": conversion.contradictions.to_dicts(),
                }
            )
        )
    else:
        print(format_table(conversion.by_destination().to_arrow(), title="codes by destination"))
        for title, frame in (
            ("closed: in the deck, absent from the A-Z file", conversion.closed_absent),
            ("change words the numbers contradict", conversion.contradictions),
            ("notice too short (increases and new codes)", conversion.notice),
        ):
            if frame.height:
                print()
                print(format_table(frame.rename({ROW: "row"}, strict=False).to_arrow(), title))
        print()
        shown = ", ".join(f"{counts[k]:,} {k}" for k in ("new", "increase", "decrease"))
        print(
            f"{args.input}: {conversion.rows.height:,} codes: {shown}, "
            f"{counts['unchanged']:,} unchanged, {counts['changed']:,} other terms changed, "
            f"{counts['closed']:,} closed; {counts['notice_violations']:,} notice violations"
        )
    if refused:
        print(
            f"refused (--strict): {conversion.notice.height:,} increases or new codes have "
            f"less than {args.notice_days} days of notice; nothing written"
        )
        return 1
    if args.format == "table":
        print(
            f"dry run: {conversion.deck_file} not written"
            if args.dry_run
            else f"wrote {args.plans / conversion.deck_file}; the plans folder validates"
        )
    return 0


def _notify(args: argparse.Namespace) -> int:
    from pipeline.reference.files import FolderPlanFiles
    from pipeline.reference.loader import load_plans_folder
    from pipeline.reference.rate_notices import rate_notice, write_notice

    old, new = load_plans_folder(args.old_plans), load_plans_folder(args.new_plans)
    if args.plan not in (*old.plans["plan_id"], *new.plans["plan_id"]):
        msg = f"plan {args.plan!r} is in neither plans folder"
        raise ValueError(msg)
    notice = rate_notice(
        FolderPlanFiles(args.old_plans), FolderPlanFiles(args.new_plans), args.plan
    )
    write_notice(notice, args.out)
    counts = notice.group_by("change").len().sort("change").iter_rows()
    summary = ", ".join(f"{n:,} {change}" for change, n in counts) or "no changes"
    print(f"wrote {args.out}: {notice.height:,} lines for plan {args.plan} ({summary})")
    return 0
