"""The streaming rater's loop, without a broker: list source, in-memory store, list DLQ.

Real reference data and the real rating core; Kafka and storage are the test doubles of
:mod:`pipeline.testing`, whose clock only advances when the rater waits, so backoff and idleness
cost no real time. What only a broker can show (transactions, fencing, SIGKILL, several
raters in one group) stays in ``tests/integration/``.
"""

from __future__ import annotations

import itertools
import os
import signal
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest

from pipeline.rating import messages as rating_messages
from pipeline.rating.engine import rate_batch
from pipeline.rating.reference import ReferenceData
from pipeline.services.rater import Backoff, Rater, RaterStats, RaterStoppedError
from pipeline.sinks.contracts import CallHistoryStore
from pipeline.sinks.embedded import EmbeddedStore
from pipeline.sinks.kafka_dlq import DeadLetterError, TransactionAbortedError
from pipeline.storage.errors import StoreErrorKind, examine_store_error
from pipeline.storage.roster import RosterRows
from pipeline.testing import InMemoryStore, ListCommitter, ListSource
from tests.builders import RATED_AT, cdr, deck_row, encode, simple_reference

_POISON = "4400000666"


class Crash(BaseException):
    """The rater process dies here (nothing in the rater catches a BaseException)."""


@pytest.fixture
def reference(tmp_path: Path) -> ReferenceData:
    return simple_reference(tmp_path / "plans", [deck_row("44", "0.1")])


@pytest.fixture(scope="module")
def transient_error(tmp_path_factory: pytest.TempPathFactory) -> BaseException:
    """A real chdb MEMORY_LIMIT_EXCEEDED, which the store-error classifier calls transient."""
    with (
        EmbeddedStore(tmp_path_factory.mktemp("chdb")) as store,
        pytest.raises(Exception, match="MEMORY_LIMIT_EXCEEDED") as caught,
    ):
        store.query(
            "SELECT groupArray(number) FROM numbers(1e7) SETTINGS max_memory_usage = 1000000"
        )
    failure = examine_store_error(caught.value)
    assert (failure.kind, failure.recognised) == (StoreErrorKind.TRANSIENT, True)
    return caught.value


def _cdrs(n: int, start: int = 0, **overrides: Any) -> list[dict[str, Any]]:
    return [cdr(cdr_id=f"c{i}", session_id=f"s{i}", **overrides) for i in range(start, start + n)]


def _ticking() -> Callable[[], datetime]:
    """A rated-at clock one second later on every call, so the latest rating is unambiguous."""
    ticks = itertools.count()
    return lambda: RATED_AT + timedelta(seconds=next(ticks))


def _rater(
    source: ListSource,
    committer: ListCommitter,
    store: CallHistoryStore,
    reference: ReferenceData,
    **options: Any,
) -> Rater:
    options.setdefault("batch_size", 10)
    options.setdefault("exit_when_idle_s", 0.0)
    options.setdefault("clock", _ticking())
    return Rater(
        source,
        committer,
        store,
        reference,
        monotonic=source.monotonic,
        **options,
    )


def _ids(table: pa.Table) -> list[str]:
    return sorted(table.column("cdr_id").to_pylist())


def _amounts(table: pa.Table) -> dict[str, Decimal]:
    return dict(
        zip(
            table.column("cdr_id").to_pylist(),
            table.column("customer_amount").to_pylist(),
            strict=True,
        )
    )


def _assert_nothing_lost(
    messages: Sequence[bytes], store: InMemoryStore, committer: ListCommitter
) -> None:
    """count(in) == distinct CDRs in call history + dead letters, each message exactly once."""
    current = store.call_history()
    assert len(set(current.column("cdr_id").to_pylist())) == current.num_rows
    assert len(messages) == current.num_rows + len(committer.dead_letters)


# --- everything ends somewhere, exactly once ------------------------------------------------


