"""Dead-letter records and consumer offsets, committed together in one Kafka transaction.

A batch's rejected messages go to ``cdr.dlq.v1`` (original bytes and key; the reason, detail
and source topic/partition/offset as headers) in the same transaction that commits the batch's
offsets for the consumer group. Either both happen or neither: a rater that dies mid-batch
leaves no dead letter behind for read-committed readers, and the batch is consumed again.

The letters are produced and acknowledged by the broker *before* the batch's call history is
written (:meth:`TransactionalCommitter.send`), so a dead letter that cannot be written stops the
batch before anything is stored: the rater stops without committing, and a restart never
inserts the batch again only to fail once more.

A dead letter always fits its topic (:meth:`DeadLetter.record`): the reason and detail are cut
to a bounded length, and the original bytes are kept whole when they fit the topic's
``max.message.bytes`` (read from the broker at start) and the producer's limit; otherwise the
value holds the first bytes of the original and the headers say so (``dlq.truncated``), with
the original's size and SHA-256 in every letter (``dlq.original.size``,
``dlq.original.sha256``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]

from pipeline.config import KafkaConfig
from pipeline.sources.contracts import PartitionOffset

log = logging.getLogger(__name__)
_TIMEOUT_S = 30.0

#: The producer's own limit on a record; a dead letter is made to fit it and the topic's.
MAX_RECORD_BYTES = 4 * 1024 * 1024
#: Room left in a record for Kafka's framing besides the value, key and headers.
_FRAMING_BYTES = 1024
_MAX_REASON_CHARS = 200
_MAX_DETAIL_CHARS = 1000
_MAX_KEY_BYTES = 1024

Headers = list[tuple[str, str | bytes | None]]


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

    def record(self, max_record_bytes: int) -> tuple[bytes, bytes | None, Headers]:
        """Value, key and headers as produced, within ``max_record_bytes`` in all.

        The value is the original whole when it fits, else its first bytes with
        ``dlq.truncated: true``; the original's size and SHA-256 are always in the headers.
        """
        budget = max_record_bytes - _FRAMING_BYTES
        key, headers = self._key_and_headers(_MAX_KEY_BYTES, _MAX_DETAIL_CHARS)
        if len(key or b"") + _header_bytes(headers) > budget // 2:  # a topic with a tiny limit
            key, headers = self._key_and_headers(64, 100)
        room = budget - len(key or b"") - _header_bytes(headers) - 32
        value = self.value
        if len(value) > room:
            value = value[: max(room, 0)]
            headers.append(("dlq.truncated", b"true"))
        return value, key, headers

    def _key_and_headers(self, max_key: int, max_detail: int) -> tuple[bytes | None, Headers]:
        key = self.key
        headers: Headers = [
            ("dlq.reason", self.reason[:_MAX_REASON_CHARS].encode()),
            ("dlq.detail", self.detail[:max_detail].encode()),
            ("dlq.source.topic", self.topic.encode()),
            ("dlq.source.partition", str(self.partition).encode()),
            ("dlq.source.offset", str(self.offset).encode()),
            ("dlq.original.size", str(len(self.value)).encode()),
            ("dlq.original.sha256", hashlib.sha256(self.value).hexdigest().encode()),
        ]
        if key is not None and len(key) > max_key:
            headers.append(("dlq.key.sha256", hashlib.sha256(key).hexdigest().encode()))
            key = key[:max_key]
        return key, headers


def _header_bytes(headers: Headers) -> int:
    return sum(len(name) + len(value or b"") + 8 for name, value in headers)


class TransactionAbortedError(RuntimeError):
    """The batch's transaction was aborted; its offsets were not committed."""


class DeadLetterError(RuntimeError):
    """Dead letters could not be written; ``permanent`` when trying again cannot help."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        """Say what failed and whether retrying may help."""
        super().__init__(message)
        self.permanent = permanent


# Errors on which producing again later may succeed (the broker or the network was busy).
_TRANSIENT_CODES = frozenset(
    {
        KafkaError._MSG_TIMED_OUT,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._QUEUE_FULL,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NOT_ENOUGH_REPLICAS,
        KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.NETWORK_EXCEPTION,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.CONCURRENT_TRANSACTIONS,
    }
)


def _is_transient(error: KafkaError) -> bool:
    return not error.fatal() and (error.retriable() or error.code() in _TRANSIENT_CODES)


def topic_record_limit(config: KafkaConfig, topic: str) -> int | None:
    """The topic's ``max.message.bytes`` as the broker reports it (None if it cannot be read)."""
    admin = AdminClient(dict(config))
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    try:
        described = admin.describe_configs([resource], request_timeout=_TIMEOUT_S)
        entries = described[resource].result(timeout=_TIMEOUT_S)
        return int(entries["max.message.bytes"].value)
    except (KafkaException, KeyError, ValueError) as exc:
        log.warning("max.message.bytes of %s not readable (%s)", topic, exc)
        return None


