"""The write plan for corrected CDRs (pipeline.storage.moved_cdrs), without a store.

``plan`` decides from a batch and what the key index knows of its CDRs which rows to write,
which to drop and which tombstones to add; these tests give it the index rows directly.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from pipeline.rating.columns import CALL_HISTORY_SCHEMA
from pipeline.rating.decode import decode_cdrs
from pipeline.rating.engine import rate_batch
from pipeline.storage.moved_cdrs import (
    CDR_DAYS_SCHEMA,
    SUPERSEDED,
    latest_per_cdr,
    plan,
)
from tests.builders import cdr, deck_row, simple_reference

T = datetime(2026, 4, 1, 12, tzinfo=UTC)
US = timedelta(microseconds=1)
KEY = 42


@pytest.fixture
def rows(tmp_path: Path) -> pa.Table:
    """One rated CDR ``c-1`` on 2026-03-10, rated at ``T``."""
    return batch(tmp_path, [cdr(cdr_id="c-1", start_time="2026-03-10T12:00:00Z")])


def batch(folder: Path, records: list[dict[str, Any]], at: datetime = T) -> pa.Table:
    reference = simple_reference(folder / "plans", [deck_row("44", "0.01")])
    decoded = decode_cdrs([json.dumps(r).encode() for r in records])
    assert decoded.rejected.height == 0
    return rate_batch(decoded.good, reference, at)


def known(*states: tuple[int, date | None, datetime | None, bool | None]) -> pa.Table:
    """Key-index rows for position ``p``: (position, day, rated_at, superseded)."""
    return pa.table(
        {
            "position": pa.array([s[0] for s in states], pa.uint32()),
            "key": pa.array([KEY + s[0] for s in states], pa.uint64()),
            "day": pa.array([s[1] for s in states], pa.date32()),
            "rated_at": pa.array([s[2] for s in states], pa.timestamp("us", tz="UTC")),
            "superseded": pa.array([s[3] for s in states], pa.bool_()),
        }
    )


def index_rows(table: pa.Table) -> list[tuple[int, date, datetime, bool]]:
    assert table.schema == CDR_DAYS_SCHEMA
    return [(r["key"], r["day"], r["rated_at"], r["superseded"]) for r in table.to_pylist()]


def test_a_new_cdr_is_written_with_its_index_row(rows: pa.Table) -> None:
    result = plan(rows, known((0, None, None, None)))
    assert result.call_history.equals(rows)
    assert (result.rows, result.tombstones, result.dropped) == (1, 0, 0)
    assert index_rows(result.cdr_days) == [(KEY, date(2026, 3, 10), T, False)]


def test_a_redelivery_on_the_same_day_is_written_without_tombstone(rows: pa.Table) -> None:
    for earlier in (T - timedelta(hours=1), T, T + timedelta(hours=1)):
        result = plan(rows, known((0, date(2026, 3, 10), earlier, False)))
        assert result.call_history.equals(rows)
        assert result.tombstones == 0


def test_a_move_writes_a_tombstone_in_the_old_day(rows: pa.Table) -> None:
    result = plan(rows, known((0, date(2026, 3, 2), T - timedelta(days=1), False)))
    assert (result.rows, result.tombstones, result.dropped) == (1, 1, 0)
    assert result.call_history.schema == CALL_HISTORY_SCHEMA
    written, stone = result.call_history.to_pylist()
    assert written == rows.to_pylist()[0]
    assert stone["status"] == SUPERSEDED
    assert stone["start_time"] == stone["end_time"] == datetime(2026, 3, 2, tzinfo=UTC)
    assert stone["rated_at"] == T - US
    assert stone["duration_ms"] == 0
    for name in ("cdr_id", "session_id", "tenant_id", "customer_id", "client_id", "callee"):
        assert stone[name] == written[name]
    nullable = [f.name for f in CALL_HISTORY_SCHEMA if f.nullable]
    assert all(stone[name] is None for name in nullable)
    assert index_rows(result.cdr_days) == [
        (KEY, date(2026, 3, 10), T, False),
        (KEY, date(2026, 3, 2), T - US, True),
    ]


def test_an_older_version_than_the_one_in_another_day_is_dropped(rows: pa.Table) -> None:
    result = plan(rows, known((0, date(2026, 3, 2), T + US, False)))
    assert (result.rows, result.tombstones, result.dropped) == (0, 0, 1)
    assert result.call_history.num_rows == result.cdr_days.num_rows == 0


def test_a_version_as_new_as_the_one_in_another_day_is_written_one_microsecond_later(
    rows: pa.Table,
) -> None:
    result = plan(rows, known((0, date(2026, 3, 2), T, False)))
    written, stone = result.call_history.to_pylist()
    assert written["rated_at"] == T + US
    assert stone["rated_at"] == T  # ties the old version in its day; inserted later, it wins
    assert result.call_history.schema == CALL_HISTORY_SCHEMA


def test_days_whose_current_row_is_a_tombstone_get_no_other(rows: pa.Table) -> None:
    old = date(2026, 3, 2)
    result = plan(
        rows,
        known(
            (0, old, T - timedelta(hours=2), False),  # the old version ...
            (0, old, T - timedelta(hours=1), True),  # ... hidden by a later tombstone
            (0, date(2026, 3, 5), T - timedelta(hours=1) + US, False),  # the live one
        ),
    )
    stones = [r for r in result.call_history.to_pylist() if r["status"] == SUPERSEDED]
    assert [s["start_time"].date() for s in stones] == [date(2026, 3, 5)]


def test_a_tombstone_wins_a_tie_with_the_version_of_its_day(rows: pa.Table) -> None:
    old = date(2026, 3, 2)
    tied = T - timedelta(hours=1)
    result = plan(rows, known((0, old, tied, False), (0, old, tied, True)))
    assert result.tombstones == 0  # that day is already hidden


def test_every_live_day_left_by_a_race_gets_a_tombstone(rows: pa.Table) -> None:
    result = plan(
        rows,
        known(
            (0, date(2026, 3, 2), T - timedelta(hours=2), False),
            (0, date(2026, 3, 3), T - timedelta(hours=1), False),
        ),
    )
    assert result.tombstones == 2
    days = [r["start_time"].date() for r in result.call_history.to_pylist()[1:]]
    assert days == [date(2026, 3, 2), date(2026, 3, 3)]


def test_the_last_row_of_a_cdr_in_a_batch_wins(tmp_path: Path) -> None:
    records = [
        cdr(cdr_id="a", start_time="2026-03-01T10:00:00Z"),
        cdr(cdr_id="b", start_time="2026-03-01T11:00:00Z"),
        cdr(cdr_id="a", start_time="2026-03-02T10:00:00Z"),
        cdr(cdr_id="a", tenant_id="t2", start_time="2026-03-03T10:00:00Z"),
        cdr(cdr_id="b", start_time="2026-03-04T11:00:00Z"),
    ]
    table = batch(tmp_path, records)
    kept = latest_per_cdr(table)
    assert [(r["tenant_id"], r["cdr_id"], r["start_time"].day) for r in kept.to_pylist()] == [
        ("t1", "a", 2),
        ("t2", "a", 3),
        ("t1", "b", 4),
    ]
    unique = latest_per_cdr(kept)
    assert unique is kept  # nothing to drop: the batch itself


def test_a_lookup_that_misses_a_row_is_an_error(rows: pa.Table) -> None:
    with pytest.raises(RuntimeError, match="answered 0 of 1"):
        plan(rows, known())
