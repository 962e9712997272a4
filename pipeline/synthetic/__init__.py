"""Synthetic VMGate network: a plans folder and a JSONL file of CDRs (demos, tests, benchmarks).

``write_network`` writes the reference data in exactly the file format of DESIGN.md section 4
("Reference data as files") and CDRs in the ``cdr.v1`` shape of section 3, one JSON object per
line. The output is a function of the ``NetworkSpec`` alone: every draw comes from
``random.Random(spec.seed)`` or, for the CDR columns, from a ``numpy`` generator seeded from that
same stream; no global random state, no clock. A test can regenerate the same network from its
seed (with the same Python, numpy and polars versions). 600,000 CDRs take about 3 s: the CDR file
is built column by column, never one Python object per row.

What a caller may rely on (tests of the rating engine are built on it):

* Decks carry realistic nested E.164 prefixes (``44``, ``447``, ``4477``, ``44770``...), rates with
  up to six decimals, some connection fees, increments from 1/1, 60/60, 30/6, 60/1, 6/6, and
  effective dating inside the month: rate changes at an instant, longer prefixes that expire with
  no successor, a prefix effective twice with different ``effective_from``, prefixes that appear
  mid-month, rows that are only in the past or the future. Never two rows of one deck with the same
  prefix and the same ``effective_from``.
* Associations never overlap for one account and scope, and always point at a plan of the
  account's scope and tenant; memberships never overlap for one client. Some accounts switch plan
  or reseller at an instant, some clients are Direct, one reseller per tenant has no plan, and some
  customers are without a plan for part of the month (``customer:no_plan``).
* CDRs start inside ``spec.month`` (UTC), some exactly on a change instant or 1 us / 1 ms before
  it; callees come in several notations; about 5% carry an explicit ``reseller_id``.
* ``malformed_ratio`` of the lines break exactly one rule of the contract; their 1-based line
  numbers and kinds are in the summary. No line is empty, no cdr_id repeats, and no string field
  ever holds a number.
"""

from __future__ import annotations

import csv
import json
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

__all__ = ["MALFORMED_KINDS", "NetworkSpec", "NetworkSummary", "write_network"]

SCOPES: tuple[str, ...] = ("customer", "client", "reseller")

REQUIRED_FIELDS: tuple[str, ...] = (
    "cdr_id",
    "session_id",
    "tenant_id",
    "customer_id",
    "client_id",
    "caller",
    "callee",
    "start_time",
    "end_time",
    "duration_ms",
)
_REQUIRED_STRINGS: tuple[str, ...] = REQUIRED_FIELDS[:-1]

MALFORMED_KINDS: tuple[str, ...] = (
    "not_json",
    "truncated_json",
    "json_array",
    "json_scalar",
    *(f"missing_{name}" for name in REQUIRED_FIELDS),
    "null_string_field",
    "empty_string_field",
    "empty_reseller_id",
    "callee_letters",
    "callee_too_short",
    "callee_too_long",
    "bad_start_time",
    "bad_end_time",
    "bad_answer_time",
    "end_before_start",
    "negative_duration",
    "float_duration",
    "string_duration",
    "huge_duration",
    "bad_disposition",
    "bad_sip_code",
)
"""Every way ``write_network`` breaks a CDR line; each appears once the malformed count allows."""

_INCREMENTS: tuple[tuple[int, int], ...] = ((1, 1), (60, 60), (30, 6), (60, 1), (6, 6))
_EDGE_DURATIONS_MS: tuple[int, ...] = (
    1,
    999,
    1000,
    1001,
    5999,
    6000,
    6001,
    30000,
    30001,
    36000,
    59999,
    60000,
    60001,
    120000,
)
_FAILED_DISPOSITIONS: tuple[tuple[str, int], ...] = (
    ("NO_ANSWER", 480),
    ("NO_ANSWER", 408),
    ("BUSY", 486),
    ("BUSY", 600),
    ("FAILED", 503),
    ("FAILED", 404),
    ("FAILED", 500),
    ("CANCELLED", 487),
)
_OFFSETS_MIN: tuple[int, ...] = (60, 120, -300, 330, 540, 0, -180, 345)
_OPERATORS: tuple[str, ...] = (
    "Vodafone",
    "Orange",
    "MTN",
    "Airtel",
    "T-Mobile",
    "Telef\u00f3nica",
    "Etisalat",
    "Kyivstar",
    "China Mobile",
    "Jio",
    "Safaricom",
    "KPN",
)
_MICROS = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class _Country:
    cc: str
    name: str
    national_len: int
    areas: tuple[tuple[str, str], ...]
    mobile: tuple[str, ...]
    rare: bool = False


