"""Storage errors classified: the embedded engine (chdb, in process) provokes them for real.

The server path (clickhouse-connect over HTTP) is in ``tests/integration/storage/test_errors.py``.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError, ProgrammingError

from pipeline.sinks.embedded import EmbeddedStore
from pipeline.storage.errors import (
    CLASSIFIED_CODES,
    StoreErrorKind,
    classify_store_error,
    describe_store_error,
    examine_store_error,
)
from tests.builders import cdr, deck_row, rate_table, simple_reference

PERMANENT, TRANSIENT = StoreErrorKind.PERMANENT, StoreErrorKind.TRANSIENT
CODE_OF = {name: code for code, (name, _) in CLASSIFIED_CODES.items()}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedStore]:
    with EmbeddedStore(tmp_path / "store", "errors") as opened:
        opened.migrate()
        yield opened


@pytest.fixture
def batch(tmp_path: Path) -> pa.Table:
    reference = simple_reference(tmp_path / "plans", [deck_row("44", "0.01")])
    return rate_table(reference, [cdr(cdr_id=f"c-{i}") for i in range(3)])


def _raised(work: Callable[[], object], match: str) -> BaseException:
    """The exception ``work`` raises; ``match`` is a word of its text (the engine's name)."""
    with pytest.raises(Exception, match=match) as caught:
        work()
    return caught.value


def test_every_classified_code_has_the_engines_name(store: EmbeddedStore) -> None:
    names = store.query(
        "SELECT toUInt32(number) AS code, errorCodeToName(code) AS name "
        "FROM numbers(2000) WHERE name != ''"
    ).to_pylist()
    engine = {row["code"]: row["name"] for row in names}
    assert {code: name for code, (name, _) in CLASSIFIED_CODES.items()} == {
        code: engine.get(code) for code in CLASSIFIED_CODES
    }


def test_a_missing_table_is_permanent(store: EmbeddedStore, batch: pa.Table) -> None:
    store.execute("DROP TABLE call_history")
    failure = examine_store_error(_raised(lambda: store.write_call_history(batch), "UNKNOWN_TABLE"))
    assert (failure.kind, failure.code, failure.name) == (PERMANENT, 60, "UNKNOWN_TABLE")
    assert failure.recognised
    assert failure.message.startswith("table errors.call_history does not exist: ")
    assert "vmgate-rating setup" in failure.message


def test_a_missing_column_is_permanent(store: EmbeddedStore, batch: pa.Table) -> None:
    store.execute("ALTER TABLE call_history DROP COLUMN caller")
    error = _raised(lambda: store.write_call_history(batch), "NO_SUCH_COLUMN")
    assert classify_store_error(error) is PERMANENT
    message = describe_store_error(error)
    assert message.startswith("table errors.call_history lacks column caller: ")
    assert "vmgate-rating setup" in message
    assert "NO_SUCH_COLUMN_IN_TABLE, code 16" in message


def test_a_type_that_cannot_convert_is_permanent(store: EmbeddedStore, batch: pa.Table) -> None:
    store.execute("ALTER TABLE call_history MODIFY COLUMN customer_id UInt32")
    failure = examine_store_error(_raised(lambda: store.write_call_history(batch), "CANNOT_PARSE"))
    assert (failure.kind, failure.name) == (PERMANENT, "CANNOT_PARSE_TEXT")
    assert "Cannot parse string 'cust' as UInt32" in failure.message
    assert "column types" in failure.message


def test_a_syntax_error_is_permanent(store: EmbeddedStore) -> None:
    error = _raised(lambda: store.execute("INSERT INTO call_history ("), "SYNTAX_ERROR")
    failure = examine_store_error(error)
    assert (failure.kind, failure.code, failure.name) == (PERMANENT, 62, "SYNTAX_ERROR")
    assert failure.message.startswith("Syntax error")
    assert "DB::Exception" not in failure.message


def test_a_readonly_user_is_permanent(store: EmbeddedStore, batch: pa.Table) -> None:
    store.execute("SET readonly = 1")
    failure = examine_store_error(_raised(lambda: store.write_call_history(batch), "READONLY"))
    assert (failure.kind, failure.name) == (PERMANENT, "READONLY")
    assert "may not write" in failure.message
    assert "readonly mode" in failure.message
    assert "vmgate_rater" in failure.message


@pytest.mark.parametrize(
    ("sql", "name"),
    [
        (
            "SELECT count() FROM numbers(1e15) "
            "SETTINGS max_execution_time = 0.05, timeout_overflow_mode = 'throw'",
            "TIMEOUT_EXCEEDED",
        ),
        (
            "SELECT groupArray(number) FROM numbers(1e7) SETTINGS max_memory_usage = 1000000",
            "MEMORY_LIMIT_EXCEEDED",
        ),
    ],
)
def test_timeouts_and_memory_limits_are_transient(
    store: EmbeddedStore, sql: str, name: str
) -> None:
    failure = examine_store_error(_raised(lambda: store.query(sql), name))
    assert (failure.kind, failure.name, failure.recognised) == (TRANSIENT, name, True)
    assert failure.message.endswith(f"retrying [{name}, code {CODE_OF[name]}]")


def test_a_refused_connection_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Bound, never listening, now closed: the port refuses connections.
    error = _raised(lambda: socket.create_connection(("127.0.0.1", port), timeout=5), "refused")
    assert isinstance(error, ConnectionRefusedError)
    failure = examine_store_error(error)
    assert (failure.kind, failure.recognised) == (TRANSIENT, True)
    assert failure.message.startswith("Connection refused: cannot reach the store")


def test_oserror_and_timeouts_are_transient() -> None:
    assert classify_store_error(TimeoutError("timed out")) is TRANSIENT
    assert classify_store_error(ConnectionResetError(104, "Connection reset by peer")) is TRANSIENT
    wrapped = RuntimeError("request failed")
    wrapped.__cause__ = ConnectionResetError(104, "Connection reset by peer")
    assert examine_store_error(wrapped).recognised


def test_an_unrecognised_error_is_transient_but_flagged() -> None:
    failure = examine_store_error(ValueError("customer_amount is decimal128(38, 9)"))
    assert (failure.kind, failure.recognised, failure.code) == (TRANSIENT, False, None)
    assert failure.message == (
        "customer_amount is decimal128(38, 9): unrecognised store error; retrying for a while "
        "[ValueError]"
    )
    unknown_code = examine_store_error(RuntimeError("Code: 2999. DB::Exception: new. (NEW_ONE)"))
    assert (unknown_code.kind, unknown_code.recognised) == (TRANSIENT, False)
    assert (unknown_code.code, unknown_code.name) == (2999, "NEW_ONE")


# What a ClickHouse server answers that neither engine here can produce (authentication,
# replication, merges, shutdown): clickhouse-connect's exception as it builds it from the
# server's answer (message text, ``code`` from X-ClickHouse-Exception-Code), or chdb's text.
def _server(code: int, text: str) -> DatabaseError:
    body = f"Code: {code}. DB::Exception: {text} (version 25.3.2.39 (official build))"
    return DatabaseError(
        f"Received ClickHouse exception, code: {code}, server response: {body} "
        "(for url https://ch.example:8443)",
        code=code,
        name=text.rsplit("(", 1)[-1].rstrip(").") if "(" in text else None,
    )


@pytest.mark.parametrize(
    ("error", "kind", "words"),
    [
        pytest.param(
            _server(
                516,
                "rater: Authentication failed: password is incorrect, or there is no user "
                "with such name. (AUTHENTICATION_FAILED)",
            ),
            PERMANENT,
            "authentication failed: check CLICKHOUSE_USER/CLICKHOUSE_PASSWORD",
            id="authentication",
        ),
        pytest.param(
            _server(194, "rater: Password required. (REQUIRED_PASSWORD)"),
            PERMANENT,
            "CLICKHOUSE_PASSWORD",
            id="password-required",
        ),
        pytest.param(
            _server(
                497,
                "rater: Not enough privileges. To execute this query, it's necessary to have "
                "the grant INSERT ON vmgate.call_history. (ACCESS_DENIED)",
            ),
            PERMANENT,
            "may not write (rater: Not enough privileges.",
            id="access-denied",
        ),
        pytest.param(
            _server(252, "Too many parts (3001 with average size of 1.2 KiB). (TOO_MANY_PARTS)"),
            TRANSIENT,
            "Too many parts (3001 with average size of 1.2 KiB): the store is busy; retrying",
            id="too-many-parts",
        ),
        pytest.param(
            _server(242, "Table is in readonly mode (replica path: /ch/t). (TABLE_IS_READ_ONLY)"),
            TRANSIENT,
            "waits for Keeper or replicas",
            id="replica-readonly",
        ),
        pytest.param(
            _server(999, "Coordination error: Connection loss. (KEEPER_EXCEPTION)"),
            TRANSIENT,
            "Keeper",
            id="keeper",
        ),
        pytest.param(
            _server(236, "Server shutdown is called. (ABORTED)"),
            TRANSIENT,
            "stopping",
            id="shutdown",
        ),
        pytest.param(
            RuntimeError(
                "Code: 202. DB::Exception: Too many simultaneous queries. Maximum: 100. "
                "(TOO_MANY_SIMULTANEOUS_QUERIES)"
            ),
            TRANSIENT,
            "busy",
            id="chdb-text-too-many-queries",
        ),
        pytest.param(
            DatabaseError("HTTP driver received HTTP status 401, server response: Unauthorized"),
            PERMANENT,
            "authentication failed",
            id="http-401-from-a-proxy",
        ),
        pytest.param(
            OperationalError("HTTP driver received HTTP status 503, server response: busy"),
            TRANSIENT,
            "busy",
            id="http-503",
        ),
        pytest.param(
            ProgrammingError("No table specified for insert"),
            PERMANENT,
            "client library refused the call",
            id="client-side-refusal",
        ),
    ],
)
def test_server_answers(error: BaseException, kind: StoreErrorKind, words: str) -> None:
    failure = examine_store_error(error)
    assert failure.kind is kind
    assert failure.recognised
    assert words in failure.message
    assert "\n" not in failure.message
    assert "version 25.3" not in failure.message
    assert "ch.example" not in failure.message  # the URL is not the problem
