"""Malformed messages isolated without judging every message of the batch (issue 17).

``decode._parse`` first judges only the *odd* messages (not starting with ``{"``, not ending with
``}``, or ending with ``,}``) and reads the rest in one call; the result must be exactly what the
one-by-one way gives (every message checked by msgspec, the rest read by polars), with the
same reasons, details and positions, wherever the bad messages sit in the batch.
"""

from __future__ import annotations

import json
import random

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.rating import decode
from tests.builders import cdr

_GOOD = [json.dumps(cdr(cdr_id=f"g{i}")).encode() for i in range(40)]
_ODD_BAD = [
    b"this is not json",
    b"cdr_id=1;callee=4420",
    b'<cdr id="x"/>',
    b"[1, 2]",
    b"42",
    b"null",
    b'"text"',
    b"",
    b"   ",
    _GOOD[0][:-1] + b",}",
    _GOOD[0][:25],
    b"{cdr_id: 'x'}",
]
_ODD_FINE = [b" " + _GOOD[1], _GOOD[2] + b" ", _GOOD[3] + b"\r", b'{ "cdr_id": "sp"}']
# Bad but not odd: the rest does not read, and every message is judged one by one.
_HIDDEN_BAD = [b'{"cdr_id": oops}', _GOOD[4] + b"\n" + _GOOD[5]]


def _one_by_one(messages: list[bytes]) -> tuple[pl.DataFrame, list[tuple[int, str, str]]]:
    """What ``_parse`` gives without the odd-message step (the way before issue 17)."""
    original = decode._isolated_odd_ones
    decode._isolated_odd_ones = lambda messages, joined: None
    try:
        return decode._parse(messages)
    finally:
        decode._isolated_odd_ones = original


def _same(messages: list[bytes]) -> None:
    frame, rejected = decode._parse(messages)
    expected_frame, expected_rejected = _one_by_one(messages)
    assert sorted(rejected) == sorted(expected_rejected)
    assert frame.sort("position").equals(expected_frame.sort("position"))
    positions = frame["position"].to_list() + [p for p, _, _ in rejected]
    assert sorted(positions) == list(range(len(messages)))


@pytest.mark.parametrize(
    "messages",
    [
        [_ODD_BAD[0], *_GOOD],  # first message
        [*_GOOD, _ODD_BAD[3]],  # last message
        [_ODD_BAD[4], *_GOOD, _ODD_BAD[5]],  # both edges
        _ODD_BAD,  # nothing good at all
        [*_GOOD[:10], *_ODD_BAD, *_GOOD[10:]],  # many in a row
        [m for pair in zip(_GOOD, _ODD_BAD * 4, strict=False) for m in pair],  # every other
        [*_ODD_FINE, *_GOOD, _ODD_BAD[7]],  # odd but fine messages stay rows
        [*_GOOD, *_HIDDEN_BAD, *_ODD_BAD],  # a bad one that is not odd: one by one
        [_HIDDEN_BAD[1], _ODD_BAD[0], *_GOOD[:3]],
    ],
)
def test_odd_messages_are_judged_as_one_by_one(messages: list[bytes]) -> None:
    _same(messages)


def test_the_odd_step_takes_the_usual_batch_with_bad_lines() -> None:
    messages = [*_GOOD[:5], _ODD_BAD[0], *_GOOD[5:], _ODD_BAD[3]]
    result = decode._isolated_odd_ones(messages, b"\n".join(messages))
    assert result is not None
    frame, rejected = result
    assert [(p, r) for p, r, _ in rejected] == [(5, "not_json"), (len(messages) - 1, "not_object")]
    assert frame["position"].to_list() == [p for p in range(len(messages)) if p not in {5, 41}]


def test_a_batch_of_ten_thousand_with_a_hundred_bad_lines() -> None:
    rng = random.Random(17)
    messages = [json.dumps(cdr(cdr_id=f"c{i}")).encode() for i in range(10_000)]
    for position in rng.sample(range(len(messages)), 100):
        messages[position] = rng.choice(_ODD_BAD)
    messages[0], messages[-1] = _ODD_BAD[1], _ODD_BAD[9]
    _same(messages)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.sampled_from([*_GOOD[:6], *_ODD_BAD, *_ODD_FINE, *_HIDDEN_BAD]), min_size=1, max_size=12
    )
)
def test_any_mix_is_judged_as_one_by_one(messages: list[bytes]) -> None:
    _same(messages)