# cc | name | national number length | area prefixes (after the cc) and names | mobile prefixes
# A trailing "*" on the name marks a destination only some decks carry.
_COUNTRY_TABLE = """
1|United States/Canada|10|201 New Jersey;202 Washington DC;212 New York;213 Los Angeles;\
305 Miami;312 Chicago;415 San Francisco;416 Toronto;604 Vancouver;646 New York;713 Houston|
44|United Kingdom|10|1 Geographic;20 London;113 Leeds;117 Bristol;121 Birmingham;\
131 Edinburgh;161 Manchester|7 74 75 77 770 7700 78 79
49|Germany|11|30 Berlin;40 Hamburg;69 Frankfurt;89 Munich;221 Cologne|\
15 151 152 157 16 160 17 170 171 176
33|France|9|1 Paris;4 South-East;491 Marseille|6 61 62 7 75
34|Spain|9|91 Madrid;93 Barcelona;95 Seville|6 60 61 7 71
39|Italy|10|02 Milan;06 Rome;011 Turin|3 32 33 34 347 35 36 39
31|Netherlands|9|10 Rotterdam;20 Amsterdam;70 The Hague|6 61 62 65
7|Russia|10|495 Moscow;499 Moscow;812 St Petersburg;7 =Kazakhstan;701 =Kazakhstan Mobile;\
727 =Kazakhstan - Almaty|9 91 92 95 98
86|China|11|10 Beijing;20 Guangzhou;21 Shanghai|13 135 138 15 18 186
91|India|10|11 Delhi;22 Mumbai;80 Bangalore|7 70 8 9 98 99
234|Nigeria|10|1 Lagos;9 Abuja|70 80 803 806 81 90
254|Kenya|9|20 Nairobi;41 Mombasa|7 70 71 72 11
380|Ukraine|9|32 Lviv;44 Kyiv|50 63 66 67 68 73 93 97
971|United Arab Emirates|9|2 Abu Dhabi;4 Dubai|5 50 52 55 56
61|Australia|9|2 Sydney;3 Melbourne|4 40 41 43
55|Brazil|11|11 S\u00e3o Paulo;21 Rio de Janeiro|119 219
81|Japan|10|3 Tokyo;6 Osaka|70 80 90
27|South Africa|9|11 Johannesburg;21 Cape Town|6 7 72 8 82
48|Poland|9|22 Warsaw|5 50 6 60 7 79
90|Turkey|10|212 Istanbul;312 Ankara|5 53 54
225|C\u00f4te d'Ivoire*|10|27 Abidjan|0 01 05 07
243|Congo, Dem. Rep.*|9|12 Kinshasa|8 81 82 89 9 97
880|Bangladesh*|10|2 Dhaka|1 17 18 19
63|Philippines*|10|2 Manila|9 91 917 92
52|Mexico*|10|33 Guadalajara;55 Mexico City|1
53|Cuba*|8|7 Havana|5
"""


def _parse_countries(table: str) -> tuple[_Country, ...]:
    countries: list[_Country] = []
    for line in table.strip().splitlines():
        cc, name, length, areas, mobile = line.split("|")
        rare = name.endswith("*")
        name = name.removesuffix("*")
        area_list: list[tuple[str, str]] = []
        for item in filter(None, areas.split(";")):
            suffix, label = item.split(" ", 1)
            # "=Name" is a destination of its own under the cc (Kazakhstan under +7).
            destination = label[1:] if label.startswith("=") else f"{name} - {label}"
            area_list.append((suffix, destination))
        countries.append(
            _Country(cc, name, int(length), tuple(area_list), tuple(mobile.split()), rare)
        )
    return tuple(countries)


_COUNTRIES: tuple[_Country, ...] = _parse_countries(_COUNTRY_TABLE)


# --------------------------------------------------------------------------------------------
# Public value objects


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


# --------------------------------------------------------------------------------------------
# Internal model


@dataclass(frozen=True)
class _Plan:
    plan_id: str
    tenant_id: str
    name: str
    scope: str
    currency: str
    decimals: str
    rounding: str


@dataclass
class _Tenant:
    tenant_id: str
    customers: list[str]
    clients: list[str]
    resellers: list[str]
    plans: dict[str, list[_Plan]]
    customer_draw: list[str]
    pool_prefixes: list[str]
    pool_lengths: list[int]


@dataclass(frozen=True)
class _Clock:
    month_start: datetime
    month_end: datetime
    prev_month_start: datetime
    year_before: datetime
    instants: tuple[datetime, ...]


