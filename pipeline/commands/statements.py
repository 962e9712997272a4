"""Billing-period commands: ``statements`` and ``periods close | reopen | list``."""

from __future__ import annotations

import argparse
import getpass
from datetime import UTC, date, datetime
from typing import Any

from pipeline.commands.options import format_option, identifier, store_option, with_store


def period(text: str) -> str:
    """A month ``YYYY-MM``."""
    from pipeline.storage.periods import parse_period

    try:
        return parse_period(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def local_date(text: str) -> date:
    """A date ``YYYY-MM-DD`` (read in each account's time zone)."""
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        msg = f"{text[:64]!r} is not a date YYYY-MM-DD (like 2026-03-01)"
        raise argparse.ArgumentTypeError(msg) from None


def reason(text: str) -> str:
    """Free text that is not blank, at most 1000 characters."""
    if not text.strip() or len(text) > 1000:
        msg = "the reason must be 1 to 1000 characters of text, not blank"
        raise argparse.ArgumentTypeError(msg)
    return text.strip()


def _store_and_tenant(command: argparse.ArgumentParser) -> None:
    store_option(command)
    command.add_argument("--tenant", type=identifier, required=True, help="tenant id")


def _by(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--by", type=identifier, help="who does it, for the log (default: the login name)"
    )


def add_commands(commands: Any) -> None:
    """Add ``statements`` and ``periods``."""
    statements = commands.add_parser(
        "statements",
        help="statements per account and currency for a month or a date range",
        description="Per account and currency: opening balance, calls, billed minutes, amount, "
        "payments, adjustments (changes to closed periods, per call), closing balance, and a "
        "breakdown per destination. The period is read in each account's time zone "
        "(accounts.csv of the current roster, else UTC). Signs as in `balances`: a customer's "
        "balance is what it owes; a client's or reseller's, what is owed to it. A closed "
        "month's statements are shown as frozen, with their SHA-256 digest.",
    )
    _store_and_tenant(statements)
    statements.add_argument(
        "--scope", choices=["customer", "client", "reseller"], help="only this scope"
    )
    statements.add_argument("--account", type=identifier, help="only this account")
    statements.add_argument("--period", type=period, help="a month, YYYY-MM (e.g. 2026-03)")
    statements.add_argument(
        "--from", dest="start", type=local_date, help="first date, YYYY-MM-DD (instead of --period)"
    )
    statements.add_argument(
        "--to", dest="end", type=local_date, help="date after the last one, YYYY-MM-DD (exclusive)"
    )
    statements.add_argument(
        "--format",
        choices=["table", "json", "csv", "html"],
        default="table",
        help="output (table); html is a printable page with no external assets",
    )
    statements.set_defaults(run=_statements)

    periods = commands.add_parser(
        "periods",
        help="close, reopen and list a tenant's billing periods (months)",
        description="Closing a month freezes its statements (stored with a SHA-256 digest): a "
        "later re-rating or corrected CDR does not change them; the difference is booked as "
        "adjustments, per call, in the first open month. Months close in order; only the last "
        "closed month can be reopened, with a reason, and every close and reopen is logged.",
    )
    actions = periods.add_subparsers(dest="periods_command", required=True, metavar="ACTION")
    close = actions.add_parser(
        "close",
        help="freeze a month's statements (idempotent)",
        description="Freeze the statements of --period: the first close of a tenant may be any "
        "month (it freezes the opening balance too), later ones the month after the last "
        "closed. Closing a closed month changes nothing and prints the same digest.",
    )
    _store_and_tenant(close)
    close.add_argument("--period", type=period, required=True, help="the month, YYYY-MM")
    _by(close)
    close.set_defaults(run=_close)
    reopen = actions.add_parser(
        "reopen",
        help="reopen the last closed month, with a reason (logged)",
        description="Reopen --period (the last closed month): its statements are computed live "
        "again, and the adjustments booked in it for earlier months move back to it. The "
        "frozen statements stay stored; the reopen is logged with who, when and why.",
    )
    _store_and_tenant(reopen)
    reopen.add_argument("--period", type=period, required=True, help="the month, YYYY-MM")
    reopen.add_argument("--reason", type=reason, required=True, help="why, for the log")
    _by(reopen)
    reopen.set_defaults(run=_reopen)
    listing = actions.add_parser(
        "list",
        help="the close and reopen log of a tenant",
        description="Every close and reopen of the tenant's months: period, status now, "
        "action, when, by whom, why, statements frozen and the period's digest.",
    )
    _store_and_tenant(listing)
    format_option(listing)
    listing.set_defaults(run=_list)


def _window(args: argparse.Namespace) -> Any:
    from pipeline.storage.statements import Window

    if args.period is not None and (args.start or args.end):
        msg = "statements: give --period or --from and --to, not both"
        raise ValueError(msg)
    if args.period is not None:
        return Window(period=args.period)
    if args.start is None or args.end is None:
        msg = "statements: give --period YYYY-MM, or both --from and --to (YYYY-MM-DD)"
        raise ValueError(msg)
    return Window(start=args.start, end=args.end)


def _statements(args: argparse.Namespace) -> int:
    from pipeline.services.statements import statements
    from pipeline.storage.statement_pages import render_statements

    window = _window(args)
    store = with_store(args)
    try:
        found = statements(store, args.tenant, window, scope=args.scope, account=args.account)
    finally:
        store.close()
    print(render_statements(found, args.format))
    return 0


def _actor(args: argparse.Namespace) -> str:
    if args.by:
        return str(args.by)
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def _close(args: argparse.Namespace) -> int:
    from pipeline.services.statements import close_period

    store = with_store(args)
    try:
        result = close_period(store, args.tenant, args.period, _actor(args), datetime.now(UTC))
    finally:
        store.close()
    what = "was already closed, nothing changed" if result.already_closed else "closed"
    print(
        f"period {result.period} of tenant {args.tenant} {what}: {result.statements} "
        f"statements, sha256 {result.digest}"
    )
    return 0


def _reopen(args: argparse.Namespace) -> int:
    from pipeline.services.statements import reopen_period

    store = with_store(args)
    try:
        event = reopen_period(
            store, args.tenant, args.period, _actor(args), args.reason, datetime.now(UTC)
        )
    finally:
        store.close()
    print(
        f"period {event.period} of tenant {args.tenant} reopened by {event.actor}: {event.reason}"
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    import pyarrow as pa

    from pipeline.storage.periods import chain_of, events
    from pipeline.storage.reports import render

    store = with_store(args)
    try:
        log = events(store, args.tenant)
    finally:
        store.close()
    chain = chain_of(log)
    rows = [
        {
            "period": e.period,
            "status": "closed" if e.period in chain.periods else "open",
            "action": e.action,
            "at": e.at,
            "by": e.actor,
            "reason": e.reason,
            "statements": e.statements,
            "digest": e.digest,
        }
        for e in log
    ]
    names = ["period", "status", "action", "at", "by", "reason", "statements", "digest"]
    table = pa.Table.from_pylist(rows) if rows else pa.table({n: pa.array([]) for n in names})
    print(render(table, args.format))
    return 0
