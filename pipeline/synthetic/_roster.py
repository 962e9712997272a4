"""The roster part of a synthetic network: accounts, join codes, enrollments, FX, status, payments.

On when the spec asks for it (``accounts``), drawn from a generator of its own
(:func:`roster_rng`) after everything else: a network without it is byte for byte what it was
before. It adds, besides the files, one burst of long calls at the end of the CDR file so that
every money alert of docs/alerts.md has something to find at the network's "now" (the end of the
month), by construction rather than by luck:

* the burst: one customer, one client and the client's reseller (the three plans in one
  currency) call one destination during the month's last hour; the destination is one whose
  rows (every origin and band, effective then) cost the customer at most half of what the
  client and reseller legs cost at least: a destination sold below cost, and a cost spike of
  the customer (its last hour far above its trailing hours);
* that customer is postpaid with a credit limit a quarter of the burst's least revenue, and has
  paid another quarter: over its limit whatever else it called;
* another customer is prepaid and has paid 5 (credit below the default threshold of 10 whatever
  it called); the customer that never has a plan is prepaid with 250 paid (never rated: its
  credit stays 250); the reseller without a plan is prepaid with an advance of 100 (never
  earns: its credit stays 100);
* the burst's reseller is inactive: traffic through an inactive account.

Enrollments are derived from ``memberships.csv``, so the two always agree: each membership is an
enrollment through its reseller's join code at its start, a membership that ends with no
successor is followed by an enrollment through the tenant's Direct code, and a client without
memberships enrolled through the Direct code a year before the month.
"""

from __future__ import annotations

import csv
import json
import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

from pipeline.synthetic._accounts import Tenant, write_csv
from pipeline.synthetic._clock import Clock, ts
from pipeline.synthetic._plans import Plan

ACCOUNTS_HEADER: tuple[str, ...] = (
    "tenant_id",
    "scope",
    "account_id",
    "name",
    "company",
    "email",
    "billing_type",
    "credit_limit",
    "currency",
    "status",
    "timezone",
)
JOIN_CODES_HEADER: tuple[str, ...] = ("tenant_id", "code", "reseller_id")
ENROLLMENTS_HEADER: tuple[str, ...] = ("client_id", "join_code", "enrolled_at")
FX_RATES_HEADER: tuple[str, ...] = ("currency", "quote", "rate", "effective_from")

_ZONES = (
    "Europe/Berlin",
    "Europe/London",
    "Europe/Madrid",
    "America/New_York",
    "America/Sao_Paulo",
    "Asia/Singapore",
    "Africa/Lagos",
    "Asia/Dubai",
)
_PEOPLE = (
    "Anna Weber",
    "Bo Lind",
    "Chiara Conti",
    "Dmitri Orlov",
    "Elif Yilmaz",
    "Femi Adeyemi",
    "Grace Tan",
    "Hugo Martin",
    "Ines Duarte",
    "Jonas Berg",
    "Kavya Rao",
    "Liam Walsh",
)
_COMPANIES = (
    "Nordwind Telecom",
    "Bluewave Voice",
    "Atlas Carrier Services",
    "Helios Connect",
    "Meridian Telco",
    "Orbit Gateways",
    "Kestrel Networks",
    "Lumen Routes",
    "Sable Voice",
    "Tidal Interconnect",
)
_FORMS = ("GmbH", "Ltd", "S.L.", "B.V.", "LLC", "")
# One unit of the currency in euros, before and after the mid-month change (illustrative).
_TO_EUR: dict[str, tuple[str, str]] = {
    "USD": ("0.9215", "0.9168"),
    "GBP": ("1.1842", "1.1903"),
    "CHF": ("1.0431", "1.0397"),
    "SEK": ("0.0871", "0.0879"),
    "JPY": ("0.00612", "0.00608"),
}
_BURST_CALLS = (24, 60)  # fewest and most calls of the burst
_BURST_REVENUE = 50  # least revenue of the burst, in units of the customer's currency
_DURATIONS = (1860, 2340, 2700, 3120, 3480)  # seconds, long calls (a pumping pattern)


