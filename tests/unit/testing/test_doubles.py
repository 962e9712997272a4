"""The test doubles of :mod:`pipeline.testing` behave like what they stand in for.

The in-memory store shows what ClickHouse shows through ``FINAL`` (checked against the embedded
engine); the list source goes back to the committed offsets on a rebalance, as a Kafka consumer
group does; the list DLQ keeps only what a committed transaction carried.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from pipeline.rating.columns import CALL_HISTORY_SCHEMA
from pipeline.rating.reference import ReferenceData
from pipeline.sinks.embedded import EmbeddedStore
from pipeline.sinks.kafka_dlq import DeadLetter, TransactionAbortedError
from pipeline.sources.contracts import PartitionOffset
from pipeline.testing import InMemoryStore, ListCommitter, ListSource
from tests.builders import RATED_AT, cdr, deck_row, rate_table, simple_reference


@pytest.fixture
def reference(tmp_path: Path) -> ReferenceData:
    return simple_reference(tmp_path / "plans", [deck_row("44", "0.1")])


def _rated(reference: ReferenceData, ids: list[str], seconds: int, **overrides: object) -> pa.Table:
    table = rate_table(reference, [cdr(cdr_id=i, **overrides) for i in ids])
    at = pa.array(
        [RATED_AT + timedelta(seconds=seconds)] * table.num_rows, pa.timestamp("us", "UTC")
    )
    return table.set_column(table.schema.get_field_index("rated_at"), "rated_at", at)


def test_the_in_memory_store_shows_what_clickhouse_shows_through_final(
    reference: ReferenceData, tmp_path: Path
) -> None:
    writes = [
        _rated(reference, ["a", "b", "c"], 5),
        _rated(reference, ["a", "b"], 9, duration_ms=120_000),  # a later rating wins...
        _rated(reference, ["c"], 1, duration_ms=180_000),  # ...an earlier one does not
        _rated(reference, ["a"], 9, duration_ms=240_000),  # same instant: the last write wins
        _rated(reference, ["a"], 2, tenant_id="t2"),  # another tenant's CDR of the same id
    ]
    memory = InMemoryStore()
    for table in writes:
        memory.write_call_history(table)
    with EmbeddedStore(tmp_path / "store") as engine:
        engine.migrate()
        for table in writes:
            engine.write_call_history(table)
        final = engine.query(
            "SELECT tenant_id, cdr_id, rated_at, duration_ms FROM call_history FINAL "
            "ORDER BY tenant_id, cdr_id"
        )

    current = memory.call_history()
    assert current.select(["tenant_id", "cdr_id", "rated_at", "duration_ms"]).to_pylist() == (
        final.to_pylist()
    )
    assert [(r["tenant_id"], r["cdr_id"], r["duration_ms"]) for r in current.to_pylist()] == [
        ("t1", "a", 240_000),
        ("t1", "b", 120_000),
        ("t1", "c", 60_000),
        ("t2", "a", 60_000),
    ]
    assert memory.rows_written() == 8
    assert current.schema == CALL_HISTORY_SCHEMA


def test_the_in_memory_store_fails_as_scripted_and_keeps_nothing_then(
    reference: ReferenceData,
) -> None:
    store = InMemoryStore()
    store.fail_next(ConnectionRefusedError("down"), times=2, after=1)
    table = _rated(reference, ["a"], 0)
    store.write_call_history(table)
    for _ in range(2):
        with pytest.raises(ConnectionRefusedError):
            store.write_call_history(table)
    store.write_call_history(table)
    assert (store.attempts, len(store.writes), len(store.failures)) == (4, 2, 0)
    assert store.call_history().num_rows == 1
    with pytest.raises(NotImplementedError, match="no SQL"):
        store.query("SELECT 1")


def test_the_in_memory_store_refuses_what_is_not_call_history() -> None:
    with pytest.raises(ValueError, match="missing column"):
        InMemoryStore().write_call_history(pa.table({"cdr_id": ["a"]}))


def test_a_rebalance_goes_back_to_the_committed_offsets() -> None:
    source = ListSource([bytes([i]) for i in range(10)], partitions=2)
    source.start()
    first = source.next_batch(4, 1.0)
    assert [o.partition for o in first.origins] == [0, 0, 0, 0]
    assert first.next_offsets() == [PartitionOffset("cdr.v1", 0, 4)]
    source.group.commit(first.next_offsets())
    second = source.next_batch(4, 1.0)
    assert [(o.partition, o.offset) for o in second.origins] == [(0, 4), (1, 0), (1, 1), (1, 2)]

    source.rebalance()

    assert source.generation == 1
    again = source.next_batch(100, 1.0)
    assert again.values == second.values + [bytes([i]) for i in (7, 9)]
    assert source.lag() == [("cdr.v1", 0, 0), ("cdr.v1", 1, 0)]
    assert not source.caught_up()  # consumed, not committed
    source.group.commit(again.next_offsets())
    assert source.caught_up()


def test_a_paused_source_delivers_nothing_and_its_clock_moves_only_when_it_waits() -> None:
    source = ListSource([b"x", b"y"])
    source.start()
    source.pause()
    assert len(source.next_batch(10, 0.5)) == 0
    source.wait_paused(0.2)
    assert source.monotonic() == pytest.approx(0.7)
    source.resume()
    batch = source.next_batch(10, 0.5)
    assert batch.values == [b"x", b"y"]
    assert source.monotonic() == pytest.approx(0.7)
    source.rewind(batch)
    assert source.next_batch(1, 0.5).values == [b"x"]
    source.close()
    with pytest.raises(RuntimeError, match="not started"):
        source.next_batch(1, 0.5)


def test_the_list_dlq_keeps_only_what_a_committed_transaction_carried() -> None:
    letter = DeadLetter(b"{oops", b"k", "not_json", "detail", "cdr.v1", 0, 3)
    source = ListSource([b"a"])
    committer = ListCommitter()
    committer.fail_commit(TransactionAbortedError("fenced"))
    committer.start()

    committer.begin()
    committer.send([letter])
    committer.abort()
    committer.begin()
    committer.send([letter])
    with pytest.raises(TransactionAbortedError):
        committer.commit([PartitionOffset("cdr.v1", 0, 4)], source.group_metadata())
    assert not committer.in_transaction  # an aborted commit aborts, as the Kafka one does
    committer.begin()
    committer.send([letter])
    committer.commit([PartitionOffset("cdr.v1", 0, 4)], source.group_metadata())

    assert committer.dead_letters == [letter]
    assert committer.commits == [[PartitionOffset("cdr.v1", 0, 4)]]
    assert committer.aborted == 2
    assert source.group.committed == {("cdr.v1", 0): 4}
    with pytest.raises(RuntimeError, match="begin"):
        committer.send([letter])
