"""``payments.v1`` into the payments table, inside every rater process.

Payments are few, so each message is handled on its own: parsed and validated like a payment
recorded on the command line, stored idempotently by ``payment_id``, and its offset committed
only after the store accepted it. A message that is not a valid payment, or reuses a payment id
for a different payment, goes to ``payments.dlq.v1`` with the reason; nothing is dropped.
"""

from __future__ import annotations

import json
import logging

from confluent_kafka import KafkaError, Producer, TopicPartition

from pipeline.config import KafkaConfig
from pipeline.json_bounds import nesting_depth
from pipeline.rating.cdr_contract import MAX_MESSAGE_BYTES, MAX_NESTING
from pipeline.services.side_topic import SideTopicIngest
from pipeline.sinks.contracts import CallHistoryStore
from pipeline.sinks.kafka_dlq import DeadLetter
from pipeline.storage.payments import Payment, PaymentError, record_payment

log = logging.getLogger(__name__)


class PaymentsIngest(SideTopicIngest):
    """A consumer of ``payments.v1`` writing the payments table."""

    def __init__(
        self,
        config: KafkaConfig,
        group_id: str,
        topic: str,
        dlq_topic: str,
        store: CallHistoryStore,
    ) -> None:
        """Remember the settings; nothing connects until :meth:`start`."""
        super().__init__(config, group_id, topic, dlq_topic, store)
        self.recorded = 0
        self.rejected = 0

    def poll(self, timeout_s: float = 0.0, max_messages: int = 500) -> int:
        """Ingest what is waiting; return how many messages were handled."""
        if self._consumer is None or self._producer is None:
            msg = "payments ingest not started"
            raise RuntimeError(msg)
        messages = self._consume(self._consumer, max_messages, timeout_s)
        if not messages:
            return 0
        try:
            for message in messages:
                if message.error() is not None:
                    log.warning("payments consumer error: %s", message.error())
                    continue
                self._handle(
                    message.value() or b"",
                    message.key(),
                    message.partition() or 0,
                    message.offset() or 0,
                )
            self._producer.flush(30)
        except Exception:
            # The store failed: consume these messages again later.
            for message in messages:
                if message.error() is None:
                    self._consumer.seek(
                        TopicPartition(
                            message.topic() or self.topic,
                            message.partition() or 0,
                            message.offset() or 0,
                        )
                    )
                    break
            raise
        self._consumer.commit(asynchronous=False)
        return len(messages)

    def _handle(self, value: bytes, key: bytes | None, partition: int, offset: int) -> None:
        try:
            if len(value) > MAX_MESSAGE_BYTES:
                msg = f"message of {len(value)} bytes, more than {MAX_MESSAGE_BYTES}"
                raise PaymentError(msg)
            if nesting_depth(value) > MAX_NESTING:
                msg = f"JSON nested more than {MAX_NESTING} levels deep"
                raise PaymentError(msg)
            data = json.loads(value)
            if not isinstance(data, dict):
                msg = "a payments.v1 message must be a JSON object"
                raise PaymentError(msg)
            payment = Payment.parse(
                payment_id=data.get("payment_id"),
                tenant_id=data.get("tenant_id"),
                kind=data.get("kind"),
                account_id=data.get("account_id"),
                amount=data.get("amount"),
                currency=data.get("currency"),
                recorded_at=data.get("recorded_at"),
                note=data.get("note", ""),
            )
            if record_payment(self.store, payment):
                self.recorded += 1
        except (ValueError, PaymentError) as exc:
            self.rejected += 1
            log.warning("payment at offset %d refused: %s", offset, exc)
            assert self._producer is not None
            letter = DeadLetter(value, key, str(exc), str(exc), self.topic, partition, offset)
            bounded, bounded_key, headers = letter.record(self._max_record_bytes)
            self._producer.produce(self.dlq_topic, value=bounded, key=bounded_key, headers=headers)


def publish_payment(config: KafkaConfig, topic: str, payment: Payment) -> None:
    """Publish one payment to ``payments.v1`` keyed by its id; raise if not acknowledged."""
    producer = Producer({**config, "enable.idempotence": True, "acks": "all"})
    failures: list[str] = []

    def delivered(error: KafkaError | None, _message: object) -> None:
        if error is not None:
            failures.append(str(error))

    producer.produce(
        topic, value=payment.to_json(), key=payment.payment_id.encode(), on_delivery=delivered
    )
    remaining = producer.flush(30)
    if failures or remaining:
        msg = f"payment {payment.payment_id} not acknowledged by Kafka: {failures or 'timeout'}"
        raise RuntimeError(msg)
