"""Storage errors on the server path: clickhouse-connect against ClickHouse's HTTP interface.

``ChdbHttpServer`` puts the real engine behind the HTTP interface, so the errors are the
engine's, carried the way a server carries them (HTTP 500, ``X-ClickHouse-Exception-Code``, the
text as the body). It has no authentication: a failed login is answered here by a small HTTP
endpoint that replies as ClickHouse's HTTP handler does (403 or 401, the code header and the
text), and ``clickhouse-connect`` turns that answer into its exception itself.
"""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pytest

from pipeline.config import Secret
from pipeline.sinks.clickhouse_server import ServerSettings, ServerStore
from pipeline.storage.errors import StoreErrorKind, examine_store_error
from pipeline.testing.clickhouse_http import ChdbHttpServer
from tests.builders import cdr, deck_row, rate_table, simple_reference

PERMANENT, TRANSIENT = StoreErrorKind.PERMANENT, StoreErrorKind.TRANSIENT


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ServerStore]:
    """A migrated store in a database of its own, on a server of its own (one chdb per process)."""
    database = f"it_{uuid.uuid4().hex}"
    with (
        ChdbHttpServer(tmp_path / "server") as server,
        ServerStore(ServerSettings.from_url(server.url, database=database)) as opened,
    ):
        opened.migrate()
        yield opened


@pytest.fixture
def batch(tmp_path: Path) -> pa.Table:
    reference = simple_reference(tmp_path / "plans", [deck_row("44", "0.01")])
    return rate_table(reference, [cdr(cdr_id=f"c-{i}") for i in range(3)])


def _raised(work: Callable[[], object], match: str) -> BaseException:
    with pytest.raises(Exception, match=match) as caught:
        work()
    return caught.value


def test_a_missing_table_is_permanent(store: ServerStore, batch: pa.Table) -> None:
    store.execute("DROP TABLE call_history")
    failure = examine_store_error(_raised(lambda: store.write_call_history(batch), "UNKNOWN_TABLE"))
    assert (failure.kind, failure.code, failure.name) == (PERMANENT, 60, "UNKNOWN_TABLE")
    assert failure.message.startswith(f"table {store.database}.call_history does not exist: ")
    assert "vmgate-rating setup" in failure.message


def test_a_missing_column_is_permanent(store: ServerStore, batch: pa.Table) -> None:
    store.execute("ALTER TABLE call_history DROP COLUMN caller")
    failure = examine_store_error(_raised(lambda: store.write_call_history(batch), "NO_SUCH"))
    assert (failure.kind, failure.code) == (PERMANENT, 16)
    assert failure.message.startswith(f"table {store.database}.call_history lacks column caller: ")
    assert "vmgate-rating setup" in failure.message


def test_a_type_that_cannot_convert_is_permanent(store: ServerStore, batch: pa.Table) -> None:
    store.execute("ALTER TABLE call_history MODIFY COLUMN customer_id UInt32")
    failure = examine_store_error(_raised(lambda: store.write_call_history(batch), "PARSE"))
    assert (failure.kind, failure.name) == (PERMANENT, "CANNOT_PARSE_TEXT")
    # Over HTTP the rows travel as Arrow, so the engine names the column and both types.
    assert failure.message.startswith(
        "column `customer_id` is UInt32 in the store, the rater writes String: "
    )


def test_a_syntax_error_is_permanent(store: ServerStore) -> None:
    error = _raised(lambda: store.execute("INSERT INTO call_history ("), "SYNTAX_ERROR")
    failure = examine_store_error(error)
    assert (failure.kind, failure.code) == (PERMANENT, 62)
    assert failure.message.startswith("Syntax error")
    assert store.settings.url not in failure.message


