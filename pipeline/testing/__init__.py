"""Test doubles of the rater's own seams, shipped with the package (like ``bytewax.testing``).

With them the streaming loop (:class:`pipeline.services.rater.Rater`) is unit-tested like a
function: messages in from a list, call history and dead letters out into lists, failures
scripted. They stand in for the seams of :mod:`pipeline.sources.contracts` and
:mod:`pipeline.sinks.contracts`, not for Kafka or ClickHouse: integration tests use a real
broker and a real engine.

- :class:`ListSource` (a :class:`~pipeline.sources.contracts.CdrSource`): a consumer group of
  one over lists of bytes. It starts from, and on a scripted rebalance goes back to, the offsets
  the group committed (:class:`ListGroup`), as Kafka does. It keeps its own clock: an empty poll
  and a wait while paused advance it by their timeout and return at once, so a rater given
  ``monotonic=source.monotonic`` backs off and idles without sleeping.
- :class:`InMemoryStore` (a :class:`~pipeline.sinks.contracts.CallHistoryStore`): keeps the
  acknowledged writes as Arrow tables; :meth:`InMemoryStore.call_history` reads them back as
  ClickHouse's ReplacingMergeTree shows them (one row per CDR, the latest ``rated_at``).
- :class:`ListCommitter` (a :class:`~pipeline.sinks.contracts.BatchCommitter`), the list DLQ:
  dead letters and offsets count only once their transaction committed.

Every scripted failure is an exception raised by the next call(s): ``store.fail_next(exc, 3)``,
``committer.fail_send(exc)``, ``committer.fail_commit(exc)``. Example::

    source = ListSource(encode(cdrs))
    store, committer = InMemoryStore(), ListCommitter()
    rater = Rater(source, committer, store, reference, exit_when_idle_s=0,
                  monotonic=source.monotonic)
    rater.run()
    assert store.call_history().num_rows + len(committer.dead_letters) == len(cdrs)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl
import pyarrow as pa

from pipeline.rating.columns import CALL_HISTORY_SCHEMA, call_history_batch
from pipeline.sinks.kafka_dlq import DeadLetter, TransactionAbortedError
from pipeline.sources.contracts import CdrBatch, PartitionOffset
from pipeline.storage.roster import RosterRows

__all__ = [
    "Failures",
    "InMemoryStore",
    "ListBatch",
    "ListCommitter",
    "ListGroup",
    "ListSource",
]


class Failures:
    """What the next calls do, one entry per call: succeed (None) or raise an exception."""

    def __init__(self) -> None:
        """No failure scripted: every call succeeds."""
        self._next: deque[BaseException | None] = deque()

    def add(self, error: BaseException, times: int = 1, *, after: int = 0) -> None:
        """After the calls already scripted, ``after`` calls succeed, then ``times`` raise."""
        self._next.extend([None] * after)
        self._next.extend([error] * times)

    def take(self) -> BaseException | None:
        """The exception this call is to raise, if one is scripted."""
        return self._next.popleft() if self._next else None

    def __len__(self) -> int:
        """How many calls are still to fail."""
        return sum(error is not None for error in self._next)


@dataclass
class ListGroup:
    """The consumer group as the broker keeps it: the committed offset of each partition."""

    name: str = "vmgate-raters"
    committed: dict[tuple[str, int], int] = field(default_factory=dict)

    def commit(self, offsets: Iterable[PartitionOffset]) -> None:
        """Record ``offsets`` as committed (a later commit overwrites, as in Kafka)."""
        for offset in offsets:
            self.committed[(offset.topic, offset.partition)] = offset.offset

    def position(self, topic: str, partition: int) -> int:
        """Where a member of the group starts reading ``partition`` (0 if nothing committed)."""
        return self.committed.get((topic, partition), 0)


@dataclass(frozen=True, eq=False)
class ListBatch:
    """Messages delivered together by a :class:`ListSource` (a ``CdrBatch``)."""

    values: list[bytes]
    keys: list[bytes | None]
    origins: list[PartitionOffset]

    def key(self, position: int) -> bytes | None:
        """The key of message ``position``."""
        return self.keys[position]

    def source(self, position: int) -> tuple[str, int, int]:
        """Topic, partition and offset of message ``position``."""
        origin = self.origins[position]
        return origin.topic, origin.partition, origin.offset

    def next_offsets(self) -> list[PartitionOffset]:
        """Per partition in the batch, the last offset delivered + 1."""
        last = {(o.topic, o.partition): o.offset for o in self.origins}
        return [PartitionOffset(t, p, o + 1) for (t, p), o in sorted(last.items())]

    def first_offsets(self) -> list[PartitionOffset]:
        """Per partition in the batch, the first offset delivered."""
        first = {(o.topic, o.partition): o.offset for o in reversed(self.origins)}
        return [PartitionOffset(t, p, o) for (t, p), o in sorted(first.items())]

    def __len__(self) -> int:
        """Number of messages."""
        return len(self.values)


class ListSource:
    """A consumer group of one reading messages from lists (a ``CdrSource``).

    Message ``i`` of ``messages`` goes to partition ``i % partitions`` of ``topic`` (with
    ``keys[i]`` as its key); :meth:`produce` appends more. A batch takes up to ``max_messages``
    from the partitions in order, each from its current position. Offsets are committed by the
    committer into :attr:`group` (the object :meth:`group_metadata` returns); :meth:`start`
    and every rebalance put each partition back at the group's committed offset.

    Rebalances are scripted: :meth:`rebalance` now, :meth:`rebalance_before_batch` or
    :meth:`rebalance_while_paused`. Each one changes :attr:`generation` and unpauses, as the
    Kafka source does when its partitions are revoked and assigned again.
    """

    def __init__(
        self,
        messages: Sequence[bytes] = (),
        *,
        keys: Sequence[bytes | None] | None = None,
        partitions: int = 1,
        topic: str = "cdr.v1",
        group: ListGroup | None = None,
    ) -> None:
        """Hold the messages; nothing is delivered before :meth:`start`."""
        if partitions < 1:
            msg = f"a topic has at least one partition, not {partitions}"
            raise ValueError(msg)
        self.topic = topic
        self.group = group if group is not None else ListGroup()
        self.partitions = partitions
        self._log: list[list[tuple[bytes | None, bytes]]] = [[] for _ in range(partitions)]
        self._produced = 0
        self._positions = [0] * partitions
        self._generation = 0
        self._started = False
        self._paused = False
        self._now = 0.0
        self._rebalance_before: set[int] = set()
        self._rebalance_at_wait: set[int] = set()
        self.delivered: list[ListBatch] = []
        """Every non-empty batch delivered, in order (a batch consumed again appears again)."""
        self.waits: list[float] = []
        """The timeout of every :meth:`wait_paused` call, in seconds."""
        self.pauses = 0
        self.resumes = 0
        self.rebalances = 0
        self.produce(messages, keys)

    # scripting ---------------------------------------------------------------------------

    def produce(
        self, messages: Sequence[bytes], keys: Sequence[bytes | None] | None = None
    ) -> None:
        """Append messages to the topic, continuing the round robin over partitions."""
        if keys is not None and len(keys) != len(messages):
            msg = f"{len(keys)} keys for {len(messages)} messages"
            raise ValueError(msg)
        for i, value in enumerate(messages):
            key = keys[i] if keys is not None else None
            self._log[self._produced % self.partitions].append((key, value))
            self._produced += 1

    def rebalance(self) -> None:
        """Revoke and assign again now: new generation, back to the committed offsets."""
        self._generation += 1
        self.rebalances += 1
        self._paused = False
        self._positions = [self.group.position(self.topic, p) for p in range(self.partitions)]

    def rebalance_before_batch(self, number: int) -> None:
        """Rebalance just before delivering the ``number``-th non-empty batch (1-based)."""
        self._rebalance_before.add(number)

    def rebalance_while_paused(self, waits: int = 1) -> None:
        """Rebalance during the ``waits``-th call of :meth:`wait_paused` from now."""
        self._rebalance_at_wait.add(len(self.waits) + waits)

    def monotonic(self) -> float:
        """The source's clock, in seconds: only empty polls and waits advance it."""
        return self._now

    # CdrSource ---------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        """Changes on every rebalance."""
        return self._generation

    @property
    def paused(self) -> bool:
        """True between :meth:`pause` and :meth:`resume` (or a rebalance)."""
        return self._paused

    def start(self) -> None:
        """Join the group: every partition starts at the group's committed offset."""
        self._started = True
        self._paused = False
        self._positions = [self.group.position(self.topic, p) for p in range(self.partitions)]

    def next_batch(self, max_messages: int, timeout_s: float, linger_s: float = 0.1) -> ListBatch:
        """Up to ``max_messages`` not yet delivered; none while paused (the clock advances)."""
        self._check_started()
        if len(self.delivered) + 1 in self._rebalance_before:
            self._rebalance_before.discard(len(self.delivered) + 1)
            self.rebalance()
        values: list[bytes] = []
        keys: list[bytes | None] = []
        origins: list[PartitionOffset] = []
        for partition in range(self.partitions if not self._paused else 0):
            start = self._positions[partition]
            taken = self._log[partition][start : start + max_messages - len(values)]
            for offset, (key, value) in enumerate(taken, start):
                values.append(value)
                keys.append(key)
                origins.append(PartitionOffset(self.topic, partition, offset))
            self._positions[partition] = start + len(taken)
        batch = ListBatch(values, keys, origins)
        if batch.values:
            self.delivered.append(batch)
        else:
            self._now += timeout_s  # an empty poll waits for its timeout
        return batch

    def pause(self) -> None:
        """Deliver nothing until :meth:`resume`."""
        self._check_started()
        self._paused = True
        self.pauses += 1

    def wait_paused(self, timeout_s: float) -> None:
        """Return at once, the clock ``timeout_s`` later; a scripted rebalance happens here."""
        self._check_started()
        self.waits.append(timeout_s)
        self._now += timeout_s
        if len(self.waits) in self._rebalance_at_wait:
            self._rebalance_at_wait.discard(len(self.waits))
            self.rebalance()

    def resume(self) -> None:
        """Deliver again, from where the last batch ended."""
        self._check_started()
        self._paused = False
        self.resumes += 1

    def rewind(self, batch: CdrBatch) -> None:
        """Deliver ``batch`` again: each of its partitions back to its first offset."""
        for position in batch.first_offsets():
            if position.topic == self.topic and 0 <= position.partition < self.partitions:
                self._positions[position.partition] = position.offset

    def group_metadata(self) -> ListGroup:
        """The group, into which :class:`ListCommitter` commits offsets."""
        return self.group

    def caught_up(self) -> bool:
        """True once started and the group's committed offsets reach the end of every partition."""
        return self._started and all(
            self.group.position(self.topic, p) >= len(self._log[p]) for p in range(self.partitions)
        )

    def lag(self) -> list[tuple[str, int, int]]:
        """Per partition, messages between the current position and the end."""
        return [
            (self.topic, p, len(self._log[p]) - self._positions[p]) for p in range(self.partitions)
        ]

    def close(self) -> None:
        """Leave the group; :meth:`start` joins it again from the committed offsets."""
        self._started = False
        self._paused = False

    def _check_started(self) -> None:
        if not self._started:
            msg = "source not started"
            raise RuntimeError(msg)


