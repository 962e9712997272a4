"""JSONL CDR files read in batches, each message with its 1-based line number."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, eq=False)
class LineBatch:
    """Non-blank lines of a file, in order, with their 1-based line numbers."""

    line_numbers: list[int]
    lines: list[bytes]
    blank_lines: int  # blank lines skipped while reading this batch


def read_jsonl_batches(path: Path, batch_size: int) -> Iterator[LineBatch]:
    """Yield batches of at most ``batch_size`` non-blank lines; blank lines carry no CDR."""
    if batch_size < 1:
        msg = f"batch_size must be at least 1, got {batch_size}"
        raise ValueError(msg)
    numbers: list[int] = []
    lines: list[bytes] = []
    blank = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                blank += 1
                continue
            numbers.append(number)
            lines.append(line)
            if len(lines) >= batch_size:
                yield LineBatch(numbers, lines, blank)
                numbers, lines, blank = [], [], 0
    if lines or blank:
        yield LineBatch(numbers, lines, blank)