def test_every_message_ends_in_the_store_or_the_dlq_exactly_once(
    reference: ReferenceData,
) -> None:
    records = _cdrs(40)
    records[7]["duration_ms"] = 90_000  # 90 s at 0.1 a minute
    records[8]["callee"] = "3312345678"  # no prefix for 33: stored, unrated
    messages = encode(records)
    messages[11:11] = [b"not json", b"{}", b"\xff\xfe"]
    source, committer, store = ListSource(messages, partitions=3), ListCommitter(), InMemoryStore()

    stats = _rater(source, committer, store, reference, batch_size=7).run()

    _assert_nothing_lost(messages, store, committer)
    current = store.call_history()
    assert _ids(current) == sorted(f"c{i}" for i in range(40))
    amounts = _amounts(current)
    assert amounts["c0"] == Decimal("0.1")
    assert amounts["c7"] == Decimal("0.15")
    assert amounts["c8"] is None
    statuses = dict(
        zip(current.column("cdr_id").to_pylist(), current.column("status").to_pylist(), strict=True)
    )
    assert statuses["c8"] != "rated"
    assert set(current.column("reference_version").to_pylist()) == {reference.version}
    # Each dead letter is the original message, and says where it came from.
    log = {(b.source(i)): b.values[i] for b in source.delivered for i in range(len(b))}
    assert sorted(letter.value for letter in committer.dead_letters) == sorted(
        [b"not json", b"{}", b"\xff\xfe"]
    )
    for letter in committer.dead_letters:
        assert log[(letter.topic, letter.partition, letter.offset)] == letter.value
        assert letter.reason
    # Everything committed, once; the rater's counters agree.
    assert committer.committed_offsets() == {
        ("cdr.v1", 0): 15,
        ("cdr.v1", 1): 14,
        ("cdr.v1", 2): 14,
    }
    assert source.group.committed == committer.committed_offsets()
    assert sum(len(b) for b in source.delivered) == len(messages)  # nothing consumed twice
    assert (stats.consumed, stats.rated, stats.unrated, stats.rejected) == (43, 39, 1, 3)
    assert stats.batches == len(committer.commits) == 7
    assert committer.closed
    assert store.rows_written() == 40


# --- store failures -------------------------------------------------------------------------


class _WatchedStore(InMemoryStore):
    """Notes, at every write attempt, whether the source is paused and how much is committed."""

    def __init__(self, source: ListSource, committer: ListCommitter) -> None:
        super().__init__()
        self.seen: list[tuple[bool, int]] = []
        self._source = source
        self._committer = committer

    def write_call_history(self, table: pa.Table) -> None:
        self.seen.append((self._source.paused, len(self._committer.commits)))
        super().write_call_history(table)


def test_a_transient_store_failure_pauses_retries_with_backoff_and_resumes(
    reference: ReferenceData, transient_error: BaseException
) -> None:
    messages = encode(_cdrs(20))
    source, committer = ListSource(messages), ListCommitter()
    store = _WatchedStore(source, committer)
    store.fail_next(transient_error, times=3, after=1)  # the second batch meets the outage
    rater = _rater(source, committer, store, reference, backoff=Backoff(0.5, 30.0, 2.0))

    stats = rater.run()

    # Batch 1 written and committed; batch 2 tried while paused, with nothing committed, then
    # written once the store answered, and consumption resumed.
    assert store.seen == [(False, 0), (False, 1), (True, 1), (True, 1), (True, 1)]
    assert (source.pauses, source.resumes, source.paused) == (1, 1, False)
    assert sum(source.waits) == pytest.approx(0.5 + 1.0 + 2.0)  # the backoff, in source time
    assert (stats.store_failures, stats.batches, stats.consumed) == (3, 2, 20)
    assert rater.metrics.registry.get_sample_value("vmgate_store_write_retries_total") == 3
    assert committer.committed_offsets() == {("cdr.v1", 0): 20}
    assert len(source.delivered) == 2  # the batch was retried, not consumed again
    _assert_nothing_lost(messages, store, committer)
    assert set(_amounts(store.call_history()).values()) == {Decimal("0.1")}


