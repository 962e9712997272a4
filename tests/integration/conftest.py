"""Fixtures for integration tests: a real Kafka broker and a fresh topic per test.

The broker is the one of ``deploy/local/kafka`` (single-node KRaft on 127.0.0.1, no Docker),
started once per test run in its own run folder and stopped at the end, also when tests
fail; with pytest-xdist the workers share it (``tests/support/kafka_broker.py``). Set
``KAFKA_BOOTSTRAP=host:port`` to use a broker that is already running instead (the fixture
then neither starts nor stops anything).

A broker that cannot start fails the session loudly with its log tail; nothing is skipped.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # where confluent_kafka.admin imports it from

from pipeline.testing.clickhouse_http import ChdbHttpServer
from tests.support import kafka_broker
from tests.support.streaming import Pipeline

_TOPIC_LIMIT_S = 60.0  # a safety net only (never asserted on)

UNIQUE_TOPIC_PARTITIONS = 3


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address ``127.0.0.1:PORT`` of a running broker, for the whole session.

    Under pytest-xdist the workers share one broker (``tests/support/kafka_broker.py``); the
    xdist controller stops it once every worker is done.
    """
    external = os.environ.get("KAFKA_BOOTSTRAP", "").strip()
    if external:
        yield external
        return

    if os.environ.get("PYTEST_XDIST_WORKER"):
        # Each worker's temporary folder is popen-gwN in the run's folder, shared by all.
        yield kafka_broker.shared(tmp_path_factory.getbasetemp().parent)
        return

    run_dir = tmp_path_factory.mktemp("kafka-run")
    try:
        yield kafka_broker.start(run_dir)
    finally:
        failure = kafka_broker.stop(run_dir)
        if failure:
            pytest.fail(failure, pytrace=False)


def _wait_for_topic(admin: AdminClient, topic: str, partitions: int, deadline: float) -> None:
    """Wait until metadata shows every partition of ``topic`` with a leader."""
    last_state = "no metadata yet"
    while time.monotonic() < deadline:
        try:
            metadata = admin.list_topics(topic=topic, timeout=5)
        except KafkaException as exc:
            last_state = f"metadata request failed: {exc}"
        else:
            described = metadata.topics.get(topic)
            if described is None or described.error is not None:
                last_state = f"topic not visible yet ({described and described.error})"
            elif len(described.partitions) != partitions:
                last_state = f"{len(described.partitions)} of {partitions} partitions visible"
            elif any(p.leader < 0 or p.error is not None for p in described.partitions.values()):
                last_state = "a partition has no leader yet"
            else:
                return
        time.sleep(0.1)
    pytest.fail(f"topic {topic} not ready within {_TOPIC_LIMIT_S:.0f}s: {last_state}")


@pytest.fixture
def unique_topic(kafka_bootstrap: str) -> Iterator[str]:
    """Name of a new topic with ``UNIQUE_TOPIC_PARTITIONS`` partitions, deleted after the test."""
    topic = f"it-{uuid.uuid4().hex}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    created = admin.create_topics(
        [NewTopic(topic, num_partitions=UNIQUE_TOPIC_PARTITIONS, replication_factor=1)],
        operation_timeout=30,
        request_timeout=30,
    )
    created[topic].result(timeout=_TOPIC_LIMIT_S)
    try:
        _wait_for_topic(admin, topic, UNIQUE_TOPIC_PARTITIONS, time.monotonic() + _TOPIC_LIMIT_S)
        yield topic
    finally:
        deleted = admin.delete_topics([topic], operation_timeout=30, request_timeout=30)
        deleted[topic].result(timeout=_TOPIC_LIMIT_S)


@pytest.fixture
def pipeline(kafka_bootstrap: str, tmp_path: Path) -> Pipeline:
    run = uuid.uuid4().hex[:10]
    return Pipeline(
        root=tmp_path,
        bootstrap=kafka_bootstrap,
        cdr_topic=f"cdr-{run}",
        dlq_topic=f"dlq-{run}",
        group=f"raters-{run}",
    )


@pytest.fixture
def clickhouse(tmp_path: Path) -> Iterator[ChdbHttpServer]:
    with ChdbHttpServer(tmp_path / "clickhouse") as server:
        yield server
