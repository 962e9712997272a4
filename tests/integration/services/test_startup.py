"""A stack still starting: credentials as they are, servers waited for, SIGTERM during a wait.

``setup`` and ``run`` are run as users run them (a subprocess of the CLI with the environment
docker-compose.yml gives it) against the real clickhouse-connect path (``ChdbHttpServer`` with a
user and password), ports that refuse connections, an HTTP server that answers 503 or resets
every connection, and the real Kafka broker. Waits are made short with
``VMGATE_STARTUP_WAIT_S``; the tests count attempts and read exit statuses and log lines, and
never measure time (the subprocess limits are safety nets).
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline.config import load_settings
from pipeline.services.startup import (
    ServerUnavailableError,
    StopSignal,
    open_store_when_ready,
)
from pipeline.testing.clickhouse_http import ChdbHttpServer
from tests.support.startup import Waits, stop_installed, waits_logged

PASSWORD = "p@ss:w/o%25rd #?&+ ='\"\\ $x é€ 密"
GUARD_S = 60.0  # safety net for a subprocess; never asserted on
REPO_ROOT = Path(__file__).resolve().parents[3]


def _refusing_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # bound, never listened on, closed: connections are refused


def _environment(**values: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CLICKHOUSE_", "KAFKA_", "VMGATE_"))
    }
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.update(values)
    return env


def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=GUARD_S * 3,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def _waits(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " not ready (attempt " in line]


# -- credentials -------------------------------------------------------------------------------


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[ChdbHttpServer]:
    with ChdbHttpServer(tmp_path / "clickhouse", users={"vmgate": PASSWORD}) as server:
        yield server


def test_a_password_with_any_character_reaches_the_server_as_it_is(
    guarded: ChdbHttpServer, tmp_path: Path
) -> None:
    database = f"vmgate_{uuid.uuid4().hex[:8]}"
    env = _environment(
        CLICKHOUSE_URL=f"{guarded.url}/{database}",
        CLICKHOUSE_USER="vmgate",
        CLICKHOUSE_PASSWORD=PASSWORD,
    )
    done = _cli("setup", "--no-kafka", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "DDL applied: 000_schema_migrations.sql, 001_call_history.sql" in done.stdout
    queries = [r for r in guarded.requests if r.path == "/"]
    assert queries
    assert {(r.user, r.status) for r in queries} == {("vmgate", 200)}
    assert not _waits(done.stderr)
    assert not (tmp_path / "store").exists()  # the server store, not an embedded one


def test_a_wrong_password_is_not_waited_for(guarded: ChdbHttpServer, tmp_path: Path) -> None:
    env = _environment(
        CLICKHOUSE_URL=guarded.url,
        CLICKHOUSE_USER="vmgate",
        CLICKHOUSE_PASSWORD=PASSWORD[:-1],
        VMGATE_STARTUP_WAIT_S="60",
    )
    done = _cli("setup", "--no-kafka", env=env, cwd=tmp_path)
    assert done.returncode == 3, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"vmgate-rating: ClickHouse at {guarded.url}: authentication failed")
    assert "CLICKHOUSE_USER/CLICKHOUSE_PASSWORD" in last
    assert PASSWORD[:-1] not in done.stderr
    assert "Traceback" not in done.stderr
    assert not _waits(done.stderr)
    assert [r.status for r in guarded.requests if r.path == "/"] == [403]  # one attempt


def test_credentials_in_the_url_and_in_the_environment_are_refused(tmp_path: Path) -> None:
    env = _environment(
        CLICKHOUSE_URL="http://vmgate:url-secret@127.0.0.1:1/vmgate",
        CLICKHOUSE_USER="vmgate",
        CLICKHOUSE_PASSWORD="env-secret",
    )
    done = _cli("setup", "--no-kafka", env=env, cwd=tmp_path)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "credentials given twice" in line
    assert "CLICKHOUSE_USER/CLICKHOUSE_PASSWORD" in line
    assert "url-secret" not in line
    assert "env-secret" not in line


# -- waiting for ClickHouse --------------------------------------------------------------------


@pytest.fixture
def first_wait() -> Iterator[Waits]:
    with waits_logged() as handler:
        yield handler


@pytest.fixture
def stop() -> Iterator[StopSignal]:
    with stop_installed() as installed:
        yield installed


def test_a_server_that_starts_late_is_waited_for(
    tmp_path: Path, first_wait: Waits, stop: StopSignal
) -> None:
    port = _refusing_port()
    late = ChdbHttpServer(tmp_path / "clickhouse", port=port, users={"vmgate": PASSWORD})

    def start_after_the_first_refusal() -> None:
        if first_wait.first.wait(GUARD_S):
            late.start()

    starter = threading.Thread(target=start_after_the_first_refusal)
    starter.start()
    settings = load_settings(
        environ={
            "CLICKHOUSE_URL": f"http://127.0.0.1:{port}",
            "CLICKHOUSE_USER": "vmgate",
            "CLICKHOUSE_PASSWORD": PASSWORD,
            "VMGATE_STARTUP_WAIT_S": "60",
        }
    )
    try:
        store = open_store_when_ready(settings, None, stop)
        try:
            assert store.migrate()
            assert store.query("SELECT count() AS n FROM call_history").to_pylist() == [{"n": 0}]
        finally:
            store.close()
    finally:
        starter.join()
        late.stop()
    assert len(first_wait.lines) >= 1  # refused at least once, then in
    assert all("not ready (attempt" in line for line in first_wait.lines)
    assert {r.user for r in late.requests if r.path == "/"} == {"vmgate"}


class _Unavailable(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        self.send_response(503)
        self.send_header("Content-Length", "19")
        self.end_headers()
        self.wfile.write(b"Service Unavailable")

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


def _answering_503() -> tuple[str, Callable[[], None]]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()

    def close() -> None:
        httpd.shutdown()
        httpd.server_close()
        thread.join()

    return f"http://127.0.0.1:{httpd.server_address[1]}", close


def _resetting() -> tuple[str, Callable[[], None]]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    done = threading.Event()

    def reset_every_connection() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # linger 0: the peer gets a reset

    thread = threading.Thread(target=reset_every_connection, daemon=True)
    thread.start()

    def close() -> None:
        done.set()
        thread.join()
        listener.close()

    return f"http://127.0.0.1:{listener.getsockname()[1]}", close


@pytest.mark.parametrize("server", [_answering_503, _resetting], ids=["http-503", "reset"])
def test_5xx_and_resets_are_tried_again_until_the_wait_ends(
    server: Callable[[], tuple[str, Callable[[], None]]],
    first_wait: Waits,
    stop: StopSignal,
) -> None:
    url, close = server()
    settings = load_settings(environ={"CLICKHOUSE_URL": url, "VMGATE_STARTUP_WAIT_S": "1.5"})
    try:
        with pytest.raises(ServerUnavailableError) as gave_up:
            open_store_when_ready(settings, None, stop)
    finally:
        close()
    assert len(first_wait.lines) >= 2
    assert str(gave_up.value).startswith(f"ClickHouse at {url} did not accept connections")
    assert f"{len(first_wait.lines) + 1} attempts" in str(gave_up.value)


def test_setup_gives_up_on_a_server_that_never_comes_naming_it(tmp_path: Path) -> None:
    port = _refusing_port()
    env = _environment(CLICKHOUSE_URL=f"http://127.0.0.1:{port}", VMGATE_STARTUP_WAIT_S="1")
    done = _cli("setup", "--no-kafka", env=env, cwd=tmp_path)
    assert done.returncode == 3, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"vmgate-rating: ClickHouse at http://127.0.0.1:{port} did not accept connections: "
        "gave up after waiting"
    )
    assert "VMGATE_STARTUP_WAIT_S=1," in last
    assert f"{len(_waits(done.stderr)) + 1} attempts" in last
    assert _waits(done.stderr)
    assert "Traceback" not in done.stderr


# -- SIGTERM during the startup of `run` ---------------------------------------------------------


def _start_run(
    tmp_path: Path, env: dict[str, str], *args: str
) -> tuple[subprocess.Popen[bytes], Path]:
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "run", "--store", str(tmp_path / "store"), *args],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return process, log


def _terminate_once(process: subprocess.Popen[bytes], log: Path, marker: str) -> str:
    """Wait until the log shows ``marker``, send SIGTERM, return the log once it exited."""
    deadline = time.monotonic() + GUARD_S
    while marker not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"`run` never logged {marker!r}:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=GUARD_S)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"`run` ignored SIGTERM:\n{log.read_text()[-3000:]}")
    text = log.read_text(errors="replace")
    assert code == 0, text[-3000:]
    assert "Traceback" not in text
    return text


def test_sigterm_while_waiting_for_reference_data_exits_0(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:10]
    env = _environment(
        KAFKA_BOOTSTRAP=kafka_bootstrap,
        VMGATE_GROUP=f"raters-{run}",
        VMGATE_CDR_TOPIC=f"cdr-{run}",
        VMGATE_RATEPLANS_TOPIC=f"rateplans-{run}",  # nothing was ever published here
        VMGATE_ASSOCIATIONS_TOPIC=f"associations-{run}",
        VMGATE_MEMBERSHIPS_TOPIC=f"memberships-{run}",
    )
    process, log = _start_run(tmp_path, env)  # no --plans: waits for published reference data
    text = _terminate_once(process, log, "waiting for published reference data")
    assert "stopped by SIGTERM while waiting for published reference data" in text
    assert "consumed" not in text  # the rater loop never started


def test_sigterm_while_waiting_for_clickhouse_exits_0(kafka_bootstrap: str, tmp_path: Path) -> None:
    port = _refusing_port()
    env = _environment(
        KAFKA_BOOTSTRAP=kafka_bootstrap,
        CLICKHOUSE_URL=f"http://127.0.0.1:{port}",
        VMGATE_STARTUP_WAIT_S="600",
    )
    process, log = _start_run(tmp_path, env)
    text = _terminate_once(process, log, " not ready (attempt 1,")
    assert f"stopped by SIGTERM while waiting for ClickHouse at http://127.0.0.1:{port}" in text


def test_sigterm_while_waiting_for_kafka_exits_0(tmp_path: Path) -> None:
    port = _refusing_port()
    env = _environment(KAFKA_BOOTSTRAP=f"127.0.0.1:{port}", VMGATE_STARTUP_WAIT_S="600")
    process, log = _start_run(tmp_path, env)
    text = _terminate_once(process, log, " not ready (attempt 1,")
    assert f"stopped by SIGTERM while waiting for Kafka at 127.0.0.1:{port}" in text