def test_a_readonly_query_is_permanent(store: ServerStore) -> None:
    error = _raised(
        lambda: store.execute(
            "INSERT INTO call_history SETTINGS readonly = 1 SELECT * FROM call_history"
        ),
        "READONLY",
    )
    failure = examine_store_error(error)
    assert (failure.kind, failure.code) == (PERMANENT, 164)
    assert "may not write" in failure.message


def test_a_timeout_is_transient(store: ServerStore) -> None:
    sql = (
        "SELECT count() FROM numbers(1e15) "
        "SETTINGS max_execution_time = 0.05, timeout_overflow_mode = 'throw'"
    )
    failure = examine_store_error(_raised(lambda: store.query(sql), "TIMEOUT_EXCEEDED"))
    assert (failure.kind, failure.code, failure.recognised) == (TRANSIENT, 159, True)


def test_a_refused_connection_is_transient() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    store = ServerStore(ServerSettings.from_url(url, connect_timeout_s=2))
    failure = examine_store_error(_raised(store.open, "refused"))
    assert (failure.kind, failure.recognised) == (TRANSIENT, True)
    assert failure.message.startswith(f"Connection refused ({url}): cannot reach the store")


def test_a_stopped_server_is_transient(tmp_path: Path, batch: pa.Table) -> None:
    with (
        ChdbHttpServer(tmp_path / "server") as stopping,
        ServerStore(ServerSettings.from_url(stopping.url, database="stops")) as store,
    ):
        store.migrate()
        stopping.stop()
        failure = examine_store_error(_raised(lambda: store.write_call_history(batch), "HTTP"))
    assert (failure.kind, failure.recognised) == (TRANSIENT, True)
    assert "cannot reach the store" in failure.message


# -- answers only a real server gives: authentication --------------------------------------


class _Answer(BaseHTTPRequestHandler):
    """Answers every request with ``status``, ``headers`` and ``body`` (set per server)."""

    status: ClassVar[int] = 500
    headers_out: ClassVar[dict[str, str]] = {}
    body: ClassVar[bytes] = b""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(self.status)
        for name, value in self.headers_out.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    do_GET = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def answering() -> Iterator[Callable[[int, dict[str, str], str], str]]:
    servers: list[ThreadingHTTPServer] = []

    def start(status: int, headers: dict[str, str], body: str) -> str:
        handler = type(
            "Answer", (_Answer,), {"status": status, "headers_out": headers, "body": body.encode()}
        )
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize(
    ("status", "code", "text", "kind", "words"),
    [
        pytest.param(
            403,
            516,
            "rater: Authentication failed: password is incorrect, or there is no user with such "
            "name. (AUTHENTICATION_FAILED)",
            PERMANENT,
            "authentication failed: check CLICKHOUSE_USER/CLICKHOUSE_PASSWORD",
            id="wrong-password",
        ),
        pytest.param(
            401,
            194,
            "rater: Password required. (REQUIRED_PASSWORD)",
            PERMANENT,
            "authentication failed: check CLICKHOUSE_USER/CLICKHOUSE_PASSWORD",
            id="password-required",
        ),
        pytest.param(401, None, "Unauthorized", PERMANENT, "HTTP 401", id="proxy-401"),
    ],
)
def test_a_failed_login_is_permanent(
    answering: Callable[[int, dict[str, str], str], str],
    status: int,
    code: int | None,
    text: str,
    kind: StoreErrorKind,
    words: str,
) -> None:
    headers = {"X-ClickHouse-Exception-Code": str(code)} if code else {}
    body = f"Code: {code}. DB::Exception: {text} (version 25.3.2.39 (official build))\n"
    url = answering(status, headers, body if code else text)
    settings = ServerSettings.from_url(url, username="rater", password=Secret("wrong"))
    failure = examine_store_error(_raised(ServerStore(settings).open, str(code or status)))
    assert (failure.kind, failure.code, failure.http_status) == (
        kind,
        code,
        None if code else status,
    )
    assert words in failure.message
    assert "wrong" not in failure.message


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # bound, never listened on, closed: connections are refused