@dataclass(frozen=True)
class RosterSummary:
    """What the roster part wrote and what it was designed to make the money alerts find.

    ``alerts_now`` is the instant the alerts find all of it at (the end of the month: the burst
    is in the hour before it). Account ids are those of ``NetworkSummary``.
    """

    client_status_path: Path
    payments_path: Path
    reporting_currency: str
    alerts_now: datetime
    burst_cdrs: int
    spike_customer: str
    over_limit_customer: str
    prepaid_low_customer: str
    inactive_reseller: str
    negative_margin_destination: str
    tenant_id: str
    direct_codes: tuple[str, ...]


def roster_rng(seed: int) -> random.Random:
    """The generator of the roster part of the network of ``seed``."""
    return random.Random(f"{seed}/accounts")


@dataclass(frozen=True)
class _Leg:
    plan: Plan
    rows: dict[str, list[dict[str, str]]]  # deck rows effective over the burst hour, by prefix


@dataclass(frozen=True)
class _Burst:
    tenant: Tenant
    customer: str
    client: str
    reseller: str
    callee: str
    destination: str
    durations: tuple[int, ...]
    revenue_least: Fraction


def write_roster(
    rng: random.Random,
    tenants: list[Tenant],
    association_rows: list[list[str]],
    membership_rows: list[list[str]],
    clock: Clock,
    currencies: tuple[str, ...],
    plans_dir: Path,
    cdrs_path: Path,
) -> RosterSummary:
    """Write the roster files and append the burst to ``cdrs_path``; return what was designed."""
    now = clock.month_end
    burst = _find_burst(rng, tenants, association_rows, membership_rows, clock, plans_dir)
    plan_of = {(r[0], r[1]): r[2] for r in association_rows}  # each account's last plan
    plans = {p.plan_id: p for t in tenants for scoped in t.plans.values() for p in scoped}
    limit = max(1, math.floor(burst.revenue_least / 4))
    main = burst.tenant
    prepaid_low = next(c for c in main.customers if c != burst.customer)
    never_rated = [c for c in main.customers if ("customer", c) not in plan_of][:1]
    unpaid = [r for r in main.resellers if ("reseller", r) not in plan_of][:1]

    accounts: list[list[str]] = []
    currency_of: dict[str, str] = {}
    for tenant in tenants:
        home = tenant.plans["customer"][0].currency
        for scope, ids in (
            ("customer", tenant.customers),
            ("client", tenant.clients),
            ("reseller", tenant.resellers),
        ):
            for account in ids:
                plan_id = plan_of.get((scope, account))
                currency = currency_of[account] = plans[plan_id].currency if plan_id else home
                billing, credit_limit, status = "postpaid", "", "active"
                if account == burst.customer:
                    credit_limit = f"{limit}.00"
                elif account in (prepaid_low, *never_rated, *unpaid):
                    billing = "prepaid"
                if account == burst.reseller:
                    status = "inactive"
                accounts.append(
                    [
                        tenant.tenant_id,
                        scope,
                        account,
                        *_contact(rng, scope, account),
                        billing,
                        credit_limit,
                        currency,
                        status,
                        rng.choice(_ZONES),
                    ]
                )

    payments: list[dict[str, str]] = []
    paid_on = clock.month_start + timedelta(days=9, hours=10)

    def pay(kind: str, account: str, amount: str, note: str) -> None:
        payments.append(
            {
                "payment_id": f"pay-{len(payments) + 1:03d}",
                "tenant_id": main.tenant_id,
                "kind": kind,
                "account_id": account,
                "amount": amount,
                "currency": currency_of[account],
                "recorded_at": ts(paid_on + timedelta(hours=len(payments))),
                "note": note,
            }
        )

    pay("customer_payment_in", burst.customer, f"{limit}.00", "invoice settled")
    pay("customer_payment_in", prepaid_low, "5.00", "prepaid top-up")
    for customer in never_rated:
        pay("customer_payment_in", customer, "250.00", "prepaid top-up")
    for reseller in unpaid:
        pay("reseller_payout_out", reseller, "100.00", "advance")
    for reseller in main.resellers:
        if reseller != burst.reseller and reseller not in unpaid:
            pay("reseller_payout_out", reseller, "20.00", "Reseller payout OUT")
            break

    codes: list[list[str]] = []
    code_of: dict[str, str] = {}
    direct_of: dict[str, str] = {}
    for tenant in tenants:
        tag = tenant.tenant_id.upper().replace("-", "")
        direct_of[tenant.tenant_id] = f"{tag}-DIRECT"
        codes.append([tenant.tenant_id, direct_of[tenant.tenant_id], ""])
        for reseller in tenant.resellers:
            code_of[reseller] = f"{tag}-{reseller.rsplit('-', 1)[1]}-{rng.randrange(16**4):04X}"
            codes.append([tenant.tenant_id, code_of[reseller], reseller])
    enrollments = _enrollments(tenants, membership_rows, code_of, direct_of, clock)

    reporting = currencies[0]
    fx_rows = [
        [currency, reporting, *_pair(currency, reporting, which), ts(at)]
        for currency in sorted(set(currencies) - {reporting})
        for which, at in ((0, clock.year_before), (1, clock.month_start.replace(day=15)))
    ]
    statuses = _statuses(rng, tenants, clock)

    write_csv(plans_dir / "accounts.csv", ACCOUNTS_HEADER, accounts)
    write_csv(plans_dir / "join_codes.csv", JOIN_CODES_HEADER, codes)
    write_csv(plans_dir / "enrollments.csv", ENROLLMENTS_HEADER, enrollments)
    write_csv(plans_dir / "fx_rates.csv", FX_RATES_HEADER, fx_rows)
    status_path = cdrs_path.with_name(cdrs_path.stem + ".client_status.jsonl")
    payments_path = cdrs_path.with_name(cdrs_path.stem + ".payments.jsonl")
    status_path.write_text("".join(json.dumps(s) + "\n" for s in statuses), encoding="utf-8")
    payments_path.write_text("".join(json.dumps(p) + "\n" for p in payments), encoding="utf-8")
    with cdrs_path.open("a", encoding="utf-8") as fh:
        for line in _burst_lines(rng, burst, now):
            fh.write(line + "\n")
    return RosterSummary(
        client_status_path=status_path,
        payments_path=payments_path,
        reporting_currency=reporting,
        alerts_now=now,
        burst_cdrs=len(burst.durations),
        spike_customer=burst.customer,
        over_limit_customer=burst.customer,
        prepaid_low_customer=prepaid_low,
        inactive_reseller=burst.reseller,
        negative_margin_destination=burst.destination,
        tenant_id=main.tenant_id,
        direct_codes=tuple(direct_of.values()),
    )


