"""Roster commands: the Resellers page and the Join Codes table, read from a store."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pipeline.commands.options import STORE_HELP, format_option, with_store


def add_commands(commands: Any) -> None:
    """Add ``resellers`` and ``join-codes``."""
    resellers = commands.add_parser(
        "resellers",
        help="the Resellers page: each reseller's clients, online, balance, billing type, status",
        description="Management -> Resellers, from the roster of the reference version loaded "
        "last (written by `rate --store` and by every rater). One row per reseller of each "
        "tenant: reseller_id, name, company, email, clients (clients whose membership now is "
        "this reseller, from join codes and memberships.csv), online (of those, how many are "
        "online by their newest client status), balance (owed to it per currency: its reseller "
        "leg rated minus reseller payouts, the same figures as `balances --scope reseller`), "
        "calls attributed to it, billing_type, status (active or inactive) and a flag: "
        "'inactive, has traffic' for an inactive reseller whose clients still carry calls "
        "(they are attributed and rated all the same), 'no account' for a reseller id with "
        "traffic, memberships, a join code or payouts but no row in accounts.csv (listed, never "
        "dropped). JSON gives decimals as exact strings and balance as currency -> amount.",
    )
    resellers.add_argument("--store", type=Path, default=Path("store"), help=STORE_HELP)
    resellers.add_argument("--tenant", help="only this tenant's resellers")
    format_option(resellers)

    codes = commands.add_parser(
        "join-codes",
        help="each join code, its reseller or Direct, and the clients enrolled through it",
        description="The Join Codes table of the current roster: code, reseller (Direct for a "
        "tenant-managed code), the reseller's name, clients (every client enrolled through the "
        "code), current_clients (those whose enrollment through it is in effect now) and, with "
        "--clients, their ids.",
    )
    codes.add_argument("--store", type=Path, default=Path("store"), help=STORE_HELP)
    codes.add_argument("--tenant", help="only this tenant's codes")
    codes.add_argument(
        "--clients", action="store_true", help="also list the ids of the clients enrolled"
    )
    format_option(codes)
    resellers.set_defaults(run=_resellers)
    codes.set_defaults(run=_join_codes)


def _resellers(args: argparse.Namespace) -> int:
    from pipeline.storage.roster import PAGE_COLUMNS, render_page, resellers_page

    store = with_store(args)
    try:
        rows = resellers_page(store, args.tenant)
    finally:
        store.close()
    print(render_page(rows, list(PAGE_COLUMNS), args.format))
    return 0


def _join_codes(args: argparse.Namespace) -> int:
    from pipeline.storage.roster import JOIN_CODE_COLUMNS, join_codes_page, render_page

    store = with_store(args)
    try:
        rows = join_codes_page(store, args.tenant, clients=args.clients)
    finally:
        store.close()
    columns = [*JOIN_CODE_COLUMNS, *(["client_ids"] if args.clients else [])]
    print(render_page(rows, columns, args.format))
    return 0