class TransactionalCommitter:
    """A transactional producer that commits dead letters plus consumer offsets atomically.

    It satisfies :class:`pipeline.sinks.contracts.BatchCommitter`.

    Per batch: :meth:`begin`, :meth:`send` the dead letters (acknowledged before anything is
    stored), write the call history, then :meth:`commit` the offsets; :meth:`abort` on any
    failure in between.
    """

    def __init__(self, config: KafkaConfig, dlq_topic: str, group_id: str) -> None:
        """Remember the settings; nothing connects until :meth:`start`."""
        unique = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._admin_config = dict(config)
        self._config: KafkaConfig = {
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            "message.max.bytes": MAX_RECORD_BYTES,
            # Short: a batch's transaction spans producing its dead letters, one store write
            # (only when there are dead letters) and the offset commit; a failed write aborts it
            # before backing off. A rater killed mid-transaction holds back read-committed
            # readers of the dead-letter topic and its group's offsets until the broker aborts
            # it, at most this long.
            "transaction.timeout.ms": 15_000,
            **config,
            "transactional.id": f"{group_id}-{unique}",
        }
        self.dlq_topic = dlq_topic
        self.max_record_bytes = MAX_RECORD_BYTES
        self._producer: Producer | None = None
        self._open = False
        self._failures: list[KafkaError] = []

    def start(self) -> None:
        """Connect, register the transactional id (fencing any zombie), read the topic's limit."""
        self._producer = Producer(self._config)
        self._producer.init_transactions(_TIMEOUT_S)
        limit = topic_record_limit(self._admin_config, self.dlq_topic)
        own = int(self._config.get("message.max.bytes", MAX_RECORD_BYTES))
        self.max_record_bytes = min(own, limit) if limit else min(own, 1_000_000)
        log.info("dead letters of up to %d bytes go to %s", self.max_record_bytes, self.dlq_topic)

    @property
    def producer(self) -> Producer:
        """The underlying producer (started)."""
        if self._producer is None:
            msg = "committer not started"
            raise RuntimeError(msg)
        return self._producer

    def begin(self) -> None:
        """Open the batch's transaction."""
        self.producer.begin_transaction()
        self._open = True

    def send(self, dead_letters: Sequence[DeadLetter]) -> None:
        """Produce the dead letters in the open transaction and wait until the broker has them.

        Raises :class:`DeadLetterError` (``permanent`` when retrying cannot help, e.g. the
        topic refuses the record or the rater may not write to it).
        """
        if not dead_letters:
            return
        self._failures = []
        for letter in dead_letters:
            value, key, headers = letter.record(self.max_record_bytes)
            self._produce(value, key, headers)
        remaining = self.producer.flush(_TIMEOUT_S)
        if self._failures:
            error = self._failures[0]
            msg = f"dead letter not written to {self.dlq_topic}: {error.str()} ({error.name()})"
            raise DeadLetterError(msg, permanent=not _is_transient(error))
        if remaining:
            msg = f"{remaining} dead letter(s) not acknowledged by {self.dlq_topic} in time"
            raise DeadLetterError(msg, permanent=False)

    def _produce(self, value: bytes, key: bytes | None, headers: Headers) -> None:
        while True:
            try:
                self.producer.produce(
                    self.dlq_topic,
                    value=value,
                    key=key,
                    headers=headers,
                    on_delivery=self._delivered,
                )
                break
            except BufferError:
                self.producer.poll(0.1)
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                msg = (
                    f"dead letter not produced to {self.dlq_topic}: {error.str()} ({error.name()})"
                )
                raise DeadLetterError(msg, permanent=not _is_transient(error)) from exc
        self.producer.poll(0)

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._failures.append(error)

    def commit(self, offsets: Sequence[PartitionOffset], group_metadata: Any) -> None:
        """Add the offsets to the open transaction and commit it.

        Raises :class:`TransactionAbortedError` when the transaction had to be aborted (for
        example because the group rebalanced); the caller then consumes the batch again.
        """
        producer = self.producer
        positions = [TopicPartition(o.topic, o.partition, o.offset) for o in offsets]
        try:
            producer.send_offsets_to_transaction(positions, group_metadata, _TIMEOUT_S)
            producer.commit_transaction(_TIMEOUT_S)
            self._open = False
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.txn_requires_abort():
                self.abort()
                raise TransactionAbortedError(str(error)) from exc
            raise

    def abort(self) -> None:
        """Abort the open transaction, if any: its dead letters and offsets never count."""
        if self._open:
            self._open = False
            self.producer.abort_transaction(_TIMEOUT_S)

    def close(self) -> None:
        """Abort what is open, flush and release the producer."""
        if self._producer is not None:
            try:
                self.abort()
            except KafkaException as exc:
                log.warning("open transaction not aborted on close: %s", exc)
            self._producer.flush(_TIMEOUT_S)
            self._producer = None
