"""Decoding and validation of cdr.v1 messages: every rejection reason, and batch independence."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline.rating.decode import REQUIRED_TEXT, decode_cdrs
from tests.builders import cdr, encode


def _reason(message: bytes) -> str | None:
    decoded = decode_cdrs([message])
    if decoded.rejected.height == 0:
        return None
    [row] = decoded.rejected.to_dicts()
    assert row["detail"]
    return str(row["reason"])


def _without(field: str) -> dict[str, Any]:
    record = cdr()
    del record[field]
    return record


@pytest.mark.parametrize("field", REQUIRED_TEXT)
def test_missing_required_text(field: str) -> None:
    assert _reason(json.dumps(_without(field)).encode()) == f"missing:{field}"
    assert _reason(json.dumps(cdr(**{field: None})).encode()) == f"missing:{field}"
    assert _reason(json.dumps(cdr(**{field: ""})).encode()).startswith(f"empty:{field}")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (b"not json", "not_json"),
        (b'{"cdr_id": "x", ', "not_json"),
        (b"[1, 2, 3]", "not_object"),
        (b'"just a string"', "not_object"),
        (b"   ", "empty"),
        (json.dumps(_without("duration_ms")).encode(), "missing:duration_ms"),
        (json.dumps(cdr(duration_ms=None)).encode(), "missing:duration_ms"),
        (json.dumps(cdr(duration_ms=-1)).encode(), "invalid:duration_ms"),
        (json.dumps(cdr(duration_ms=12.5)).encode(), "invalid:duration_ms"),
        (json.dumps(cdr(duration_ms="60000")).encode(), "invalid:duration_ms"),
        (json.dumps(cdr(duration_ms=True)).encode(), "invalid:duration_ms"),
        (json.dumps(cdr(duration_ms=2**64)).encode(), "invalid:duration_ms"),
        (json.dumps(cdr(callee="44abc123")).encode(), "invalid:callee"),
        (json.dumps(cdr(callee="12")).encode(), "invalid:callee"),
        (json.dumps(cdr(callee="+12")).encode(), "invalid:callee"),
        (json.dumps(cdr(callee="1234567890123456")).encode(), "invalid:callee"),
        (json.dumps(cdr(callee="(44) 2079")).encode(), "invalid:callee"),
        (json.dumps(cdr(callee="++4420794612")).encode(), "invalid:callee"),
        (json.dumps(cdr(start_time="2026-03-10 12:00:00")).encode(), "invalid:start_time"),
        (json.dumps(cdr(start_time="2026-02-30T12:00:00Z")).encode(), "invalid:start_time"),
        (json.dumps(cdr(start_time="yesterday")).encode(), "invalid:start_time"),
        (json.dumps(cdr(end_time="2026-03-10T11:59:59Z")).encode(), "invalid:end_time"),
        (json.dumps(cdr(end_time="2026-03-10T25:00:00Z")).encode(), "invalid:end_time"),
        (json.dumps(cdr(answer_time="soon")).encode(), "invalid:answer_time"),
        (json.dumps(cdr(disposition="HUNG_UP")).encode(), "invalid:disposition"),
        (json.dumps(cdr(disposition="answered")).encode(), "invalid:disposition"),
        (json.dumps(cdr(sip_code=99)).encode(), "invalid:sip_code"),
        (json.dumps(cdr(sip_code=700)).encode(), "invalid:sip_code"),
        (json.dumps(cdr(sip_code="200")).encode(), "invalid:sip_code"),
        (json.dumps(cdr(reseller_id="")).encode(), "empty:reseller_id"),
    ],
)
def test_rejection_reasons(message: bytes, reason: str) -> None:
    assert _reason(message) == reason


@pytest.mark.parametrize(
    "record",
    [
        cdr(),
        cdr(reseller_id="r1"),
        cdr(answer_time=None, duration_ms=0, disposition="NO_ANSWER", sip_code=480),
        cdr(disposition=None, sip_code=None),
        cdr(start_time="2026-03-10t12:00:00.123456789z", end_time="2026-03-10T13:05:00+01:00"),
        cdr(extra_field={"nested": [1, 2]}, another=None),
        cdr(sip_code=100),
        cdr(sip_code=699),
        cdr(callee="123"),
        cdr(callee="123456789012345"),
    ],
)
def test_accepted(record: dict[str, Any]) -> None:
    assert _reason(json.dumps(record).encode()) is None


def test_end_equal_to_start_is_fine_and_timestamps_are_utc() -> None:
    decoded = decode_cdrs(
        encode([cdr(start_time="2026-03-10T14:00:00+02:00", end_time="2026-03-10T12:00:00Z")])
    )
    assert decoded.rejected.height == 0
    [row] = decoded.good.to_dicts()
    assert row["start_time"].isoformat() == "2026-03-10T12:00:00+00:00"


def test_several_problems_are_all_named() -> None:
    reason = _reason(json.dumps(cdr(callee="x", duration_ms=-5, sip_code=1)).encode())
    assert reason == "invalid:callee;invalid:duration_ms;invalid:sip_code"


def test_a_message_is_judged_the_same_whatever_its_batch() -> None:
    good = encode([cdr(cdr_id=f"g{i}") for i in range(50)])
    bad = [b"{oops", b"[]", json.dumps(cdr(cdr_id="f", duration_ms=1.5)).encode()]
    mixed = good[:20] + bad + good[20:]
    decoded = decode_cdrs(mixed)
    assert decoded.good["cdr_id"].to_list() == [f"g{i}" for i in range(50)]
    assert decoded.good["position"].to_list() == [*range(20), *range(23, 53)]
    assert decoded.rejected["position"].to_list() == [20, 21, 22]
    alone = decode_cdrs(good)
    assert alone.good.drop("position").equals(decoded.good.drop("position"))


def test_line_breaks_inside_a_message_are_whitespace() -> None:
    pretty = json.dumps(cdr(), indent=2).encode()
    decoded = decode_cdrs([pretty, json.dumps(cdr(cdr_id="2")).encode()])
    assert decoded.rejected.height == 0
    assert decoded.good.height == 2


def test_empty_batch() -> None:
    decoded = decode_cdrs([])
    assert decoded.good.height == 0
    assert decoded.rejected.height == 0