def _contact(rng: random.Random, scope: str, account: str) -> list[str]:
    """Name, company and email of an account."""
    person = rng.choice(_PEOPLE)
    company = f"{rng.choice(_COMPANIES)} {rng.choice(_FORMS)}".strip()
    number = account.rsplit("-", 1)[1]
    if scope == "client":
        return [f"Gateway {number}", company if rng.random() < 0.5 else "", ""]
    domain = company.split()[0].lower() + ".example"
    email = (
        f"{person.split()[0].lower()}@{domain}" if scope == "reseller" or rng.random() < 0.7 else ""
    )
    return [person, company, email]


def _pair(currency: str, reporting: str, which: int) -> list[str]:
    """The rate of one ``currency`` in ``reporting`` (illustrative figures)."""
    if reporting == "EUR" and currency in _TO_EUR:
        return [_TO_EUR[currency][which]]
    if currency == "EUR" and reporting in _TO_EUR:
        inverse = Decimal(1) / Decimal(_TO_EUR[reporting][which])
        return [str(inverse.quantize(Decimal("1e-6")))]
    return [("1.000000", "1.010000")[which]]


def _enrollments(
    tenants: list[Tenant],
    membership_rows: list[list[str]],
    code_of: dict[str, str],
    direct_of: dict[str, str],
    clock: Clock,
) -> list[list[str]]:
    """Enrollments that say what memberships.csv says (see the module docstring)."""
    by_client: dict[str, list[list[str]]] = {}
    for row in membership_rows:
        by_client.setdefault(row[0], []).append(row)
    out: list[list[str]] = []
    for tenant in tenants:
        direct = direct_of[tenant.tenant_id]
        for client in tenant.clients:
            rows = sorted(by_client.get(client, []), key=lambda r: r[2])
            if not rows:
                out.append([client, direct, ts(clock.year_before)])
                continue
            starts = {r[2] for r in rows}
            for _, reseller, frm, until in rows:
                out.append([client, code_of[reseller], frm])
                if until and until not in starts:
                    out.append([client, direct, until])
    return out


