"""Tariff v2's origins, time bands and holidays on a synthetic network (DESIGN.md section 8).

Most plans get a time zone and a week of bands (peak and off-peak, or day, evening and weekend),
some a holiday or two inside the month; every tenant gets two origin groups (``EEA`` and
``NANP``) over caller prefixes; deck rows of banded plans are split into a row per band (the
any-time row kept beside them half of the time), and some rows get a cheaper row for callers
of a group, the way EU carriers surcharge callers from outside the EEA.

Drawn from a random generator of its own (seeded from the spec): a network without origins
and bands is byte-for-byte what it was before they existed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

PLAN_COLUMN = "timezone"
DECK_COLUMNS: tuple[str, ...] = ("origin", "band")
TIME_BANDS_HEADER: tuple[str, ...] = ("plan_id", "band", "weekdays", "start", "end")
HOLIDAYS_HEADER: tuple[str, ...] = ("plan_id", "date", "band")
ORIGIN_GROUPS_HEADER: tuple[str, ...] = ("tenant_id", "group", "prefix")

# Zones with DST on both hemispheres, a 30-minute offset and a 30-minute DST shift.
_ZONES: tuple[str, ...] = (
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "Europe/London",
    "UTC",
)
# A week of bands: (band, weekdays, start, end, factor on the deck rate).
_WEEKS: tuple[tuple[tuple[str, str, str, str, str], ...], ...] = (
    (
        ("peak", "mon-fri", "08:00", "20:00", "1.25"),
        ("offpeak", "mon-fri", "00:00", "08:00", "0.8"),
        ("offpeak", "mon-fri", "20:00", "24:00", "0.8"),
        ("offpeak", "sat,sun", "00:00", "24:00", "0.8"),
    ),
    (
        ("day", "mon-fri", "08:00", "18:00", "1.2"),
        ("evening", "mon-fri", "18:00", "24:00", "0.9"),
        ("evening", "mon-fri", "00:00", "08:00", "0.9"),
        ("weekend", "sat-sun", "00:00", "24:00", "0.7"),
    ),
)
# Caller prefixes: EEA countries (no prefix of one starts another's) and the NANP.
_GROUPS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    (
        "EEA",
        (
            *("30", "31", "32", "33", "34", "351", "353", "358"),
            *("36", "39", "40", "43", "45", "46", "48", "49"),
        ),
        "0.85",
    ),
    ("NANP", ("1",), "0.9"),
)
_BANDED = 0.8  # share of plans with bands
_SPLIT = 0.6  # share of a banded plan's rows priced per band
_KEEP_ANY = 0.5  # share of split rows that keep their any-time row too
_BY_ORIGIN = 0.25  # share of rows with a cheaper row for one origin group


@dataclass(frozen=True)
class PlanBands:
    """A plan's time zone and, when it has bands, its week and holidays."""

    zone: str
    week: tuple[tuple[str, str, str, str, str], ...] | None
    holidays: tuple[tuple[str, str], ...]  # (date, band)


def bands_rng(seed: int) -> random.Random:
    """The generator of the origins and bands of the network of ``seed``."""
    return random.Random(f"{seed}/origins-and-bands")


def plan_bands(rng: random.Random, month_start: datetime) -> PlanBands:
    """One plan's zone, week of bands (most plans) and holidays inside the month (some)."""
    zone = rng.choice(_ZONES)
    if rng.random() >= _BANDED:
        return PlanBands(zone, None, ())
    week = rng.choice(_WEEKS)
    names = sorted({band for band, *_ in week})
    holidays: list[tuple[str, str]] = []
    for _ in range(rng.choice((0, 1, 2))):
        day = (month_start + timedelta(days=rng.randrange(28))).date().isoformat()
        if all(day != taken for taken, _ in holidays):
            holidays.append((day, rng.choice(names)))
    return PlanBands(zone, week, tuple(holidays))


def origin_group_rows(tenant_id: str) -> list[list[str]]:
    """A tenant's rows of origin_groups.csv."""
    return [[tenant_id, group, prefix] for group, prefixes, _ in _GROUPS for prefix in prefixes]


def time_band_rows(plan_id: str, bands: PlanBands) -> list[list[str]]:
    """A plan's rows of time_bands.csv (none without bands)."""
    return [[plan_id, *row[:4]] for row in bands.week or ()]


def holiday_rows(plan_id: str, bands: PlanBands) -> list[list[str]]:
    """A plan's rows of holidays.csv."""
    return [[plan_id, day, band] for day, band in bands.holidays]


def deck_rows(
    rng: random.Random, rows: list[list[str]], bands: PlanBands, rate_at: int
) -> list[list[str]]:
    """A deck's rows with ``origin`` and ``band`` cells: split per band, some per origin."""
    factors = {band: factor for band, *_, factor in bands.week or ()}
    out: list[list[str]] = []
    for row in rows:
        variants: list[list[str]] = []
        if factors and rng.random() < _SPLIT:
            if rng.random() < _KEEP_ANY:
                variants.append([*row, "", ""])
            for band, factor in factors.items():
                variants.append([*_priced(row, rate_at, factor), "", band])
        else:
            variants.append([*row, "", ""])
        if rng.random() < _BY_ORIGIN:
            group, _, factor = rng.choice(_GROUPS)
            band = rng.choice(["", *factors])
            variants.append([*_priced(row, rate_at, factor), group, band])
        out += variants
    return out


def _priced(row: list[str], rate_at: int, factor: str) -> list[str]:
    """``row`` with its rate times ``factor`` (at most six decimals, as the decks write them)."""
    rate = (Decimal(row[rate_at]) * Decimal(factor)).quantize(Decimal("1e-6"))
    return [*row[:rate_at], format(rate.normalize(), "f") if rate else "0", *row[rate_at + 1 :]]
