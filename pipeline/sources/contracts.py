"""The seam between the rater and where its CDRs come from: a batch, a source, a position.

:class:`CdrSource` is what :class:`pipeline.services.rater.Rater` needs of a consumer-group
member: batches of raw messages (:class:`CdrBatch`) that know where each message came from and
which offsets to commit once the batch is durable, backpressure (pause, wait while paused,
resume), a way back to the start of a batch, and a ``generation`` that changes whenever the
source lost its partitions, so the rater can tell that a batch in flight belongs to the group
again. The Kafka source (:mod:`pipeline.sources.kafka`) and the list source of
:mod:`pipeline.testing` implement it. Offsets are never committed by a source: the committer
(:class:`pipeline.sinks.contracts.BatchCommitter`) commits them with the batch's dead letters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class PartitionOffset:
    """An offset in one partition of a topic: where to read from, or what to commit."""

    topic: str
    partition: int
    offset: int


class CdrBatch(Protocol):
    """Raw messages consumed together; ``position`` is a message's index in :attr:`values`.

    A partition's messages are in offset order. Reading where a message came from may be
    slower than reading the values (it is asked only for the few that become dead letters).
    """

    @property
    def values(self) -> Sequence[bytes]:
        """The messages' bytes, in consumption order."""
        ...

    def key(self, position: int) -> bytes | None:
        """The key of message ``position``."""
        ...

    def source(self, position: int) -> tuple[str, int, int]:
        """Topic, partition and offset of message ``position``."""
        ...

    def next_offsets(self) -> list[PartitionOffset]:
        """Per partition in the batch, the offset to commit: the last one consumed + 1."""
        ...

    def first_offsets(self) -> list[PartitionOffset]:
        """Per partition in the batch, the first offset consumed (where to seek to redo it)."""
        ...

    def __len__(self) -> int:
        """Number of messages."""
        ...


class CdrSource(Protocol):
    """A consumer-group member delivering CDR messages in batches; nothing connects before start.

    The group's committed offsets are where a member starts, and where it goes back to when
    its partitions are revoked and assigned again (``generation`` then changes).
    """

    @property
    def generation(self) -> int:
        """A number that changes every time the source lost (some of) its partitions."""
        ...

    def start(self) -> None:
        """Connect and join the group."""
        ...

    def next_batch(self, max_messages: int, timeout_s: float, linger_s: float = 0.1) -> CdrBatch:
        """Up to ``max_messages``: at most ``timeout_s`` for the first, ``linger_s`` more."""
        ...

    def pause(self) -> None:
        """Stop delivering from every assigned partition (backpressure), keeping membership."""
        ...

    def wait_paused(self, timeout_s: float) -> None:
        """Serve the group (rebalances, heartbeats) for up to ``timeout_s`` while paused."""
        ...

    def resume(self) -> None:
        """Deliver again from where the batches delivered so far end."""
        ...

    def rewind(self, batch: CdrBatch) -> None:
        """Deliver ``batch`` again (its partitions still owned), after its commit failed."""
        ...

    def group_metadata(self) -> object:
        """What the committer needs to commit offsets on behalf of this member's group."""
        ...

    def caught_up(self) -> bool:
        """True when partitions are assigned and the group's committed offsets reach their end."""
        ...

    def lag(self) -> Sequence[tuple[str, int, int]]:
        """Topic, partition and messages behind the end, per assigned partition."""
        ...

    def close(self) -> None:
        """Leave the group (no offsets are committed here)."""
        ...
