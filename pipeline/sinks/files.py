"""File sinks: call history as Parquet, rejected lines as a JSONL dead-letter file."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.rating.columns import CALL_HISTORY_SCHEMA

# Ids, numbers and instants are (nearly) unique per row: dictionary-encoding them costs time and
# space for nothing. Tenants, accounts, plans, prefixes, rates and currencies repeat.
_UNIQUE_PER_ROW = {
    "cdr_id",
    "session_id",
    "caller",
    "callee",
    "start_time",
    "answer_time",
    "end_time",
    "duration_ms",
}
_DICTIONARY_COLUMNS = [n for n in CALL_HISTORY_SCHEMA.names if n not in _UNIQUE_PER_ROW]


# Chosen by measurement on 594,000 rated rows (benchmarks/RESULTS.md, "Issue 17: the rate
# command"): zstd at its default level 1 with dictionaries on the repeating columns writes in
# about the CPU time of lz4 or snappy and gives files 35-40% smaller; level 3 costs 20% more
# CPU for nothing; dictionaries on every column cost more and grow the file.
_COMPRESSION = "zstd"
# Min/max statistics where a reader filters (who, when, what became of the call): the others
# (ids, numbers, prices, per-leg texts) are never filtered on by range, and their statistics
# cost a sixth of the writer's CPU (0.81 -> 0.69 CPU s for 594,000 rows, same file size).
_STATISTICS_COLUMNS = [
    "tenant_id",
    "customer_id",
    "client_id",
    "reseller_id",
    "start_time",
    "end_time",
    "status",
    "rated_at",
    "reference_version",
]
_QUEUED_BATCHES = 2  # batches waiting for the writer thread; rating waits when it is full


class ParquetCallHistory:
    """Appends rated batches to one Parquet file (amounts as decimal columns).

    The file is written under a temporary name and renamed into place by :meth:`close`, so a
    crash never leaves a truncated file where a complete one is expected. With ``background``
    (the default), batches are encoded and written by a thread of their own (pyarrow releases
    the GIL while it compresses), so the next batch is rated on the other core meanwhile; at
    most ``_QUEUED_BATCHES`` wait, and a write error is raised by the next :meth:`write` or by
    :meth:`close`, and again by every later call: :meth:`close` then drops the partial file
    and never publishes one missing a batch. The file's bytes do not depend on ``background``.
    """

    def __init__(self, path: Path, *, background: bool = True) -> None:
        """Remember the target; nothing is opened until the first write."""
        self.path = path
        self._partial = path.with_name(path.name + ".partial")
        self._writer: pq.ParquetWriter | None = None
        self._background = background
        self._queue: queue.Queue[pa.Table | None] = queue.Queue(maxsize=_QUEUED_BATCHES)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        """Append a batch (in the background: queue it, waiting while the queue is full)."""
        self._raise_if_failed()
        if not self._background:
            self._write_now(table)
        else:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._drain, name="parquet-writer", daemon=True
                )
                self._thread.start()
            self._queue.put(table)
        self.rows += table.num_rows

    def _write_now(self, table: pa.Table) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(
                self._partial,
                CALL_HISTORY_SCHEMA,
                compression=_COMPRESSION,
                use_dictionary=_DICTIONARY_COLUMNS,
                write_statistics=_STATISTICS_COLUMNS,
            )
        self._writer.write_table(table)

    def _drain(self) -> None:
        """The writer thread: write queued batches until ``None``; keep the first error."""
        while (table := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._write_now(table)
                except BaseException as exc:  # handed to the caller by write() or close()
                    self._error = exc

    def _stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _raise_if_failed(self) -> None:
        if self._error is not None:  # kept: a later call must not go on as if nothing failed
            raise self._error

    def _discard(self) -> None:
        """Close the writer, if open, and remove the partial file."""
        writer, self._writer = self._writer, None
        try:
            if writer is not None:
                writer.close()
        finally:
            self._partial.unlink(missing_ok=True)

    def close(self) -> None:
        """Finish the file (an empty one if nothing was written) and move it into place.

        After a write error of the background writer: drop the partial file and raise it.
        """
        self._stop()
        if self._error is not None:
            self._discard()
            raise self._error
        if self._writer is None:
            self._write_now(CALL_HISTORY_SCHEMA.empty_table())
        assert self._writer is not None
        self._writer.close()
        self._partial.replace(self.path)

    def __enter__(self) -> ParquetCallHistory:
        """Use as a context manager; the file is completed on normal exit only."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Complete the file, or drop the partial one if the block failed."""
        if exc_type is None:
            self.close()
            return
        self._stop()
        self._discard()


class DeadLetterFile:
    """Rejected lines as JSONL: ``{"line", "reason", "detail", "original"}`` per line."""

    def __init__(self, path: Path) -> None:
        """Create (truncate) the file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._handle = path.open("w", encoding="utf-8")
        self.rows = 0

    def write(
        self, rejected: pl.DataFrame, line_numbers: Sequence[int], lines: Sequence[bytes]
    ) -> None:
        """Write rejected rows; ``position`` indexes ``line_numbers`` and ``lines``."""
        for position, reason, detail in rejected.select("position", "reason", "detail").iter_rows():
            record = {
                "line": line_numbers[position],
                "reason": reason,
                "detail": detail,
                "original": lines[position].decode("utf-8", errors="backslashreplace"),
            }
            self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            self.rows += 1

    def close(self) -> None:
        """Flush and close."""
        self._handle.close()