def test_a_permanent_store_failure_stops_the_rater_with_nothing_committed(
    reference: ReferenceData, tmp_path: Path
) -> None:
    messages = [*encode(_cdrs(5)), b"not json"]
    source, committer = ListSource(messages), ListCommitter()
    with EmbeddedStore(tmp_path / "store") as store:  # never migrated: no tables
        rater = _rater(source, committer, store, reference)
        with pytest.raises(RaterStoppedError, match="vmgate-rating setup") as stopped:
            rater.run()
    failure = examine_store_error(stopped.value.__cause__ or stopped.value)
    assert (failure.kind, failure.name) == (StoreErrorKind.PERMANENT, "UNKNOWN_TABLE")
    assert str(stopped.value).startswith("call-history write failed: ")
    # Not retried, nothing committed, the dead letter sent in the transaction discarded.
    assert source.pauses == 0
    assert committer.commits == []
    assert committer.dead_letters == []
    assert committer.aborted == 1
    assert source.group.committed == {}
    assert committer.closed
    assert rater.stats.batches == 0


def test_an_unrecognised_store_error_is_retried_a_few_times_then_stops(
    reference: ReferenceData,
) -> None:
    source, committer, store = ListSource(encode(_cdrs(5))), ListCommitter(), InMemoryStore()
    store.fail_next(RuntimeError("the store said something nobody has seen before"), times=99)
    rater = _rater(source, committer, store, reference, max_unrecognised_attempts=4)

    with pytest.raises(RaterStoppedError, match="failed 4 times with an unrecognised error"):
        rater.run()

    assert store.attempts == 4
    assert len(source.waits) > 0  # it backed off between the attempts
    assert rater.stats.store_failures == 4
    assert committer.commits == []
    assert store.writes == []


def test_an_unrecognised_error_that_goes_away_in_time_is_survived(
    reference: ReferenceData,
) -> None:
    messages = encode(_cdrs(5))
    source, committer, store = ListSource(messages), ListCommitter(), InMemoryStore()
    store.fail_next(RuntimeError("a hiccup"), times=3)

    stats = _rater(source, committer, store, reference, max_unrecognised_attempts=4).run()

    assert (store.attempts, stats.store_failures, stats.batches) == (4, 3, 1)
    _assert_nothing_lost(messages, store, committer)


# --- between the store write and the commit -------------------------------------------------


def test_a_crash_between_the_store_write_and_the_commit_consumes_the_batch_again(
    reference: ReferenceData,
) -> None:
    messages = [*encode(_cdrs(25)), b"not json"]
    source, committer, store = ListSource(messages), ListCommitter(), InMemoryStore()
    committer.fail_commit(Crash(), after=1)  # the second batch is stored, then the rater dies
    clock = _ticking()  # batch 1 rated at +0 s, batch 2 at +1 s; after the restart +2 s, +3 s

    with pytest.raises(Crash):
        _rater(source, committer, store, reference, clock=clock).run()

    assert store.rows_written() == 20  # batches 1 and 2 are in the store...
    assert committer.committed_offsets() == {("cdr.v1", 0): 10}  # ...only batch 1 committed
    assert (committer.aborted, committer.in_transaction) == (1, False)

    # A new rater of the same group starts from the committed offsets.
    restarted, committer_again = ListSource(messages, group=source.group), ListCommitter()
    stats = _rater(restarted, committer_again, store, reference, clock=clock).run()

    assert restarted.delivered[0].values == source.delivered[1].values  # consumed again
    assert stats.consumed == 16
    assert store.rows_written() == 35  # batch 2 written twice...
    current = store.call_history()
    assert _ids(current) == sorted(f"c{i}" for i in range(25))  # ...seen once
    rated_at = dict(
        zip(
            current.column("cdr_id").to_pylist(),
            current.column("rated_at").to_pylist(),
            strict=True,
        )
    )
    assert rated_at["c15"] == RATED_AT + timedelta(seconds=2)  # the later rating of batch 2 wins
    assert len(committer.dead_letters) + len(committer_again.dead_letters) == 1
    assert committer_again.committed_offsets() == {("cdr.v1", 0): 26}
    assert len(messages) == current.num_rows + 1


