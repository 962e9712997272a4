"""The seams between the rater and where its results go: call history, and dead letters.

:class:`CallHistoryStore` is what the runtime and the commands need of storage. The embedded
store (:mod:`pipeline.sinks.embedded`, chdb in a folder) and the server store (clickhouse-connect)
run the same DDL from ``schemas/clickhouse`` and the same SQL.

:class:`BatchCommitter` is what the rater needs to finish a batch: its dead letters and the
consumer offsets that cover it, committed together or not at all. The Kafka transactional
producer (:mod:`pipeline.sinks.kafka_dlq`) implements it.

:mod:`pipeline.testing` has in-memory implementations of both, for unit tests of the loop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self

import pyarrow as pa

if TYPE_CHECKING:
    from datetime import datetime

    from pipeline.sinks.kafka_dlq import DeadLetter
    from pipeline.sources.contracts import PartitionOffset
    from pipeline.storage.roster import RosterRows


class CallHistoryStore(Protocol):
    """Call history storage. ``write_call_history`` returns only once the write is durable."""

    def migrate(self) -> list[str]:
        """Apply DDL files not yet applied (idempotent); return the names applied now."""
        ...

    def execute(self, sql: str, parameters: Mapping[str, object] | None = None) -> None:
        """Run a statement that returns no rows (DDL, INSERT ... SELECT), with bound parameters."""
        ...

    def write_call_history(self, table: pa.Table) -> None:
        """Insert rated rows (the call-history schema); raise if the write was not acknowledged.

        Within the batch the last row of a CDR wins; a CDR whose start day changed gets a
        tombstone in its old day (see :mod:`pipeline.storage.moved_cdrs`).
        """
        ...

    def repair_moved_cdrs(self) -> int:
        """Write the tombstones missing for CDRs live in two days; return how many."""
        ...

    def write_roster(self, rows: RosterRows, loaded_at: datetime) -> bool:
        """Write a version's roster, recorded as loaded at ``loaded_at``; idempotent.

        False when there was nothing to do (the version is written and already current); see
        :func:`pipeline.storage.roster.write_roster`.
        """
        ...

    def query(self, sql: str, parameters: Mapping[str, object] | None = None) -> pa.Table:
        """Run a SELECT with ``{name:Type}`` bound parameters and return the result as Arrow."""
        ...

    def close(self) -> None:
        """Release the connection or engine."""
        ...


class BatchCommitter(Protocol):
    """Dead letters and consumer offsets of one batch, committed atomically.

    Per batch: :meth:`begin`, :meth:`send` the dead letters (acknowledged before the batch's
    call history is written), then :meth:`commit` the offsets; :meth:`abort` on any failure in
    between, after which none of the batch's dead letters or offsets count.
    """

    def start(self) -> None:
        """Connect (fencing any earlier instance of this committer)."""
        ...

    def begin(self) -> None:
        """Open the batch's transaction."""
        ...

    def send(self, dead_letters: Sequence[DeadLetter]) -> None:
        """Write the dead letters in the open transaction; return once they are acknowledged.

        Raises :class:`pipeline.sinks.kafka_dlq.DeadLetterError`, ``permanent`` when retrying
        cannot help.
        """
        ...

    def commit(self, offsets: Sequence[PartitionOffset], group_metadata: object) -> None:
        """Add the offsets (for the group ``group_metadata`` names) and commit the transaction.

        Raises :class:`pipeline.sinks.kafka_dlq.TransactionAbortedError` when the transaction
        was aborted instead (nothing of it counts; the batch is to be consumed again).
        """
        ...

    def abort(self) -> None:
        """Abort the open transaction, if any."""
        ...

    def close(self) -> None:
        """Abort what is open and release the connection."""
        ...


class OpenedStore:
    """Context-manager behaviour shared by the stores: ``with Store(...) as s`` opens and closes."""

    def open(self) -> Self:
        """Connect or start the engine; subclasses implement."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the connection or engine; subclasses implement."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        """Open on entry."""
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close on exit."""
        self.close()