def _ts(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _us(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(microseconds=1)


def _make_clock(spec: NetworkSpec, rng: random.Random) -> _Clock:
    try:
        year_text, month_text = spec.month.split("-")
        start = datetime(int(year_text), int(month_text), 1, tzinfo=UTC)
    except ValueError as exc:
        msg = f"month must look like 2026-03, got {spec.month!r}"
        raise ValueError(msg) from exc
    end = (start + timedelta(days=32)).replace(day=1)
    prev = (start - timedelta(days=1)).replace(day=1)
    year_before = start.replace(year=start.year - 1)
    fixed = [
        start.replace(day=8),
        start.replace(day=15),
        start.replace(day=21, hour=12),
    ]
    span = int((start.replace(day=27) - start.replace(day=2)).total_seconds())
    randoms = [start.replace(day=2) + timedelta(seconds=rng.randrange(span)) for _ in range(4)]
    instants = tuple(sorted(set(fixed + randoms)))
    return _Clock(start, end, prev, year_before, instants)


def _check(spec: NetworkSpec) -> None:
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
    if problems:
        msg = "invalid NetworkSpec: " + "; ".join(problems)
        raise ValueError(msg)


# --------------------------------------------------------------------------------------------
# Plans and decks


_DECIMALS_CYCLE: tuple[str, ...] = ("4", "2", "6", "0", "", "4", "6", "6", "4", "5", "3")
_ROUNDING_CYCLE: tuple[str, ...] = ("half_up", "up", "down", "", "half_up", "down", "up")


def _make_plans(spec: NetworkSpec, tenant_ids: list[str]) -> dict[str, dict[str, list[_Plan]]]:
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
    plans: dict[str, dict[str, list[_Plan]]] = {}
    index = 0
    for t, tenant_id in enumerate(tenant_ids):
        home = spec.currencies[t % len(spec.currencies)]
        other = spec.currencies[(t + 1) % len(spec.currencies)]
        plans[tenant_id] = {}
        for scope in SCOPES:
            scope_plans: list[_Plan] = []
            for k in range(counts[scope][t]):
                currency = other if scope != "reseller" and k % 3 == 1 else home
                label = {
                    "customer": "Wholesale A\u2013Z",
                    "client": "Gateway cost",
                    "reseller": "Payout",
                }
                scope_plans.append(
                    _Plan(
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


def _rate_text(rng: random.Random, micros: int) -> str:
    """A per-minute rate as a decimal string with 1..6 decimals, truncated from ``micros``."""
    if micros <= 0:
        return "0"
    digits = rng.choice((1, 2, 3, 4, 4, 4, 5, 5, 6, 6))
    while digits < 6 and micros // 10 ** (6 - digits) == 0:
        digits += 1
    whole, frac = divmod(micros, _MICROS)
    return f"{whole}.{frac // 10 ** (6 - digits):0{digits}d}"


@dataclass(frozen=True)
class _Base:
    prefix: str
    destination: str
    mobile: bool
    country: _Country


def _base_prefixes(country: _Country) -> list[_Base]:
    out = [_Base(country.cc, country.name, False, country)]
    out.extend(_Base(country.cc + suffix, name, False, country) for suffix, name in country.areas)
    out.extend(
        _Base(country.cc + s, f"{country.name} Mobile", True, country) for s in country.mobile
    )
    return out


def _deck_rows(
    rng: random.Random, plan: _Plan, size: int, clock: _Clock, countries: list[_Country]
) -> list[list[str]]:
    """The CSV rows of one deck (without header)."""
    base: list[_Base] = []
    for country in countries:
        base.extend(_base_prefixes(country))
    roots = [b for b in base if b.prefix == b.country.cc]
    others = [b for b in base if b.prefix != b.country.cc]
    rng.shuffle(others)
    chosen = (roots + others)[:size]
    seen = {b.prefix for b in chosen}
    # Deeper prefixes: children of chosen prefixes, and their children, down to 9 digits.
    parents = [b for b in chosen if b.prefix != b.country.cc] or list(chosen)
    attempts = 0
    while len(chosen) < size and attempts < 30 * size:
        attempts += 1
        parent = parents[rng.randrange(len(parents))]
        cap = min(9, len(parent.country.cc) + parent.country.national_len - 1)
        room = cap - len(parent.prefix)
        if room <= 0:
            continue
        n = rng.randint(1, min(room, 3))
        child_prefix = parent.prefix + f"{rng.randrange(10**n):0{n}d}"
        if child_prefix in seen:
            continue
        destination = parent.destination
        if parent.mobile and rng.random() < 0.3:
            destination = f"{parent.country.name} Mobile - {rng.choice(_OPERATORS)}"
        child = _Base(child_prefix, destination, parent.mobile, parent.country)
        seen.add(child_prefix)
        chosen.append(child)
        parents.append(child)

    factor = {"customer": 1.0, "client": 0.7, "reseller": 0.12}[plan.scope] * rng.uniform(0.9, 1.3)
    deck_increment = rng.choice(_INCREMENTS)
    deck_from = rng.choice((clock.prev_month_start, clock.month_start, clock.year_before))
    instants = rng.sample(clock.instants, min(3, len(clock.instants)))
    before_month = clock.month_start - timedelta(days=5)

    rows: list[list[str]] = []
    for b in chosen:
        low, high = (8_000, 200_000) if b.mobile else (2_500, 30_000)
        if b.country.rare:
            low, high = low * 4, high * 5
        price = int(rng.randint(low, high) * factor)
        if rng.random() < 0.8:
            initial, subsequent = deck_increment
        else:
            initial, subsequent = rng.choice(_INCREMENTS)
        if (initial, subsequent) == (1, 1) and rng.random() < 0.4:
            increments = ("", "")  # empty cells: the default 1/1
        elif subsequent == 1 and rng.random() < 0.2:
            increments = (str(initial), "")
        else:
            increments = (str(initial), str(subsequent))
        roll = rng.random()
        fee = ""
        if roll < 0.05:
            fee = "0"
        elif roll < 0.15:
            fee = rng.choice(("0.01", "0.005", "0.0125", "0.02", "0.001", "0.000375"))
        start = deck_from if rng.random() < 0.9 else clock.year_before - timedelta(days=61)
        x = rng.choice(instants)
        is_root = b.prefix == b.country.cc
        spans: list[tuple[datetime, datetime | None]]
        pattern = rng.random()
        if pattern < 0.08:  # rate change at an instant
            spans = [(start, x), (x, None)]
        elif pattern < 0.11 and not is_root:  # a longer prefix expires, no successor
            spans = [(start, x)]
        elif pattern < 0.14:  # effective twice, open-ended: the later effective_from wins
            spans = [(start, None), (x if rng.random() < 0.5 else before_month, None)]
        elif pattern < 0.16:  # a temporary rate on top of an open-ended one
            a, z = sorted(rng.sample(clock.instants, 2))
            spans = [(start, None), (a, z)]
        elif pattern < 0.18 and not is_root:  # a destination that opens mid-month
            spans = [(x, None)]
        elif pattern < 0.19:  # history: an older rate that ended where this one began
            spans = [(start - timedelta(days=90), start), (start, None)]
        elif pattern < 0.20:  # a rate that starts next month
            spans = [(start, None), (clock.month_end, None)]
        else:
            spans = [(start, None)]
        for frm, until in spans:
            rate = (
                "0"
                if rng.random() < 0.004
                else _rate_text(rng, int(price * rng.uniform(0.8, 1.25)))
            )
            rows.append(
                [
                    b.prefix,
                    b.destination,
                    rate,
                    fee,
                    *increments,
                    _ts(frm),
                    "" if until is None else _ts(until),
                ]
            )
    rng.shuffle(rows)
    return rows


# --------------------------------------------------------------------------------------------
# Associations and memberships


def _association_rows(
    rng: random.Random, tenant: _Tenant, clock: _Clock
) -> tuple[list[list[str]], list[str]]:
    """Rows of associations.csv for one tenant, and its customer draw list (traffic weights)."""
    rows: list[list[str]] = []
    base = clock.year_before
    open_until = ""

    def add(scope: str, account: str, plan: _Plan, frm: datetime, until: datetime | None) -> None:
        rows.append([scope, account, plan.plan_id, _ts(frm), _ts(until) if until else open_until])

    def two(plans: list[_Plan], k: int) -> tuple[_Plan, _Plan]:
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


def _membership_rows(rng: random.Random, tenant: _Tenant, clock: _Clock) -> list[list[str]]:
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
            rows.append([client, r0, _ts(base), ""])
        elif pattern == "change":
            rows += [[client, r0, _ts(base), _ts(x)], [client, r1, _ts(x), ""]]
        elif pattern == "unpaid":
            rows.append([client, unpaid, _ts(base), ""])
        elif pattern == "joined":
            rows.append([client, r0, _ts(x), ""])
        elif pattern == "left":
            rows.append([client, r1, _ts(base), _ts(x)])
        elif pattern == "history":
            old = base - timedelta(days=120)
            rows += [[client, r1, _ts(old), _ts(base)], [client, r0, _ts(base), ""]]
    return rows


# --------------------------------------------------------------------------------------------
# CDRs
#
# The CDR file is built column by column (numpy draws, polars string expressions) so that
# 600,000 lines take seconds; only the few malformed lines are made one at a time.

_STEP_US: tuple[int, ...] = tuple({0: _MICROS, 3: 1000}.get(p, 1) for p in range(10))
_ZONE_SHIFT_US = np.array([0, *(m * 60 * _MICROS for m in _OFFSETS_MIN)], dtype=np.int64)
_ZONE_SUFFIX: tuple[str, ...] = (
    "Z",
    *(f"{'-' if m < 0 else '+'}{abs(m) // 60:02d}:{abs(m) % 60:02d}" for m in _OFFSETS_MIN),
)


def _render_one(us: int, precision: int, zone: int, lower: bool, nanos: int) -> str:
    """One RFC 3339 text of the UTC instant ``us``, written like ``_render_column`` does."""
    local = _EPOCH + timedelta(microseconds=us + int(_ZONE_SHIFT_US[zone]))
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if precision == 3:
        text += f".{local.microsecond // 1000:03d}"
    elif precision == 6:
        text += f".{local.microsecond:06d}"
    elif precision == 9:
        text += f".{local.microsecond:06d}{nanos:03d}"
    text += _ZONE_SUFFIX[zone]
    return text.replace("T", "t").replace("Z", "z") if lower else text


def _zfill(values: np.ndarray | pl.Expr, width: int | pl.Expr) -> pl.Expr:
    expr = values if isinstance(values, pl.Expr) else pl.lit(pl.Series(values))
    return expr.cast(pl.String).str.zfill(width)


def _render_column(
    g: np.random.Generator,
    us: np.ndarray,
    precision: np.ndarray,
    zone: np.ndarray,
    lower: np.ndarray,
) -> pl.Series:
    """RFC 3339 texts of UTC instants (microseconds); fewer fraction digits truncate."""
    local = us + _ZONE_SHIFT_US[zone]
    micro = local % _MICROS
    # The fraction as an integer of ``precision`` digits; nanoseconds are noise to truncate.
    digits = np.select(
        [precision == 3, precision == 6, precision == 9],
        [micro // 1000, micro, micro * 1000 + g.integers(0, 1000, len(us))],
        0,
    )
    fraction = pl.concat_str(pl.lit("."), _zfill(digits, pl.lit(pl.Series(precision))))
    text = _evaluate(
        pl.concat_str(
            pl.lit(pl.Series(local)).cast(pl.Datetime("us")).dt.strftime("%Y-%m-%dT%H:%M:%S"),
            _when(precision > 0, fraction, ""),
            pl.lit(pl.Series(_ZONE_SUFFIX).gather(zone)),
        )
    )
    rows = np.flatnonzero(lower).tolist()
    if rows:
        lowered = [str(text[i]).replace("T", "t").replace("Z", "z") for i in rows]
        text = text.scatter(rows, lowered)
    return text


def _evaluate(expr: pl.Expr) -> pl.Series:
    return pl.select(expr.alias("value")).to_series()


def _hex_ids(g: np.random.Generator, n: int, nbytes: int, uuid4: bool) -> list[str]:
    raw = np.frombuffer(g.bytes(nbytes * n), dtype=np.uint8).reshape(n, nbytes).copy()
    if uuid4:  # version 4, RFC 4122 variant
        raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
        raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    text = raw.tobytes().hex()
    width = 2 * nbytes
    return [text[i : i + width] for i in range(0, width * n, width)]


def _per_tenant(
    g: np.random.Generator, t_idx: np.ndarray, groups: list[list[str]]
) -> tuple[np.ndarray, pl.Series]:
    """A uniform choice from the row's tenant's group: (index into the flat list, values)."""
    sizes = np.array([max(len(group), 1) for group in groups], dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    flat = [x for group in groups for x in (group or [""])]
    index = offsets[t_idx] + (g.random(len(t_idx)) * sizes[t_idx]).astype(np.int64)
    return index, pl.Series(flat, dtype=pl.String).gather(index)


def _when(mask: np.ndarray, then: pl.Expr | str, otherwise: pl.Expr | str) -> pl.Expr:
    then_expr = pl.lit(then) if isinstance(then, str) else then
    other_expr = pl.lit(otherwise) if isinstance(otherwise, str) else otherwise
    return pl.when(pl.lit(pl.Series(mask))).then(then_expr).otherwise(other_expr)


@dataclass(frozen=True)
class _CdrColumns:
    """The valid lines and what the malformed variants need to know about each row."""

    lines: pl.Series
    cdr_ids: pl.Series
    callee_digits: pl.Series
    start_us: np.ndarray
    precision: np.ndarray
    zone: np.ndarray
    lower: np.ndarray


def _cdr_columns(
    g: np.random.Generator, n: int, tenants: list[_Tenant], clock: _Clock
) -> _CdrColumns:
    rand = g.random
    t_idx = g.integers(0, len(tenants), n)
    tenant_ids = pl.Series([t.tenant_id for t in tenants]).gather(t_idx)
    cdr_ids = pl.Series(_hex_ids(g, n, 16, uuid4=True), dtype=pl.String)
    session_ids = pl.Series(_hex_ids(g, n, 8, uuid4=False), dtype=pl.String)
    sbc = pl.Series(g.integers(1, 5, n))
    _, customers = _per_tenant(g, t_idx, [t.customer_draw for t in tenants])
    _, clients = _per_tenant(g, t_idx, [t.clients for t in tenants])
    _, resellers = _per_tenant(g, t_idx, [t.resellers for t in tenants])
    has_resellers = np.array([bool(t.resellers) for t in tenants])[t_idx]
    roll = rand(n)
    explicit = (roll < 0.05) & has_resellers
    reseller_part = _when(
        explicit,
        pl.concat_str(pl.lit('"reseller_id": "'), pl.lit(resellers), pl.lit('", ')),
        _when(roll < 0.5, '"reseller_id": null, ', ""),
    )
    caller = pl.concat_str(
        pl.lit(pl.Series(["+", "", "00"]).gather(g.integers(0, 3, n))),
        pl.lit(pl.Series(g.integers(10**9, 10**12, n))).cast(pl.String),
    )

    # Callee: a prefix of one of the tenant's decks, filled up to the country's length.
    pool_index, prefixes = _per_tenant(g, t_idx, [t.pool_prefixes for t in tenants])
    flat_lengths = np.array([x for t in tenants for x in (t.pool_lengths or [10])], dtype=np.int64)
    prefix_len = prefixes.str.len_chars().to_numpy().astype(np.int64)
    total = flat_lengths[pool_index]
    deep = prefix_len >= total
    total = np.where(deep, np.minimum(15, prefix_len + 1 + g.integers(0, 3, n)), total)
    extra = total - prefix_len
    roll = rand(n)
    unknown = roll < 0.003  # an unassigned country code: no deck carries it
    national = (roll >= 0.003) & (roll < 0.005)  # national format, leading 0: no deck either
    extra = np.where(unknown, 6 + g.integers(0, 5, n), extra)
    extra = np.where(national, 8 + g.integers(0, 3, n), extra)
    fill = g.integers(0, 10**extra)
    digits_expr = pl.concat_str(
        _when(unknown, "999", _when(national, "0", pl.lit(prefixes))),
        _zfill(fill, pl.lit(pl.Series(extra))),
    )
    callee_digits = _evaluate(digits_expr)
    d = pl.lit(callee_digits)
    roll = rand(n)
    callee = _evaluate(
        pl.when(pl.lit(pl.Series(roll < 0.40)))
        .then(pl.concat_str(pl.lit("+"), d))
        .when(pl.lit(pl.Series(roll < 0.55)))
        .then(pl.concat_str(pl.lit("00"), d))
        .otherwise(d)
    )
    # A fifth of the callees in groups of 2, 3 or 4 digits with spaces and/or dashes.
    group = g.integers(2, 5, n)
    for k in (2, 3, 4):
        rows = np.flatnonzero((roll >= 0.80) & (group == k))
        if len(rows) == 0:
            continue
        part = pl.lit(callee_digits.gather(rows))
        spaced = _evaluate(
            pl.concat_str([part.str.slice(j, k) for j in range(0, 15, k)], separator=" ")
        ).str.strip_chars_end(" ")
        dashed = spaced.str.replace_all(" ", "-", literal=True)
        style = roll[rows]
        written = _evaluate(
            pl.when(pl.lit(pl.Series(style < 0.88)))
            .then(pl.concat_str(pl.lit("+"), pl.lit(spaced)))
            .when(pl.lit(pl.Series(style < 0.93)))
            .then(pl.concat_str(pl.lit("00 "), pl.lit(spaced)))
            .when(pl.lit(pl.Series(style < 0.98)))
            .then(pl.lit(dashed))
            .otherwise(
                pl.concat_str(pl.lit("+"), pl.lit(dashed.str.replace("-", " ", literal=True)))
            )
        )
        callee = callee.scatter(rows, written)

    # Times: mostly uniform in the month; some on, or 1 us / 1 ms / 1 s around, an instant.
    roll = rand(n)
    precision = np.select([roll < 0.45, roll < 0.75, roll < 0.95], [0, 3, 6], 9).astype(np.int64)
    month_start = _us(clock.month_start)
    start = month_start + (rand(n) * (_us(clock.month_end) - month_start)).astype(np.int64)
    start -= start % np.array(_STEP_US, dtype=np.int64)[precision]
    targeted = rand(n) < 0.04
    delta = np.array([0, 0, -1, 1, -1000, -_MICROS], dtype=np.int64)[g.integers(0, 6, n)]
    instants = np.array([_us(x) for x in clock.instants], dtype=np.int64)
    start = np.where(targeted, instants[g.integers(0, len(instants), n)] + delta, start)
    fine = targeted & (np.abs(delta) == 1)
    precision = np.where(fine, np.where(rand(n) < 0.7, 6, 9), precision)
    precision = np.where(targeted & (delta == -1000) & (precision == 0), 3, precision)
    zone = np.where(rand(n) < 0.85, 0, 1 + g.integers(0, len(_OFFSETS_MIN), n))
    lower = rand(n) < 0.01

    answered = rand(n) < 0.7
    roll = rand(n)
    edges = np.array(_EDGE_DURATIONS_MS, dtype=np.int64)[g.integers(0, len(_EDGE_DURATIONS_MS), n)]
    usual = np.clip(g.lognormal(11.0, 1.1, n).astype(np.int64), 1, 4 * 3600 * 1000)
    duration = np.where(roll < 0.15, edges, np.where(roll < 0.153, 0, usual))
    duration = np.where(answered, duration, 0)
    answer = start + (rand(n) * 20 * _MICROS).astype(np.int64)
    ring_end = np.where(rand(n) < 0.05, start, start + (rand(n) * 45 * _MICROS).astype(np.int64))
    end = np.where(answered, answer + duration * 1000 + g.integers(0, 1000, n), ring_end)
    start_text = _render_column(g, start, precision, zone, lower)
    answer_text = _render_column(g, answer, precision, zone, lower)
    end_text = _render_column(g, end, precision, zone, lower)
    answer_part = _when(
        answered,
        pl.concat_str(pl.lit('"answer_time": "'), pl.lit(answer_text), pl.lit('", ')),
        _when(rand(n) < 0.6, '"answer_time": null, ', ""),
    )

    failed = g.integers(0, len(_FAILED_DISPOSITIONS), n) + 1
    outcome = np.where(answered, 0, failed)
    names = pl.Series(["ANSWERED", *(name for name, _ in _FAILED_DISPOSITIONS)]).gather(outcome)
    codes = np.array([200, *(code for _, code in _FAILED_DISPOSITIONS)], dtype=np.int64)[outcome]
    roll = rand(n)
    tail = _when(
        roll < 0.03,
        "",  # neither disposition nor sip_code
        _when(
            roll < 0.04,
            ', "disposition": null, "sip_code": null',
            pl.concat_str(
                pl.lit(', "disposition": "'),
                pl.lit(names),
                pl.lit('", "sip_code": '),
                pl.lit(pl.Series(codes)).cast(pl.String),
            ),
        ),
    )
    extras = _when(
        rand(n) < 0.03,
        pl.concat_str(
            pl.lit(', "codec": "'),
            pl.lit(pl.Series(["PCMA", "PCMU", "G729", "opus"]).gather(g.integers(0, 4, n))),
            pl.lit('", "pdd_ms": '),
            pl.lit(pl.Series(g.integers(100, 8100, n))).cast(pl.String),
            pl.lit(', "trunk": {"id": "tr-'),
            pl.lit(pl.Series(g.integers(0, 100, n))).cast(pl.String),
            pl.lit('", "ip": "10.0.'),
            pl.lit(pl.Series(g.integers(0, 256, n))).cast(pl.String),
            pl.lit('.7"}, "tags": ["synthetic", "'),
            pl.lit(pl.Series(["peak", "offpeak"]).gather(g.integers(0, 2, n))),
            pl.lit('"], "x_vendor": null'),
        ),
        "",
    )
    line = pl.concat_str(
        pl.lit('{"cdr_id": "'),
        pl.lit(cdr_ids),
        pl.lit('", "session_id": "'),
        pl.lit(session_ids),
        pl.lit("@sbc"),
        pl.lit(sbc).cast(pl.String),
        pl.lit('.vmgate.example", "tenant_id": "'),
        pl.lit(tenant_ids),
        pl.lit('", "customer_id": "'),
        pl.lit(customers),
        pl.lit('", "client_id": "'),
        pl.lit(clients),
        pl.lit('", '),
        reseller_part,
        pl.lit('"caller": "'),
        caller,
        pl.lit('", "callee": "'),
        pl.lit(callee),
        pl.lit('", "start_time": "'),
        pl.lit(start_text),
        pl.lit('", '),
        answer_part,
        pl.lit('"end_time": "'),
        pl.lit(end_text),
        pl.lit('", "duration_ms": '),
        pl.lit(pl.Series(duration)).cast(pl.String),
        tail,
        extras,
        pl.lit("}"),
    )
    lines = _evaluate(line)
    return _CdrColumns(lines, cdr_ids, callee_digits, start, precision, zone, lower)


def _malformed_line(
    rng: random.Random, kind: str, cols: _CdrColumns, i: int, month: datetime
) -> str:
    """Row ``i``'s valid line broken in exactly one way (``kind``, one of MALFORMED_KINDS)."""
    line = str(cols.lines[i])
    cdr: dict[str, Any] = json.loads(line)
    if kind == "not_json":
        return rng.choice(
            (
                "this is not json",
                f"cdr_id={cdr['cdr_id']};callee={cdr['callee']}",
                f'<cdr id="{cdr["cdr_id"]}"/>',
                "{cdr_id: '" + cdr["cdr_id"] + "'}",
                line[:-1] + ",}",
            )
        )
    if kind == "truncated_json":
        return line[: rng.randrange(10, len(line) - 1)]
    if kind == "json_array":
        return json.dumps([cdr]) if rng.random() < 0.5 else json.dumps(list(cdr.values()))
    if kind == "json_scalar":
        return rng.choice(("null", "42", '"' + cdr["cdr_id"] + '"', "true"))
    day = f"{month.year:04d}-{month.month:02d}-05T"
    if kind.startswith("missing_"):
        del cdr[kind.removeprefix("missing_")]
    elif kind == "null_string_field":
        cdr[rng.choice(_REQUIRED_STRINGS)] = None
    elif kind == "empty_string_field":
        cdr[rng.choice(_REQUIRED_STRINGS)] = ""
    elif kind == "empty_reseller_id":
        cdr["reseller_id"] = ""
    elif kind == "callee_letters":
        digits = str(cols.callee_digits[i])
        cdr["callee"] = rng.choice(
            (
                "+" + digits[:3] + "ABC" + digits[3:],
                digits[:4] + "O" + digits[5:],
                "tel:+" + digits,
                "+" + digits + "#",
                "(0)" + digits,
                "+" + digits[:-1] + "\u0661",  # ARABIC-INDIC DIGIT ONE: a digit, not ASCII
                "++" + digits,
            )
        )
    elif kind == "callee_too_short":
        cdr["callee"] = rng.choice(("12", "+1", "00 4", "7", "+4-4", "0049"))
    elif kind == "callee_too_long":
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(15, 18)))
        cdr["callee"] = rng.choice(("+", "", "00")) + "4" + digits
    elif kind in ("bad_start_time", "bad_end_time", "bad_answer_time"):
        cdr[kind.removeprefix("bad_")] = rng.choice(
            (
                f"{month.year:04d}-02-30T10:00:00Z",
                day.replace("-05T", "-32T") + "00:00:00Z",
                day + "24:00:00Z",
                day + "12:60:00Z",
                day + "12:00:00",
                day + "12:00:00+2:00",
                day + "12:00:00.Z",
                day + "12:00:00+25:00",
                day.replace("T", " ") + "12:00:00Z",
                day.replace("-", "/") + "12:00:00Z",
                "yesterday",
                "1772712000",
            )
        )
    elif kind == "end_before_start":
        precision = int(cols.precision[i])
        before = int(cols.start_us[i]) - _STEP_US[precision]
        zone, lower = int(cols.zone[i]), bool(cols.lower[i])
        cdr["end_time"] = _render_one(before, precision, zone, lower, rng.randrange(1000))
    elif kind == "negative_duration":
        cdr["duration_ms"] = rng.choice((-1, -60000, -(2**63)))
    elif kind == "float_duration":
        cdr["duration_ms"] = rng.choice((12.5, 60000.25, 0.5))
    elif kind == "string_duration":
        cdr["duration_ms"] = rng.choice(("abc", "", "1e3"))
    elif kind == "huge_duration":
        cdr["duration_ms"] = rng.choice((2**63, 2**64, 10**20))
    elif kind == "bad_disposition":
        cdr["disposition"] = rng.choice(("ANSWER", "answered", "UNKNOWN", "", "Busy"))
    elif kind == "bad_sip_code":
        cdr["sip_code"] = rng.choice((99, 700, 0, 1000))
    else:  # pragma: no cover - MALFORMED_KINDS and this function change together
        msg = f"unknown malformed kind {kind!r}"
        raise ValueError(msg)
    return json.dumps(cdr)


_CHUNK_ROWS = 100_000  # rows built at once: bounds memory, keeps the vectorised speed


def _write_cdrs(
    spec: NetworkSpec, rng: random.Random, tenants: list[_Tenant], clock: _Clock, path: Path
) -> tuple[tuple[int, ...], tuple[str, ...]]:
    n = spec.cdrs
    g = np.random.default_rng(rng.getrandbits(128))
    n_bad = min(n, round(n * spec.malformed_ratio))
    bad_positions = sorted(rng.sample(range(n), n_bad))
    kinds = [MALFORMED_KINDS[i % len(MALFORMED_KINDS)] for i in range(n_bad)]
    rng.shuffle(kinds)
    bad_kind = dict(zip(bad_positions, kinds, strict=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    ids: list[pl.Series] = []
    with path.open("wb") as fh:
        for first in range(0, n, _CHUNK_ROWS):
            size = min(_CHUNK_ROWS, n - first)
            cols = _cdr_columns(g, size, tenants, clock)
            ids.append(cols.cdr_ids)
            local = [i - first for i in bad_positions if first <= i < first + size]
            lines = cols.lines
            if local:
                bad = [
                    _malformed_line(rng, bad_kind[first + i], cols, i, clock.month_start)
                    for i in local
                ]
                lines = lines.scatter(local, bad)
            pl.DataFrame({"line": lines}).write_csv(
                fh, include_header=False, quote_style="never", line_terminator="\n"
            )
    if ids and pl.concat(ids).n_unique() != n:  # pragma: no cover - 122 random bits per id
        msg = "cdr_id collision; use another seed"
        raise RuntimeError(msg)
    return tuple(p + 1 for p in bad_positions), tuple(kinds)


# --------------------------------------------------------------------------------------------
# Entry point


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
    _check(spec)
    rng = random.Random(spec.seed)
    clock = _make_clock(spec, rng)
    tenant_ids = [f"tnt-{t + 1:02d}" for t in range(spec.tenants)]
    plans = _make_plans(spec, tenant_ids)

    plans_dir.mkdir(parents=True, exist_ok=True)
    (plans_dir / "decks").mkdir(exist_ok=True)
    plan_rows: list[list[str]] = []
    association_rows: list[list[str]] = []
    membership_rows: list[list[str]] = []
    tenants: list[_Tenant] = []
    deck_rows = 0
    main = [c for c in _COUNTRIES if not c.rare]
    rare = [c for c in _COUNTRIES if c.rare]
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
                rows = _deck_rows(rng, plan, spec.prefixes_per_plan, clock, countries)
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
        tenant = _Tenant(
            tenant_id=tenant_id,
            customers=[f"{tenant_id}-cus-{k + 1:03d}" for k in range(spec.customers_per_tenant)],
            clients=[f"{tenant_id}-gw-{k + 1:03d}" for k in range(spec.clients_per_tenant)],
            resellers=resellers,
            plans=plans[tenant_id],
            customer_draw=[],
            pool_prefixes=pool,
            pool_lengths=[prefix_lengths[p] for p in pool],
        )
        rows_a, tenant.customer_draw = _association_rows(rng, tenant, clock)
        association_rows += rows_a
        membership_rows += _membership_rows(rng, tenant, clock)
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
    malformed_lines, malformed_kinds = _write_cdrs(spec, rng, tenants, clock, cdrs_path)

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