def test_an_aborted_transaction_rewinds_and_the_batch_is_consumed_again(
    reference: ReferenceData,
) -> None:
    messages = [*encode(_cdrs(9)), b"not json"]
    source, committer, store = ListSource(messages), ListCommitter(), InMemoryStore()
    committer.fail_commit(TransactionAbortedError("the group rebalanced"))

    stats = _rater(source, committer, store, reference).run()

    assert stats.aborted_batches == 1
    assert [b.values for b in source.delivered] == [messages, messages]
    assert store.rows_written() == 18
    assert _ids(store.call_history()) == sorted(f"c{i}" for i in range(9))
    assert [letter.value for letter in committer.dead_letters] == [b"not json"]  # once
    assert committer.commits == [[source.delivered[0].next_offsets()[0]]]
    assert (stats.batches, stats.consumed, stats.rejected) == (1, 10, 1)
    _assert_nothing_lost(messages, store, committer)


def test_a_rebalance_during_a_store_outage_leaves_the_batch_to_the_group(
    reference: ReferenceData, transient_error: BaseException
) -> None:
    messages = encode(_cdrs(20))
    source, committer, store = ListSource(messages), ListCommitter(), InMemoryStore()
    store.fail_next(transient_error, after=1)  # the second batch meets the outage...
    source.rebalance_while_paused()  # ...and its partitions are revoked while waiting

    stats = _rater(source, committer, store, reference).run()

    assert stats.dropped_on_rebalance == 1
    assert (source.rebalances, source.resumes) == (1, 0)  # a rebalance unpauses by itself
    # The group rewound to the last committed offset (10), not to the start.
    assert [b.first_offsets()[0].offset for b in source.delivered] == [0, 10, 10]
    assert (stats.batches, stats.consumed) == (2, 20)
    assert store.attempts == 3
    assert committer.committed_offsets() == {("cdr.v1", 0): 20}
    _assert_nothing_lost(messages, store, committer)


def test_stopping_during_a_store_outage_leaves_the_batch_uncommitted(
    reference: ReferenceData, transient_error: BaseException
) -> None:
    source, committer = ListSource(encode(_cdrs(5))), ListCommitter()
    store = InMemoryStore()
    store.fail_next(transient_error, times=99)
    rater = _rater(source, committer, store, reference, exit_when_idle_s=None)
    original_wait = source.wait_paused

    def stop_while_waiting(timeout_s: float) -> None:
        original_wait(timeout_s)
        rater.stop()

    source.wait_paused = stop_while_waiting  # type: ignore[method-assign]

    stats = rater.run()

    assert stats.dropped_on_rebalance == 1
    assert (store.attempts, committer.commits, stats.batches) == (1, [], 0)
    assert source.resumes == 1  # still its partitions: resumed before leaving the group


# --- dead letters ---------------------------------------------------------------------------


def test_a_dead_letter_the_dlq_refuses_stops_the_rater_before_the_batch_is_stored(
    reference: ReferenceData,
) -> None:
    source, committer, store = (
        ListSource([b"{oops", *encode(_cdrs(5))]),
        ListCommitter(),
        InMemoryStore(),
    )
    committer.fail_send(DeadLetterError("record too large for cdr.dlq.v1", permanent=True))

    with pytest.raises(RaterStoppedError, match="fix the dead-letter topic"):
        _rater(source, committer, store, reference).run()

    assert store.attempts == 0
    assert (committer.commits, committer.dead_letters, committer.aborted) == ([], [], 1)


