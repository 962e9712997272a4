"""The longest-prefix index against a brute-force search, on random decks and callees."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline.prefix_trie import DeckIndex, DeckRows, IntervalIndex, encode_digits

OPEN = 2**62

# A small pool of nested prefixes makes collisions (same prefix, overlapping rows) common.
digits = st.one_of(
    st.sampled_from(["1", "12", "123", "1234", "2", "21", "0", "01"]),
    st.text(alphabet="0123", min_size=1, max_size=6),
)
times = st.integers(min_value=0, max_value=20)
row = st.tuples(
    st.integers(min_value=0, max_value=2),  # plan
    digits,  # prefix
    times,  # effective_from
    st.one_of(st.just(OPEN), st.integers(min_value=1, max_value=25)),  # until (may be <= from)
)


def _brute(rows: list[tuple[int, str, int, int]], plan: int, callee: str, t: int) -> int:
    best = -1
    for i, (p, prefix, start, end) in enumerate(rows):
        if p != plan or not callee.startswith(prefix) or not start <= t < end:
            continue
        if best < 0:
            best = i
            continue
        _, best_prefix, best_start, _ = rows[best]
        if len(prefix) > len(best_prefix) or (
            len(prefix) == len(best_prefix) and start > best_start
        ):
            best = i
    return best


@settings(max_examples=500, deadline=None)
@example(  # one prefix effective twice: the later effective_from wins inside the overlap
    raw=[(0, "1", 0, OPEN), (0, "1", 5, 10), (0, "12", 0, 3)],
    queries=[(0, "12", 7), (0, "12", 12), (0, "12", 1), (0, "13", 5), (0, "13", 10)],
)
@given(
    raw=st.lists(row, max_size=40),
    queries=st.lists(
        st.tuples(
            st.integers(min_value=-1, max_value=3),
            st.text(alphabet="0123", min_size=1, max_size=8),
            times,
        ),
        min_size=1,
        max_size=40,
    ),
)
def test_lookup_matches_brute_force(
    raw: list[tuple[int, str, int, int]], queries: list[tuple[int, str, int]]
) -> None:
    # Drop rows the loader would refuse: empty intervals and a prefix twice from one instant.
    seen: set[tuple[int, str, int]] = set()
    rows = []
    for plan, prefix, start, end in raw:
        if end <= start or (plan, prefix, start) in seen:
            continue
        seen.add((plan, prefix, start))
        rows.append((plan, prefix, start, end))
    index = DeckIndex.build(
        DeckRows(
            plan=np.array([r[0] for r in rows], dtype=np.int64),
            prefix=pl.Series([r[1] for r in rows], dtype=pl.String),
            effective_from=np.array([r[2] for r in rows], dtype=np.int64),
            effective_until=np.array([r[3] for r in rows], dtype=np.int64),
        ),
        n_plans=4,
    )
    plans = np.array([q[0] for q in queries], dtype=np.int64)
    padded, length = encode_digits(pl.Series([q[1] for q in queries]))
    found = index.lookup(plans, padded, length, np.array([q[2] for q in queries], dtype=np.int64))
    expected = [_brute(rows, p, callee, t) for p, callee, t in queries]
    assert found.tolist() == expected


def test_fifteen_digit_prefixes_and_leading_zeros() -> None:
    prefixes = ["0", "01", "012345678901234", "9", "99999999999999", "999999999999999"]
    index = DeckIndex.build(
        DeckRows(
            plan=np.zeros(len(prefixes), dtype=np.int64),
            prefix=pl.Series(prefixes),
            effective_from=np.zeros(len(prefixes), dtype=np.int64),
            effective_until=np.full(len(prefixes), OPEN, dtype=np.int64),
        ),
        n_plans=1,
    )
    callees = ["012345678901234", "0123", "0999", "999999999999999", "99999999999998", "123"]
    padded, length = encode_digits(pl.Series(callees))
    found = index.lookup(
        np.zeros(len(callees), dtype=np.int64), padded, length, np.zeros(len(callees), np.int64)
    )
    assert [prefixes[i] if i >= 0 else None for i in found] == [
        "012345678901234",
        "01",
        "0",
        "999999999999999",
        "9",
        None,
    ]


@settings(max_examples=200, deadline=None)
@given(
    intervals=st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 30), st.integers(1, 10)), max_size=30
    ),
    probes=st.lists(st.tuples(st.integers(-1, 4), st.integers(-5, 45)), min_size=1, max_size=30),
)
def test_interval_index_matches_brute_force(
    intervals: list[tuple[int, int, int]], probes: list[tuple[int, int]]
) -> None:
    # Keep intervals disjoint per key, as the loaders guarantee.
    kept: list[tuple[int, int, int, int]] = []
    for value, (key, start, width) in enumerate(intervals):
        end = start + width
        if all(k != key or end <= s or start >= e for k, s, e, _ in kept):
            kept.append((key, start, end, value))
    index = IntervalIndex.build(
        np.array([k[0] for k in kept], dtype=np.int64),
        np.array([k[1] for k in kept], dtype=np.int64),
        np.array([k[2] for k in kept], dtype=np.int64),
        np.array([k[3] for k in kept], dtype=np.int64),
        n_keys=4,
    )
    keys = np.array([min(p[0], 3) if p[0] >= 0 else -1 for p in probes], dtype=np.int64)
    at = np.array([p[1] for p in probes], dtype=np.int64)
    expected = [
        next((v for k, s, e, v in kept if k == key and s <= t < e), -1)
        for key, t in zip(keys.tolist(), at.tolist(), strict=True)
    ]
    assert index.lookup(keys, at).tolist() == expected
