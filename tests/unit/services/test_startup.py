"""Waiting for servers that are still starting, and stopping a wait on SIGTERM.

The servers here are ports that refuse connections (bound, never listened on): the real
clients (clickhouse-connect, librdkafka) fail on them exactly as on a server not up yet. The
waits are short (``VMGATE_STARTUP_WAIT_S``); the tests count attempts, never measure time.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Iterator

import pytest
from confluent_kafka import KafkaError, KafkaException

from pipeline.config import load_settings
from pipeline.services.startup import (
    ServerUnavailableError,
    StopRequestedError,
    StopSignal,
    open_store_when_ready,
    wait_for_kafka,
)
from pipeline.sinks.topics import broker_not_ready
from tests.support.startup import Waits, stop_installed, waits_logged


def _refusing_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # bound, never listened on, closed: connections are refused


@pytest.fixture
def waits() -> Iterator[Waits]:
    with waits_logged() as handler:
        yield handler


@pytest.fixture
def stop() -> Iterator[StopSignal]:
    with stop_installed() as installed:
        yield installed


def test_a_clickhouse_that_refuses_is_tried_again_then_named(
    waits: Waits, stop: StopSignal
) -> None:
    port = _refusing_port()
    settings = load_settings(
        environ={
            "CLICKHOUSE_URL": f"http://127.0.0.1:{port}/vmgate",
            "CLICKHOUSE_USER": "vmgate",
            "CLICKHOUSE_PASSWORD": "pw",
            "VMGATE_STARTUP_WAIT_S": "1.5",
        }
    )
    with pytest.raises(ServerUnavailableError) as gave_up:
        open_store_when_ready(settings, None, stop)
    message = str(gave_up.value)
    assert message.startswith(f"ClickHouse at http://127.0.0.1:{port} did not accept connections")
    assert "gave up after waiting" in message
    assert "VMGATE_STARTUP_WAIT_S=1.5" in message
    assert len(waits.lines) >= 2  # first try, then at least two waits before giving up
    assert f"{len(waits.lines) + 1} attempts" in message
    for number, line in enumerate(waits.lines, start=1):
        where = f"ClickHouse at http://127.0.0.1:{port}"
        assert line.startswith(f"{where} not ready (attempt {number},")
        assert "\n" not in line
        assert "pw" not in line.replace("password", "")


def test_no_wait_tries_once(waits: Waits, stop: StopSignal) -> None:
    port = _refusing_port()
    settings = load_settings(
        environ={"CLICKHOUSE_URL": f"http://127.0.0.1:{port}", "VMGATE_STARTUP_WAIT_S": "0"}
    )
    with pytest.raises(ServerUnavailableError, match="1 attempts"):
        open_store_when_ready(settings, None, stop)
    assert waits.lines == []


def test_sigterm_ends_a_wait_at_once(waits: Waits, stop: StopSignal) -> None:
    port = _refusing_port()
    settings = load_settings(
        environ={"CLICKHOUSE_URL": f"http://127.0.0.1:{port}", "VMGATE_STARTUP_WAIT_S": "600"}
    )

    def terminate_after_the_first_wait() -> None:
        if waits.first.wait(60):
            os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=terminate_after_the_first_wait)
    killer.start()
    try:
        with pytest.raises(StopRequestedError) as stopped:
            open_store_when_ready(settings, None, stop)
    finally:
        killer.join()
    assert stopped.value.signal_name == "SIGTERM"
    assert stopped.value.waiting_for == f"ClickHouse at http://127.0.0.1:{port}"
    assert str(stopped.value).startswith("stopped by SIGTERM while waiting for ClickHouse")
    assert stop.requested
    calls: list[str] = []
    stop.on_stop(lambda: calls.append("late listener"))  # already stopping: called at once
    assert calls == ["late listener"]


def test_a_kafka_that_refuses_is_named(waits: Waits, stop: StopSignal) -> None:
    port = _refusing_port()
    settings = load_settings(
        environ={"KAFKA_BOOTSTRAP": f"127.0.0.1:{port}", "VMGATE_STARTUP_WAIT_S": "3"}
    )
    with pytest.raises(ServerUnavailableError) as gave_up:
        wait_for_kafka(settings, stop)
    message = str(gave_up.value)
    assert message.startswith(f"Kafka at 127.0.0.1:{port} did not accept connections")
    assert "_TRANSPORT" in message
    assert waits.lines
    assert f"{len(waits.lines) + 1} attempts" in message


def test_which_kafka_errors_are_waited_for() -> None:
    assert broker_not_ready(KafkaException(KafkaError(KafkaError._TRANSPORT)))[0]
    assert broker_not_ready(KafkaException(KafkaError(KafkaError._TIMED_OUT)))[0]
    assert broker_not_ready(KafkaException(KafkaError(KafkaError.LEADER_NOT_AVAILABLE)))[0]
    authentication = broker_not_ready(KafkaException(KafkaError(KafkaError._AUTHENTICATION)))
    assert authentication[0] is False
    assert "_AUTHENTICATION" in authentication[1]
    sasl = KafkaException(KafkaError(KafkaError.SASL_AUTHENTICATION_FAILED))
    assert not broker_not_ready(sasl)[0]
    assert not broker_not_ready(KafkaException(KafkaError(KafkaError._SSL)))[0]
    assert not broker_not_ready(RuntimeError("not a Kafka error"))[0]
