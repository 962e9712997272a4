"""A message that breaks decoding or rating is isolated and rejected; the rest is rated."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from pipeline.rating import messages as rating_messages
from pipeline.rating.decode import decode_cdrs
from pipeline.rating.engine import rate_batch
from pipeline.rating.messages import rate_messages
from pipeline.rating.reference import ReferenceData
from tests.builders import RATED_AT, cdr, deck_row, encode, simple_reference

_POISON = "4400000666"


@pytest.fixture
def reference(tmp_path: Path) -> ReferenceData:
    return simple_reference(tmp_path, [deck_row("44", "0.1")])


def _batch(n: int, poison_at: set[int]) -> list[bytes]:
    return encode(
        [cdr(cdr_id=f"c{i}", callee=_POISON if i in poison_at else "4420794612") for i in range(n)]
    )


def _break_on_poison(monkeypatch: pytest.MonkeyPatch, error: type[Exception]) -> None:
    """Inject a fault nobody foresaw: rating raises when a batch holds the poison callee."""

    def failing(cdrs: pl.DataFrame, reference: ReferenceData, rated_at: datetime) -> pa.Table:
        if (cdrs["callee"] == _POISON).any():
            raise error("boom")
        return rate_batch(cdrs, reference, rated_at)

    monkeypatch.setattr(rating_messages, "rate_batch", failing)


def test_without_failures_it_is_decode_then_rate(reference: ReferenceData) -> None:
    batch = [*_batch(20, set()), b"{oops"]
    rated = rate_messages(batch, reference, RATED_AT)
    decoded = decode_cdrs(batch)
    assert rated.table.equals(rate_batch(decoded.good, reference, RATED_AT))
    assert rated.rejected.equals(decoded.rejected)


@pytest.mark.parametrize("poison_at", [{0}, {99}, {37}, {3, 4}, {0, 50, 99}, set(range(0, 100, 7))])
def test_poison_messages_are_rejected_alone(
    reference: ReferenceData, monkeypatch: pytest.MonkeyPatch, poison_at: set[int]
) -> None:
    _break_on_poison(monkeypatch, RecursionError)
    batch = _batch(100, poison_at)
    batch.insert(10, b"not json")  # an ordinary reject keeps its own reason and position
    shifted = {p if p < 10 else p + 1 for p in poison_at}
    rated = rate_messages(batch, reference, RATED_AT)
    rejected = {row["position"]: row for row in rated.rejected.to_dicts()}
    assert rejected.pop(10)["reason"] == "not_json"
    assert set(rejected) == shifted
    assert {row["reason"] for row in rejected.values()} == {"internal:RecursionError"}
    assert all("boom" in row["detail"] for row in rejected.values())
    ids = rated.table.column("cdr_id").to_pylist()
    assert ids == [f"c{i}" for i in range(100) if i not in poison_at]  # order kept
    assert rated.rejected["position"].is_sorted()


def test_a_batch_of_one_poison_message(
    reference: ReferenceData, monkeypatch: pytest.MonkeyPatch
) -> None:
    _break_on_poison(monkeypatch, ValueError)
    rated = rate_messages(_batch(1, {0}), reference, RATED_AT)
    assert rated.table.num_rows == 0
    assert rated.rejected.to_dicts() == [
        {"position": 0, "reason": "internal:ValueError", "detail": "ValueError: boom"}
    ]


def test_the_rated_rows_equal_rating_the_clean_messages(
    reference: ReferenceData, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = _batch(64, {5, 40})
    clean = [m for m in batch if _POISON not in json.loads(m)["callee"]]
    expected = rate_batch(decode_cdrs(clean).good, reference, RATED_AT)
    _break_on_poison(monkeypatch, KeyError)
    rated = rate_messages(batch, reference, RATED_AT)
    assert rated.table.equals(expected)
