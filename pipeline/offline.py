"""Offline rating: a JSONL file of CDRs rated against a plans folder, into files and a store.

This is the ``rate`` command's engine and the embedded default of the pipeline: the same decode,
rating core and store as the Kafka rater, with a file as the source.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl

from pipeline.outcomes import Outcomes
from pipeline.progress import Progress
from pipeline.rating.decode import decode_cdrs
from pipeline.rating.engine import rate_batch
from pipeline.rating.reference import ReferenceData
from pipeline.sinks.contracts import CallHistoryStore
from pipeline.sinks.files import DeadLetterFile, ParquetCallHistory
from pipeline.sources.files import read_jsonl_batches

DEFAULT_BATCH_SIZE = 100_000


@dataclass
class RatingSummary(Outcomes):
    """What a rating run did: counts by outcome and reason, and how long it took."""

    lines_read: int = 0
    blank_lines: int = 0
    duplicate_cdr_ids: int = 0
    seconds: float = 0.0

    def lines(self) -> list[str]:
        """The summary as printable lines."""
        rate = (self.rated + self.unrated + self.rejected) / self.seconds if self.seconds else 0.0
        out = [
            f"read      {self.lines_read:>10,} lines ({self.blank_lines:,} blank, skipped)",
            f"rated     {self.rated:>10,}",
            f"unrated   {self.unrated:>10,}",
        ]
        out += [f"  {reason:<30} {n:>8,}" for reason, n in sorted(self.unrated_by_reason.items())]
        out.append(f"rejected  {self.rejected:>10,}")
        out += [f"  {reason:<30} {n:>8,}" for reason, n in sorted(self.rejected_by_reason.items())]
        if self.duplicate_cdr_ids:
            out.append(
                f"duplicate cdr_id lines {self.duplicate_cdr_ids:,} "
                "(call history keeps one row per cdr_id)"
            )
        out.append(f"seconds   {self.seconds:>10.2f} ({rate:,.0f} CDR/s)")
        return out

    def as_dict(self) -> dict[str, object]:
        """The summary as JSON-ready data."""
        return {
            "lines_read": self.lines_read,
            "blank_lines": self.blank_lines,
            "rated": self.rated,
            "unrated": self.unrated,
            "rejected": self.rejected,
            "duplicate_cdr_ids": self.duplicate_cdr_ids,
            "unrated_by_reason": dict(self.unrated_by_reason),
            "rejected_by_reason": dict(self.rejected_by_reason),
            "seconds": round(self.seconds, 3),
        }


def rate_file(
    reference: ReferenceData,
    cdrs: Path,
    out: Path,
    dlq: Path,
    rated_at: datetime,
    store: CallHistoryStore | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> RatingSummary:
    """Rate every line of ``cdrs``; rated rows to ``out`` (and ``store``), rejected to ``dlq``."""
    summary = RatingSummary()
    started = time.perf_counter()
    ids: list[pl.Series] = []
    dead = DeadLetterFile(dlq)
    try:
        with ParquetCallHistory(out) as parquet:
            for batch in read_jsonl_batches(cdrs, batch_size):
                summary.blank_lines += batch.blank_lines
                summary.lines_read += len(batch.lines) + batch.blank_lines
                decoded = decode_cdrs(batch.lines)
                table = rate_batch(decoded.good, reference, rated_at)
                if store is not None:
                    store.write_call_history(table)
                parquet.write(table)
                dead.write(decoded.rejected, batch.line_numbers, batch.lines)
                summary.add(table, decoded.rejected)
                ids.append(decoded.good["cdr_id"])
                if progress:
                    progress.update(summary.lines_read)
    finally:
        dead.close()
    if ids:
        all_ids = pl.concat(ids)
        summary.duplicate_cdr_ids = all_ids.len() - all_ids.n_unique()
    summary.seconds = time.perf_counter() - started
    if progress:
        progress.update(summary.lines_read, final=True)
    return summary
