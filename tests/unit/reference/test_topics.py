"""A publication's manifest from a producer the project did not write: refused, never raised."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.reference.topics import FileEntry, Manifest

_GOOD = Manifest(
    "v1", "2026-03-01T00:00:00Z", {"plans.csv": FileEntry("rateplans.v1", 1, 10, "ab")}
)


def test_a_manifest_reads_back() -> None:
    assert Manifest.from_bytes(_GOOD.to_bytes()) == _GOOD


@pytest.mark.parametrize(
    "data",
    [
        b'{"format": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
        b'{"files": {"a": ' + b'{"b": ' * 2_000 + b"1" + b"}" * 2_001 + b"}",
        b" " * (2 * 1024 * 1024),
        b"\xff\xfe",
        b"NaN",
        json.dumps({"format": "x"}).encode(),
        json.dumps({**json.loads(_GOOD.to_bytes()), "files": {"a": {"chunks": []}}}).encode(),
        json.dumps({**json.loads(_GOOD.to_bytes()), "files": ["a"]}).encode(),
    ],
)
def test_what_is_not_a_manifest_is_refused_with_a_reason(data: bytes) -> None:
    with pytest.raises(ValueError, match="manifest"):
        Manifest.from_bytes(data)


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=200)
    | st.recursive(
        st.none() | st.integers() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c)
    ).map(lambda v: json.dumps(v).encode())
)
def test_any_bytes_are_a_manifest_or_a_value_error(data: bytes) -> None:
    outcome: object
    try:
        outcome = Manifest.from_bytes(data)
    except ValueError as exc:
        outcome = exc
    assert isinstance(outcome, Manifest) or "manifest" in str(outcome)