def _statuses(rng: random.Random, tenants: list[Tenant], clock: Clock) -> list[dict[str, object]]:
    """client-status.v1 events: every client online once, about a third offline later."""
    events: list[dict[str, object]] = []
    span = int((clock.month_end - clock.month_start).total_seconds())
    for tenant in tenants:
        for client in tenant.clients:
            online = clock.month_start + timedelta(seconds=rng.randrange(span // 4))
            events.append(_status(tenant.tenant_id, client, online=True, at=online))
            if rng.random() < 0.35:
                offline = online + timedelta(seconds=rng.randrange(span // 2))
                events.append(_status(tenant.tenant_id, client, online=False, at=offline))
    return events


def _status(tenant: str, client: str, *, online: bool, at: datetime) -> dict[str, object]:
    return {"client_id": client, "tenant_id": tenant, "online": online, "at": ts(at)}


# -- the burst --------------------------------------------------------------------------------


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _over(frm: str, until: str, start: datetime, end: datetime) -> bool:
    """Whether ``[frm, until)`` (empty until: open) covers the whole of ``[start, end)``."""
    return _at(frm) <= start and (not until or _at(until) >= end)


def _find_burst(
    rng: random.Random,
    tenants: list[Tenant],
    association_rows: list[list[str]],
    membership_rows: list[list[str]],
    clock: Clock,
    plans_dir: Path,
) -> _Burst:
    """The first customer, client and reseller with plans in one currency, and a destination."""
    end = clock.month_end
    start = end - timedelta(hours=1)

    def plan(scope: str, account: str) -> str | None:
        return next(
            (
                plan_id
                for s, a, plan_id, frm, until in association_rows
                if s == scope and a == account and _over(frm, until, start, end)
            ),
            None,
        )

    def reseller_of(client: str) -> str | None:
        return next(
            (
                reseller
                for c, reseller, frm, until in membership_rows
                if c == client and _over(frm, until, start, end)
            ),
            None,
        )

    for tenant in tenants:
        plans = {p.plan_id: p for scoped in tenant.plans.values() for p in scoped}
        for client in tenant.clients:
            client_plan = plan("client", client)
            reseller = reseller_of(client)
            reseller_plan = plan("reseller", reseller) if reseller else None
            if client_plan is None or reseller is None or reseller_plan is None:
                continue
            for customer in tenant.customers:
                customer_plan = plan("customer", customer)
                if customer_plan is None:
                    continue
                ids = (customer_plan, client_plan, reseller_plan)
                if len({plans[p].currency for p in ids}) != 1:
                    continue
                found = _destination(rng, [_leg(plans[p], plans_dir, start, end) for p in ids])
                if found is not None:
                    callee, destination, durations, least = found
                    return _Burst(
                        tenant, customer, client, reseller, callee, destination, durations, least
                    )
    msg = "NetworkSpec(accounts=True): no customer, client and reseller to design the alerts with"
    raise ValueError(msg)


def _leg(plan: Plan, plans_dir: Path, start: datetime, end: datetime) -> _Leg:
    """The rows of ``plan``'s deck effective over the whole burst hour, by prefix."""
    by_prefix: dict[str, list[dict[str, str]]] = {}
    with (plans_dir / "decks" / f"{plan.plan_id}.csv").open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            if _over(row["effective_from"], row["effective_until"], start, end):
                by_prefix.setdefault(row["prefix"], []).append(row)
    return _Leg(plan, by_prefix)


def _destination(
    rng: random.Random, legs: list[_Leg]
) -> tuple[str, str, tuple[int, ...], Fraction] | None:
    """A callee the customer pays at most half of what its client and reseller legs cost.

    Judged over every row of the longest matching prefix of each deck (every origin and band:
    whichever the engine picks) and every duration the burst uses; then the burst's calls, at
    least enough for :data:`_BURST_REVENUE`.
    """
    customer = legs[0]
    every = {prefix for leg in legs for prefix in leg.rows}
    choices: list[tuple[str, str]] = []
    for prefix in sorted(customer.rows):
        callee = _fill(rng, prefix, every)
        if callee is None:
            continue
        matched = [_longest(leg, callee) for leg in legs]
        if any(not rows for rows in matched) or not all(
            _below_cost(legs, matched, seconds) for seconds in _DURATIONS
        ):
            continue
        choices.append((callee, matched[0][0]["destination"]))
    if not choices:
        return None
    callee, destination = rng.choice(choices)
    rows = _longest(customer, callee)
    durations: list[int] = []
    revenue = Fraction(0)
    while len(durations) < _BURST_CALLS[0] or (
        revenue < _BURST_REVENUE and len(durations) < _BURST_CALLS[1]
    ):
        seconds = rng.choice(_DURATIONS)
        durations.append(seconds)
        revenue += min(_cost(customer.plan, r, seconds) for r in rows)
    if revenue < _BURST_REVENUE:
        return None
    return callee, destination, tuple(durations), revenue


def _below_cost(legs: list[_Leg], matched: list[list[dict[str, str]]], seconds: int) -> bool:
    """Whether the customer's dearest row is at most half the other legs' cheapest rows."""
    customer = legs[0]
    least = min(_cost(customer.plan, r, seconds) for r in matched[0])
    most = max(_cost(customer.plan, r, seconds) for r in matched[0])
    paid = sum(
        (min(_cost(leg.plan, r, seconds) for r in rows)
         for leg, rows in zip(legs[1:], matched[1:], strict=True)),
        Fraction(0),
    )  # fmt: skip
    return least > 0 and 2 * most <= paid


def _fill(rng: random.Random, prefix: str, prefixes: set[str]) -> str | None:
    """``prefix`` made a full number that no longer prefix of ``prefixes`` starts."""
    length = min(15, max(len(prefix) + 6, 11))
    for _ in range(10):
        callee = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix)))
        if not any(callee[:k] in prefixes for k in range(len(prefix) + 1, length + 1)):
            return callee
    return None


def _longest(leg: _Leg, callee: str) -> list[dict[str, str]]:
    """Every row (any origin, any band) of the longest prefix of ``leg`` that starts ``callee``."""
    for k in range(len(callee), 0, -1):
        if callee[:k] in leg.rows:
            return leg.rows[callee[:k]]
    return []


def _cost(plan: Plan, row: dict[str, str], seconds: int) -> Fraction:
    """What ``row`` charges for an answered call of ``seconds`` (DESIGN.md section 8), exact."""
    first = int(row.get("initial_increment") or 1)
    then = int(row.get("subsequent_increment") or 1)
    if seconds <= int(row.get("grace_seconds") or 0):
        return Fraction(0)
    billed = first if seconds <= first else first + math.ceil((seconds - first) / then) * then
    rate = Fraction(row["rate"])
    initial = Fraction(row.get("initial_rate") or row["rate"])
    cost = Fraction(row.get("connection_fee") or 0) + initial * first / 60
    cost += rate * (billed - first) / 60
    if row.get("min_cost"):
        cost = max(cost, Fraction(row["min_cost"]))
    if row.get("max_cost"):
        cost = min(cost, Fraction(row["max_cost"]))
    scale = 10 ** int(plan.decimals or 6)
    scaled = cost * scale
    if plan.rounding == "up":
        units = math.ceil(scaled)
    elif plan.rounding == "down":
        units = math.floor(scaled)
    else:
        units = math.floor(scaled + Fraction(1, 2))
    return Fraction(units, scale)


def _burst_lines(rng: random.Random, burst: _Burst, now: datetime) -> list[str]:
    """The burst's CDRs: long answered calls starting in the hour before ``now``."""
    lines: list[str] = []
    hour = now - timedelta(hours=1)
    for k, duration in enumerate(burst.durations):
        start = hour + timedelta(seconds=k * 3600 // len(burst.durations) + rng.randrange(30))
        answer = start + timedelta(seconds=rng.randrange(3, 12))
        record = {
            "cdr_id": f"{rng.getrandbits(128):032x}",
            "session_id": f"{rng.getrandbits(64):016x}@sbc1.vmgate.example",
            "tenant_id": burst.tenant.tenant_id,
            "customer_id": burst.customer,
            "client_id": burst.client,
            "caller": f"+44{rng.randrange(10**9, 10**10)}",
            "callee": "+" + burst.callee,
            "start_time": ts(start),
            "answer_time": ts(answer),
            "end_time": ts(answer + timedelta(seconds=duration)),
            "duration_ms": duration * 1000,
            "disposition": "ANSWERED",
            "sip_code": 200,
        }
        lines.append(json.dumps(record))
    return lines
