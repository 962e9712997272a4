"""``ChdbHttpServer(users=...)``: credentials checked the ways ClickHouse reads them, byte for byte.

The password here holds every character that differs between raw and percent-decoded text or
that a shell, YAML, a URL or a header treats specially, and non-ASCII. The production client
(clickhouse-connect, HTTP Basic) must get in with it exactly, and nothing that differs by one
byte may. A module of its own: chdb runs one engine per process, so this server runs alone.
"""

from __future__ import annotations

import base64
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import clickhouse_connect
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from pipeline.storage.errors import StoreErrorKind, examine_store_error
from pipeline.testing.clickhouse_http import ChdbHttpServer

PASSWORD = "p@ss:w/o%25rd #?&+ ='\"\\ $x é€ 密"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbHttpServer]:
    users = {"vmgate": PASSWORD, "grafana": "other"}
    with ChdbHttpServer(tmp_path_factory.mktemp("chdb-http-users"), users=users) as srv:
        yield srv


def _connect(server: ChdbHttpServer, username: str, password: str) -> Any:
    return clickhouse_connect.get_client(
        host=server.host, port=server.port, username=username, password=password
    )


def test_the_exact_password_gets_in(server: ChdbHttpServer) -> None:
    server.clear_requests()
    client = _connect(server, "vmgate", PASSWORD)
    try:
        assert client.query("SELECT 41 + 1 AS n").result_rows == [(42,)]
    finally:
        client.close()
    seen = server.requests
    assert seen
    assert {(r.user, r.status) for r in seen} == {("vmgate", 200)}
    for request in seen:  # the password is never recorded
        assert PASSWORD not in repr(request)


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("vmgate", urllib.parse.unquote(PASSWORD)),  # what percent-decoding would make of it
        ("vmgate", urllib.parse.quote(PASSWORD, safe="")),  # what percent-encoding would
        ("vmgate", unicodedata.normalize("NFD", PASSWORD)),  # same text, other bytes
        ("vmgate", PASSWORD[:-1]),
        ("vmgate", PASSWORD + " "),
        ("vmgate", ""),
        ("grafana", PASSWORD),
        ("nobody", PASSWORD),
    ],
    ids=["decoded", "encoded", "nfd", "shorter", "longer", "empty", "other-user", "no-user"],
)
def test_anything_else_is_refused_as_clickhouse_refuses_it(
    server: ChdbHttpServer, username: str, password: str
) -> None:
    assert password != PASSWORD or username != "vmgate"
    server.clear_requests()
    with pytest.raises(DatabaseError) as refused:
        _connect(server, username, password)
    failure = examine_store_error(refused.value)
    assert failure.kind is StoreErrorKind.PERMANENT
    assert (failure.code, failure.name) == (516, "AUTHENTICATION_FAILED")
    assert "check CLICKHOUSE_USER/CLICKHOUSE_PASSWORD" in failure.message
    assert [(r.user, r.status) for r in server.requests] == [(username, 403)]


def _get(server: ChdbHttpServer, query: str, headers: dict[str, str], params: str = "") -> str:
    url = f"{server.url}/?query={urllib.parse.quote(query)}{params}"
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
        return str(r.read().decode())


def test_headers_and_url_parameters_authenticate_as_in_clickhouse(
    server: ChdbHttpServer,
) -> None:
    # Header values go on the wire as ISO-8859-1: these are the password's UTF-8 bytes.
    wire = PASSWORD.encode("utf-8").decode("iso-8859-1")
    assert _get(server, "SELECT 1", {"X-ClickHouse-User": "vmgate", "X-ClickHouse-Key": wire})
    quoted = urllib.parse.quote(PASSWORD, safe="")
    assert _get(server, "SELECT 2", {}, f"&user=vmgate&password={quoted}") == "2\n"
    basic = base64.b64encode(f"vmgate:{PASSWORD}".encode()).decode()
    assert _get(server, "SELECT 3", {"Authorization": f"Basic {basic}"}) == "3\n"
    with pytest.raises(urllib.error.HTTPError) as refused:
        _get(server, "SELECT 4", {"X-ClickHouse-User": "vmgate", "X-ClickHouse-Key": wire[:-1]})
    refused.value.close()
    assert refused.value.code == 403
    assert refused.value.headers["X-ClickHouse-Exception-Code"] == "516"
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        _get(server, "SELECT 5", {})  # no credentials: user default, who does not exist here
    anonymous.value.close()
    assert anonymous.value.code == 403
    with urllib.request.urlopen(f"{server.url}/ping", timeout=30) as ping:  # needs none
        assert ping.read() == b"Ok.\n"
