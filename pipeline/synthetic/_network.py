"""``write_network``: the plans folder and the CDR file of one ``NetworkSpec``.

One ``random.Random(spec.seed)`` is passed through every builder in a fixed order (clock, then per
tenant its decks, associations and memberships, then the CDRs), which is what makes the output a
function of the spec alone.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from pipeline.synthetic._accounts import Tenant, make_association_rows, make_membership_rows
from pipeline.synthetic._cdr_file import write_cdrs
from pipeline.synthetic._clock import make_clock
from pipeline.synthetic._countries import COUNTRIES
from pipeline.synthetic._decks import make_deck_rows
from pipeline.synthetic._plans import SCOPES, make_plans
from pipeline.synthetic._spec import NetworkSpec, NetworkSummary, check_spec


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


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
    plan_rows: list[list[str]] = []
    association_rows: list[list[str]] = []
    membership_rows: list[list[str]] = []
    tenants: list[Tenant] = []
    deck_rows = 0
    main = [c for c in COUNTRIES if not c.rare]
    rare = [c for c in COUNTRIES if c.rare]
    keep_rare = {"customer": 0.6, "client": 0.4, "reseller": 0.3}
    drop_main = {"customer": 0.0, "client": 0.5, "reseller": 1.0}
    for tenant_id in tenant_ids:
        prefix_lengths: dict[str, int] = {}
        for scope in SCOPES:
            for plan in plans[tenant_id][scope]:
                plan_rows.append(
                    [
                        plan.plan_id,
                        plan.tenant_id,
                        plan.name,
                        plan.scope,
                        plan.currency,
                        plan.decimals,
                        plan.rounding,
                    ]
                )
                dropped = {rng.randrange(len(main))} if rng.random() < drop_main[scope] else set()
                countries = [c for i, c in enumerate(main) if i not in dropped]
                countries += [c for c in rare if rng.random() < keep_rare[scope]]
                rows = make_deck_rows(rng, plan, spec.prefixes_per_plan, clock, countries)
                deck_rows += len(rows)
                header = [
                    "prefix",
                    "destination",
                    "rate",
                    "connection_fee",
                    "initial_increment",
                    "subsequent_increment",
                    "effective_from",
                    "effective_until",
                ]
                _write_csv(plans_dir / "decks" / f"{plan.plan_id}.csv", header, rows)
                by_cc = {c.cc: c for c in countries}
                for r in rows:
                    prefix = r[0]
                    if prefix not in prefix_lengths:
                        cc = next(prefix[:k] for k in (1, 2, 3) if prefix[:k] in by_cc)
                        prefix_lengths[prefix] = len(cc) + by_cc[cc].national_len
        resellers = [f"{tenant_id}-res-{k + 1:02d}" for k in range(spec.resellers_per_tenant)]
        pool = sorted(prefix_lengths)
        if len(pool) > 200_000:
            pool = rng.sample(pool, 200_000)
        tenant = Tenant(
            tenant_id=tenant_id,
            customers=[f"{tenant_id}-cus-{k + 1:03d}" for k in range(spec.customers_per_tenant)],
            clients=[f"{tenant_id}-gw-{k + 1:03d}" for k in range(spec.clients_per_tenant)],
            resellers=resellers,
            plans=plans[tenant_id],
            customer_draw=[],
            pool_prefixes=pool,
            pool_lengths=[prefix_lengths[p] for p in pool],
        )
        rows_a, tenant.customer_draw = make_association_rows(rng, tenant, clock)
        association_rows += rows_a
        membership_rows += make_membership_rows(rng, tenant, clock)
        tenants.append(tenant)

    _write_csv(
        plans_dir / "plans.csv",
        ["plan_id", "tenant_id", "name", "scope", "currency", "decimals", "rounding"],
        plan_rows,
    )
    _write_csv(
        plans_dir / "associations.csv",
        ["scope", "account_id", "plan_id", "effective_from", "effective_until"],
        association_rows,
    )
    _write_csv(
        plans_dir / "memberships.csv",
        ["client_id", "reseller_id", "effective_from", "effective_until"],
        membership_rows,
    )
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
