"""Every client-status.v1 message becomes an event, a refusal naming the field, or a tombstone."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from pipeline.services.client_status_messages import (
    Refusal,
    decode_status,
    decode_status_line,
)
from pipeline.storage.client_status import ClientStatus

_GOOD: dict[str, Any] = {
    "client_id": "cl-7",
    "tenant_id": "tnt-01",
    "online": True,
    "at": "2026-03-01T08:00:00.250+01:00",
}


def _decode(data: object, key: bytes | None = b"cl-7") -> ClientStatus | Refusal | None:
    return decode_status(json.dumps(data).encode(), key)


def _refusal(value: bytes, key: bytes | None = b"cl-7") -> Refusal:
    decoded = decode_status(value, key)
    assert isinstance(decoded, Refusal), decoded
    assert len(decoded.detail) <= 500
    return decoded


def test_a_good_message_is_an_event_in_utc() -> None:
    assert _decode({**_GOOD, "extra": {"kept": "out of the way"}}) == ClientStatus(
        "tnt-01", "cl-7", True, datetime(2026, 3, 1, 7, 0, 0, 250_000, tzinfo=UTC)
    )
    offline = _decode({**_GOOD, "online": False})
    assert isinstance(offline, ClientStatus)
    assert offline.online is False


def test_an_event_survives_its_own_message() -> None:
    event = ClientStatus("t\t'\\", "c\u00e9\n", False, datetime(2026, 3, 1, tzinfo=UTC))
    assert decode_status(event.to_json(), event.client_id.encode()) == event


def test_a_tombstone_is_skipped_not_refused() -> None:
    assert decode_status(None, b"cl-7") is None
    assert decode_status(None, None) is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"client_id": None}, "missing:client_id"),
        ({"tenant_id": None}, "missing:tenant_id"),
        ({"online": None}, "missing:online"),
        ({"at": None}, "missing:at"),
        ({"client_id": 7}, "invalid:client_id"),
        ({"tenant_id": ["tnt-01"]}, "invalid:tenant_id"),
        ({"tenant_id": {"id": "tnt-01"}}, "invalid:tenant_id"),
        ({"tenant_id": ""}, "empty:tenant_id"),
        ({"tenant_id": "   "}, "empty:tenant_id"),
        ({"tenant_id": "t" * 257}, "too_long:tenant_id"),
        ({"tenant_id": "\u00e9" * 129}, "too_long:tenant_id"),  # 258 bytes in UTF-8
        ({"online": "true"}, "invalid:online"),
        ({"online": 1}, "invalid:online"),
        ({"online": 0}, "invalid:online"),
        ({"online": [True]}, "invalid:online"),
        ({"at": 1772352000}, "invalid:at"),
        ({"at": "2026-03-01 08:00:00"}, "invalid:at"),
        ({"at": "2026-02-30T08:00:00Z"}, "invalid:at"),
        ({"at": "2026-03-01T08:00:00"}, "invalid:at"),
        ({"at": "1999-12-31T23:59:59Z"}, "out_of_range:at"),
        ({"at": "2100-01-01T00:00:00Z"}, "out_of_range:at"),
    ],
)
def test_each_bad_field_is_refused_by_name(change: dict[str, object], reason: str) -> None:
    data = {k: v for k, v in {**_GOOD, **change}.items() if v is not None}
    decoded = _decode(data)
    assert isinstance(decoded, Refusal)
    assert decoded.reason == reason
    assert reason.rsplit(":", maxsplit=1)[-1] in decoded.detail


def test_every_problem_of_one_message_is_listed() -> None:
    refused = _refusal(b'{"client_id": 1, "online": "yes"}')
    assert refused.reason == "invalid:client_id;missing:tenant_id;invalid:online;missing:at"


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (b"cl-8", "invalid:key"),
        (b"CL-7", "invalid:key"),
        (b"", "invalid:key"),
        (None, "missing:key"),
    ],
)
def test_the_key_must_be_the_client_id(key: bytes | None, reason: str) -> None:
    refused = _refusal(json.dumps(_GOOD).encode(), key)
    assert refused.reason == reason


def test_a_line_of_a_file_needs_no_key() -> None:
    assert isinstance(decode_status_line(json.dumps(_GOOD).encode()), ClientStatus)
    assert decode_status_line(b"[]") == Refusal("not_object", "a JSON object is required, not []")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "empty"),
        (b"  \n", "empty"),
        (b"not json", "not_json"),
        (b'{"client_id": "cl-7"', "not_json"),
        (b'{"client_id": "\xff\xfe"}', "not_json"),
        (b'{"online": NaN}', "not_json"),
        (b'{"online": Infinity}', "not_json"),
        (b'"cl-7"', "not_object"),
        (b"null", "not_object"),
        (b"true", "not_object"),
        (b"[" * 40 + b"]" * 40, "too_deep"),
        (b'{"a": ' + b'{"a": ' * 5_000 + b"1" + b"}" * 5_001, "too_deep"),
        (b'{"x": "' + b"a" * 70_000 + b'"}', "too_large"),
    ],
)
def test_hostile_messages_are_refused_not_raised(value: bytes, reason: str) -> None:
    assert _refusal(value).reason == reason


def test_deep_nesting_in_an_unknown_field_within_the_bound_is_fine() -> None:
    nested: object = 1
    for _ in range(30):
        nested = {"n": nested}
    assert isinstance(_decode({**_GOOD, "extra": nested}), ClientStatus)


def test_a_field_given_twice_is_refused_whichever_comes_last() -> None:
    twice = b'{"client_id": "cl-7", "tenant_id": "t", "online": false, "online": true, '
    refused = _refusal(twice + b'"at": "2026-03-01T08:00:00Z"}')
    assert refused.reason == "duplicate:online"
    nested_twice = b'{"x": {"a": 1, "a": 2}, ' + json.dumps(_GOOD).encode()[1:]
    assert isinstance(decode_status(nested_twice, b"cl-7"), ClientStatus)


def test_a_lone_surrogate_is_not_an_id() -> None:
    value = json.dumps({**_GOOD, "tenant_id": "t\ud800"}).encode()
    assert _refusal(value).reason == "invalid:tenant_id"


def test_huge_values_are_quoted_short() -> None:
    refused = _refusal(json.dumps({**_GOOD, "at": "9" * 60_000}).encode())
    assert refused.reason == "invalid:at"
    assert "(60002 characters)" in refused.detail
    assert len(refused.detail) < 200
