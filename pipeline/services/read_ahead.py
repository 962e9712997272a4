"""A CDR file read and decoded by threads of their own, a few batches ahead of rating.

Offline ``rate`` has four stages per batch: read and screen (the file's lines into one buffer,
the screen of hostile messages), parse and check (polars' JSON reader, the field checks), rate
(the engine, on the caller's thread), write (Parquet, on the writer's own thread). They hold
the GIL only between native calls, so the stages of four batches run on the two cores at once.
:class:`ReadAhead` is the first two stages: started before the plans folder is loaded, it has
the first batches decoded by the time the reference data is ready. At most ``depth`` batches
wait after each stage, so memory is bounded whatever the file's size.

What reaches the consumer is exactly what a loop reading and decoding in turn would have seen:
each batch, in order, with its :class:`~pipeline.rating.decode.DecodedBatch`, or the exception
decoding raised (the rater then isolates the message at fault, see
:func:`pipeline.rating.messages.rate_decoded`). An error reading the file is raised by the
iterator, after the batches read before it. :meth:`ReadAhead.close` stops the threads early.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from types import TracebackType
from typing import Generic, TypeVar

from pipeline.rating.decode import DecodedBatch, decode_cdrs, screen_out
from pipeline.sources.files import FileRange, LineBatch, read_jsonl_batches

#: Batches that may wait after each stage (each ~100,000 CDRs, ~100 MB at most decoded).
DEFAULT_DEPTH = 2
_POLL_S = 0.1  # how often a blocked thread looks whether it was told to stop

In = TypeVar("In")
Out = TypeVar("Out")
Screened = list[tuple[int, str, str]] | Exception
Decoded = DecodedBatch | Exception


class _End:
    """The last item of a stage: its input ended (``error`` None) or failed with ``error``."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class _Stage(Generic[In, Out]):
    """A thread turning each ``(batch, x)`` of its input into ``(batch, work(batch, x))``.

    ``work`` failing gives its exception as the result (the rater isolates the message at
    fault); the input failing ends the stage with that error, raised by :meth:`__iter__`.
    """

    def __init__(
        self,
        name: str,
        source: Iterator[tuple[LineBatch, In]],
        work: Callable[[LineBatch, In], Out],
        depth: int,
        stop: threading.Event,
    ) -> None:
        self._source, self._work, self._stop = source, work, stop
        self._queue: queue.Queue[tuple[LineBatch, Out | Exception] | _End] = queue.Queue(depth)
        self.thread = threading.Thread(target=self._produce, name=name, daemon=True)
        self.thread.start()

    def _put(self, item: tuple[LineBatch, Out | Exception] | _End) -> bool:
        """Queue ``item``, waiting for room; False when told to stop meanwhile."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
            except queue.Full:
                continue
            return True
        return False

    def _produce(self) -> None:
        try:
            for batch, given in self._source:
                if self._stop.is_set():
                    return
                result: Out | Exception
                try:
                    result = self._work(batch, given)
                except Exception as exc:  # the rater isolates the message at fault
                    result = exc
                if not self._put((batch, result)):
                    return
        except BaseException as exc:  # the input failed: the consumer raises it
            self._put(_End(exc))
            return
        self._put(_End(None))

    def __iter__(self) -> Iterator[tuple[LineBatch, Out | Exception]]:
        """Each result, in input order; raises what the input raised."""
        while True:
            item = self._queue.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item


def _screen(batch: LineBatch, _: None) -> list[tuple[int, str, str]]:
    return screen_out(batch.lines)


def _decode(batch: LineBatch, screened: Screened) -> DecodedBatch:
    if isinstance(screened, Exception):
        raise screened
    return decode_cdrs(batch.lines, screened)


class ReadAhead:
    """Batches of ``path`` with their decoding, produced by two background threads.

    The first thread reads the file and screens each batch (:func:`screen_out`), the second
    parses and checks it (:func:`decode_cdrs`): with rating on the main thread and the Parquet
    writer on its own, the stages of four batches run at once. Iterate once; use as a context
    manager (or call :meth:`close`) so the threads stop when the consumer stops early.
    """

    def __init__(
        self,
        path: Path,
        batch_size: int,
        part: FileRange | None = None,
        depth: int = DEFAULT_DEPTH,
    ) -> None:
        """Start reading and decoding at once."""
        self._batches: Generator[LineBatch] = read_jsonl_batches(path, batch_size, part)
        self._stop = threading.Event()
        plain = ((batch, None) for batch in self._batches)
        screening = _Stage("read-ahead", plain, _screen, depth, self._stop)
        self._decoding = _Stage("decode-ahead", iter(screening), _decode, depth, self._stop)
        self._threads = (screening.thread, self._decoding.thread)

    def __iter__(self) -> Iterator[tuple[LineBatch, Decoded]]:
        """Each batch and its decoding, in file order; raises what reading the file raised."""
        return iter(self._decoding)

    def close(self) -> None:
        """Stop the threads (each finishes the batch in hand) and wait for them."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self._batches.close()

    def __enter__(self) -> ReadAhead:
        """The reader itself."""
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the threads."""
        self.close()
