"""Hostile input: whatever a message holds, decoding accounts for it and never raises.

Every message of a batch ends as exactly one good row or one rejected row, a message is judged
as it would be alone, and what polars would read differently from the contract (types, escaped
names, repeated fields, deep nesting, bytes that are not UTF-8) is judged exactly.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.rating.cdr_contract import (
    MAX_DETAIL_CHARS,
    MAX_DURATION_MS,
    MAX_MESSAGE_BYTES,
    MAX_NESTING,
    MAX_TEXT_CHARS,
)
from pipeline.rating.decode import decode_cdrs
from tests.builders import cdr, encode

_GOOD = encode([cdr(cdr_id=f"g{i}") for i in range(3)])


def _verdict(message: bytes) -> tuple[str | None, str]:
    """(reason or None if accepted, detail) of ``message`` decoded between good ones."""
    decoded = decode_cdrs([_GOOD[0], message, _GOOD[1]])
    assert decoded.good.height + decoded.rejected.height == 3
    rejected = decoded.rejected.to_dicts()
    if not rejected:
        return None, ""
    [row] = rejected
    assert row["position"] == 1
    return row["reason"], row["detail"]


def _nested(depth: int, opener: str = "[") -> str:
    closer = "]" if opener == "[" else "}"
    inner = "1" if opener == "[" else '{"a": 1}'
    middle = (opener if opener == "[" else '{"a": ') * depth
    return middle + inner + closer * depth


def _with_extra(raw_extra: str, **fields: Any) -> bytes:
    text = json.dumps(cdr(**fields))
    return (text[:-1] + ', "extra": ' + raw_extra + "}").encode()


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 1_100, 5_000])
@pytest.mark.parametrize("opener", ["[", "{"])
def test_deep_nesting_is_refused_not_raised(depth: int, opener: str) -> None:
    reason, detail = _verdict(_with_extra(_nested(depth, opener)))
    assert reason == "too_deep"
    assert str(MAX_NESTING) in detail


def test_nesting_within_the_bound_is_an_unknown_field_like_any_other() -> None:
    assert _verdict(_with_extra(_nested(MAX_NESTING - 2)))[0] is None


def test_brackets_inside_strings_are_not_nesting() -> None:
    assert _verdict(json.dumps(cdr(note="[" * 5_000 + "{" * 5_000)).encode())[0] is None


@pytest.mark.parametrize(
    "message",
    [
        json.dumps(cdr(callee="1" * 600_000)).encode(),
        b"x" * 1_040_000,
        json.dumps(cdr(blob="a" * MAX_MESSAGE_BYTES)).encode(),
    ],
)
def test_a_message_over_the_size_bound_is_refused_unread(message: bytes) -> None:
    reason, detail = _verdict(message)
    assert reason == "too_large"
    assert str(len(message)) in detail


@pytest.mark.parametrize(
    ("field", "value", "kind"),
    [
        ("cdr_id", ["a"], "an array"),
        ("tenant_id", {"a": 1}, "an object"),
        ("customer_id", 12345, "a number"),
        ("client_id", True, "a boolean"),
        ("callee", 4420794612.0, "a number"),
        ("callee", 4420794612, "a number"),
        ("caller", 4930111, "a number"),
        ("session_id", 1.5, "a number"),
        ("start_time", 1773144000, "a number"),
        ("reseller_id", ["r1"], "an array"),
        ("answer_time", False, "a boolean"),
        ("disposition", 1, "a number"),
    ],
)
def test_contract_strings_must_be_json_strings(field: str, value: object, kind: str) -> None:
    reason, detail = _verdict(json.dumps(cdr(**{field: value})).encode())
    assert reason == f"invalid:{field}"
    assert kind in detail


@pytest.mark.parametrize("value", [True, 1.0, 1e3, "60000", [1], {"a": 1}, 2**63, -(2**63)])
def test_duration_must_be_an_int64_integer(value: object) -> None:
    assert _verdict(json.dumps(cdr(duration_ms=value)).encode())[0] == "invalid:duration_ms"


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_not_json(constant: bytes) -> None:
    message = json.dumps(cdr(duration_ms=7)).encode().replace(b": 7,", b": " + constant + b",")
    assert _verdict(message)[0] == "not_json"
    assert _verdict(_with_extra(constant.decode()))[0] == "not_json"


@pytest.mark.parametrize(
    "message",
    [
        json.dumps(cdr()).encode().replace(b'"s-1"', b'"s-\xff"'),
        b"\xfe\xff" + json.dumps(cdr()).encode(),
        json.dumps(cdr()).encode()[:-1] + b', "x": "\xc3"}',
    ],
)
def test_bytes_that_are_not_utf8_are_not_json(message: bytes) -> None:
    reason, detail = _verdict(message)
    assert reason == "not_json"
    assert "UTF-8" in detail


def test_an_escaped_field_name_is_the_field() -> None:
    escaped = json.dumps(cdr()).replace('"cdr_id"', '"cdr\\u005fid"').encode()
    decoded = decode_cdrs([escaped])
    assert decoded.good["cdr_id"].to_list() == ["c-1"]
    wrong_type = escaped.replace(b'"c-1"', b"17")
    assert _verdict(wrong_type)[0] == "invalid:cdr_id"


@pytest.mark.parametrize(
    ("field", "again"),
    [
        ("cdr_id", b'"second"'),
        ("cdr_id", b'"c-1"'),
        ("duration_ms", b"1.5"),
        ("duration_ms", b"1" + b"0" * 25),
        ("sip_code", b"[]"),
        ("reseller_id", b"null"),
    ],
)
def test_a_field_given_twice_is_refused_in_every_path(field: str, again: bytes) -> None:
    message = json.dumps(cdr()).encode()[:-1] + b', "' + field.encode() + b'": ' + again + b"}"
    for batch in ([message], [b"{oops", message], [message, *_GOOD], [b"", message]):
        decoded = decode_cdrs(batch)
        rejected = decoded.rejected.filter(decoded.rejected["position"] == batch.index(message))
        assert rejected["reason"].to_list() == [f"duplicate:{field}"], batch


@pytest.mark.parametrize("field", ["cdr_id", "session_id", "tenant_id", "customer_id", "caller"])
def test_ids_and_caller_are_bounded(field: str) -> None:
    assert _verdict(json.dumps(cdr(**{field: "x" * MAX_TEXT_CHARS})).encode())[0] is None
    reason, detail = _verdict(json.dumps(cdr(**{field: "x" * (MAX_TEXT_CHARS + 1)})).encode())
    assert reason == f"too_long:{field}"
    assert str(MAX_TEXT_CHARS) in detail


def test_duration_is_capped_and_bounded_by_the_call() -> None:
    week = cdr(start_time="2026-03-01T00:00:00Z", end_time="2026-03-09T00:00:00Z", duration_ms=0)
    assert _verdict(json.dumps({**week, "duration_ms": MAX_DURATION_MS}).encode())[0] is None
    assert (
        _verdict(json.dumps({**week, "duration_ms": MAX_DURATION_MS + 1}).encode())[0]
        == "out_of_range:duration_ms"
    )
    assert _verdict(json.dumps({**week, "duration_ms": 2**63 - 1}).encode())[0] == (
        "out_of_range:duration_ms"
    )
    call = cdr(start_time="2026-03-01T00:00:00Z", end_time="2026-03-01T00:00:43Z")
    assert _verdict(json.dumps({**call, "duration_ms": 43_999}).encode())[0] is None
    assert _verdict(json.dumps({**call, "duration_ms": 44_000}).encode())[0] is None
    reason, detail = _verdict(json.dumps({**call, "duration_ms": 44_001}).encode())
    assert reason == "invalid:duration_ms"
    assert "43000" in detail


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("start_time", "1999-12-31T23:59:59Z"),
        ("start_time", "2100-01-01T00:00:00Z"),
        ("end_time", "9999-12-31T23:59:59Z"),
        ("answer_time", "1970-01-01T00:00:00Z"),
    ],
)
def test_implausible_timestamps_are_out_of_range(field: str, value: str) -> None:
    record = cdr(start_time="2026-03-10T12:00:00Z", end_time="2026-03-10T12:10:00Z")
    record[field] = value
    reasons = str(_verdict(json.dumps(record).encode())[0]).split(";")
    assert f"out_of_range:{field}" in reasons


def test_details_are_bounded_whatever_the_value() -> None:
    huge = "9" * 40_000
    reason, detail = _verdict(json.dumps(cdr(callee=huge, disposition="x" * 9_000)).encode())
    assert reason == "invalid:callee;invalid:disposition"
    assert len(detail) <= MAX_DETAIL_CHARS
    assert "40000 characters" in detail


# --- property: any bytes, any JSON structure -------------------------------------------------

_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
_json = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_FIELDS = sorted(cdr())


@st.composite
def _hostile_message(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 6))
    if kind == 0:
        return draw(st.binary(max_size=300))
    if kind == 1:  # a CDR with some contract fields replaced by any JSON value
        record = cdr(cdr_id=draw(st.text(max_size=10)))
        for field in draw(st.lists(st.sampled_from(_FIELDS), max_size=4)):
            record[field] = draw(_json)
        return json.dumps(record).encode()
    if kind == 2:  # a CDR carrying an unknown field nested to some depth
        depth = draw(st.integers(0, 3 * MAX_NESTING))
        return _with_extra(_nested(depth, draw(st.sampled_from(["[", "{"]))))
    if kind == 3:  # a CDR with a field repeated, in raw text
        base = json.dumps(cdr()).encode()[:-1]
        field = draw(st.sampled_from(_FIELDS))
        return (
            base
            + b", "
            + json.dumps(field).encode()
            + b": "
            + json.dumps(draw(_json)).encode()
            + b"}"
        )
    if kind == 4:  # a valid CDR with bytes flipped
        data = bytearray(json.dumps(cdr()).encode())
        for _ in range(draw(st.integers(1, 3))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    if kind == 5:  # a huge string in a contract field or an unknown one
        field = draw(st.sampled_from([*_FIELDS, "extra"]))
        size = draw(st.integers(200, 2 * MAX_MESSAGE_BYTES))
        char = draw(st.sampled_from(["x", "9", " ", "{", "[", "\\", '"']))
        return json.dumps(cdr(**{field: char * size})).encode()
    constant = draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-0.0"]))
    return json.dumps(cdr()).encode().replace(b"60000", constant.encode())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_hostile_message(), min_size=1, max_size=8))
def test_any_input_is_accounted_for_and_judged_as_alone(messages: list[bytes]) -> None:
    batch = [*messages, *_GOOD]
    decoded = decode_cdrs(batch)
    good = decoded.good["position"].to_list()
    rejected = decoded.rejected["position"].to_list()
    assert sorted(good + rejected) == list(range(len(batch)))
    assert all(isinstance(r, str) and r for r in decoded.rejected["reason"].to_list())
    assert all(len(d) <= MAX_DETAIL_CHARS for d in decoded.rejected["detail"].to_list())
    for position, message in enumerate(messages):
        alone = decode_cdrs([message])
        in_batch = decoded.good.filter(decoded.good["position"] == position).drop("position")
        assert alone.good.drop("position").equals(in_batch), message
        reasons = decoded.rejected.filter(decoded.rejected["position"] == position)
        assert alone.rejected["reason"].to_list() == reasons["reason"].to_list(), message


@settings(max_examples=200, deadline=None)
@given(_json)
def test_any_json_value_as_a_message(value: object) -> None:
    text = json.dumps(value)
    decoded = decode_cdrs([text.encode(), *_GOOD])
    assert decoded.good.height + decoded.rejected.height == 1 + len(_GOOD)
    if not isinstance(value, dict):
        assert decoded.rejected["reason"].to_list()[:1] == ["not_object"]


def test_floats_that_json_cannot_hold_stay_out() -> None:
    assert math.isinf(float("1e999"))  # what Python would make of the text below
    message = json.dumps(cdr()).encode().replace(b"60000", b"1e999")
    assert _verdict(message)[0] == "invalid:duration_ms"
