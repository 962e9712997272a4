"""The network's calendar: the month, the instants where plans change, timestamp texts.

Everything time-dependent is derived from ``NetworkSpec.month`` and the seeded draws; no clock is
read.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MICROS = 1_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Clock:
    """The month (UTC), the month before, a year before, and the instants where rates change."""

    month_start: datetime
    month_end: datetime
    prev_month_start: datetime
    year_before: datetime
    instants: tuple[datetime, ...]


def ts(value: datetime) -> str:
    """The whole-second RFC 3339 text of the reference files (``2026-03-08T00:00:00Z``)."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch_us(value: datetime) -> int:
    """Microseconds since the Unix epoch."""
    return (value - EPOCH) // timedelta(microseconds=1)


def make_clock(month: str, rng: random.Random) -> Clock:
    """The calendar of ``month`` (``YYYY-MM``): fixed change instants and four drawn ones."""
    try:
        year_text, month_text = month.split("-")
        start = datetime(int(year_text), int(month_text), 1, tzinfo=UTC)
    except ValueError as exc:
        msg = f"month must look like 2026-03, got {month!r}"
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
    return Clock(start, end, prev, year_before, instants)
