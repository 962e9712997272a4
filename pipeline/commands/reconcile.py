"""``reconcile``: a carrier's CDR file against the client leg of our call history."""

from __future__ import annotations

import argparse
import json
import re
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.commands.options import (
    STORE_HELP,
    format_option,
    identifier,
    instant,
    with_store,
)

if TYPE_CHECKING:
    from pipeline.services.reconciliation import Reconciliation

_SECONDS = re.compile(r"^([0-9]{1,6})(?:\.([0-9]{1,6}))?s$")
_MILLISECONDS = re.compile(r"^([0-9]{1,9})ms$")
_PERCENT = re.compile(r"^([0-9]{1,3}(?:\.[0-9]{1,6})?)%$")
_MAX_TOLERANCE_US = 3_600_000_000  # one hour


def time_tolerance(text: str) -> int:
    """``2s``, ``1.5s`` or ``500ms``, at most an hour, as microseconds."""
    seconds, millis = _SECONDS.match(text), _MILLISECONDS.match(text)
    if seconds:
        fraction = (seconds.group(2) or "").ljust(6, "0")
        micros = int(seconds.group(1)) * 1_000_000 + int(fraction)
    elif millis:
        micros = int(millis.group(1)) * 1_000
    else:
        micros = -1
    if not 0 <= micros <= _MAX_TOLERANCE_US:
        msg = f"{text[:64]!r} is not a tolerance like 2s, 1.5s or 500ms (at most 3600s)"
        raise argparse.ArgumentTypeError(msg)
    return micros


def duration_tolerance(text: str) -> int:
    """A time tolerance in whole milliseconds (``1s``, ``500ms``), as milliseconds."""
    micros = time_tolerance(text)
    if micros % 1_000:
        msg = f"{text[:64]!r} is finer than a millisecond (durations are in milliseconds)"
        raise argparse.ArgumentTypeError(msg)
    return micros // 1_000


def amount_tolerance(text: str) -> Fraction:
    """A relative tolerance ``0.5%`` (0 to 100%), exactly, as a fraction."""
    found = _PERCENT.match(text)
    value = Fraction(Decimal(found.group(1))) / 100 if found else Fraction(-1)
    if not 0 <= value <= 1:
        msg = f"{text[:64]!r} is not a percentage like 0.5% (0% to 100%)"
        raise argparse.ArgumentTypeError(msg)
    return value


def add_commands(commands: Any) -> None:
    """Add ``reconcile``."""
    command = commands.add_parser(
        "reconcile",
        help="match a carrier's CDR file against a client's call history: what they bill "
        "that we did not carry, or bill differently",
        description="Read a carrier's CDR file (CSV or Excel) through a CDR profile and match "
        "it one-to-one with the answered calls of --client in call history, by callee and start "
        "time within --time-tolerance, nearest first. Each call is matched, "
        "duration_difference, amount_difference, duration_and_amount_difference (a pair beyond "
        "the duration or relative amount tolerance), only_in_theirs or only_in_ours. Prints "
        "the calls per class, totals on both sides and the disputed amount per currency "
        "(their amount minus ours where they charge more beyond the tolerance, plus their "
        "amounts of calls only in theirs); --out writes one line per call not cleanly matched, "
        "with both sides' values. See docs/reconciliation.md.",
        epilog="example: vmgate-rating reconcile --store ./store --client gw-7 --input "
        "carrier-march.csv --profile cdrs-carrier.toml --from 2026-03-01T00:00:00Z --to "
        "2026-04-01T00:00:00Z --out disputes.csv",
    )
    command.add_argument("--store", type=Path, default=Path("store"), help=STORE_HELP)
    command.add_argument("--client", type=identifier, required=True, help="VMGateClient id")
    command.add_argument("--tenant", type=identifier, help="only this tenant's calls")
    command.add_argument(
        "--input", type=Path, required=True, help="the carrier's CDR file (CSV or Excel)"
    )
    command.add_argument(
        "--profile", type=Path, required=True, help="CDR profile (TOML) of the carrier's layout"
    )
    command.add_argument(
        "--from", dest="start", type=instant, help="window start (RFC 3339; default: the file's)"
    )
    command.add_argument(
        "--to", dest="end", type=instant, help="window end, exclusive (default: the file's)"
    )
    command.add_argument(
        "--time-tolerance",
        type=time_tolerance,
        default=time_tolerance("2s"),
        help="start times match within this (2s; or like 500ms)",
    )
    command.add_argument(
        "--duration-tolerance",
        type=duration_tolerance,
        default=duration_tolerance("1s"),
        help="durations agree within this (1s)",
    )
    command.add_argument(
        "--amount-tolerance",
        type=amount_tolerance,
        default=amount_tolerance("0.5%"),
        help="amounts agree within this share of ours (0.5%%)",
    )
    command.add_argument("--out", type=Path, help="write the per-call lines here (CSV)")
    command.add_argument(
        "--every-call", action="store_true", help="--out lists the cleanly matched calls too"
    )
    format_option(command)
    command.set_defaults(run=_reconcile)


