"""A dead letter always fits its topic: whole when it can, else cut with its size and digest."""

from __future__ import annotations

import hashlib

import pytest

from pipeline.sinks.kafka_dlq import DeadLetter


def _size(value: bytes, key: bytes | None, headers: list[tuple[str, str | bytes | None]]) -> int:
    return len(value) + len(key or b"") + sum(len(n) + len(v or b"") for n, v in headers)


def _letter(value: bytes, key: bytes | None = b"k", detail: str = "why") -> DeadLetter:
    return DeadLetter(value, key, "not_json", detail, "cdr.v1", 3, 1234)


def test_a_letter_that_fits_is_whole_and_says_where_it_came_from() -> None:
    value, key, headers = _letter(b"{oops").record(1_000_000)
    assert (value, key) == (b"{oops", b"k")
    named = dict(headers)
    assert named["dlq.reason"] == b"not_json"
    assert named["dlq.detail"] == b"why"
    assert named["dlq.source.topic"] == b"cdr.v1"
    assert named["dlq.source.partition"] == b"3"
    assert named["dlq.source.offset"] == b"1234"
    assert named["dlq.original.size"] == b"5"
    assert named["dlq.original.sha256"] == hashlib.sha256(b"{oops").hexdigest().encode()
    assert "dlq.truncated" not in named


@pytest.mark.parametrize("limit", [2_000, 10_000, 1_000_000])
@pytest.mark.parametrize("size", [1_500, 9_999, 1_040_000, 3_000_000])
def test_a_letter_too_large_for_its_topic_is_cut_and_marked(limit: int, size: int) -> None:
    original = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    value, key, headers = _letter(original, key=b"q" * 5_000, detail="d" * 50_000).record(limit)
    assert _size(value, key, headers) + 1024 <= limit
    named = dict(headers)
    assert named["dlq.original.size"] == str(size).encode()
    assert named["dlq.original.sha256"] == hashlib.sha256(original).hexdigest().encode()
    assert len(named["dlq.detail"] or b"") <= 1000
    assert named["dlq.key.sha256"] == hashlib.sha256(b"q" * 5_000).hexdigest().encode()
    assert key in (b"q" * 1024, b"q" * 64)  # 64 bytes only for a topic with a tiny limit
    if value != original:
        assert named["dlq.truncated"] == b"true"
        assert original.startswith(value)
    else:
        assert "dlq.truncated" not in named