class InMemoryStore:
    """Call history kept as Arrow tables in memory (a ``CallHistoryStore``); it runs no SQL.

    A write is checked like the real stores check it (:func:`call_history_batch`) and kept as
    one table in :attr:`writes`. :meth:`fail_next` scripts failures: the next calls of
    :meth:`write_call_history` raise the given exception instead of writing, so whether the
    rater retries or stops is decided by the rater's own classification of that exception
    (:func:`pipeline.storage.errors.examine_store_error`).
    """

    def __init__(self) -> None:
        """An empty store, with no failure scripted."""
        self.writes: list[pa.Table] = []
        """Every acknowledged non-empty write, in order."""
        self.attempts = 0
        """Calls of :meth:`write_call_history`, failed ones included."""
        self.failures = Failures()
        self.closed = False
        self.rosters: dict[str, RosterRows] = {}
        """Each version's roster rows, as first written."""
        self.roster_loads: list[tuple[str, datetime]] = []
        """Every load recorded: (reference version, loaded_at)."""

    def fail_next(self, error: BaseException, times: int = 1, *, after: int = 0) -> None:
        """After ``after`` more writes succeed, the next ``times`` raise ``error``."""
        self.failures.add(error, times, after=after)

    def write_call_history(self, table: pa.Table) -> None:
        """Keep the rows, or raise the next scripted failure (nothing is kept then)."""
        self.attempts += 1
        error = self.failures.take()
        if error is not None:
            raise error
        batch = call_history_batch(table)
        if batch.num_rows:
            self.writes.append(batch)

    def call_history(self) -> pa.Table:
        """The current rows: one per (tenant_id, cdr_id), the latest ``rated_at`` winning.

        Of two rows rated at the same instant the one written last wins. Sorted by tenant and
        CDR, like the table's ``ORDER BY``. This is what ClickHouse shows through ``FINAL``.
        """
        if not self.writes:
            return CALL_HISTORY_SCHEMA.empty_table()
        table = pa.concat_tables(self.writes)
        keys = pl.DataFrame(table.select(["tenant_id", "cdr_id", "rated_at"])).with_row_index()
        current = (
            keys.sort(["rated_at", "index"])
            .unique(["tenant_id", "cdr_id"], keep="last")
            .sort(["tenant_id", "cdr_id"])
        )
        return table.take(pa.array(current["index"].to_list(), pa.int64()))

    def rows_written(self) -> int:
        """Rows in every acknowledged write (a CDR written twice counts twice)."""
        return sum(table.num_rows for table in self.writes)

    def migrate(self) -> list[str]:
        """Nothing to apply: there is no DDL in memory."""
        return []

    def repair_moved_cdrs(self) -> int:
        """Nothing to repair: :meth:`call_history` keeps one row per CDR across days."""
        return 0

    def write_roster(self, rows: RosterRows, loaded_at: datetime) -> bool:
        """Keep a version's roster once and record its load, as the real stores do.

        :attr:`rosters` holds each version's rows, :attr:`roster_loads` every (version,
        loaded_at) recorded; loading the current version again records nothing.
        """
        if self.roster_loads and self.roster_loads[-1][0] == rows.version:
            return False
        self.rosters.setdefault(rows.version, rows)
        self.roster_loads.append((rows.version, loaded_at))
        return True

    def execute(self, sql: str, parameters: Mapping[str, object] | None = None) -> None:
        """Not supported: the in-memory store runs no SQL."""
        raise NotImplementedError(_NO_SQL)

    def query(self, sql: str, parameters: Mapping[str, object] | None = None) -> pa.Table:
        """Not supported: read :meth:`call_history` or :attr:`writes` instead."""
        raise NotImplementedError(_NO_SQL)

    def close(self) -> None:
        """Mark the store closed (its contents stay readable)."""
        self.closed = True


