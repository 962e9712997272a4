"""``write_network``: the plans folder and the CDR file of one ``NetworkSpec``.

One ``random.Random(spec.seed)`` is passed through every builder in a fixed order (clock, then per
tenant its decks, associations and memberships, then the CDRs), which is what makes the output a
function of the spec alone.
"""

from __future__ import annotations

import random
from pathlib import Path

from pipeline.synthetic import _origins_and_bands as v2
from pipeline.synthetic import _price_shape as shape
from pipeline.synthetic import _roster as roster
from pipeline.synthetic._accounts import (
    ASSOCIATIONS_HEADER,
    MEMBERSHIPS_HEADER,
    Tenant,
    make_association_rows,
    make_membership_rows,
    write_csv,
)
from pipeline.synthetic._cdr_file import write_cdrs
from pipeline.synthetic._clock import Clock, make_clock
from pipeline.synthetic._decks import DECK_HEADER, deck_countries, make_deck_rows
from pipeline.synthetic._plans import PLANS_HEADER, SCOPES, Plan, make_plans
from pipeline.synthetic._price_shape import shape_rng
from pipeline.synthetic._spec import NetworkSpec, NetworkSummary, check_spec

_RATE = DECK_HEADER.index("rate")
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
    banding = v2.bands_rng(spec.seed) if spec.origins_and_bands else None
    bands = {
        plan.plan_id: v2.plan_bands(banding, clock.month_start)
        for t in tenant_ids
        for scope in SCOPES
        for plan in plans[t][scope]
        if banding is not None
    }
    for tenant_id in tenant_ids:
        written, number_lengths = _write_decks(
            rng,
            plans[tenant_id],
            spec.prefixes_per_plan,
            clock,
            plans_dir / "decks",
            shaping,
            (banding, bands) if banding is not None else None,
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
    if bands:
        _write_v2_files(plans_dir, tenant_ids, bands)
        if v2.PLAN_COLUMN not in plans_header:
            plans_header += (v2.PLAN_COLUMN,)
            plan_rows = [[*row, ""] for row in plan_rows]
        zone_at = plans_header.index(v2.PLAN_COLUMN)
        for row in plan_rows:
            row[zone_at] = bands[row[0]].zone
    write_csv(plans_dir / "plans.csv", plans_header, plan_rows)
    write_csv(plans_dir / "associations.csv", ASSOCIATIONS_HEADER, association_rows)
    write_csv(plans_dir / "memberships.csv", MEMBERSHIPS_HEADER, membership_rows)
    malformed_lines, malformed_kinds = write_cdrs(spec, rng, tenants, clock, cdrs_path)
    designed = None
    if spec.accounts:  # last, from its own generator: nothing above draws differently
        designed = roster.write_roster(
            roster.roster_rng(spec.seed),
            tenants,
            association_rows,
            membership_rows,
            clock,
            spec.currencies,
            plans_dir,
            cdrs_path,
        )
    burst = designed.burst_cdrs if designed is not None else 0

    paid = tuple(r for t in tenants for r in t.resellers[: len(t.plans["reseller"])])
    all_resellers = tuple(r for t in tenants for r in t.resellers)
    return NetworkSummary(
        plans_dir=plans_dir,
        cdrs_path=cdrs_path,
        cdrs_written=spec.cdrs + burst,
        valid_cdrs=spec.cdrs + burst - len(malformed_lines),
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
        roster=designed,
    )


def _write_v2_files(plans_dir: Path, tenant_ids: list[str], bands: dict[str, v2.PlanBands]) -> None:
    """origin_groups.csv, time_bands.csv and holidays.csv."""
    origins = [row for tenant_id in tenant_ids for row in v2.origin_group_rows(tenant_id)]
    weeks = [row for plan_id, b in bands.items() for row in v2.time_band_rows(plan_id, b)]
    holidays = [row for plan_id, b in bands.items() for row in v2.holiday_rows(plan_id, b)]
    write_csv(plans_dir / "origin_groups.csv", v2.ORIGIN_GROUPS_HEADER, origins)
    write_csv(plans_dir / "time_bands.csv", v2.TIME_BANDS_HEADER, weeks)
    write_csv(plans_dir / "holidays.csv", v2.HOLIDAYS_HEADER, holidays)


def _write_decks(
    rng: random.Random,
    plans: dict[str, list[Plan]],
    size: int,
    clock: Clock,
    decks_dir: Path,
    shaping: random.Random | None,
    banding: tuple[random.Random, dict[str, v2.PlanBands]] | None,
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
            header, written = DECK_HEADER, rows
            if banding is not None:
                banded = v2.deck_rows(banding[0], rows, banding[1][plan.plan_id], _RATE)
                header, written = header + v2.DECK_COLUMNS, banded
            if shaping is not None:  # its cells go before origin and band
                cut = len(DECK_HEADER)
                written = [
                    row[:cut] + shape.deck_columns(shaping, row) + row[cut:] for row in written
                ]
                header = DECK_HEADER + shape.DECK_COLUMNS + header[cut:]
            rows_written += len(written)
            write_csv(decks_dir / f"{plan.plan_id}.csv", header, written)
            by_cc = {c.cc: c for c in countries}
            for row in rows:
                prefix = row[0]
                if prefix not in number_lengths:
                    cc = next(prefix[:k] for k in (1, 2, 3) if prefix[:k] in by_cc)
                    number_lengths[prefix] = len(cc) + by_cc[cc].national_len
    return rows_written, number_lengths
