"""JSONL CDR files read in batches, each message with its 1-based line number."""

from __future__ import annotations

import itertools
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from io import FileIO
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from pipeline.rating.message_block import MessageBlock


@dataclass(frozen=True, eq=False)
class LineBatch:
    """Non-blank lines of a file, in order, with their 1-based line numbers."""

    line_numbers: list[int]
    lines: Sequence[bytes]  # a MessageBlock when read from a file
    blank_lines: int  # blank lines skipped while reading this batch


@dataclass(frozen=True)
class FileRange:
    """Bytes ``[start, end)`` of a file, whole lines, the first of them line ``first_line``."""

    start: int
    end: int
    first_line: int


def line_ranges(path: Path, parts: int) -> list[FileRange]:
    """Cut a file into about ``parts`` ranges of whole lines (for rating them in parallel)."""
    size = path.stat().st_size
    cuts = [0]
    with path.open("rb") as handle:
        for k in range(1, parts):
            target = max(cuts[-1], size * k // parts)
            handle.seek(target)
            if target > 0:
                handle.seek(target - 1)
                handle.readline()  # to the start of the next line
            position = handle.tell()
            if position > cuts[-1] and position < size:
                cuts.append(position)
        cuts.append(size)
        ranges: list[FileRange] = []
        line = 1
        handle.seek(0)
        for start, end in itertools.pairwise(cuts):
            ranges.append(FileRange(start, end, line))
            remaining = end - start
            while remaining:
                chunk = handle.read(min(remaining, 1 << 24))
                line += chunk.count(b"\n")
                remaining -= len(chunk)
    return ranges


_BLOCK_BYTES = 1 << 24
_WHITESPACE = np.zeros(256, dtype=np.bool_)
_WHITESPACE[list(b" \t\n\r\x0b\x0c")] = True  # what bytes.isspace() and strip() take
_LINE_FEED, _CARRIAGE_RETURN = 10, 13
Bytes = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]


