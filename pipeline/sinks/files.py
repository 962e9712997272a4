"""File sinks: call history as Parquet, rejected lines as a JSONL dead-letter file."""

from __future__ import annotations

import json
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


class ParquetCallHistory:
    """Appends rated batches to one Parquet file (amounts as decimal columns).

    The file is written under a temporary name and renamed into place by :meth:`close`, so a
    crash never leaves a truncated file where a complete one is expected.
    """

    def __init__(self, path: Path) -> None:
        """Remember the target; nothing is opened until the first write."""
        self.path = path
        self._partial = path.with_name(path.name + ".partial")
        self._writer: pq.ParquetWriter | None = None
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        """Append a batch."""
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(
                self._partial,
                CALL_HISTORY_SCHEMA,
                compression="zstd",
                use_dictionary=_DICTIONARY_COLUMNS,
            )
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        """Finish the file (an empty one if nothing was written) and move it into place."""
        if self._writer is None:
            self.write(CALL_HISTORY_SCHEMA.empty_table())
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
        elif self._writer is not None:
            self._writer.close()
            self._partial.unlink(missing_ok=True)


class DeadLetterFile:
    """Rejected lines as JSONL: ``{"line", "reason", "detail", "original"}`` per line."""

    def __init__(self, path: Path) -> None:
        """Create (truncate) the file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._handle = path.open("w", encoding="utf-8")
        self.rows = 0

    def write(self, rejected: pl.DataFrame, line_numbers: list[int], lines: list[bytes]) -> None:
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
