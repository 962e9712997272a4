"""``vmgate-rating demo``: a synthetic network rated end to end into an embedded store.

What a newcomer runs first (``make demo``): it shows every part of the embedded default working
together (reference data, decoding with a dead-letter file, the rating core, the store, SQL over
call history) on data that looks like a real wholesale network.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

from pipeline.progress import Progress
from pipeline.reference.loader import load_plans_folder
from pipeline.services.client_status_messages import decode_status_line
from pipeline.services.offline import rate_file
from pipeline.sinks.contracts import CallHistoryStore
from pipeline.sinks.embedded import EmbeddedStore
from pipeline.storage.alerts import money_alerts, render_alerts
from pipeline.storage.balances import billing_overview, refresh_balances
from pipeline.storage.client_status import ClientStatus, record_client_statuses
from pipeline.storage.fx import billing_overview_in
from pipeline.storage.payments import Payment, record_payment
from pipeline.storage.reports import (
    CUSTOMER_BY_BAND_SQL,
    LEG_TOTALS_SQL,
    OWED_TO_RESELLERS_SQL,
    SAMPLE_SQL,
    UNRATED_SQL,
    format_table,
)
from pipeline.storage.roster import (
    JOIN_CODE_COLUMNS,
    PAGE_COLUMNS,
    join_codes_page,
    render_page,
    resellers_page,
)
from pipeline.synthetic import NetworkSpec, RosterSummary, write_network


def run_demo(folder: Path, cdrs: int = 50_000, seed: int = 7) -> int:
    """Build the network under ``folder`` (replacing an earlier demo), rate it and report."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    spec = NetworkSpec(
        seed=seed,
        cdrs=cdrs,
        price_shape=True,  # tariff v2
        origins_and_bands=True,
        accounts=True,  # the roster, FX rates, client status, payments, something to alert on
    )
    plans_dir, cdrs_path = folder / "plans", folder / "cdrs.jsonl"
    network = write_network(spec, plans_dir, cdrs_path)
    print(
        f"network: {len(network.tenant_ids)} tenants, {len(network.customer_ids)} customers, "
        f"{len(network.client_ids)} clients, {len(network.reseller_ids)} resellers, "
        f"{len(network.plan_ids)} plans with {network.deck_rows:,} deck rows, "
        f"{network.cdrs_written:,} CDRs ({len(network.malformed_lines):,} malformed) "
        f"in {folder}"
    )
    reference = load_plans_folder(plans_dir)
    out, dlq, store_dir = (
        folder / "call_history.parquet",
        folder / "rejected.jsonl",
        folder / "store",
    )
    with EmbeddedStore(store_dir) as store:
        store.migrate()
        summary = rate_file(
            reference,
            cdrs_path,
            out,
            dlq,
            datetime.now(UTC),
            store=store,
            progress=Progress("rating"),
        )
        print()
        for line in summary.lines():
            print(line)
        roster = network.roster
        if roster is None:  # pragma: no cover - the spec asks for it
            msg = "the demo network has no roster"
            raise RuntimeError(msg)
        print(_record_roster_events(store, roster))
        print()
        print(format_table(store.query(SAMPLE_SQL, {"limit": 8}), "Call history (sample)"))
        print()
        print(format_table(store.query(LEG_TOTALS_SQL), "Totals per leg and currency"))
        print()
        print(format_table(store.query(OWED_TO_RESELLERS_SQL), "Owed to resellers"))
        print()
        print(
            format_table(
                store.query(CUSTOMER_BY_BAND_SQL),
                "Customer revenue by time band and caller origin (tariff v2)",
            )
        )
        print()
        refresh_balances(store)
        print(format_table(billing_overview(store), "Billing overview (Finance -> Billing)"))
        print()
        print(format_table(store.query(UNRATED_SQL), "Unrated by reason"))
        print()
        _print_roster(store, roster)
    print()
    print(f"rejected lines: {summary.rejected:,} (see {dlq})")
    print(f"call history: {out}; store: {store_dir}")
    print(
        "next: vmgate-rating export --store "
        f"{store_dir} --out {folder / 'export.parquet'}   |   vmgate-rating --help"
    )
    return 0


def _record_roster_events(store: CallHistoryStore, roster: RosterSummary) -> str:
    """Record the network's client status events and payments, as the ingests would."""
    statuses: list[ClientStatus] = []
    for line in roster.client_status_path.read_bytes().splitlines():
        status = decode_status_line(line)
        if not isinstance(status, ClientStatus):
            msg = f"{roster.client_status_path}: {status}"
            raise TypeError(msg)
        statuses.append(status)
    record_client_statuses(store, statuses, roster.alerts_now)
    payments = roster.payments_path.read_text(encoding="utf-8").splitlines()
    for text in payments:
        record_payment(store, Payment.parse(**json.loads(text)))
    return f"recorded: {len(statuses)} client status events, {len(payments)} payments"


def _print_roster(store: CallHistoryStore, roster: RosterSummary) -> None:
    """The Resellers page, the join codes, the overview in one currency and the money alerts."""
    print("Resellers (Management -> Resellers)")
    print(render_page(resellers_page(store), list(PAGE_COLUMNS), "table"))
    print()
    print("Join codes (Direct: tenant-managed)")
    print(render_page(join_codes_page(store), list(JOIN_CODE_COLUMNS), "table"))
    print()
    currency = roster.reporting_currency
    print(
        format_table(
            billing_overview_in(store, currency),
            f"Billing overview in {currency} (billing-overview --currency {currency}, "
            "at each call's exchange rate)",
        )
    )
    print()
    now = roster.alerts_now.strftime("%Y-%m-%dT%H:%M:%SZ")
    print(f"Money alerts at {now} (vmgate-rating alerts --now {now})")
    print(render_alerts(money_alerts(store, roster.alerts_now), "table"))
