"""Kafka topics of the pipeline, created idempotently with explicit settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

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
    """The topics ``setup`` creates: CDRs, payments, client status, reference data; dead letters."""
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
        # Client online status: compacted by client_id, so the topic holds each client's last
        # published status (tombstones kept a day); the table keeps the newest by `at`.
        TopicSpec(
            settings.client_status_topic,
            3,
            {"cleanup.policy": "compact", "delete.retention.ms": str(_DAY_MS)},
        ),
        TopicSpec(
            settings.client_status_dlq_topic,
            1,
            {
                "cleanup.policy": "delete",
                "retention.ms": str(30 * _DAY_MS),
                "max.message.bytes": str(_DLQ_RECORD_BYTES),
            },
        ),
    ]


# Errors of a broker that is not up yet (or restarting): waiting may mend them.
_BROKER_NOT_READY: Final = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._RESOLVE,
        KafkaError._WAIT_COORD,
        KafkaError.BROKER_NOT_AVAILABLE,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NETWORK_EXCEPTION,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_CONTROLLER,
    }
)


class BrokerProbe:
    """Asks the brokers of ``settings`` for metadata, to learn whether Kafka is up yet.

    One admin client, made on the first :meth:`check`; librdkafka's own connection-failure log
    lines are silenced (the caller logs one line per wait).
    """

    def __init__(self, settings: Settings, timeout_s: float = 2.0) -> None:
        """Remember the settings; nothing connects until :meth:`check`."""
        self.address = str(settings.kafka()["bootstrap.servers"])
        self._config = settings.kafka(log_level=2)  # CRIT and worse only: no FAIL lines
        self._timeout_s = timeout_s
        self._admin: AdminClient | None = None

    def check(self) -> int:
        """The number of brokers that answered; raises :class:`KafkaException` otherwise."""
        if self._admin is None:
            self._admin = AdminClient(self._config)
        return len(self._admin.list_topics(timeout=self._timeout_s).brokers)


def broker_not_ready(exc: BaseException) -> tuple[bool, str]:
    """Whether a failed :meth:`BrokerProbe.check` may succeed later, and the error in words.

    Transport failures, time-outs and brokers without a leader yet are worth waiting for; an
    authentication, TLS or configuration error, or anything not known here, is not.
    """
    error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    if not isinstance(error, KafkaError):
        return False, f"{type(exc).__name__}: {exc}"
    waitable = not error.fatal() and (error.code() in _BROKER_NOT_READY or error.retriable())
    return waitable, f"{error.str()} [{error.name()}]"


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
