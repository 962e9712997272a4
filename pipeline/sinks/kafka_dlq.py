"""Dead-letter records and consumer offsets, committed together in one Kafka transaction.

A batch's rejected messages go to ``cdr.dlq.v1`` (original bytes and key; the reason, detail
and source topic/partition/offset as headers) in the same transaction that commits the batch's
offsets for the consumer group. Either both happen or neither: a rater that dies mid-batch
leaves no dead letter behind for read-committed readers, and the batch is consumed again.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition

from pipeline.config import KafkaConfig

log = logging.getLogger(__name__)
_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class DeadLetter:
    """One rejected message and why."""

    value: bytes
    key: bytes | None
    reason: str
    detail: str
    topic: str
    partition: int
    offset: int

    def headers(self) -> list[tuple[str, str | bytes | None]]:
        """Kafka headers describing where the message came from and why it was refused."""
        return [
            ("dlq.reason", self.reason.encode()),
            ("dlq.detail", self.detail.encode()),
            ("dlq.source.topic", self.topic.encode()),
            ("dlq.source.partition", str(self.partition).encode()),
            ("dlq.source.offset", str(self.offset).encode()),
        ]


class TransactionAbortedError(RuntimeError):
    """The batch's transaction was aborted; its offsets were not committed."""


class TransactionalCommitter:
    """A transactional producer that commits dead letters plus consumer offsets atomically."""

    def __init__(self, config: KafkaConfig, dlq_topic: str, group_id: str) -> None:
        """Remember the settings; nothing connects until :meth:`start`."""
        unique = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._config: KafkaConfig = {
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            # Short: a batch's transaction only spans producing its dead letters and the offset
            # commit, and a rater killed mid-transaction holds back read-committed readers of
            # the dead-letter topic and its group's offsets until the broker aborts it.
            "transaction.timeout.ms": 15_000,
            **config,
            "transactional.id": f"{group_id}-{unique}",
        }
        self.dlq_topic = dlq_topic
        self._producer: Producer | None = None

    def start(self) -> None:
        """Connect and register the transactional id (fencing any zombie with the same id)."""
        self._producer = Producer(self._config)
        self._producer.init_transactions(_TIMEOUT_S)

    @property
    def producer(self) -> Producer:
        """The underlying producer (started)."""
        if self._producer is None:
            msg = "committer not started"
            raise RuntimeError(msg)
        return self._producer

    def commit(
        self, dead_letters: Sequence[DeadLetter], offsets: list[TopicPartition], group_metadata: Any
    ) -> None:
        """Produce the dead letters and commit the offsets in one transaction.

        Raises :class:`TransactionAbortedError` when the transaction had to be aborted (for
        example because the group rebalanced); the caller then consumes the batch again.
        """
        producer = self.producer
        try:
            producer.begin_transaction()
            for letter in dead_letters:
                self._produce(letter)
            producer.send_offsets_to_transaction(offsets, group_metadata, _TIMEOUT_S)
            producer.commit_transaction(_TIMEOUT_S)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.txn_requires_abort():
                producer.abort_transaction(_TIMEOUT_S)
                raise TransactionAbortedError(str(error)) from exc
            raise

    def _produce(self, letter: DeadLetter) -> None:
        while True:
            try:
                self.producer.produce(
                    self.dlq_topic, value=letter.value, key=letter.key, headers=letter.headers()
                )
                break
            except BufferError:
                self.producer.poll(0.1)
        self.producer.poll(0)

    def close(self) -> None:
        """Flush and release the producer."""
        if self._producer is not None:
            self._producer.flush(_TIMEOUT_S)
            self._producer = None
