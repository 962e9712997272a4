"""The plans of each tenant and scope: ids, names, currencies, decimals and rounding."""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipeline.synthetic._spec import NetworkSpec

SCOPES: tuple[str, ...] = ("customer", "client", "reseller")
PLANS_HEADER: tuple[str, ...] = (
    "plan_id",
    "tenant_id",
    "name",
    "scope",
    "currency",
    "decimals",
    "rounding",
)


@dataclass(frozen=True)
class Plan:
    """One row of plans.csv."""

    plan_id: str
    tenant_id: str
    name: str
    scope: str
    currency: str
    decimals: str
    rounding: str

    def row(self) -> list[str]:
        """The plan's row of plans.csv, in the order of ``PLANS_HEADER``."""
        return [
            self.plan_id,
            self.tenant_id,
            self.name,
            self.scope,
            self.currency,
            self.decimals,
            self.rounding,
        ]


_DECIMALS_CYCLE: tuple[str, ...] = ("4", "2", "6", "0", "", "4", "6", "6", "4", "5", "3")
_ROUNDING_CYCLE: tuple[str, ...] = ("half_up", "up", "down", "", "half_up", "down", "up")


def make_plans(spec: NetworkSpec, tenant_ids: list[str]) -> dict[str, dict[str, list[Plan]]]:
    """Plans by tenant and scope: one per paid reseller, the rest split customer/client."""
    t_count = spec.tenants
    paid_per_tenant = max(spec.resellers_per_tenant - 1, 0)
    rest = spec.plans - t_count * paid_per_tenant
    customer_total = max(math.ceil(rest / 2), t_count)
    client_total = rest - customer_total
    counts: dict[str, list[int]] = {
        "customer": [
            customer_total // t_count + (i < customer_total % t_count) for i in range(t_count)
        ],
        "client": [client_total // t_count + (i < client_total % t_count) for i in range(t_count)],
        "reseller": [paid_per_tenant] * t_count,
    }
    plans: dict[str, dict[str, list[Plan]]] = {}
    index = 0
    for t, tenant_id in enumerate(tenant_ids):
        home = spec.currencies[t % len(spec.currencies)]
        other = spec.currencies[(t + 1) % len(spec.currencies)]
        plans[tenant_id] = {}
        for scope in SCOPES:
            scope_plans: list[Plan] = []
            for k in range(counts[scope][t]):
                currency = other if scope != "reseller" and k % 3 == 1 else home
                label = {
                    "customer": "Wholesale A\u2013Z",
                    "client": "Gateway cost",
                    "reseller": "Payout",
                }
                scope_plans.append(
                    Plan(
                        plan_id=f"{tenant_id}-{scope}-{k + 1}",
                        tenant_id=tenant_id,
                        name=f"{label[scope]} {currency} #{k + 1}",
                        scope=scope,
                        currency=currency,
                        decimals=_DECIMALS_CYCLE[index % len(_DECIMALS_CYCLE)],
                        rounding=_ROUNDING_CYCLE[index % len(_ROUNDING_CYCLE)],
                    )
                )
                index += 1
            plans[tenant_id][scope] = scope_plans
    return plans