_NO_SQL = "InMemoryStore runs no SQL: read call_history() or writes instead"


class ListCommitter:
    """The list DLQ: dead letters and offsets committed together into lists (a BatchCommitter).

    :attr:`dead_letters` and :attr:`commits` hold only what a committed transaction carried; an
    aborted transaction leaves nothing behind. A commit also records the offsets in the
    :class:`ListGroup` passed as group metadata, so a :class:`ListSource` of that group starts
    from them. :meth:`fail_send` and :meth:`fail_commit` script failures (a
    :class:`~pipeline.sinks.kafka_dlq.TransactionAbortedError` aborts the transaction before it
    is raised, as the Kafka committer does).
    """

    def __init__(self) -> None:
        """No transaction yet, no failure scripted."""
        self.dead_letters: list[DeadLetter] = []
        """Dead letters of committed transactions, in commit order."""
        self.commits: list[list[PartitionOffset]] = []
        """The offsets of each committed transaction."""
        self.aborted = 0
        """Transactions aborted (by the caller, or by a scripted abort)."""
        self.send_failures = Failures()
        self.commit_failures = Failures()
        self.started = False
        self.closed = False
        self._open: list[DeadLetter] | None = None

    def fail_send(self, error: BaseException, times: int = 1, *, after: int = 0) -> None:
        """After ``after`` more sends of letters succeed, the next ``times`` raise ``error``."""
        self.send_failures.add(error, times, after=after)

    def fail_commit(self, error: BaseException, times: int = 1, *, after: int = 0) -> None:
        """After ``after`` more commits succeed, the next ``times`` raise ``error``.

        A failed commit commits nothing.
        """
        self.commit_failures.add(error, times, after=after)

    @property
    def in_transaction(self) -> bool:
        """True between :meth:`begin` and the commit or abort."""
        return self._open is not None

    def start(self) -> None:
        """Ready to open transactions."""
        self.started = True
        self.closed = False

    def begin(self) -> None:
        """Open a transaction (one at a time, as a transactional producer allows)."""
        if not self.started:
            msg = "committer not started"
            raise RuntimeError(msg)
        if self._open is not None:
            msg = "a transaction is already open"
            raise RuntimeError(msg)
        self._open = []

    def send(self, dead_letters: Sequence[DeadLetter]) -> None:
        """Add the dead letters to the open transaction, or raise the next scripted failure."""
        pending = self._transaction()
        if not dead_letters:
            return
        error = self.send_failures.take()
        if error is not None:
            raise error
        pending.extend(dead_letters)

    def commit(self, offsets: Sequence[PartitionOffset], group_metadata: object) -> None:
        """Commit the open transaction's dead letters and ``offsets``, or raise a scripted error."""
        pending = self._transaction()
        error = self.commit_failures.take()
        if error is not None:
            if isinstance(error, TransactionAbortedError):
                self.abort()
            raise error
        self.dead_letters.extend(pending)
        self.commits.append(list(offsets))
        if isinstance(group_metadata, ListGroup):
            group_metadata.commit(offsets)
        self._open = None

    def committed_offsets(self) -> dict[tuple[str, int], int]:
        """The last committed offset of each partition."""
        out: dict[tuple[str, int], int] = {}
        for offsets in self.commits:
            out.update({(o.topic, o.partition): o.offset for o in offsets})
        return out

    def abort(self) -> None:
        """Discard the open transaction, if any."""
        if self._open is not None:
            self._open = None
            self.aborted += 1

    def close(self) -> None:
        """Abort what is open."""
        self.abort()
        self.started = False
        self.closed = True

    def _transaction(self) -> list[DeadLetter]:
        if self._open is None:
            msg = "no open transaction: call begin() first"
            raise RuntimeError(msg)
        return self._open
