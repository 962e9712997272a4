"""A CDR file read and decoded on a thread of its own, a few batches ahead of rating.

Offline ``rate`` has three stages per batch: read and decode (the screen, polars' JSON reader,
the field checks), rate (the engine), write (Parquet, on the writer's own thread). They hold
the GIL only between native calls, so the decoding of the next batch runs on one core while the
current batch is rated on the other. :class:`ReadAhead` is the first stage: started before the
plans folder is loaded, it has the first batches decoded by the time the reference data is
ready. At most ``depth`` decoded batches wait, so memory is bounded whatever the file's size.

What reaches the consumer is exactly what a loop reading and decoding in turn would have seen:
each batch, in order, with its :class:`~pipeline.rating.decode.DecodedBatch`, or the exception
decoding raised (the rater then isolates the message at fault, see
:func:`pipeline.rating.messages.rate_decoded`). An error reading the file is raised by the
iterator, after the batches read before it. :meth:`ReadAhead.close` stops the thread early.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from pathlib import Path
from types import TracebackType

from pipeline.rating.decode import DecodedBatch, decode_cdrs
from pipeline.sources.files import FileRange, LineBatch, read_jsonl_batches

#: Decoded batches that may wait for the rater (each ~100,000 CDRs, ~100 MB at most decoded).
DEFAULT_DEPTH = 2
_POLL_S = 0.1  # how often a blocked thread looks whether it was told to stop

Decoded = DecodedBatch | Exception


class _End:
    """The last item: the file is read (``error`` None) or reading it failed."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class ReadAhead:
    """Batches of ``path`` with their decoding, produced by a background thread.

    Iterate once; use as a context manager (or call :meth:`close`) so the thread stops when
    the consumer stops early.
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
        self._queue: queue.Queue[tuple[LineBatch, Decoded] | _End] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="read-ahead", daemon=True)
        self._thread.start()

    def _put(self, item: tuple[LineBatch, Decoded] | _End) -> bool:
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
            for batch in self._batches:
                if self._stop.is_set():
                    return
                decoded: Decoded
                try:
                    decoded = decode_cdrs(batch.lines)
                except Exception as exc:  # the rater isolates the message at fault
                    decoded = exc
                if not self._put((batch, decoded)):
                    return
        except BaseException as exc:  # reading the file failed: the consumer raises it
            self._put(_End(exc))
            return
        self._put(_End(None))

    def __iter__(self) -> Iterator[tuple[LineBatch, Decoded]]:
        """Each batch and its decoding, in file order; raises what reading the file raised."""
        while True:
            item = self._queue.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item

    def close(self) -> None:
        """Stop the thread (it finishes the batch in hand) and wait for it."""
        self._stop.set()
        self._thread.join()
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
        """Stop the thread."""
        self.close()
