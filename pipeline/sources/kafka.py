"""The Kafka source: ``cdr.v1`` consumed in large batches by a consumer group.

Offsets are never committed here: the runtime commits them with the dead-letter records in one
Kafka transaction, after the call-history write that covers them was acknowledged. The source
counts rebalances (``generation``) so the runtime can tell that a batch in flight lost its
partitions, and it can pause consumption (backpressure) without losing its place.
:class:`KafkaCdrSource` and :class:`KafkaBatch` satisfy the seams of
:mod:`pipeline.sources.contracts`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from pipeline.config import KafkaConfig
from pipeline.sources.contracts import CdrBatch, PartitionOffset

log = logging.getLogger(__name__)

#: Consumer settings tuned for large batches; pass-through settings may override them.
CONSUMER_DEFAULTS: KafkaConfig = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest",
    "isolation.level": "read_committed",
    "fetch.min.bytes": 1_048_576,
    "fetch.wait.max.ms": 100,
    "max.partition.fetch.bytes": 8_388_608,
    "fetch.max.bytes": 67_108_864,
    "queued.max.messages.kbytes": 262_144,
    "session.timeout.ms": 10_000,
    "heartbeat.interval.ms": 2_000,
    "max.poll.interval.ms": 600_000,
    "partition.assignment.strategy": "range",
}


@dataclass(frozen=True, eq=False)
class KafkaBatch:
    """Messages consumed together.

    Only the values are read for every message (what decoding needs); where a message came
    from is read on demand, for the few that become dead letters, and the offsets to commit come
    from the last message of each partition (a partition's messages arrive in offset order).
    """

    messages: list[Message]
    values: list[bytes]

    def key(self, position: int) -> bytes | None:
        """The key of message ``position``."""
        key = self.messages[position].key()
        return key if isinstance(key, bytes) else None

    def source(self, position: int) -> tuple[str, int, int]:
        """Topic, partition and offset of message ``position``."""
        message = self.messages[position]
        return message.topic() or "", message.partition() or 0, message.offset() or 0

    def next_offsets(self) -> list[PartitionOffset]:
        """Per partition in the batch, the offset to commit: the last one consumed + 1."""
        last = {(m.topic(), m.partition()): m.offset() for m in self.messages}
        return [
            PartitionOffset(t or "", p or 0, (o or 0) + 1) for (t, p), o in sorted(last.items())
        ]

    def first_offsets(self) -> list[PartitionOffset]:
        """Per partition in the batch, the first offset consumed (where to seek to redo it)."""
        first = {(m.topic(), m.partition()): m.offset() for m in reversed(self.messages)}
        return [PartitionOffset(t or "", p or 0, o or 0) for (t, p), o in sorted(first.items())]

    def __len__(self) -> int:
        """Number of messages."""
        return len(self.values)


class KafkaCdrSource:
    """A consumer-group member reading ``topic`` in batches."""

    def __init__(self, config: KafkaConfig, group_id: str, topic: str) -> None:
        """Remember the settings; nothing connects until :meth:`start`."""
        self._config: KafkaConfig = {**CONSUMER_DEFAULTS, **config, "group.id": group_id}
        self.topic = topic
        self.generation = 0  # bumped on every revocation or loss of partitions
        self._consumer: Consumer | None = None
        self._paused: list[TopicPartition] = []
        self._seek_on_resume: dict[tuple[str, int], int] = {}

    def start(self) -> None:
        """Connect and join the group."""
        self._consumer = Consumer(self._config)
        self._consumer.subscribe(
            [self.topic], on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._revoked
        )

    @property
    def consumer(self) -> Consumer:
        """The underlying consumer (started)."""
        if self._consumer is None:
            msg = "source not started"
            raise RuntimeError(msg)
        return self._consumer

    def _assigned(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        log.info("assigned %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions))

    def _revoked(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self.generation += 1
        self._paused = []
        self._seek_on_resume.clear()
        log.info("revoked %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions))

    def next_batch(self, max_messages: int, timeout_s: float, linger_s: float = 0.1) -> KafkaBatch:
        """Consume up to ``max_messages``, at most ``timeout_s`` for the first, ``linger_s`` more.

        A rater that keeps up rates small batches soon after the CDRs arrive (latency); one
        that falls behind finds ``max_messages`` already buffered and gets full batches at
        once (throughput).
        """
        first = self.consumer.consume(num_messages=max_messages, timeout=0)
        if not first:
            message = self.consumer.poll(timeout_s)
            if message is None:
                return self._batch([])
            first = [message]
        if len(first) < max_messages:
            first.extend(
                self.consumer.consume(num_messages=max_messages - len(first), timeout=linger_s)
            )
        return self._batch(first)

    def _batch(self, messages: list[Message]) -> KafkaBatch:
        if any(m.error() is not None for m in messages):
            messages = self._drop_errors(messages)
        values = [m.value() or b"" for m in messages]
        return KafkaBatch(messages, values)

    def _drop_errors(self, messages: list[Message]) -> list[Message]:
        kept = []
        for message in messages:
            error = message.error()
            if error is None:
                kept.append(message)
            elif error.code() == KafkaError._PARTITION_EOF:
                continue
            elif error.fatal():
                raise KafkaException(error)
            else:
                log.warning("consumer error: %s", error)
        return kept

    def caught_up(self) -> bool:
        """True when partitions are assigned and the group's committed offsets reach their end."""
        return group_caught_up(self.consumer)

    def lag(self) -> list[tuple[str, int, int]]:
        """Messages between this consumer's position and the end of each assigned partition.

        Uses the watermarks the fetches already brought back (no broker round trip).
        """
        assignment = self.consumer.assignment()
        out: list[tuple[str, int, int]] = []
        for position in self.consumer.position(assignment) if assignment else []:
            _, high = self.consumer.get_watermark_offsets(position, cached=True)
            if position.offset >= 0 and high >= 0:
                out.append((position.topic, position.partition, max(0, high - position.offset)))
        return out

    def pause(self) -> None:
        """Stop fetching from every assigned partition (backpressure)."""
        assignment = self.consumer.assignment()
        if assignment:
            self.consumer.pause(assignment)
        self._paused = assignment

    def wait_paused(self, timeout_s: float) -> None:
        """Serve group callbacks while paused; remember any message delivered anyway."""
        message = self.consumer.poll(timeout_s)
        if message is not None and message.error() is None:
            key = (message.topic() or self.topic, message.partition() or 0)
            offset = message.offset() or 0
            self._seek_on_resume[key] = min(offset, self._seek_on_resume.get(key, offset))

    def resume(self) -> None:
        """Fetch again, first rewinding any partition that delivered while paused."""
        if self._paused:
            self.consumer.resume(self._paused)
        for (topic, partition), offset in self._seek_on_resume.items():
            self.consumer.seek(TopicPartition(topic, partition, offset))
        self._paused = []
        self._seek_on_resume.clear()

    def rewind(self, batch: CdrBatch) -> None:
        """Seek back to the start of ``batch`` so it is consumed again (after a failed commit)."""
        owned = {(p.topic, p.partition) for p in self.consumer.assignment()}
        for position in batch.first_offsets():
            if (position.topic, position.partition) in owned:
                self.consumer.seek(
                    TopicPartition(position.topic, position.partition, position.offset)
                )

    def group_metadata(self) -> Any:
        """The consumer's group metadata, for committing offsets in a transaction."""
        return self.consumer.consumer_group_metadata()

    def close(self) -> None:
        """Leave the group (no offsets are committed here)."""
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


def group_caught_up(consumer: Consumer) -> bool:
    """True when ``consumer`` has partitions and its group's committed offsets reach their end."""
    assignment = consumer.assignment()
    if not assignment:
        return False
    try:
        for committed in consumer.committed(assignment, timeout=10):
            low, high = consumer.get_watermark_offsets(committed, timeout=5, cached=False)
            if high > low and committed.offset < high:
                return False
    except KafkaException as exc:
        # For example offsets still held by the open transaction of a rater that died: they
        # become readable once the broker aborts it. Not caught up yet; ask again later.
        log.info("committed offsets not readable yet (%s)", exc)
        return False
    return True
