"""Messages that are lines of one buffer: a file's batch, decoded without a copy per message.

A JSONL file is read in large blocks. Cutting a block into one ``bytes`` object per line, and
joining them again for polars' JSON reader, cost about a fifth of decoding. A
:class:`MessageBlock` keeps the block and where each message starts and ends in it instead:
decoding reads the whole batch, or every run of adjacent messages, as one slice
(:meth:`MessageBlock.joined`), and the screen sees the block as one Arrow column
(:meth:`MessageBlock.with_line_feeds`). Anything else sees a sequence of ``bytes``: message
``i`` is ``block[i]``, made when asked for.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import overload

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa

I64 = npt.NDArray[np.int64]
_LINE_FEED = 10


class MessageBlock(Sequence[bytes]):
    """Message ``i`` is ``data[starts[i]:ends[i]]``; messages are in order and do not overlap.

    Nothing is assumed of what lies between messages: :meth:`joined` and
    :meth:`with_line_feeds` slice the buffer only where one line feed separates two messages.
    """

    __slots__ = ("_view", "data", "ends", "starts")

    def __init__(self, data: bytes | npt.NDArray[np.uint8], starts: I64, ends: I64) -> None:
        """The messages ``data[starts[i]:ends[i]]``."""
        if len(starts) != len(ends):
            msg = f"{len(starts)} starts but {len(ends)} ends"
            raise ValueError(msg)
        self.data = data
        self.starts = starts
        self.ends = ends
        self._view = memoryview(data) if isinstance(data, bytes) else data.data

    def __len__(self) -> int:
        """How many messages."""
        return len(self.starts)

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> MessageBlock: ...

    def __getitem__(self, index: int | slice) -> bytes | MessageBlock:
        """Message ``index`` as bytes; a slice as a block of the same buffer."""
        if isinstance(index, slice):
            return MessageBlock(self.data, self.starts[index], self.ends[index])
        return self._view[self.starts[index] : self.ends[index]].tobytes()

    def __iter__(self) -> Iterator[bytes]:
        """Each message as bytes."""
        view = self._view
        for start, end in zip(self.starts.tolist(), self.ends.tolist(), strict=True):
            yield view[start:end].tobytes()

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same messages."""
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]  # mutable buffer views are not keys

    def __repr__(self) -> str:
        """Short: how many messages, how many bytes."""
        return f"MessageBlock({len(self)} messages, {len(self.data)} bytes)"

    def lengths(self) -> I64:
        """Each message's length in bytes."""
        return self.ends - self.starts

    def take(self, positions: Sequence[int] | npt.NDArray[np.intp]) -> MessageBlock:
        """The messages at ``positions`` (in that order), from the same buffer."""
        index = np.asarray(positions, dtype=np.intp)
        return MessageBlock(self.data, self.starts[index], self.ends[index])

    def joined(self) -> bytes:
        """The messages joined by line feeds, as a join would; one slice per run.

        A run is messages that follow each other with exactly one line feed between them;
        a whole clean batch of a file is one run, so this is one copy of it.
        """
        if not len(self):
            return b""
        starts, ends = self.starts, self.ends
        data = self.data
        feed = np.frombuffer(data, dtype=np.uint8)[np.minimum(ends[:-1], len(data) - 1)]
        breaks = np.flatnonzero((starts[1:] != ends[:-1] + 1) | (feed != _LINE_FEED))
        if len(breaks) > len(self) // 4:  # mostly single messages: join them as they are
            return b"\n".join(self)
        run_starts = [int(starts[0]), *starts[breaks + 1].tolist()]
        run_ends = [*ends[breaks].tolist(), int(ends[-1])]
        view = self._view
        if len(run_starts) == 1:
            return view[run_starts[0] : run_ends[0]].tobytes()
        return b"\n".join(view[s:e] for s, e in zip(run_starts, run_ends, strict=True))

    def with_line_feeds(self) -> pl.Series:
        """One binary value per message: the message and the line feed after it (not the last).

        Made without copying each message when the messages follow each other with one line
        feed between them, as in a file without blank lines or carriage returns; otherwise
        each value is built (the same values). A check that looks for content (a pattern
        needing a character other than whitespace after a match, a count of brackets) sees
        what it sees in the message alone. Lengths are :meth:`lengths`, not these values'.
        """
        starts, ends = self.starts, self.ends
        count = len(starts)
        if count and self._one_line_feed_between():
            offsets = np.concatenate([starts, ends[-1:]]).astype(np.int64)
            array = pa.LargeBinaryArray.from_buffers(
                pa.large_binary(), count, [None, pa.py_buffer(offsets), pa.py_buffer(self.data)]
            )
            return pl.Series("message", array)
        values = [message + b"\n" for message in self]
        if values:
            values[-1] = values[-1][:-1]
        return pl.Series("message", values, dtype=pl.Binary)

    def _one_line_feed_between(self) -> bool:
        """Whether each message but the last is followed by one line feed, then the next one."""
        starts, ends = self.starts, self.ends
        if len(starts) < 2:
            return True
        if not (starts[1:] == ends[:-1] + 1).all():
            return False
        return bool((np.frombuffer(self.data, dtype=np.uint8)[ends[:-1]] == _LINE_FEED).all())
