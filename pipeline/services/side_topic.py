"""What every ingest of a side topic (payments, client status) shares inside a rater process.

A consumer group of its own, read-committed, offsets committed by hand only after what they
cover is stored; an idempotent producer for the dead-letter topic, whose records are bounded by
that topic's own ``max.message.bytes`` (read at start). Subclasses decode, store and commit.
"""

from __future__ import annotations

from confluent_kafka import Consumer, KafkaError, Message, Producer

from pipeline.config import KafkaConfig
from pipeline.sinks.contracts import CallHistoryStore
from pipeline.sinks.kafka_dlq import MAX_RECORD_BYTES, topic_record_limit
from pipeline.sources.kafka import group_caught_up


class SideTopicIngest:
    """The Kafka side of an ingest: its consumer, its dead-letter producer, start and close."""

    def __init__(
        self,
        config: KafkaConfig,
        group_id: str,
        topic: str,
        dlq_topic: str,
        store: CallHistoryStore,
    ) -> None:
        """Remember the settings; nothing connects until :meth:`start`."""
        self._consumer_config: KafkaConfig = {
            **config,
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
        self._producer_config: KafkaConfig = {
            "message.max.bytes": MAX_RECORD_BYTES,
            **config,
            "enable.idempotence": True,
        }
        self._admin_config = dict(config)
        self._max_record_bytes = 1_000_000
        self.topic = topic
        self.dlq_topic = dlq_topic
        self.store = store
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None

    def start(self) -> None:
        """Connect and join the group."""
        self._consumer = Consumer(self._consumer_config)
        self._consumer.subscribe([self.topic])
        self._producer = Producer(self._producer_config)
        limit = topic_record_limit(self._admin_config, self.dlq_topic)
        self._max_record_bytes = min(MAX_RECORD_BYTES, limit or 1_000_000)

    def caught_up(self) -> bool:
        """True once every partition of the topic is assigned and consumed to its end."""
        return self._consumer is not None and group_caught_up(self._consumer)

    def close(self) -> None:
        """Leave the group and flush."""
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        if self._producer is not None:
            self._producer.flush(30)
            self._producer = None

    def _consume(self, consumer: Consumer, max_messages: int, timeout_s: float) -> list[Message]:
        """What is waiting, without end-of-partition events."""
        consumed = consumer.consume(num_messages=max_messages, timeout=timeout_s)
        return [m for m in consumed if _is_message(m.error())]


def _is_message(error: KafkaError | None) -> bool:
    return error is None or error.code() != KafkaError._PARTITION_EOF
