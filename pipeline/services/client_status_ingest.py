"""``client-status.v1`` into the ``client_status`` table, inside every rater process.

Like the payments ingest: a consumer group of its own (``<raters group>-client-status``),
read-committed, offsets committed only after what they cover is stored. A batch of messages is
decoded (:mod:`pipeline.services.client_status_messages`); refused messages go to the
dead-letter topic with the reason, and are acknowledged by the broker before anything is
stored; the valid events are stored in one INSERT; then the offsets are committed. A crash
between the INSERT and the commit stores the same events again, which the table collapses (the
newest ``at`` per client wins, an identical event counts once). Tombstones are skipped.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from confluent_kafka import KafkaError, KafkaException, Message, Producer, TopicPartition

from pipeline.config import KafkaConfig
from pipeline.services.client_status_messages import Refusal, decode_status
from pipeline.services.side_topic import SideTopicIngest
from pipeline.sinks.contracts import CallHistoryStore
from pipeline.sinks.kafka_dlq import DeadLetter, Headers
from pipeline.storage.client_status import ClientStatus, record_client_statuses

log = logging.getLogger(__name__)


@dataclass
class StatusOutcome:
    """What one :meth:`ClientStatusIngest.poll` did with the messages it consumed."""

    stored: int = 0
    tombstones: int = 0
    refused_by_reason: Counter[str] = field(default_factory=Counter)

    @property
    def refused(self) -> int:
        """Messages dead-lettered."""
        return sum(self.refused_by_reason.values())


class ClientStatusIngest(SideTopicIngest):
    """A consumer of ``client-status.v1`` writing the ``client_status`` table."""

    def __init__(
        self,
        config: KafkaConfig,
        group_id: str,
        topic: str,
        dlq_topic: str,
        store: CallHistoryStore,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """Remember the settings; nothing connects until :meth:`start`."""
        super().__init__(config, group_id, topic, dlq_topic, store)
        self.clock = clock

    def poll(self, timeout_s: float = 0.0, max_messages: int = 500) -> StatusOutcome:
        """Ingest what is waiting: store, dead-letter, commit. Raises if not stored.

        On a failure nothing of the batch is committed and the consumer is moved back to its
        first message, so the batch is consumed again.
        """
        if self._consumer is None or self._producer is None:
            msg = "client-status ingest not started"
            raise RuntimeError(msg)
        messages = self._consume(self._consumer, max_messages, timeout_s)
        outcome = StatusOutcome()
        if not messages:
            return outcome
        try:
            statuses = self._decode(messages, outcome)
            record_client_statuses(self.store, statuses, self.clock())
            offsets = _next_offsets(messages)
            if offsets:
                self._consumer.commit(offsets=offsets, asynchronous=False)
        except Exception:
            self._rewind(messages)
            raise
        outcome.stored = len(statuses)
        return outcome

    def _decode(self, messages: list[Message], outcome: StatusOutcome) -> list[ClientStatus]:
        """The valid events; refusals produced to the dead-letter topic and acknowledged."""
        assert self._producer is not None
        statuses: list[ClientStatus] = []
        failures: list[str] = []

        def delivered(error: KafkaError | None, _message: object) -> None:
            if error is not None:
                failures.append(str(error))

        for message in messages:
            if message.error() is not None:
                log.warning("client-status consumer error: %s", message.error())
                continue
            decoded = decode_status(message.value(), message.key())
            if decoded is None:
                outcome.tombstones += 1
            elif isinstance(decoded, Refusal):
                outcome.refused_by_reason[decoded.reason] += 1
                offset = message.offset() or 0
                log.warning("client status at offset %d refused: %s", offset, decoded.detail)
                letter = DeadLetter(
                    message.value() or b"",
                    message.key(),
                    decoded.reason,
                    decoded.detail,
                    message.topic() or self.topic,
                    message.partition() or 0,
                    offset,
                )
                value, key, headers = letter.record(self._max_record_bytes)
                self._produce(value, key, headers, delivered)
            else:
                statuses.append(decoded)
        if outcome.refused_by_reason:
            remaining = self._producer.flush(30)
            if failures or remaining:
                msg = f"dead letters not written to {self.dlq_topic}: {failures or 'timeout'}"
                raise RuntimeError(msg)
        return statuses

    def _produce(
        self,
        value: bytes,
        key: bytes | None,
        headers: Headers,
        delivered: Callable[[KafkaError | None, object], None],
    ) -> None:
        assert self._producer is not None
        while True:
            try:
                self._producer.produce(
                    self.dlq_topic, value=value, key=key, headers=headers, on_delivery=delivered
                )
                return
            except BufferError:  # the local queue is full: let deliveries drain it
                self._producer.poll(0.1)

    def _rewind(self, messages: list[Message]) -> None:
        assert self._consumer is not None
        first: dict[tuple[str, int], int] = {}
        for message in messages:
            if message.error() is None:
                where = (message.topic() or self.topic, message.partition() or 0)
                first.setdefault(where, message.offset() or 0)
        for (topic, partition), offset in first.items():
            try:
                self._consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as exc:  # revoked meanwhile: its new owner reads it again
                log.info("client-status partition %d not rewound: %s", partition, exc)


def publish_client_statuses(
    config: KafkaConfig, topic: str, statuses: Iterable[ClientStatus]
) -> int:
    """Publish status events keyed by client_id (idempotent producer, ``acks=all``).

    Returns how many the broker acknowledged; raises if any was not.
    """
    producer = Producer({**config, "enable.idempotence": True, "acks": "all"})
    failures: list[str] = []

    def delivered(error: KafkaError | None, _message: object) -> None:
        if error is not None:
            failures.append(str(error))

    sent = 0
    for status in statuses:
        while True:
            try:
                producer.produce(
                    topic,
                    value=status.to_json(),
                    key=status.client_id.encode(),
                    on_delivery=delivered,
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        sent += 1
    remaining = producer.flush(60)
    if failures or remaining:
        msg = f"client status not acknowledged by Kafka: {failures[:3] or 'timeout'}"
        raise RuntimeError(msg)
    return sent


def _next_offsets(messages: list[Message]) -> list[TopicPartition]:
    """Per partition, the offset after the last message consumed: what the group commits."""
    last: dict[tuple[str, int], int] = {}
    for message in messages:
        if message.error() is None:
            where = (message.topic() or "", message.partition() or 0)
            last[where] = max(last.get(where, -1), message.offset() or 0)
    return [TopicPartition(topic, p, offset + 1) for (topic, p), offset in last.items()]
