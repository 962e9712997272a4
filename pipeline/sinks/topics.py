"""Kafka topics of the pipeline, created idempotently with explicit settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # confluent_kafka.admin re-exports it untyped

from pipeline.config import Settings

log = logging.getLogger(__name__)
_DAY_MS = 86_400_000


@dataclass(frozen=True)
class TopicSpec:
    """A topic and the settings it is created with."""

    name: str
    partitions: int
    config: dict[str, str]


def reference_topic_specs(settings: Settings) -> list[TopicSpec]:
    """The compacted reference-data topics (one partition each: a publication is read in order).

    Compaction keeps the latest value of every chunk key, so the topics hold exactly the
    current publication; tombstones are kept a day so a rater that was down sees deletions.
    """
    config = {
        "cleanup.policy": "compact",
        "max.message.bytes": str(1_048_576),
        "delete.retention.ms": str(_DAY_MS),
        "min.compaction.lag.ms": str(60_000),
    }
    names = (settings.rateplans_topic, settings.associations_topic, settings.memberships_topic)
    return [TopicSpec(name, 1, dict(config)) for name in names]


_DLQ_RECORD_BYTES = 2 * 1_048_576


def pipeline_topics(settings: Settings) -> list[TopicSpec]:
    """The topics ``setup`` creates: CDRs, payments and reference data in, dead letters out."""
    return [
        *reference_topic_specs(settings),
        TopicSpec(
            settings.cdr_topic,
            settings.cdr_partitions,
            {
                "cleanup.policy": "delete",
                "retention.ms": str(7 * _DAY_MS),
                "max.message.bytes": str(1_048_576),
                "compression.type": "producer",
            },
        ),
        # Dead-letter topics take records twice the size of the topics they serve, so every
        # refused message fits whole with its reason (see pipeline.sinks.kafka_dlq).
        TopicSpec(
            settings.dlq_topic,
            max(1, settings.cdr_partitions // 2),
            {
                "cleanup.policy": "delete",
                "retention.ms": str(30 * _DAY_MS),
                "max.message.bytes": str(_DLQ_RECORD_BYTES),
            },
        ),
        # Payments are kept (compacted by payment_id), so the payments table can be rebuilt.
        TopicSpec(settings.payments_topic, 3, {"cleanup.policy": "compact"}),
        TopicSpec(
            settings.payments_dlq_topic,
            1,
            {
                "cleanup.policy": "delete",
                "retention.ms": str(30 * _DAY_MS),
                "max.message.bytes": str(_DLQ_RECORD_BYTES),
            },
        ),
    ]


def ensure_topics(
    settings: Settings, replication_factor: int = 1, specs: list[TopicSpec] | None = None
) -> dict[str, str]:
    """Create missing topics (all of the pipeline's unless ``specs`` says which).

    Returns ``{name: "created" | "exists"}``. Raises on other errors.
    """
    admin = AdminClient(settings.kafka())
    specs = pipeline_topics(settings) if specs is None else specs
    futures = admin.create_topics(
        [NewTopic(s.name, s.partitions, replication_factor, config=s.config) for s in specs],
        operation_timeout=30,
        request_timeout=30,
    )
    outcome: dict[str, str] = {}
    for name, future in futures.items():
        try:
            future.result()
            outcome[name] = "created"
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            outcome[name] = "exists"
        log.info("topic %s: %s", name, outcome[name])
    return outcome
