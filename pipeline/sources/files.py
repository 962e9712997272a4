"""JSONL CDR files read in batches, each message with its 1-based line number."""

from __future__ import annotations

import itertools
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
    with path.open("rb") as handle:
        handle.seek(start)
        remaining = None if end is None else end - start
        pending = b""  # bytes after the last line handed out
        blanks = 0  # blank lines passed but not yet counted in a batch
        exhausted = False
        while True:
            chunks, breaks = [pending], _line_feeds(pending)
            while breaks < batch_size and not exhausted:  # a batch's line breaks, or the end
                want = _BLOCK_BYTES if remaining is None else min(_BLOCK_BYTES, remaining)
                block = handle.read(want) if want > 0 else b""
                if not block:
                    exhausted = True
                    break
                if remaining is not None:
                    remaining -= len(block)
                chunks.append(block)
                breaks += _line_feeds(block)
            data = b"".join(chunks) if len(chunks) > 1 else pending
            batch, pending, number, blanks = _cut(data, number, batch_size, exhausted, blanks)
            if batch is not None:
                yield batch
            if exhausted and not pending:
                return


def _line_feeds(data: bytes) -> int:
    """How many line feeds (numpy counts them at twice the speed of ``bytes.count``)."""
    return int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == _LINE_FEED))


def _cut(
    data: bytes, number: int, batch_size: int, at_end: bool, blanks: int
) -> tuple[LineBatch | None, bytes, int, int]:
    """The batch at the head of ``data``; the bytes after it, the next line's number, blanks.

    ``number`` is the number of ``data``'s first line, ``blanks`` the blank lines passed since
    the last batch. The batch has ``batch_size`` non-blank lines, or all the complete lines of
    ``data`` when it has fewer (with ``at_end``, the last line may lack its line feed, and the
    batch is made even without a line when blanks are left to count). None while no line is
    left to hand out: the blank lines are carried to the next batch.
    """
    array = np.frombuffer(data, dtype=np.uint8)
    feeds = np.flatnonzero(array == _LINE_FEED)
    if at_end and len(data) and (not len(feeds) or feeds[-1] != len(data) - 1):
        feeds = np.append(feeds, len(data))  # the last line, without its line feed
    ends = feeds.astype(np.int64)
    starts = np.concatenate([np.zeros(1, dtype=np.int64), ends[:-1] + 1])[: len(ends)]
    # Trailing carriage returns off; a line is blank when only whitespace is left.
    while len(crs := np.flatnonzero((ends > starts) & (array[ends - 1] == _CARRIAGE_RETURN))):
        ends[crs] -= 1
    first = array[np.minimum(starts, max(len(array) - 1, 0))] if len(array) else starts
    maybe_blank = np.flatnonzero((ends == starts) | _WHITESPACE[first])
    blank = np.zeros(len(ends), dtype=np.bool_)
    for i in maybe_blank.tolist():
        blank[i] = not data[starts[i] : ends[i]].strip()
    kept = np.flatnonzero(~blank)
    taken = len(ends)
    if len(kept) > batch_size:
        taken = int(kept[batch_size])  # up to the next batch's first line
        kept = kept[:batch_size]
    rest = data[int(feeds[taken - 1]) + 1 :] if taken else data
    blanks += taken - len(kept)
    if not len(kept) and not (at_end and not rest and blanks):
        return None, rest, number + taken, blanks
    batch = LineBatch(
        (number + kept).tolist(), MessageBlock(data, starts[kept], ends[kept]), blanks
    )
    return batch, rest, number + taken, 0
