"""``write_network``: the plans folder and the CDR file of one ``NetworkSpec``.

One ``random.Random(spec.seed)`` is passed through every builder in a fixed order (clock, then per
tenant its decks, associations and memberships, then the CDRs), which is what makes the output a
function of the spec alone.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from pathlib import Path

from pipeline.synthetic import _price_shape as shape
from pipeline.synthetic._accounts import (
    ASSOCIATIONS_HEADER,
    MEMBERSHIPS_HEADER,
    Tenant,
    make_association_rows,
    make_membership_rows,
)
from pipeline.synthetic._cdr_file import write_cdrs
from pipeline.synthetic._clock import Clock, make_clock
from pipeline.synthetic._decks import DECK_HEADER, deck_countries, make_deck_rows
from pipeline.synthetic._plans import PLANS_HEADER, SCOPES, Plan, make_plans
from pipeline.synthetic._price_shape import shape_rng
from pipeline.synthetic._spec import NetworkSpec, NetworkSummary, check_spec

_POOL_MAX = 200_000  # callee prefixes kept per tenant: bounds the CDR builder's memory


def write_network(spec: NetworkSpec, plans_dir: Path, cdrs_path: Path) -> NetworkSummary:
    """Write a synthetic network: the plans folder at ``plans_dir`` and CDRs to ``cdrs_path``.

    Directories are created; existing files of the same names are replaced. The result depends
    on ``spec`` only. Raises ``ValueError`` for a spec that cannot be built (see ``NetworkSpec``).
    """
    check_spec(spec)
    rng = random.Random(spec.seed)
    clock = make_clock(spec.month, rng)
    tenant_ids = [f"tnt-{t + 1:02d}" for t in range(spec.tenants)]
    plans = make_plans(spec, tenant_ids)

    plans_dir.mkdir(parents=True, exist_ok=True)
    (plans_dir / "decks").mkdir(exist_ok=True)
    association_rows: list[list[str]] = []
    membership_rows: list[list[str]] = []
    tenants: list[Tenant] = []
    deck_rows = 0
    shaping = shape_rng(spec.seed) if spec.price_shape else None
    for tenant_id in tenant_ids:
        written, number_lengths = _write_decks(
            rng, plans[tenant_id], spec.prefixes_per_plan, clock, plans_dir / "decks", shaping
        )
        deck_rows += written
        pool = sorted(number_lengths)
        if len(pool) > _POOL_MAX:
            pool = rng.sample(pool, _POOL_MAX)
        tenant = Tenant(
            tenant_id=tenant_id,
            customers=[f"{tenant_id}-cus-{k + 1:03d}" for k in range(spec.customers_per_tenant)],
            clients=[f"{tenant_id}-gw-{k + 1:03d}" for k in range(spec.clients_per_tenant)],
            resellers=[f"{tenant_id}-res-{k + 1:02d}" for k in range(spec.resellers_per_tenant)],
            plans=plans[tenant_id],
            customer_draw=[],
            pool_prefixes=pool,
            pool_lengths=[number_lengths[p] for p in pool],
        )
        rows, tenant.customer_draw = make_association_rows(rng, tenant, clock)
        association_rows += rows
        membership_rows += make_membership_rows(rng, tenant, clock)
        tenants.append(tenant)

    plan_rows = [plan.row() for t in tenant_ids for scope in SCOPES for plan in plans[t][scope]]
    plans_header: tuple[str, ...] = PLANS_HEADER
    if shaping is not None:
        plans_header += shape.PLAN_COLUMNS
        plan_rows = [row + shape.plan_columns(shaping) for row in plan_rows]
    _write_csv(plans_dir / "plans.csv", plans_header, plan_rows)
    _write_csv(plans_dir / "associations.csv", ASSOCIATIONS_HEADER, association_rows)
    _write_csv(plans_dir / "memberships.csv", MEMBERSHIPS_HEADER, membership_rows)
    malformed_lines, malformed_kinds = write_cdrs(spec, rng, tenants, clock, cdrs_path)

    paid = tuple(r for t in tenants for r in t.resellers[: len(t.plans["reseller"])])
    all_resellers = tuple(r for t in tenants for r in t.resellers)
    return NetworkSummary(
        plans_dir=plans_dir,
        cdrs_path=cdrs_path,
        cdrs_written=spec.cdrs,
        valid_cdrs=spec.cdrs - len(malformed_lines),
        malformed_lines=malformed_lines,
        malformed_kinds=malformed_kinds,
        tenant_ids=tuple(tenant_ids),
        customer_ids=tuple(c for t in tenants for c in t.customers),
        client_ids=tuple(c for t in tenants for c in t.clients),
        reseller_ids=all_resellers,
        paid_reseller_ids=paid,
        unpaid_reseller_ids=tuple(r for r in all_resellers if r not in paid),
        plan_ids=tuple(row[0] for row in plan_rows),
        deck_rows=deck_rows,
        change_instants=clock.instants,
        month_start=clock.month_start,
        month_end=clock.month_end,
    )


def _write_decks(
    rng: random.Random,
    plans: dict[str, list[Plan]],
    size: int,
    clock: Clock,
    decks_dir: Path,
    shaping: random.Random | None,
) -> tuple[int, dict[str, int]]:
    """Write one tenant's decks; return their row count and each prefix's full number length.

    The length (country code plus national number) is what a callee under the prefix is filled
    up to.
    """
    rows_written = 0
    number_lengths: dict[str, int] = {}
    for scope in SCOPES:
        for plan in plans[scope]:
            countries = deck_countries(rng, scope)
            rows = make_deck_rows(rng, plan, size, clock, countries)
            rows_written += len(rows)
            if shaping is None:
                _write_csv(decks_dir / f"{plan.plan_id}.csv", DECK_HEADER, rows)
            else:
                shaped = [row + shape.deck_columns(shaping, row) for row in rows]
                header = DECK_HEADER + shape.DECK_COLUMNS
                _write_csv(decks_dir / f"{plan.plan_id}.csv", header, shaped)
            by_cc = {c.cc: c for c in countries}
            for row in rows:
                prefix = row[0]
                if prefix not in number_lengths:
                    cc = next(prefix[:k] for k in (1, 2, 3) if prefix[:k] in by_cc)
                    number_lengths[prefix] = len(cc) + by_cc[cc].national_len
    return rows_written, number_lengths


def _write_csv(path: Path, header: Sequence[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
