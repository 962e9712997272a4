"""``vmgate-rating demo``: a synthetic network rated end to end into an embedded store.

What a newcomer runs first (``make demo``): it shows every part of the embedded default working
together (reference data, decoding with a dead-letter file, the rating core, the store, SQL over
call history) on data that looks like a real wholesale network.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

from pipeline.progress import Progress
from pipeline.reference.loader import load_plans_folder
from pipeline.services.offline import rate_file
from pipeline.sinks.embedded import EmbeddedStore
from pipeline.storage.balances import billing_overview, refresh_balances
from pipeline.storage.reports import (
    CUSTOMER_BY_BAND_SQL,
    LEG_TOTALS_SQL,
    OWED_TO_RESELLERS_SQL,
    SAMPLE_SQL,
    UNRATED_SQL,
    format_table,
)
from pipeline.synthetic import NetworkSpec, write_network


def run_demo(folder: Path, cdrs: int = 50_000, seed: int = 7) -> int:
    """Build the network under ``folder`` (replacing an earlier demo), rate it and report."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    spec = NetworkSpec(seed=seed, cdrs=cdrs, price_shape=True, origins_and_bands=True)  # tariff v2
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
    print(f"rejected lines: {summary.rejected:,} (see {dlq})")
    print(f"call history: {out}; store: {store_dir}")
    print(
        "next: vmgate-rating export --store "
        f"{store_dir} --out {folder / 'export.parquet'}   |   vmgate-rating --help"
    )
    return 0
