"""The rows of one deck: nested E.164 prefixes, rates, fees, increments and effective dating."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from pipeline.synthetic._clock import MICROS, Clock, ts
from pipeline.synthetic._countries import COUNTRIES, OPERATORS, Country
from pipeline.synthetic._plans import Plan

DECK_HEADER: tuple[str, ...] = (
    "prefix",
    "destination",
    "rate",
    "connection_fee",
    "initial_increment",
    "subsequent_increment",
    "effective_from",
    "effective_until",
)
_MAIN: tuple[Country, ...] = tuple(c for c in COUNTRIES if not c.rare)
_RARE: tuple[Country, ...] = tuple(c for c in COUNTRIES if c.rare)
_DROP_MAIN: dict[str, float] = {"customer": 0.0, "client": 0.5, "reseller": 1.0}
_KEEP_RARE: dict[str, float] = {"customer": 0.6, "client": 0.4, "reseller": 0.3}
_INCREMENTS: tuple[tuple[int, int], ...] = ((1, 1), (60, 60), (30, 6), (60, 1), (6, 6))


def _rate_text(rng: random.Random, micros: int) -> str:
    """A per-minute rate as a decimal string with 1..6 decimals, truncated from ``micros``."""
    if micros <= 0:
        return "0"
    digits = rng.choice((1, 2, 3, 4, 4, 4, 5, 5, 6, 6))
    while digits < 6 and micros // 10 ** (6 - digits) == 0:
        digits += 1
    whole, frac = divmod(micros, MICROS)
    return f"{whole}.{frac // 10 ** (6 - digits):0{digits}d}"


@dataclass(frozen=True)
class _Base:
    prefix: str
    destination: str
    mobile: bool
    country: Country


def _base_prefixes(country: Country) -> list[_Base]:
    out = [_Base(country.cc, country.name, False, country)]
    out.extend(_Base(country.cc + suffix, name, False, country) for suffix, name in country.areas)
    out.extend(
        _Base(country.cc + s, f"{country.name} Mobile", True, country) for s in country.mobile
    )
    return out


def deck_countries(rng: random.Random, scope: str) -> list[Country]:
    """The countries one deck of ``scope`` carries.

    Customer decks carry every main country, client decks miss one half of the time, reseller
    decks always miss one; each rare country is kept with a chance that depends on the scope.
    """
    dropped = {rng.randrange(len(_MAIN))} if rng.random() < _DROP_MAIN[scope] else set()
    countries = [c for i, c in enumerate(_MAIN) if i not in dropped]
    countries += [c for c in _RARE if rng.random() < _KEEP_RARE[scope]]
    return countries


def make_deck_rows(
    rng: random.Random, plan: Plan, size: int, clock: Clock, countries: list[Country]
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
            destination = f"{parent.country.name} Mobile - {rng.choice(OPERATORS)}"
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
                    ts(frm),
                    "" if until is None else ts(until),
                ]
            )
    rng.shuffle(rows)
    return rows
