"""Fixtures for integration tests: a real Kafka broker and a fresh topic per test.

The broker is the one of ``deploy/local/kafka`` (single-node KRaft on 127.0.0.1, no Docker),
started once per test session in its own run folder and stopped at the end, also when tests
fail. Set ``KAFKA_BOOTSTRAP=host:port`` to use a broker that is already running instead (the
fixture then neither starts nor stops anything).

A broker that cannot start fails the session loudly with its log tail; nothing is skipped.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # where confluent_kafka.admin imports it from

from pipeline.testing.clickhouse_http import ChdbHttpServer
from tests.support.streaming import Pipeline

REPO_ROOT = Path(__file__).resolve().parents[2]
KAFKA_SCRIPT = REPO_ROOT / "deploy" / "local" / "kafka"

# Safety nets only (never asserted on): the first start may fetch the jars with Maven.
_START_LIMIT_S = 900.0
_STOP_LIMIT_S = 120.0
_TOPIC_LIMIT_S = 60.0

UNIQUE_TOPIC_PARTITIONS = 3

_ADDRESS = re.compile(r"^127\.0\.0\.1:\d+$")


def _run_script(command: str, run_dir: Path, limit_s: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KAFKA_RUN_DIR": str(run_dir)}
    try:
        return subprocess.run(
            [str(KAFKA_SCRIPT), command],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=limit_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raw = exc.stderr
        stderr = raw.decode(errors="replace") if isinstance(raw, bytes) else (raw or "")
        pytest.fail(
            f"`{KAFKA_SCRIPT} {command}` did not finish within {limit_s:.0f}s\n{stderr}",
            pytrace=False,
        )


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address ``127.0.0.1:PORT`` of a running broker, for the whole session."""
    external = os.environ.get("KAFKA_BOOTSTRAP", "").strip()
    if external:
        yield external
        return

    run_dir = tmp_path_factory.mktemp("kafka-run")
    try:
        started = _run_script("start", run_dir, _START_LIMIT_S)
        bootstrap = _last_line(started.stdout)
        if started.returncode != 0 or not _ADDRESS.match(bootstrap):
            pytest.fail(
                f"local Kafka broker did not start (exit {started.returncode}, "
                f"run folder {run_dir})\n--- stdout ---\n{started.stdout}"
                f"\n--- stderr (with the broker log tail) ---\n{started.stderr}",
                pytrace=False,
            )
        yield bootstrap
    finally:
        stopped = _run_script("stop", run_dir, _STOP_LIMIT_S)
        if stopped.returncode != 0:
            pytest.fail(
                f"local Kafka broker did not stop cleanly (exit {stopped.returncode})\n"
                f"{stopped.stderr}",
                pytrace=False,
            )


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
