"""Publishing CDRs to ``cdr.v1`` the way VMGateServer does: one JSON object per message.

An idempotent producer (acks=all), each message keyed by its ``cdr_id`` so every copy of a CDR
lands on the same partition. Delivery reports are counted; the summary says how many the broker
acknowledged and how many failed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from pipeline.config import KafkaConfig, Settings

PRODUCER_DEFAULTS: KafkaConfig = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 20,
    "batch.size": 1_048_576,
    "compression.type": "lz4",
    "queue.buffering.max.kbytes": 524_288,
}


@dataclass
class PublishSummary:
    """Delivery outcome of a publication."""

    sent: int = 0
    acknowledged: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def cdr_key(line: bytes) -> bytes | None:
    """The ``cdr_id`` of a JSON CDR as the message key; None when it has none (malformed)."""
    try:
        value: Any = json.loads(line)
    except ValueError:
        return None
    if isinstance(value, dict) and isinstance(value.get("cdr_id"), str):
        return str(value["cdr_id"]).encode()
    return None


def publish(settings: Settings, lines: Iterable[bytes], topic: str | None = None) -> PublishSummary:
    """Publish every line as one message; wait for every delivery report."""
    summary = PublishSummary()
    producer = Producer(settings.kafka(**PRODUCER_DEFAULTS))
    target = topic or settings.cdr_topic

    def delivered(error: KafkaError | None, message: Message) -> None:
        if error is None:
            summary.acknowledged += 1
        else:
            summary.failed += 1
            if len(summary.errors) < 10:
                summary.errors.append(str(error))

    for line in lines:
        while True:
            try:
                producer.produce(target, value=line, key=cdr_key(line), on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.2)
        summary.sent += 1
        producer.poll(0)
    remaining = producer.flush(120)
    summary.failed += remaining
    return summary
