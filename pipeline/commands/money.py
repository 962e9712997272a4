"""Money commands: balances, call history, billing overview, payments, re-rating."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pipeline.commands.options import (
    STORE_HELP,
    currency_code,
    format_option,
    instant,
    kafka_options,
    non_negative_int,
    settings_of,
    window_options,
    with_store,
)

# The kinds of ``pipeline.storage.payments.KINDS``, named here so that building the parser
# does not import the storage and rating modules (numpy, polars, pyarrow) for every command.
PAYMENT_KINDS = ("customer_payment_in", "client_payout_out", "reseller_payout_out")


def add_commands(commands: Any) -> None:
    """Add the commands that read and change the money in a store."""
    balances = commands.add_parser(
        "balances",
        help="what each customer owes and what is owed to each client and reseller",
        description="Balances per tenant, scope (customer, client, reseller), account and "
        "currency: the rated amount, the payments recorded, and balance = amount - payments. "
        "Exact under duplicates and re-rating. Brings the pre-aggregated sums up to date first.",
    )
    balances.add_argument("--store", type=Path, default=Path("store"), help=STORE_HELP)
    balances.add_argument("--tenant", help="only this tenant")
    balances.add_argument("--scope", choices=["customer", "client", "reseller"], help="one scope")
    balances.add_argument("--account", help="only this account")
    format_option(balances)

    history = commands.add_parser(
        "call-history",
        help="rated sessions with their reseller (or Direct) and reseller cost",
        description="Call history, one current row per CDR (the latest rating), newest first.",
    )
    history.add_argument("--store", type=Path, default=Path("store"), help=STORE_HELP)
    who = history.add_mutually_exclusive_group()
    who.add_argument("--reseller", help="only sessions attributed to this reseller")
    who.add_argument("--direct", action="store_true", help="only Direct sessions (no reseller)")
    history.add_argument("--tenant", help="only this tenant")
    history.add_argument("--customer", help="only this customer")
    history.add_argument(
        "--from", dest="start", type=instant, help="start_time at or after (RFC 3339)"
    )
    history.add_argument("--to", dest="end", type=instant, help="start_time before (RFC 3339)")
    history.add_argument(
        "--limit", type=non_negative_int, default=100, help="at most this many rows (100)"
    )
    format_option(history)

    overview = commands.add_parser(
        "billing-overview",
        help="per tenant and currency: customer totals, client totals, owed to resellers",
        description="Finance -> Billing: per tenant and currency, customer totals and payments "
        "in, VMGateClient totals and payouts, reseller totals, payouts and what is still owed "
        "to resellers. With --currency C, every figure of a tenant converted into C (and the "
        "margin: customer total - client total - reseller total): each call at the exchange "
        "rate in effect at its start_time, each payment at its recorded_at (fx_rates.csv of "
        "the current reference version), exact, rounded per amount to 6 decimals half up; "
        "amounts with no rate in effect stay in their currency on 'unconverted' rows.",
    )
    overview.add_argument("--store", type=Path, default=Path("store"), help=STORE_HELP)
    overview.add_argument("--tenant", help="only this tenant")
    overview.add_argument(
        "--currency",
        type=currency_code,
        help="report in this ISO 4217 currency, converted at each call's own rate",
    )
    format_option(overview)

    payment = commands.add_parser(
        "record-payment",
        help="record a payment in (customer) or a payout (client, reseller)",
        description="Record one payment against an account. Idempotent by --payment-id: the "
        "same payment recorded twice is kept once; a different payment under a used id is "
        "refused. Kinds: customer_payment_in, client_payout_out, reseller_payout_out. With "
        "Kafka configured ($KAFKA_BOOTSTRAP or --bootstrap) the payment is published to "
        "payments.v1 and the raters write it; otherwise it is written to the store directly.",
    )
    kafka_options(payment)
    payment.add_argument("--store", type=Path, default=Path("store"), help=STORE_HELP)
    payment.add_argument("--payment-id", required=True, help="unique id of this payment")
    payment.add_argument("--tenant", required=True, help="tenant id")
    payment.add_argument(
        "--kind",
        required=True,
        choices=list(PAYMENT_KINDS),
        help="payment in from a customer, or payout to a client or a reseller",
    )
    payment.add_argument("--account", required=True, help="customer, client or reseller id")
    payment.add_argument("--amount", required=True, help="positive decimal, e.g. 125.50")
    payment.add_argument("--currency", required=True, help="ISO 4217 code, e.g. EUR")
    payment.add_argument("--recorded-at", type=instant, help="RFC 3339 instant (default: now)")
    payment.add_argument("--note", default="", help="free text")

    rerate = commands.add_parser(
        "rerate",
        help="re-rate a tenant's call history in a time window with corrected plans",
        description="Rate again every CDR of --tenant with start_time in [--from, --to) using "
        "the plans folder given, replacing the earlier rating: afterwards every query and "
        "balance reflects only the new rating. Re-rating again with the same data changes no "
        "amount. Prints the change per leg and currency.",
    )
    rerate.add_argument("--store", type=Path, default=Path("store"), help=STORE_HELP)
    rerate.add_argument("--plans", type=Path, required=True, help="corrected plans folder")
    rerate.add_argument("--tenant", required=True, help="tenant whose calls are re-rated")
    window_options(rerate)
    balances.set_defaults(run=_balances)
    history.set_defaults(run=_call_history)
    overview.set_defaults(run=_billing_overview)
    payment.set_defaults(run=_record_payment)
    rerate.set_defaults(run=_rerate)


def _balances(args: argparse.Namespace) -> int:
    from pipeline.rating.reference import Scope
    from pipeline.storage.balances import balances, refresh_balances
    from pipeline.storage.reports import render

    store = with_store(args)
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
    from pipeline.storage.fx import billing_overview_in
    from pipeline.storage.reports import render

    store = with_store(args)
    try:
        if args.currency:  # read live, per call: no pre-aggregated sums to refresh
            table = billing_overview_in(store, args.currency, args.tenant)
        else:
            refresh_balances(store)
            table = billing_overview(store, args.tenant)
    finally:
        store.close()
    print(render(table, args.format))
    return 0


def _call_history(args: argparse.Namespace) -> int:
    from pipeline.storage.reports import call_history, render

    store = with_store(args)
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
    settings = settings_of(args)
    if settings.kafka_bootstrap:
        from pipeline.services.payments_ingest import publish_payment

        publish_payment(settings.kafka(), settings.payments_topic, payment)
        what = f"published to {settings.payments_topic}"
    else:
        store = with_store(args)
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
    store = with_store(args)
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
