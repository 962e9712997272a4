"""A tenant's accounts, and who is on which plan or with which reseller, when.

``make_association_rows`` and ``make_membership_rows`` make the rows of ``associations.csv``
and ``memberships.csv`` for one tenant: never overlapping for one account and scope (one client),
with switches at change instants, gaps, Direct clients and a reseller without a plan.
``write_csv`` writes those files and the others of the synthetic reference data.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from pipeline.synthetic._clock import Clock, ts
from pipeline.synthetic._plans import Plan

ASSOCIATIONS_HEADER: tuple[str, ...] = (
    "scope",
    "account_id",
    "plan_id",
    "effective_from",
    "effective_until",
)
MEMBERSHIPS_HEADER: tuple[str, ...] = (
    "client_id",
    "reseller_id",
    "effective_from",
    "effective_until",
)


@dataclass
class Tenant:
    """One tenant's accounts and plans, and what its CDRs are drawn from.

    ``customer_draw`` repeats each customer by its traffic weight (set with the associations);
    ``pool_prefixes`` are prefixes of the tenant's decks and ``pool_lengths`` the length of a
    full number under each (country code and national number).
    """

    tenant_id: str
    customers: list[str]
    clients: list[str]
    resellers: list[str]
    plans: dict[str, list[Plan]]
    customer_draw: list[str]
    pool_prefixes: list[str]
    pool_lengths: list[int]


def make_association_rows(
    rng: random.Random, tenant: Tenant, clock: Clock
) -> tuple[list[list[str]], list[str]]:
    """Rows of associations.csv for one tenant, and its customer draw list (traffic weights)."""
    rows: list[list[str]] = []
    base = clock.year_before
    open_until = ""

    def add(scope: str, account: str, plan: Plan, frm: datetime, until: datetime | None) -> None:
        rows.append([scope, account, plan.plan_id, ts(frm), ts(until) if until else open_until])

    def two(plans: list[Plan], k: int) -> tuple[Plan, Plan]:
        return plans[k % len(plans)], plans[(k + 1) % len(plans)]

    customer_patterns = ("single", "gap", "switch", "late", "history", "single")
    draw: list[str] = []
    customers = tenant.customers
    for k, customer in enumerate(customers):
        pattern = customer_patterns[k % len(customer_patterns)]
        if len(customers) >= 3 and k == len(customers) - 1:
            pattern = "none"
        a, b = two(tenant.plans["customer"], k)
        i = rng.randrange(len(clock.instants) - 1)
        x1, x2 = clock.instants[i], clock.instants[i + 1]  # a short gap between two instants
        if pattern == "single":
            add("customer", customer, a, base, None)
        elif pattern == "gap":
            add("customer", customer, a, base, x1)
            add("customer", customer, a, x2, None)
        elif pattern == "switch":
            add("customer", customer, a, base, x1)
            add("customer", customer, b, x1, None)
        elif pattern == "late":
            add("customer", customer, a, clock.instants[0], None)
        elif pattern == "history":
            add("customer", customer, b, base - timedelta(days=200), base)
            add("customer", customer, a, base, None)
        draw += [customer] * {"none": 1, "gap": 6, "late": 4}.get(pattern, 12)

    client_patterns = ("single", "switch", "none", "single", "late", "single", "ended", "single")
    client_plans = tenant.plans["client"]
    for k, client in enumerate(tenant.clients):
        if not client_plans:
            break
        pattern = client_patterns[k % len(client_patterns)]
        a, b = two(client_plans, k)
        x = rng.choice(clock.instants)
        if pattern == "single":
            add("client", client, a, base, None)
        elif pattern == "switch":
            add("client", client, a, base, x)
            add("client", client, b, x, None)
        elif pattern == "late":
            add("client", client, a, x, None)
        elif pattern == "ended":
            add("client", client, a, base, x)

    for reseller, plan in zip(tenant.resellers, tenant.plans["reseller"], strict=False):
        add("reseller", reseller, plan, base, None)
    return rows, draw


def make_membership_rows(rng: random.Random, tenant: Tenant, clock: Clock) -> list[list[str]]:
    """Rows of memberships.csv for one tenant: members, Direct clients, changes at an instant."""
    resellers = tenant.resellers
    if not resellers:
        return []
    rows: list[list[str]] = []
    base = clock.year_before
    unpaid = resellers[-1]
    patterns = ("member", "direct", "change", "unpaid", "joined", "left", "history", "direct")
    for k, client in enumerate(tenant.clients):
        pattern = patterns[k % len(patterns)]
        r0 = resellers[k % len(resellers)]
        r1 = resellers[(k + 1) % len(resellers)]
        x = rng.choice(clock.instants)
        if pattern == "member":
            rows.append([client, r0, ts(base), ""])
        elif pattern == "change":
            rows += [[client, r0, ts(base), ts(x)], [client, r1, ts(x), ""]]
        elif pattern == "unpaid":
            rows.append([client, unpaid, ts(base), ""])
        elif pattern == "joined":
            rows.append([client, r0, ts(x), ""])
        elif pattern == "left":
            rows.append([client, r1, ts(base), ts(x)])
        elif pattern == "history":
            old = base - timedelta(days=120)
            rows += [[client, r1, ts(old), ts(base)], [client, r0, ts(base), ""]]
    return rows


def write_csv(path: Path, header: Sequence[str], rows: list[list[str]]) -> None:
    """Write a reference-data CSV file: UTF-8, newline line ends, the header first."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
