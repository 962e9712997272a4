"""ClickHouse server settings: CLICKHOUSE_URL parsing, masked credentials, no side effects."""

from __future__ import annotations

import dataclasses
import logging
from decimal import Decimal

import pyarrow as pa
import pytest

from pipeline.config import Secret
from pipeline.rating.columns import CALL_HISTORY_SCHEMA, call_history_batch
from pipeline.sinks.clickhouse_server import ServerSettings, ServerStore
from pipeline.sinks.open_store import open_store

PASSWORD = "s3cr%t:p@ss/w0rd"
ENCODED = "s3cr%25t%3Ap%40ss%2Fw0rd"


def test_full_url() -> None:
    settings = ServerSettings.from_url(f"https://alice:{ENCODED}@ch.example.net:9443/billing")
    assert settings.url == "https://ch.example.net:9443"
    assert (settings.host, settings.port, settings.secure) == ("ch.example.net", 9443, True)
    assert settings.database == "billing"
    assert settings.username == "alice"
    assert settings.password.reveal() == PASSWORD
    assert settings.compression == "lz4"


def test_defaults() -> None:
    settings = ServerSettings.from_url("http://localhost")
    assert settings.url == "http://localhost:8123"
    assert (settings.host, settings.port, settings.secure) == ("localhost", 8123, False)
    assert settings.database == "vmgate"
    assert settings.username == "default"
    assert settings.password.reveal() == ""
    assert (settings.connect_timeout_s, settings.send_receive_timeout_s) == (10, 300)
    assert ServerSettings.from_url("https://h/").port == 8443
    assert ServerSettings.from_url("http://h", database="other").database == "other"
    assert ServerSettings.from_url("http://h/fromurl", database="other").database == "fromurl"


def test_secure_option_selects_https() -> None:
    settings = ServerSettings.from_url("http://u:p@h:8443/db?secure=true")
    assert settings.url == "https://h:8443"
    assert settings.secure
    assert ServerSettings.from_url("http://h?secure=0").url == "http://h:8123"
    assert ServerSettings.from_url("http://h?secure=1").url == "https://h:8443"


def test_options_in_the_query_string() -> None:
    settings = ServerSettings.from_url(
        "http://h/db?compression=zstd&connect_timeout=3&send_receive_timeout=60"
    )
    assert settings.compression == "zstd"
    assert (settings.connect_timeout_s, settings.send_receive_timeout_s) == (3, 60)
    assert ServerSettings.from_url("http://h?compression=none").compression is None


def test_separate_credentials_are_taken_as_they_are() -> None:
    password = "p@ss:w/o%rd #?&+ '\"\\ é€"
    settings = ServerSettings.from_url("http://h:8123/db", username="bob", password=password)
    assert (settings.url, settings.database) == ("http://h:8123", "db")
    assert settings.username == "bob"
    assert settings.password.reveal() == password  # not percent-decoded
    only_password = ServerSettings.from_url("http://h", password=Secret("x"))
    assert (only_password.username, only_password.password.reveal()) == ("default", "x")


@pytest.mark.parametrize(
    ("url", "username", "password"),
    [
        ("http://url-user:url-pass@h/db", "bob", Secret("from-env")),
        ("http://url-user:url-pass@h/db", None, Secret("from-env")),
        ("http://url-user:url-pass@h/db", "bob", None),
        ("http://carol@h", None, Secret("x")),
        ("http://:only-pass@h", "bob", None),
    ],
)
def test_credentials_in_the_url_and_separately_are_refused(
    url: str, username: str | None, password: Secret | None
) -> None:
    with pytest.raises(ValueError, match="credentials given twice") as refused:
        ServerSettings.from_url(url, username=username, password=password)
    message = str(refused.value)
    assert "\n" not in message
    assert "CLICKHOUSE_USER/CLICKHOUSE_PASSWORD" in message
    assert "url-pass" not in message
    assert "only-pass" not in message
    assert "from-env" not in message


def test_ipv6_host() -> None:
    settings = ServerSettings.from_url("http://[::1]:18123/db")
    assert settings.url == "http://[::1]:18123"
    assert (settings.host, settings.port) == ("::1", 18123)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("clickhouse://h:9000/db", "http:// or https://"),
        ("h:8123", "http:// or https://"),
        ("http:///db", "names no host"),
        ("http://h:99999/db", "bad port"),
        ("http://h:port/db", "bad port"),
        ("http://h/a/b", "one database name"),
        ("http://h/1bad", "letters, digits"),
        ("http://h/db;DROP", "letters, digits"),
        ("http://h?secure=maybe", "secure must be"),
        ("http://h?compression=snappy", "compression must be"),
        ("http://h?connect_timeout=-1", "connect_timeout"),
        ("http://h?send_receive_timeout=soon", "send_receive_timeout"),
        ("http://h?verify=false", "unknown option"),
    ],
)
def test_bad_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ServerSettings.from_url(url)


