"""JSONL CDR files read in batches, each message with its 1-based line number."""

from __future__ import annotations

import itertools
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, eq=False)
class LineBatch:
    """Non-blank lines of a file, in order, with their 1-based line numbers."""

    line_numbers: list[int]
    lines: list[bytes]
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


def read_jsonl_batches(
    path: Path, batch_size: int, part: FileRange | None = None
) -> Generator[LineBatch]:
    """Yield batches of at most ``batch_size`` non-blank lines; blank lines carry no CDR.

    With ``part``, only the lines of that range, numbered as in the whole file. Lines end at a
    line feed; trailing carriage returns are dropped; a line of only whitespace is blank.
    The file is read in large blocks and split in C; only blank-line checks run per line.
    """
    if batch_size < 1:
        msg = f"batch_size must be at least 1, got {batch_size}"
        raise ValueError(msg)
    numbers: list[int] = []
    lines: list[bytes] = []
    blank = 0
    start, end, number = (part.start, part.end, part.first_line) if part else (0, None, 1)
    with path.open("rb") as handle:
        handle.seek(start)
        remaining = None if end is None else end - start
        pending = b""
        while True:
            want = _BLOCK_BYTES if remaining is None else min(_BLOCK_BYTES, remaining)
            block = handle.read(want) if want > 0 else b""
            if remaining is not None:
                remaining -= len(block)
            at_end = not block
            data = pending + block
            if at_end:
                if not data:
                    break
                pending = b""
                complete = data
            else:
                cut = data.rfind(b"\n")
                if cut < 0:
                    pending = data
                    continue
                complete, pending = data[:cut], data[cut + 1 :]
            pieces = complete.split(b"\n")
            if b"\r" in complete:
                pieces = [p.rstrip(b"\r") for p in pieces]
            if any(not p or p[:1].isspace() for p in pieces):
                kept = [(number + i, p) for i, p in enumerate(pieces) if p.strip()]
                blank += len(pieces) - len(kept)
                block_numbers = [n for n, _ in kept]
                block_lines = [p for _, p in kept]
            else:
                block_numbers = list(range(number, number + len(pieces)))
                block_lines = pieces
            taken = 0
            while taken < len(block_lines):
                room = batch_size - len(lines)
                numbers.extend(block_numbers[taken : taken + room])
                lines.extend(block_lines[taken : taken + room])
                taken += room
                if len(lines) >= batch_size:
                    yield LineBatch(numbers, lines, blank)
                    numbers, lines, blank = [], [], 0
            number += len(pieces)
            if at_end:
                break
    if lines or blank:
        yield LineBatch(numbers, lines, blank)
