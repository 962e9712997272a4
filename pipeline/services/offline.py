"""Offline rating: a JSONL file of CDRs rated against a plans folder, into files and a store.

This is the ``rate`` command's engine and the embedded default of the pipeline: the same decode,
rating core and store as the Kafka rater, with a file as the source.
"""

from __future__ import annotations

import multiprocessing
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from pipeline.config import RATE_BATCH_SIZE
from pipeline.progress import Progress
from pipeline.rating.messages import rate_decoded
from pipeline.rating.reference import ReferenceData
from pipeline.services.outcomes import Outcomes
from pipeline.services.read_ahead import ReadAhead
from pipeline.sinks.contracts import CallHistoryStore
from pipeline.sinks.files import DeadLetterFile, ParquetCallHistory
from pipeline.sources.files import FileRange, line_ranges
from pipeline.storage.roster import RosterRows, roster_rows


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
    batch_size: int = RATE_BATCH_SIZE,
    progress: Progress | None = None,
    part: FileRange | None = None,
    ahead: ReadAhead | None = None,
) -> RatingSummary:
    """Rate every line of ``cdrs``; rated rows to ``out`` (and ``store``), rejected to ``dlq``.

    With ``part``, only that range of the file's lines (numbered as in the whole file). With a
    ``store``, the reference data's roster is written to it first, loaded at ``rated_at``
    (idempotent: see :func:`pipeline.storage.roster.write_roster`). The file is read and
    decoded a few batches ahead on a thread of its own (:class:`ReadAhead`), so decoding and
    rating share the two cores; ``ahead``, when given, is that reader already started (by the
    caller, on the same file, range and batch size, before it loaded the plans folder).
    """
    if store is not None:
        store.write_roster(roster_rows(reference), rated_at)
    summary = RatingSummary()
    started = time.perf_counter()
    ids: list[pl.Series] = []
    dead = DeadLetterFile(dlq)
    reader = ahead if ahead is not None else ReadAhead(cdrs, batch_size, part)
    try:
        with reader, ParquetCallHistory(out) as parquet:
            for batch, decoded in reader:
                summary.blank_lines += batch.blank_lines
                summary.lines_read += len(batch.lines) + batch.blank_lines
                rated = rate_decoded(batch.lines, decoded, reference, rated_at)
                table = rated.table
                if store is not None:
                    store.write_call_history(table)
                parquet.write(table)
                dead.write(rated.rejected, batch.line_numbers, batch.lines)
                summary.add(table, rated.rejected)
                ids.append(pl.Series(table.column("cdr_id")))
                if progress:
                    progress.update(summary.lines_read)
    finally:
        dead.close()
    return _finished(summary, ids, started, progress)


def rate_file_in_parallel(
    plans: Path,
    cdrs: Path,
    out: Path,
    dlq: Path,
    rated_at: datetime,
    jobs: int,
    store: CallHistoryStore | None = None,
    batch_size: int = RATE_BATCH_SIZE,
    progress: Progress | None = None,
) -> RatingSummary:
    """Rate the file with ``jobs`` processes, one range of whole lines each; same outputs.

    Each process loads the plans folder itself (memory: ``jobs`` copies of the reference
    data) and writes its own Parquet and dead-letter parts; they are joined in line order
    into ``out`` and ``dlq``, and written to ``store`` from this process (an embedded store
    belongs to one process). Rows, rejects and line numbers are those of :func:`rate_file`.
    """
    started = time.perf_counter()
    ranges = line_ranges(cdrs, jobs)
    parts_dir = out.with_name(out.name + ".parts")
    parts_dir.mkdir(parents=True, exist_ok=True)
    summary = RatingSummary()
    try:
        context = multiprocessing.get_context("spawn")  # polars and chdb must not be forked
        with ProcessPoolExecutor(max_workers=len(ranges), mp_context=context) as pool:
            futures = [
                pool.submit(
                    _rate_part,
                    plans,
                    cdrs,
                    part,
                    parts_dir / f"{n:03d}.parquet",
                    parts_dir / f"{n:03d}.dlq.jsonl",
                    rated_at,
                    batch_size,
                    store is not None and n == 0,
                )
                for n, part in enumerate(ranges)
            ]
            results = []
            for future in futures:
                result, roster = future.result()
                results.append(result)
                if roster is not None and store is not None:
                    store.write_roster(roster, rated_at)  # before any call history
        ids: list[pl.Series] = []
        with ParquetCallHistory(out) as parquet, dlq.open("wb") as dead:
            for n, result in enumerate(results):
                summary.merge(result)
                summary.lines_read += result.lines_read
                summary.blank_lines += result.blank_lines
                table = pq.read_table(parts_dir / f"{n:03d}.parquet")
                if store is not None:
                    store.write_call_history(table)
                parquet.write(table)
                ids.append(pl.Series(table.column("cdr_id")))
                dead.write((parts_dir / f"{n:03d}.dlq.jsonl").read_bytes())
                if progress:
                    progress.update(summary.lines_read)
    finally:
        shutil.rmtree(parts_dir, ignore_errors=True)
    return _finished(summary, ids, started, progress)


def _finished(
    summary: RatingSummary, ids: list[pl.Series], started: float, progress: Progress | None
) -> RatingSummary:
    """Count duplicate cdr_ids over the whole run, stamp the time, show the last progress."""
    if ids:
        all_ids = pl.concat(ids)
        summary.duplicate_cdr_ids = all_ids.len() - all_ids.n_unique()
    summary.seconds = time.perf_counter() - started
    if progress:
        progress.update(summary.lines_read, final=True)
    return summary


def _rate_part(
    plans: Path,
    cdrs: Path,
    part: FileRange,
    out: Path,
    dlq: Path,
    rated_at: datetime,
    batch_size: int,
    with_roster: bool,
) -> tuple[RatingSummary, RosterRows | None]:
    """Rate one range; with ``with_roster``, also return the roster rows to store."""
    from pipeline.reference.loader import load_plans_folder

    reference = load_plans_folder(plans)
    summary = rate_file(reference, cdrs, out, dlq, rated_at, batch_size=batch_size, part=part)
    return summary, roster_rows(reference) if with_roster else None
