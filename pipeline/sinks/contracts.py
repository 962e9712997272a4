"""The seam between the pipeline and ClickHouse: one Protocol, two implementations.

:class:`CallHistoryStore` is what the runtime and the commands need of storage. The embedded
store (:mod:`pipeline.sinks.embedded`, chdb in a folder) and the server store (clickhouse-connect)
run the same DDL from ``schemas/clickhouse`` and the same SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Protocol, Self

import pyarrow as pa


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

    def query(self, sql: str, parameters: Mapping[str, object] | None = None) -> pa.Table:
        """Run a SELECT with ``{name:Type}`` bound parameters and return the result as Arrow."""
        ...

    def close(self) -> None:
        """Release the connection or engine."""
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
