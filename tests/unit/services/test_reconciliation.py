"""The one-to-one matching rule (nearest start first) and the classes of a matched pair."""

from __future__ import annotations

import random
from fractions import Fraction

import polars as pl
import pytest

from pipeline.services import reconciliation
from pipeline.services.reconciliation import Tolerances, classify, match_calls

S = 1_000_000  # a second in microseconds


def calls(*pairs: tuple[str, int]) -> pl.DataFrame:
    return pl.DataFrame(
        {"callee": [c for c, _ in pairs], "start_us": [t for _, t in pairs]},
        schema={"callee": pl.String, "start_us": pl.Int64},
    )


def matched(theirs: pl.DataFrame, ours: pl.DataFrame, tolerance_us: int) -> set[tuple[int, int]]:
    return set(match_calls(theirs, ours, tolerance_us).iter_rows())


def greedy(theirs: pl.DataFrame, ours: pl.DataFrame, tolerance_us: int) -> set[tuple[int, int]]:
    """The rule written plainly: every candidate pair, nearest first, each call taken once."""
    by_callee: dict[str, list[tuple[int, int]]] = {}
    for o, (callee, os) in enumerate(ours.iter_rows()):
        by_callee.setdefault(callee, []).append((o, os))
    candidates = []
    for t, (callee, ts) in enumerate(theirs.iter_rows()):
        for o, os in by_callee.get(callee, []):
            if abs(ts - os) <= tolerance_us:
                candidates.append((abs(ts - os), ts, os, t, o))
    used_t: set[int] = set()
    used_o: set[int] = set()
    pairs = set()
    for _, _, _, t, o in sorted(candidates):
        if t not in used_t and o not in used_o:
            used_t.add(t)
            used_o.add(o)
            pairs.add((t, o))
    return pairs


def test_repeated_calls_seconds_apart_pair_in_order() -> None:
    ours = calls(("441", 0), ("441", 3 * S))
    late = calls(("441", 1 * S), ("441", 4 * S))  # their clock 1 s late
    halfway = calls(("441", 1_500_000), ("441", 4_500_000))  # ties: 1.5 s from both

    assert matched(late, ours, 2 * S) == {(0, 0), (1, 1)}
    assert matched(halfway, ours, 2 * S) == {(0, 0), (1, 1)}


def test_a_call_listed_twice_matches_once_and_other_numbers_never() -> None:
    ours = calls(("441", 10 * S), ("442", 10 * S))
    theirs = calls(("441", 10 * S), ("441", 10 * S), ("443", 10 * S))

    assert matched(theirs, ours, 2 * S) == {(0, 0)}


def test_the_tolerance_is_inclusive_and_zero_means_the_same_microsecond() -> None:
    ours = calls(("441", 10 * S), ("442", 10 * S))
    theirs = calls(("441", 12 * S), ("442", 10 * S + 1))

    assert matched(theirs, ours, 2 * S) == {(0, 0), (1, 1)}
    assert matched(theirs, ours, 0) == set()
    assert matched(calls(("442", 10 * S)), ours, 0) == {(0, 1)}


@pytest.mark.parametrize("rounds", [0, 1, 8, 100])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_vectorised_rounds_take_exactly_the_pairs_of_the_plain_rule(
    seed: int, rounds: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Many calls to a few numbers, seconds apart, clocks jittered: contested candidates and
    # chains; as many vectorised rounds as asked, the contested pairs left one by one.
    monkeypatch.setattr(reconciliation, "_SEQUENTIAL_BELOW", 1)
    monkeypatch.setattr(reconciliation, "_VECTOR_ROUNDS", rounds)
    rng = random.Random(seed)
    ours = calls(*((f"44{rng.randrange(10)}", rng.randrange(900) * S) for _ in range(1_500)))
    theirs = calls(
        *(
            (callee, start + rng.randrange(-2_500_000, 2_500_000))
            for callee, start in ours.sample(fraction=0.9, seed=seed).iter_rows()
        ),
        *((f"44{rng.randrange(10)}", rng.randrange(900) * S) for _ in range(200)),
    )

    assert matched(theirs, ours, 2 * S) == greedy(theirs, ours, 2 * S)


def _their(duration_ms: int, amount: int | None, currency: str = "EUR") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "_row": [2],
            "callee": ["441"],
            "start_us": [0],
            "start_text": ["x"],
            "duration_ms": [duration_ms],
            "amount_units": [amount],
            "amount_text": [None],
            "currency": [currency if amount is not None else None],
            "call_id": [None],
            "caller": [None],
        },
        schema_overrides={"amount_units": pl.Int64, "amount_text": pl.String},
    )


def _our(duration_ms: int, amount: int | None) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "cdr_id": ["c"],
            "tenant_id": ["t"],
            "callee": ["441"],
            "start_us": [0],
            "duration_ms": [duration_ms],
            "billed_seconds": [duration_ms // 1000],
            "amount_units": [amount],
            "currency": ["EUR"],
            "status": ["rated" if amount is not None else "unrated"],
        },
        schema_overrides={"amount_units": pl.Int64},
    )


@pytest.mark.parametrize(
    ("theirs", "ours", "klass", "note"),
    [
        (_their(61_000, 1_005), _our(60_000, 1_000), "matched", None),  # +1 s, +0.5%
        (_their(61_001, 1_000), _our(60_000, 1_000), "duration_difference", None),
        (_their(59_000, 1_000), _our(60_000, 1_000), "matched", None),  # either way
        (_their(60_000, 1_006), _our(60_000, 1_000), "amount_difference", None),  # 0.6%
        (_their(60_000, 994), _our(60_000, 1_000), "amount_difference", None),
        (_their(65_000, 2_000), _our(60_000, 1_000), "duration_and_amount_difference", None),
        (_their(60_000, None), _our(60_000, 1_000), "matched", None),  # no amount: not compared
        (_their(60_000, 1), _our(60_000, 0), "amount_difference", None),  # ours 0: any is beyond
        (
            _their(60_000, 1_000),
            _our(60_000, None),
            "amount_difference",
            "our client leg has no amount (status unrated)",
        ),
        (
            _their(60_000, 1_000, "USD"),
            _our(60_000, 1_000),
            "amount_difference",
            "currencies differ: amounts not compared",
        ),
    ],
)
def test_the_class_of_a_pair(
    theirs: pl.DataFrame, ours: pl.DataFrame, klass: str, note: str | None
) -> None:
    tolerances = Tolerances(duration_ms=1_000, amount=Fraction(1, 200))

    [line] = classify(theirs, ours, tolerances, 0, S).to_dicts()

    assert (line["class"], line["note"]) == (klass, note)
    if note is not None:  # not comparable: no difference, in no disputed sum
        assert line["amount_diff_units"] is None
