"""The one-walk variant index against the rule of DESIGN.md section 8, row by row."""

from __future__ import annotations

import random

import numpy as np
import polars as pl
import pytest

from pipeline.prefix_trie import DeckRows, VariantIndex, encode_digits

OPEN = 2**62


def _winner(
    rows: list[tuple[int, str, int, int, int, int]],
    plan: int,
    group: int,
    band: int,
    callee: str,
    t: int,
) -> int:
    """Longest prefix; then with an origin; then with a band; then the later effective_from."""
    best, best_score = -1, None
    for i, (p, prefix, origin, row_band, start, end) in enumerate(rows):
        if p != plan or not callee.startswith(prefix) or not start <= t < end:
            continue
        if origin not in (0, group) or row_band not in (0, band):
            continue
        score = (len(prefix), origin > 0, row_band > 0, start, i)
        if best_score is None or score > best_score:
            best, best_score = i, score
    return best


@pytest.mark.parametrize("seed", range(8))
def test_one_walk_finds_the_rule_s_winner(seed: int) -> None:
    rng = random.Random(seed)
    groups, bands, plans = 3, 4, 3
    rows: list[tuple[int, str, int, int, int, int]] = []
    for _ in range(400):
        prefix = "".join(rng.choice("1234") for _ in range(rng.randint(1, 5)))
        start = rng.choice([0, 100, 200])
        end = rng.choice([start + 50, start + 150, OPEN])
        rows.append(
            (rng.randrange(plans), prefix, rng.randrange(groups), rng.randrange(bands), start, end)
        )
    # One (plan, prefix, origin, band, effective_from) at most, as the loader insists.
    seen: set[tuple[int, str, int, int, int]] = set()
    rows = [r for r in rows if r[:5] not in seen and not seen.add(r[:5])]  # type: ignore[func-returns-value]
    # Rows of one variant that overlap in time: the later effective_from wins (as in a deck).
    index = VariantIndex.build(
        DeckRows(
            plan=np.array([r[0] for r in rows], dtype=np.int64),
            prefix=pl.Series([r[1] for r in rows], dtype=pl.String),
            effective_from=np.array([r[4] for r in rows], dtype=np.int64),
            effective_until=np.array([r[5] for r in rows], dtype=np.int64),
        ),
        np.array([r[2] for r in rows], dtype=np.int64),
        np.array([r[3] for r in rows], dtype=np.int64),
        plans,
        groups,
        bands,
    )
    queries = [
        (
            rng.randrange(-1, plans),
            rng.randrange(groups),
            rng.randrange(bands),
            "".join(rng.choice("1234") for _ in range(rng.randint(1, 7))),
            rng.choice([0, 50, 120, 199, 260, 10**6]),
        )
        for _ in range(3_000)
    ]
    padded, length = encode_digits(pl.Series([q[3] for q in queries]))
    got = index.lookup(
        np.array([q[0] for q in queries], dtype=np.int64),
        np.array([q[1] for q in queries], dtype=np.int64),
        np.array([q[2] for q in queries], dtype=np.int64),
        padded,
        length,
        np.array([q[4] for q in queries], dtype=np.int64),
    )
    expected = [_winner(rows, *q) if q[0] >= 0 else -1 for q in queries]
    assert got.tolist() == expected
    assert sum(1 for e in expected if e >= 0) > 500  # the queries do find rows