def test_a_dead_letter_topic_that_is_briefly_unavailable_is_retried(
    reference: ReferenceData,
) -> None:
    messages = [b"{oops", *encode(_cdrs(5))]
    source, committer, store = ListSource(messages), ListCommitter(), InMemoryStore()
    committer.fail_send(DeadLetterError("dead letters not acknowledged in time", permanent=False))

    stats = _rater(source, committer, store, reference).run()

    assert store.attempts == 1  # the store is written only once the letters are acknowledged
    assert stats.store_failures == 0
    assert (source.pauses, source.resumes) == (1, 1)
    assert [letter.value for letter in committer.dead_letters] == [b"{oops"]
    _assert_nothing_lost(messages, store, committer)


def test_a_poison_message_becomes_one_internal_dead_letter_and_the_rest_is_rated(
    reference: ReferenceData, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(cdrs: pl.DataFrame, reference: ReferenceData, rated_at: datetime) -> pa.Table:
        if (cdrs["callee"] == _POISON).any():
            msg = "boom"
            raise RecursionError(msg)
        return rate_batch(cdrs, reference, rated_at)

    monkeypatch.setattr(rating_messages, "rate_batch", failing)
    records = _cdrs(30)
    records[17]["callee"] = _POISON
    messages = encode(records)
    source, committer, store = ListSource(messages, partitions=2), ListCommitter(), InMemoryStore()

    stats = _rater(source, committer, store, reference, batch_size=100).run()

    [letter] = committer.dead_letters
    assert (letter.reason, letter.value) == ("internal:RecursionError", messages[17])
    assert "boom" in letter.detail
    assert (letter.partition, letter.offset) == (1, 8)  # message 17 of 2 partitions
    current = store.call_history()
    assert _ids(current) == sorted(f"c{i}" for i in range(30) if i != 17)
    assert set(_amounts(current).values()) == {Decimal("0.1")}
    assert stats.rejected_by_reason == {"internal:RecursionError": 1}
    _assert_nothing_lost(messages, store, committer)


# --- reference data -------------------------------------------------------------------------


class _Publication:
    """Reference updates: ``newer`` becomes available on the ``after``-th look and later."""

    def __init__(self, newer: ReferenceData, after: int, refusals: Sequence[str] = ()) -> None:
        self.newer = newer
        self.after = after
        self.looks = 0
        self.refusals = list(refusals)

    def newer_than(self, version: str) -> ReferenceData | None:
        self.looks += 1
        if self.looks < self.after or version == self.newer.version:
            return None
        return self.newer


def test_new_reference_data_rates_the_batches_after_the_swap(
    reference: ReferenceData, tmp_path: Path
) -> None:
    dearer = simple_reference(tmp_path / "dearer", [deck_row("44", "0.25")])
    messages = encode(_cdrs(20))
    source, committer, store = ListSource(messages), ListCommitter(), InMemoryStore()
    updates = _Publication(dearer, after=2, refusals=["a deck with a bad row"])

    rater = _rater(source, committer, store, reference, reference_updates=updates)
    stats = rater.run()

    current = store.call_history()
    versions = dict(
        zip(
            current.column("cdr_id").to_pylist(),
            current.column("reference_version").to_pylist(),
            strict=True,
        )
    )
    amounts = _amounts(current)
    for i in range(20):  # batch 1 (c0..c9) before the swap, batch 2 after, none in between
        old = i < 10
        assert versions[f"c{i}"] == (reference.version if old else dearer.version)
        assert amounts[f"c{i}"] == (Decimal("0.1") if old else Decimal("0.25"))
    assert stats.reference_swaps == 1
    assert rater.reference is dearer
    registry = rater.metrics.registry
    assert registry.get_sample_value("vmgate_reference_data_refused_total") == 1
    assert registry.get_sample_value("vmgate_reference_data_info", {"version": dearer.version}) == 1


def test_the_roster_of_each_version_is_written_at_start_and_at_the_swap(
    reference: ReferenceData, tmp_path: Path
) -> None:
    dearer = simple_reference(tmp_path / "dearer", [deck_row("44", "0.25")])
    source, committer, store = ListSource(encode(_cdrs(20))), ListCommitter(), InMemoryStore()
    rater = _rater(source, committer, store, reference, reference_updates=_Publication(dearer, 2))
    rater.run()

    assert [version for version, _ in store.roster_loads] == [reference.version, dearer.version]
    assert set(store.rosters) == {reference.version, dearer.version}


def test_a_roster_the_store_refuses_at_start_is_written_with_the_first_batch(
    reference: ReferenceData,
) -> None:
    class _RefusingOnce(InMemoryStore):
        refusals = 1

        def write_roster(self, rows: RosterRows, loaded_at: datetime) -> bool:
            if self.refusals:
                self.refusals -= 1
                raise ConnectionRefusedError("store not reachable")
            return super().write_roster(rows, loaded_at)

    source, committer, store = ListSource(encode(_cdrs(5))), ListCommitter(), _RefusingOnce()
    _rater(source, committer, store, reference).run()

    assert [version for version, _ in store.roster_loads] == [reference.version]
    assert store.rows_written() == 5


# --- stopping and exiting -------------------------------------------------------------------


class _StoppingStore(InMemoryStore):
    """Asks the rater to stop (by call, or by SIGTERM) while the first batch is being written."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.rater: Rater | None = None

    def write_call_history(self, table: pa.Table) -> None:
        if self.attempts == 0:
            if self.how == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)
            else:
                assert self.rater is not None
                self.rater.stop()
        super().write_call_history(table)


@pytest.mark.parametrize("how", ["stop", "sigterm"])
def test_stop_finishes_the_batch_in_flight_and_exits(reference: ReferenceData, how: str) -> None:
    before = signal.getsignal(signal.SIGTERM)
    source, committer, store = ListSource(encode(_cdrs(30))), ListCommitter(), _StoppingStore(how)
    rater = _rater(source, committer, store, reference, exit_when_idle_s=None)
    store.rater = rater

    stats = rater.run()

    assert (stats.batches, stats.consumed) == (1, 10)
    assert _ids(store.call_history()) == sorted(f"c{i}" for i in range(10))
    assert committer.committed_offsets() == {("cdr.v1", 0): 10}
    assert len(source.delivered) == 1  # no batch taken after the stop
    assert committer.closed
    assert signal.getsignal(signal.SIGTERM) is before


class _LateAssignment(ListSource):
    """A source that is not caught up for its first ``late`` questions (no assignment yet)."""

    def __init__(self, messages: Sequence[bytes], late: int) -> None:
        super().__init__(messages)
        self.late = late
        self.asked = 0

    def caught_up(self) -> bool:
        self.asked += 1
        return self.asked > self.late and super().caught_up()


def test_exit_when_idle_waits_until_caught_up_and_idle(reference: ReferenceData) -> None:
    messages = encode(_cdrs(15))
    source, committer, store = _LateAssignment(messages, late=2), ListCommitter(), InMemoryStore()

    stats = _rater(
        source, committer, store, reference, exit_when_idle_s=2.0, batch_timeout_s=0.5
    ).run()

    assert stats.consumed == 15
    assert source.asked == 3
    # Idle 2 s three times over (the first two found it not caught up), in 0.5 s polls.
    assert source.monotonic() == pytest.approx(6.0)
    _assert_nothing_lost(messages, store, committer)


def test_an_empty_topic_exits_at_once_when_idle(reference: ReferenceData) -> None:
    source, committer, store = ListSource([]), ListCommitter(), InMemoryStore()

    stats = _rater(source, committer, store, reference).run()

    assert stats == RaterStats()
    assert (store.attempts, committer.commits) == (0, [])