def read_jsonl_batches(
    path: Path, batch_size: int, part: FileRange | None = None
) -> Generator[LineBatch]:
    """Yield batches of at most ``batch_size`` non-blank lines; blank lines carry no CDR.

    With ``part``, only the lines of that range, numbered as in the whole file. Lines end at a
    line feed; trailing carriage returns are dropped; a line of only whitespace is blank.
    The file is read in large blocks, and each batch's lines stay in one buffer
    (:class:`~pipeline.rating.message_block.MessageBlock`): line breaks are found with numpy,
    and no line is copied on its own.
    """
    if batch_size < 1:
        msg = f"batch_size must be at least 1, got {batch_size}"
        raise ValueError(msg)
    start, end, number = (part.start, part.end, part.first_line) if part else (0, None, 1)
    with path.open("rb", buffering=0) as handle:
        handle.seek(start)
        remaining = None if end is None else end - start
        pending = b""  # bytes after the last line handed out
        blanks = 0  # blank lines passed but not yet counted in a batch
        exhausted = False
        line_bytes = 0  # bytes per line seen so far, once known: a batch is read in one go
        while True:
            size = batch_size * line_bytes * 9 // 8 if line_bytes else _BLOCK_BYTES
            data, feeds, exhausted = _fill(handle, pending, batch_size, size, remaining, exhausted)
            if remaining is not None:
                remaining -= len(data) - len(pending)
            batch, pending, taken, blanks = _cut(data, feeds, number, batch_size, exhausted, blanks)
            if taken:
                line_bytes = max(line_bytes, (len(data) - len(pending)) // taken + 1)
            number += taken
            if batch is not None:
                yield batch
            if exhausted and not pending:
                return


def _fill(
    handle: FileIO,
    pending: bytes,
    batch_size: int,
    size: int,
    remaining: int | None,
    exhausted: bool,
) -> tuple[Bytes, I64, bool]:
    """``pending`` and what follows it in the file, up to a batch's line feeds or the end.

    Read into one buffer of about ``size`` bytes more, not initialised first (so a batch's
    bytes are written once, by the read, and not copied again to join blocks); it doubles
    when the lines turn out longer. Returns the filled part, where its line feeds are (each
    byte looked at once), and whether the file (or range) is exhausted.
    """
    buffer = _empty(len(pending) + max(size, 1))
    buffer[: len(pending)] = np.frombuffer(pending, dtype=np.uint8)
    filled = len(pending)
    feeds = [_line_feeds(buffer[:filled], 0)]
    breaks = len(feeds[0])
    while breaks < batch_size and not exhausted:
        if filled == len(buffer):  # doubled: a line of any length costs linear time
            grown = _empty(max(2 * len(buffer), len(buffer) + _BLOCK_BYTES))
            grown[: len(buffer)] = buffer
            buffer = grown
        room = len(buffer) - filled
        if remaining is not None:
            room = min(room, remaining - (filled - len(pending)))
        if room <= 0:
            exhausted = True
            break
        read = handle.readinto(buffer[filled : filled + room].data)
        if not read:
            exhausted = True
            break
        feeds.append(_line_feeds(buffer[filled : filled + read], filled))
        breaks += len(feeds[-1])
        filled += read
    return buffer[:filled], np.concatenate(feeds), exhausted


def _empty(size: int) -> Bytes:
    """``size`` bytes, not initialised, from Arrow's memory pool.

    The pool keeps and reuses what batches free (the C library gives buffers this large back
    to the system at once, and zeroes fresh ones page by page on first touch: a fifth of the
    command's time went to that).
    """
    return np.frombuffer(pa.allocate_buffer(size), dtype=np.uint8)


def _line_feeds(data: Bytes, offset: int) -> I64:
    """Where the line feeds of ``data`` are, plus ``offset``."""
    return np.flatnonzero(data == _LINE_FEED).astype(np.int64) + offset


def _cut(
    data: Bytes, feeds: I64, number: int, batch_size: int, at_end: bool, blanks: int
) -> tuple[LineBatch | None, bytes, int, int]:
    """The batch at the head of ``data``; the bytes after it, the lines taken, blanks.

    ``feeds`` are where its line feeds are, ``number`` is the number of its first line,
    ``blanks`` the blank lines passed since the last batch. The batch has ``batch_size``
    non-blank lines, or all the complete lines of ``data`` when it has fewer (with ``at_end``,
    the last line may lack its line feed, and the batch is made even without a line when
    blanks are left to count). None while no line is left to hand out: the blank lines are
    carried to the next batch.
    """
    if at_end and len(data) and (not len(feeds) or feeds[-1] != len(data) - 1):
        feeds = np.append(feeds, len(data))  # the last line, without its line feed
    ends = feeds.astype(np.int64)
    starts = np.concatenate([np.zeros(1, dtype=np.int64), ends[:-1] + 1])[: len(ends)]
    # Trailing carriage returns off; a line is blank when only whitespace is left.
    while len(crs := np.flatnonzero((ends > starts) & (data[ends - 1] == _CARRIAGE_RETURN))):
        ends[crs] -= 1
    first = data[np.minimum(starts, max(len(data) - 1, 0))] if len(data) else starts
    maybe_blank = np.flatnonzero((ends == starts) | _WHITESPACE[first])
    blank = np.zeros(len(ends), dtype=np.bool_)
    for i in maybe_blank.tolist():
        blank[i] = not data[starts[i] : ends[i]].tobytes().strip()
    kept = np.flatnonzero(~blank)
    taken = len(ends)
    if len(kept) > batch_size:
        taken = int(kept[batch_size])  # up to the next batch's first line
        kept = kept[:batch_size]
    rest = (data[int(feeds[taken - 1]) + 1 :] if taken else data).tobytes()
    blanks += taken - len(kept)
    if not len(kept) and not (at_end and not rest and blanks):
        return None, rest, taken, blanks
    batch = LineBatch(
        (number + kept).tolist(), MessageBlock(data, starts[kept], ends[kept]), blanks
    )
    return batch, rest, taken, 0
