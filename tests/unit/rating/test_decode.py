"""Decoding and validation of cdr.v1 messages: every rejection reason, and batch independence."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline.rating.cdr_contract import REQUIRED_TEXT
from pipeline.rating.decode import decode_cdrs
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
        encode(
            [
                cdr(
                    start_time="2026-03-10T14:00:00+02:00",
                    end_time="2026-03-10T12:00:00Z",
                    duration_ms=0,
                )
            ]
        )
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


def _summary(messages: list[bytes]) -> tuple[list[tuple[str, int]], list[tuple[int, str]]]:
    decoded = decode_cdrs(messages)
    good = [(row["cdr_id"], row["position"]) for row in decoded.good.to_dicts()]
    return good, [(row["position"], row["reason"]) for row in decoded.rejected.to_dicts()]


_A = json.dumps(cdr(cdr_id="a")).encode()
_B = json.dumps(cdr(cdr_id="b")).encode()


@pytest.mark.parametrize(
    ("messages", "good", "rejected"),
    [
        # Blank messages are skipped by polars: the rows must not shift onto their positions.
        ([b"  ", _A, b"", _B], [("a", 1), ("b", 3)], [(0, "empty"), (2, "empty")]),
        ([_A, b"\n", _B], [("a", 0), ("b", 2)], [(1, "empty")]),
        # Line breaks that are only whitespace, and a message not starting with "{".
        (
            [_A + b"\n", b"\n" + _B, b" " + _A, _A + b"\r\n"],
            [("a", 0), ("b", 1), ("a", 2), ("a", 3)],
            [],
        ),
        # Two objects in one message are one bad message, even when a blank message would
        # make the row count come out right.
        ([_A + b"\n" + _B, b"  "], [], [(0, "not_json"), (1, "empty")]),
        ([_A + b"\n" + _B, _A], [("a", 1)], [(0, "not_json")]),
        # Bad JSON and blank messages in one batch.
        (
            [b"{oops", _A, b" ", b"[]", _B],
            [("a", 1), ("b", 4)],
            [(0, "not_json"), (2, "empty"), (3, "not_object")],
        ),
        ([b"", b"\t"], [], [(0, "empty"), (1, "empty")]),
    ],
)
def test_batch_shapes(
    messages: list[bytes], good: list[tuple[str, int]], rejected: list[tuple[int, str]]
) -> None:
    assert _summary(messages) == (good, rejected)
    # Each message is judged as it would be alone.
    verdicts = {position: [(cdr_id, 0)] for cdr_id, position in good}
    for position, message in enumerate(messages):
        alone_good, alone_rejected = _summary([message])
        assert alone_good == verdicts.get(position, [])
        assert alone_rejected == [(0, r) for p, r in rejected if p == position]
