"""What to build (``NetworkSpec``) and what was built (``NetworkSummary``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.synthetic._roster import RosterSummary


@dataclass(frozen=True)
class NetworkSpec:
    """The shape of a synthetic network; every output is a function of these fields alone.

    ``cdrs`` counts every line of the JSONL file, malformed ones included; ``malformed_ratio`` of
    them (rounded) are malformed. ``plans`` is split into one reseller plan per paid reseller
    (every reseller but the last of each tenant) and customer and client plans for the rest.
    """

    seed: int = 7
    tenants: int = 2
    customers_per_tenant: int = 6
    clients_per_tenant: int = 8
    resellers_per_tenant: int = 3
    plans: int = 15
    prefixes_per_plan: int = 2000
    cdrs: int = 30_000
    malformed_ratio: float = 0.01
    month: str = "2026-03"
    currencies: tuple[str, ...] = ("EUR", "USD")
    price_shape: bool = False  # tariff v2: initial rates, grace, min/max cost, duration rounding
    origins_and_bands: bool = False  # tariff v2: zones, time bands, holidays, origin groups
    accounts: bool = False  # the roster, FX rates, client status, payments, a burst for alerts


@dataclass(frozen=True)
class NetworkSummary:
    """What ``write_network`` wrote; line numbers are 1-based lines of the CDR file."""

    plans_dir: Path
    cdrs_path: Path
    cdrs_written: int
    valid_cdrs: int
    malformed_lines: tuple[int, ...]
    malformed_kinds: tuple[str, ...]
    tenant_ids: tuple[str, ...]
    customer_ids: tuple[str, ...]
    client_ids: tuple[str, ...]
    reseller_ids: tuple[str, ...]
    paid_reseller_ids: tuple[str, ...]
    unpaid_reseller_ids: tuple[str, ...]
    plan_ids: tuple[str, ...]
    deck_rows: int
    change_instants: tuple[datetime, ...]
    month_start: datetime
    month_end: datetime
    roster: RosterSummary | None = None  # with ``accounts``: what the roster part wrote


def check_spec(spec: NetworkSpec) -> None:
    """Raise ``ValueError`` naming every field of ``spec`` that cannot be built."""
    problems: list[str] = []
    if spec.tenants < 1 or spec.customers_per_tenant < 1 or spec.clients_per_tenant < 1:
        problems.append("tenants, customers_per_tenant and clients_per_tenant must be >= 1")
    if spec.resellers_per_tenant < 0 or spec.cdrs < 0 or spec.prefixes_per_plan < 1:
        problems.append("resellers_per_tenant, cdrs >= 0 and prefixes_per_plan >= 1 required")
    if not 0.0 <= spec.malformed_ratio <= 1.0:
        problems.append("malformed_ratio must be within 0..1")
    if not spec.currencies:
        problems.append("at least one currency is required")
    needed = spec.tenants * max(spec.resellers_per_tenant - 1, 0) + spec.tenants
    if spec.plans < needed:
        problems.append(
            f"plans={spec.plans} is too few: {needed} needed (one per paid reseller "
            "and at least one customer plan per tenant)"
        )
    if spec.accounts and (spec.customers_per_tenant < 2 or spec.resellers_per_tenant < 2):
        problems.append("accounts needs customers_per_tenant >= 2 and resellers_per_tenant >= 2")
    if problems:
        msg = "invalid NetworkSpec: " + "; ".join(problems)
        raise ValueError(msg)