def _reconcile(args: argparse.Namespace) -> int:
    from pipeline.reference.carrier_cdrs import read_cdr_profile
    from pipeline.services.reconciliation import Tolerances, reconcile

    profile = read_cdr_profile(args.profile)
    tolerances = Tolerances(args.time_tolerance, args.duration_tolerance, args.amount_tolerance)
    store = with_store(args)
    try:
        outcome = reconcile(
            store,
            args.client,
            args.input,
            profile,
            start=args.start,
            end=args.end,
            tolerances=tolerances,
            tenant=args.tenant,
        )
    finally:
        store.close()
    written = None
    if args.out is not None:
        text, written = _report_csv(outcome, every_call=args.every_call)
        args.out.write_text(text + "\n", encoding="utf-8", newline="")
    if args.format == "csv":
        print(_report_csv(outcome, every_call=args.every_call)[0])
    elif args.format == "json":
        print(json.dumps(_summary(outcome, args.out, written), indent=2))
    else:
        print(_table(outcome, args.out, written))
    return 0


def _report_csv(outcome: Reconciliation, *, every_call: bool) -> tuple[str, int]:
    """The per-call lines as CSV (no line break after the last), and how many there are."""
    from pipeline.storage.reports import render

    report = outcome.report(every_call=every_call)
    return render(report.to_arrow(), "csv"), report.height


def _summary(outcome: Reconciliation, out: Path | None, written: int | None) -> dict[str, Any]:
    return {
        "client": outcome.client,
        "carrier_file": outcome.carrier_file,
        "carrier_rows": outcome.carrier_rows,
        "outside_window": outcome.outside_window,
        **_window(outcome),
        "classes": outcome.counts().to_dicts(),
        "totals": outcome.totals().to_dicts(),
        "disputed": outcome.disputed().to_dicts(),
        "out": None if out is None else str(out),
        "lines_written": written,
    }


def _window(outcome: Reconciliation) -> dict[str, str]:
    """The window's ends (RFC 3339) and the tolerances (seconds, a share of ours) as texts."""
    import polars as pl

    from pipeline.rating.timeparse import format_rfc3339

    ends = pl.DataFrame({"us": [outcome.start_us, outcome.end_us]}, schema={"us": pl.Int64})
    start, end = ends.select(format_rfc3339(pl.col("us")))["us"].to_list()
    tolerances = outcome.tolerances
    return {
        "from": start,
        "to": end,
        "time_tolerance_s": _plain(Decimal(tolerances.time_us) / 1_000_000),
        "duration_tolerance_s": _plain(Decimal(tolerances.duration_ms) / 1_000),
        "amount_tolerance": _plain(
            Decimal(tolerances.amount.numerator) / Decimal(tolerances.amount.denominator)
        ),
    }


def _table(outcome: Reconciliation, out: Path | None, written: int | None) -> str:
    from pipeline.storage.reports import format_table

    window = _window(outcome)
    left_out = (
        f"; {outcome.outside_window:,} outside the window, left out"
        if outcome.outside_window
        else ""
    )
    percent = _plain(Decimal(window["amount_tolerance"]) * 100)
    lines = [
        f"client {outcome.client}: carrier file {outcome.carrier_file} "
        f"({outcome.carrier_rows:,} calls{left_out})",
        f"window {window['from']} to {window['to']}; "
        f"tolerances: start {window['time_tolerance_s']}s, duration "
        f"{window['duration_tolerance_s']}s, amount {percent}%",
        "",
        format_table(outcome.counts().to_arrow(), "calls per class"),
        "",
        format_table(outcome.totals().to_arrow(), "totals (seconds: duration; ours also billed)"),
        "",
        format_table(
            outcome.disputed().to_arrow(),
            "disputed = overcharged (theirs - ours, where theirs is more) + only_in_theirs",
        ),
    ]
    if out is not None:
        lines += ["", f"wrote {written:,} call line(s) to {out}"]
    return "\n".join(lines)


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")