@pytest.mark.parametrize(
    "url",
    [
        f"clickhouse://u:{ENCODED}@h:9000/db",
        f"http://u:{ENCODED}@h:99999/db",
        f"http://u:{ENCODED}@h/a/b",
        f"http://u:{ENCODED}@h?verify=false",
        f"http://u:{ENCODED}@h/1bad",
    ],
)
def test_errors_never_repeat_the_password(url: str) -> None:
    with pytest.raises(ValueError, match=r".") as caught:
        ServerSettings.from_url(url)
    text = str(caught.value)
    assert ENCODED not in text
    assert PASSWORD not in text


def test_direct_construction_refuses_credentials_in_the_url() -> None:
    with pytest.raises(ValueError, match="must not carry credentials") as caught:
        ServerSettings(url=f"http://u:{ENCODED}@h:8123")
    assert ENCODED not in str(caught.value)
    with pytest.raises(ValueError, match="scheme://host"):
        ServerSettings(url="http://h:8123/db")
    with pytest.raises(TypeError, match="Secret"):
        ServerSettings(url="http://h:8123", password="plain")  # type: ignore[arg-type]


def test_password_never_printed(caplog: pytest.LogCaptureFixture) -> None:
    settings = ServerSettings.from_url(f"https://alice:{ENCODED}@h/db")
    store = ServerStore(settings)
    shown = [
        repr(settings),
        str(settings),
        f"{settings}",
        repr(store),
        str(store),
        repr(settings.password),
        str(settings.password),
        f"{settings.password}",
        repr(dataclasses.asdict(settings)),
        repr(dataclasses.replace(settings, username="x")),
    ]
    logging.getLogger("test").warning("settings %s store %r", settings, store)
    shown.append(caplog.text)
    for text in shown:
        assert PASSWORD not in text, text
        assert ENCODED not in text, text
    assert "password=***" in repr(settings)
    assert "alice" in repr(settings)  # the rest stays readable


def test_secret_compares_by_value() -> None:
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert Secret("a") != "a"
    assert not Secret("")
    assert ServerSettings.from_url("http://u:p@h") == ServerSettings.from_url("http://u:p@h")


def test_construction_has_no_side_effects() -> None:
    # Port 9 (discard) on a reserved address: connecting would fail or hang, constructing does not.
    store = ServerStore(ServerSettings.from_url("http://u:p@192.0.2.1:9/db"))
    assert store.database == "db"
    with pytest.raises(RuntimeError, match="not open"):
        store.query("SELECT 1")
    store.close()  # closing a store that never opened is harmless


def test_open_store_needs_a_folder_or_a_url() -> None:
    with pytest.raises(ValueError, match="no call-history store configured"):
        open_store(None, None)
    with pytest.raises(ValueError, match="http:// or https://"):
        open_store(None, "tcp://h:9000")


def _batch() -> pa.Table:
    row: dict[str, object] = {name: None for name in CALL_HISTORY_SCHEMA.names}
    row.update(
        cdr_id="c1",
        session_id="s1",
        tenant_id="t1",
        customer_id="cust",
        client_id="gw",
        caller="1",
        callee="44",
        start_time=0,
        end_time=0,
        duration_ms=0,
        status="rated",
        rated_at=0,
        reference_version="v",
        customer_amount=Decimal("0.123456"),
    )
    return pa.Table.from_pylist([row], schema=CALL_HISTORY_SCHEMA)


def test_call_history_batch_keeps_a_good_batch() -> None:
    batch = _batch()
    reordered = batch.select(list(reversed(batch.column_names))).append_column(
        "extra", pa.array([1])
    )
    assert call_history_batch(reordered).equals(batch)
    large = batch.set_column(0, "cdr_id", batch.column("cdr_id").cast(pa.large_string()))
    assert call_history_batch(large).equals(batch)
    dictionary = batch.set_column(2, "tenant_id", batch.column("tenant_id").dictionary_encode())
    assert call_history_batch(dictionary).equals(batch)


def test_call_history_batch_refuses_lossy_types_and_missing_values() -> None:
    batch = _batch()
    amount = batch.schema.get_field_index("customer_amount")
    duration = batch.schema.get_field_index("duration_ms")
    wrong = batch.set_column(
        amount, "customer_amount", pa.array([Decimal("0.1234567")], pa.decimal128(38, 9))
    ).set_column(duration, "duration_ms", pa.array(["60000"]))
    with pytest.raises(ValueError, match="customer_amount is decimal128") as caught:
        call_history_batch(wrong)
    assert "duration_ms is string" in str(caught.value)
    floats = batch.set_column(amount, "customer_amount", pa.array([0.1]))
    with pytest.raises(ValueError, match="customer_amount is double"):
        call_history_batch(floats)
    no_id = batch.set_column(0, "cdr_id", pa.array([None], pa.string()))
    with pytest.raises(ValueError, match="cdr_id is required but has 1 null"):
        call_history_batch(no_id)
    with pytest.raises(ValueError, match="missing column"):
        call_history_batch(batch.drop_columns(["rated_at"]))
