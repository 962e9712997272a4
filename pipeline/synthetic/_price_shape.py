"""Tariff v2's price shape on a synthetic network (DESIGN.md section 8).

First-interval rates, grace, minimum and maximum costs on some deck rows, and a duration
rounding on some plans.

Drawn from a random generator of its own (seeded from the spec), after everything else: a
network without the price shape is byte-for-byte what it was before the price shape existed.
"""

from __future__ import annotations

import random
from decimal import Decimal

PLAN_COLUMNS: tuple[str, ...] = ("timezone", "duration_rounding")
DECK_COLUMNS: tuple[str, ...] = ("initial_rate", "grace_seconds", "min_cost", "max_cost")
_ROUNDINGS: tuple[str, ...] = ("", "up", "down", "nearest")
_RATE = 2  # index of the rate in a deck row


def shape_rng(seed: int) -> random.Random:
    """The generator of the price shape of the network of ``seed``."""
    return random.Random(f"{seed}/price-shape")


def plan_columns(rng: random.Random) -> list[str]:
    """A plan's ``timezone`` (left to its default) and ``duration_rounding``."""
    return ["", rng.choice(_ROUNDINGS)]


def deck_columns(rng: random.Random, row: list[str]) -> list[str]:
    """The price-shape cells of one deck row: most empty (the defaults), some set."""
    rate = Decimal(row[_RATE])
    initial = ""
    if rng.random() < 0.3:
        initial = str((rate * Decimal(rng.choice((15, 20, 25, 30))) / 10).quantize(Decimal("1e-6")))
    grace = str(rng.randint(1, 6)) if rng.random() < 0.2 else ""
    minimum = maximum = ""
    if rng.random() < 0.15:
        minimum = f"0.00{rng.randint(1, 9)}"
    if rng.random() < 0.05:
        maximum = str(Decimal(minimum or "0") + Decimal(rng.choice(("0.5", "1", "2.5"))))
    return [initial, grace, minimum, maximum]
