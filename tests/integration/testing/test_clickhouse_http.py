"""clickhouse-connect against the real ClickHouse engine (chdb) behind ``ChdbHttpServer``.

No mocks: the client is the production client, every request crosses a real HTTP socket, and
the engine that parses, stores and answers is ClickHouse's. Each client is tried without
compression, with lz4, with zstd and with ``compress=True`` (negotiated), and each test works
in a database of its own.
"""

from __future__ import annotations

import datetime as dt
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import clickhouse_connect
import pyarrow as pa
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from pipeline.testing.clickhouse_http import ChdbHttpServer, RecordedRequest

UTC = dt.UTC
MONEY = pa.decimal128(18, 6)

RATED_DDL = """
CREATE TABLE {db:Identifier}.rated
(
    cdr_id String,
    customer_id LowCardinality(String),
    reseller_id Nullable(String),
    start_time DateTime64(6, 'UTC'),
    billed_seconds UInt32,
    customer_amount Decimal(18, 6),
    reseller_amount Nullable(Decimal(18, 6)),
    version UInt32
)
ENGINE = ReplacingMergeTree(version)
ORDER BY cdr_id
"""
RATED_COLUMNS = [
    "cdr_id",
    "customer_id",
    "reseller_id",
    "start_time",
    "billed_seconds",
    "customer_amount",
    "reseller_amount",
    "version",
]
RATED_SCHEMA = pa.schema(
    [
        ("cdr_id", pa.string()),
        ("customer_id", pa.string()),
        ("reseller_id", pa.string()),
        ("start_time", pa.timestamp("us", tz="UTC")),
        ("billed_seconds", pa.uint32()),
        ("customer_amount", MONEY),
        ("reseller_amount", MONEY),
        ("version", pa.uint32()),
    ]
)

# compress= given to the client, Content-Encoding of its insert bodies, and of the responses
# ClickHouse (and the server) choose for its queries.
Compression = tuple[bool | str, str | None, str | None]
COMPRESSIONS: list[Compression] = [
    (False, None, None),
    ("lz4", "lz4", "lz4"),
    ("zstd", "zstd", "zstd"),
    (True, "lz4", "zstd"),  # lz4 bodies (first available); ClickHouse prefers zstd responses
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbHttpServer]:
    with ChdbHttpServer(tmp_path_factory.mktemp("chdb-http")) as srv:
        yield srv


@pytest.fixture(params=COMPRESSIONS, ids=["plain", "lz4", "zstd", "negotiated"])
def compression(request: pytest.FixtureRequest) -> Compression:
    param: Compression = request.param
    return param


def connect(server: ChdbHttpServer, compress: bool | str, **kwargs: Any) -> Any:
    return clickhouse_connect.get_client(
        host=server.host,
        port=server.port,
        username="default",
        password="",
        compress=compress,
        **kwargs,
    )


def disconnect(client: Any) -> None:
    client.close_connections()
    client.close()


@pytest.fixture
def client(server: ChdbHttpServer, compression: Compression) -> Iterator[Any]:
    ch = connect(server, compression[0])
    try:
        yield ch
    finally:
        disconnect(ch)


@pytest.fixture
def database(client: Any) -> Iterator[str]:
    name = f"chdb_http_{uuid.uuid4().hex}"
    client.command("CREATE DATABASE {db:Identifier}", parameters={"db": name})
    try:
        yield name
    finally:
        client.command("DROP DATABASE IF EXISTS {db:Identifier}", parameters={"db": name})


def create_rated(client: Any, database: str) -> str:
    client.command(RATED_DDL, parameters={"db": database})
    return f"{database}.rated"


def naive_utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)


def requests_for(server: ChdbHttpServer, marker: str) -> list[RecordedRequest]:
    return [r for r in server.requests if marker in r.statement]


def test_ping_version_and_startup_queries(server: ChdbHttpServer, compression: Compression) -> None:
    with urllib.request.urlopen(f"{server.url}/ping", timeout=5) as response:
        assert response.status == 200
        assert response.read() == b"Ok.\n"
    server.clear_requests()
    ch = connect(server, compression[0])
    try:
        startup = [r.statement for r in server.requests]
        assert ch.ping()
        assert ch.server_version == server.engine_version
        assert ch.command("SELECT timezone()") in ("UTC", "Etc/UTC")
    finally:
        disconnect(ch)
    # What clickhouse-connect runs on connect, answered by the engine itself.
    assert startup[0] == "SELECT version(), timezone()"
    assert startup[1].startswith("SELECT name, value, readonly FROM system.settings")
    assert all(r.status == 200 for r in server.requests)


def test_rows_insert_and_server_side_bound_query(client: Any, database: str) -> None:
    table = create_rated(client, database)
    start = dt.datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
    rows = [
        ["cdr-1", "cust-a", None, start, 61, Decimal("0.123457"), None, 1],
        ["cdr-2", "cust-a", "res-9", start, 1, Decimal("99999.999999"), Decimal("-0.000001"), 1],
        ["cdr-3", "cust-b", None, start.replace(tzinfo=None), 0, Decimal("0"), None, 1],
    ]
    summary = client.insert(table, rows, column_names=RATED_COLUMNS)
    assert summary.written_rows == 3

    result = client.query(
        "SELECT cdr_id, reseller_id, start_time, customer_amount, reseller_amount"
        " FROM {db:Identifier}.rated"
        " WHERE customer_id = {customer:String} AND customer_amount >= {floor:Decimal(18, 6)}"
        " ORDER BY cdr_id",
        parameters={"db": database, "customer": "cust-a", "floor": Decimal("0.000001")},
    )
    assert [r[0] for r in result.result_rows] == ["cdr-1", "cdr-2"]
    first, second = result.result_rows
    assert first[1] is None
    assert naive_utc(first[2]) == naive_utc(start)
    assert first[3] == Decimal("0.123457")
    assert isinstance(first[3], Decimal)
    assert first[4] is None
    assert second[3] == Decimal("99999.999999")
    assert second[4] == Decimal("-0.000001")

    total = client.query(
        "SELECT sum(customer_amount) FROM {db:Identifier}.rated", parameters={"db": database}
    ).result_rows[0][0]
    assert total == Decimal("100000.123456")

    # ReplacingMergeTree is the engine's: a later version of a CDR replaces the earlier one.
    client.insert(
        table,
        [["cdr-1", "cust-a", None, start, 61, Decimal("0.5"), None, 2]],
        column_names=RATED_COLUMNS,
    )
    final = client.query(
        "SELECT count(), sum(customer_amount) FROM {db:Identifier}.rated FINAL",
        parameters={"db": database},
    ).result_rows[0]
    assert final == (3, Decimal("100000.499999"))


def test_command_with_data_and_database_parameter(
    server: ChdbHttpServer, compression: Compression, database: str
) -> None:
    scoped = connect(server, compression[0], database=database)
    try:
        scoped.command(
            "CREATE TABLE payments (id UInt32, amount Decimal(18, 6))"
            " ENGINE = MergeTree ORDER BY id"
        )
        summary = scoped.command(
            "INSERT INTO payments FORMAT CSV", data="1,10.000001\n2,-3.5\n3,0.000001\n"
        )
        assert summary.written_rows == 3
        assert scoped.command("SELECT currentDatabase()") == database
        rows = scoped.query("SELECT id, amount FROM payments ORDER BY id").result_rows
        assert rows == [(1, Decimal("10.000001")), (2, Decimal("-3.5")), (3, Decimal("0.000001"))]
    finally:
        disconnect(scoped)


def test_insert_arrow_decimal128_and_query_arrow(client: Any, database: str) -> None:
    table = create_rated(client, database)
    start = dt.datetime(2026, 3, 1, tzinfo=UTC)
    arrow_in = pa.table(
        {
            "cdr_id": ["a-1", "a-2", "a-3"],
            "customer_id": ["cust-a", "cust-b", "cust-a"],
            "reseller_id": [None, "res-1", None],
            "start_time": [start, start + dt.timedelta(microseconds=1), start],
            "billed_seconds": [60, 6, 0],
            "customer_amount": [Decimal("1.000001"), Decimal("0.1"), Decimal("-7.123456")],
            "reseller_amount": [None, Decimal("0.050000"), None],
            "version": [1, 1, 1],
        },
        schema=RATED_SCHEMA,
    )
    summary = client.insert_arrow(table, arrow_in)
    assert summary.written_rows == 3

    arrow_out = client.query_arrow(
        "SELECT * FROM {db:Identifier}.rated ORDER BY cdr_id", parameters={"db": database}
    )
    assert arrow_out.schema.field("customer_amount").type == MONEY
    assert arrow_out.schema.field("reseller_amount").type == MONEY
    assert arrow_out.schema.field("reseller_amount").nullable
    for name in ("cdr_id", "customer_amount", "reseller_amount", "billed_seconds"):
        assert arrow_out.column(name).to_pylist() == arrow_in.column(name).to_pylist(), name
    times_out = [naive_utc(t) for t in arrow_out.column("start_time").to_pylist()]
    assert times_out == [naive_utc(t) for t in arrow_in.column("start_time").to_pylist()]


def test_numpy_and_dataframe_results(client: Any, database: str) -> None:
    table = create_rated(client, database)
    start = dt.datetime(2026, 3, 1, tzinfo=UTC)
    client.insert(
        table,
        [[f"n-{i}", "cust", None, start, i, Decimal(i) / 1000, None, 1] for i in range(5)],
        column_names=RATED_COLUMNS,
    )
    query = "SELECT billed_seconds, customer_amount FROM {db:Identifier}.rated ORDER BY cdr_id"

    array = client.query_np(query, parameters={"db": database})
    assert [int(row[0]) for row in array] == [0, 1, 2, 3, 4]
    assert Decimal(array[4][1]) == Decimal("0.004")

    polars = pytest.importorskip("polars")
    frame = client.query_df_arrow(query, parameters={"db": database}, dataframe_library="polars")
    assert isinstance(frame, polars.DataFrame)
    assert frame["customer_amount"].to_list() == [Decimal(i) / 1000 for i in range(5)]

    pytest.importorskip("pandas")
    df = client.query_df(query, parameters={"db": database})
    assert df["billed_seconds"].tolist() == [0, 1, 2, 3, 4]
    assert [Decimal(v) for v in df["customer_amount"]] == [Decimal(i) / 1000 for i in range(5)]


def test_engine_errors_reach_the_client(client: Any, database: str) -> None:
    with pytest.raises(DatabaseError, match="UNKNOWN_IDENTIFIER") as caught:
        client.query("SELECT no_such_column FROM system.one")
    assert "Unknown expression identifier" in str(caught.value)
    assert "code: 47" in str(caught.value)

    with pytest.raises(DatabaseError, match="UNKNOWN_TABLE"):
        client.insert(f"{database}.missing", [[1]], column_names=["x"])

    table = create_rated(client, database)
    bad = pa.table({"cdr_id": ["x"], "billed_seconds": ["not a number"]})
    with pytest.raises(DatabaseError, match=r"Code: \d+\. DB::Exception"):
        client.insert_arrow(table, bad)
    count = client.query(
        "SELECT count() FROM {db:Identifier}.rated", parameters={"db": database}
    ).result_rows[0][0]
    assert count == 0


def test_large_arrow_insert_is_counted_exactly(client: Any, database: str) -> None:
    table = create_rated(client, database)
    rows = 200_000
    amounts = [Decimal(i * 7919 % 10_000_000) / 1_000_000 for i in range(rows)]
    start = dt.datetime(2026, 3, 1, tzinfo=UTC)
    arrow_in = pa.table(
        {
            "cdr_id": [f"big-{i:07d}" for i in range(rows)],
            "customer_id": [f"cust-{i % 50}" for i in range(rows)],
            "reseller_id": pa.nulls(rows, pa.string()),
            "start_time": pa.array([start] * rows, pa.timestamp("us", tz="UTC")),
            "billed_seconds": pa.array([i % 3600 for i in range(rows)], pa.uint32()),
            "customer_amount": pa.array(amounts, MONEY),
            "reseller_amount": pa.nulls(rows, MONEY),
            "version": pa.array([1] * rows, pa.uint32()),
        },
        schema=RATED_SCHEMA,
    )
    assert client.insert_arrow(table, arrow_in).written_rows == rows
    count, distinct, total = client.query(
        "SELECT count(), uniqExact(cdr_id), sum(customer_amount) FROM {db:Identifier}.rated",
        parameters={"db": database},
    ).result_rows[0]
    assert (count, distinct) == (rows, rows)
    assert total == sum(amounts)


def test_compression_on_the_wire(
    server: ChdbHttpServer,
    client: Any,
    database: str,
    compression: Compression,
) -> None:
    _, body_encoding, response_encoding = compression
    table = create_rated(client, database)
    start = dt.datetime(2026, 3, 1, tzinfo=UTC)
    # 1 KiB per row makes clickhouse-connect cut the insert into several Native blocks, each
    # compressed on its own (several lz4 or zstd frames in one body).
    rows = [
        [f"w-{i:05d}", "x" * 1024, None, start, i, Decimal(i) / 100, None, 1] for i in range(6000)
    ]
    assert client.insert(table, rows, column_names=RATED_COLUMNS).written_rows == len(rows)
    inserts = [r for r in requests_for(server, f"INSERT INTO {table}") if r.status == 200]
    assert [r.headers.get("content-encoding") for r in inserts] == [body_encoding]
    assert inserts[0].headers.get("transfer-encoding") == "chunked"

    marker = uuid.uuid4().hex
    result = client.query(
        "SELECT {marker:String}, count(), sum(length(customer_id)), sum(customer_amount)"
        " FROM {db:Identifier}.rated",
        parameters={"marker": marker, "db": database},
    )
    assert result.result_rows == [
        (marker, 6000, 6000 * 1024, sum(Decimal(i) for i in range(6000)) / 100)
    ]
    (select,) = [r for r in server.requests if r.params.get("param_marker") == marker]
    assert select.response_encoding == response_encoding


def test_settings_apply_to_one_request_only(client: Any) -> None:
    query = "SELECT getSetting('max_block_size')"
    default = client.query(query).result_rows[0][0]
    assert client.query(query, settings={"max_block_size": 4321}).result_rows[0][0] == 4321
    assert client.query(query).result_rows[0][0] == default != 4321


def test_long_parameters_go_form_encoded(server: ChdbHttpServer, client: Any) -> None:
    long_text = "é'\\\t" * 3000  # beyond clickhouse-connect's URL limit, with characters to escape
    marker = uuid.uuid4().hex
    result = client.query(
        "SELECT {marker:String}, {text:String}, length({text:String})",
        parameters={"marker": marker, "text": long_text},
    )
    assert result.result_rows == [(marker, long_text, len(long_text.encode()))]
    (select,) = [r for r in server.requests if r.params.get("param_marker") == marker]
    assert select.headers["content-type"].startswith("multipart/form-data")


def test_concurrent_clients_are_served(server: ChdbHttpServer, database: str) -> None:
    setup = connect(server, False)
    try:
        table = create_rated(setup, database)
    finally:
        disconnect(setup)
    errors: list[BaseException] = []
    start = dt.datetime(2026, 3, 1, tzinfo=UTC)

    def worker(n: int) -> None:
        ch = connect(server, "lz4" if n % 2 else False)
        try:
            rows = [
                [f"t{n}-{i}", f"cust-{n}", None, start, i, Decimal("0.000001"), None, 1]
                for i in range(500)
            ]
            for _ in range(3):
                ch.insert(table, rows[:250], column_names=RATED_COLUMNS)
                ch.query("SELECT count() FROM {db:Identifier}.rated", parameters={"db": database})
            ch.insert(table, rows[250:], column_names=RATED_COLUMNS)
        except BaseException as exc:
            errors.append(exc)
        finally:
            disconnect(ch)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    check = connect(server, False)
    try:
        count, total = check.query(
            "SELECT count(), sum(customer_amount) FROM {db:Identifier}.rated FINAL",
            parameters={"db": database},
        ).result_rows[0]
    finally:
        disconnect(check)
    assert count == 4 * 500
    assert total == Decimal("0.002000")


def test_external_data_is_a_table_of_the_query(server: ChdbHttpServer, client: Any) -> None:
    from clickhouse_connect.driver.external import ExternalData

    ids = pa.table({"n": pa.array([3, 1, 2], pa.uint32()), "s": ["c", "a'", "b\tx"]})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, ids.schema) as writer:
        writer.write_table(ids)
    arrow = ExternalData(
        file_name="ids",
        data=sink.getvalue().to_pybytes(),
        fmt="ArrowStream",
        structure="n UInt32, s String",
    )
    arrow.add_file(file_name="more", data=b"7\tx\n8\ty\n", types="UInt8,String")
    result = client.query_arrow(
        "SELECT n, s, (SELECT sum(_1) FROM more) AS m FROM ids WHERE n IN (1, 2, 3) ORDER BY n",
        external_data=arrow,
    )
    assert result.column("n").to_pylist() == [1, 2, 3]
    assert [v.decode() if isinstance(v, bytes) else v for v in result.column("s").to_pylist()] == [
        "a'",
        "b\tx",
        "c",
    ]
    assert set(result.column("m").to_pylist()) == {15}
    request = server.requests[-1]
    assert "ids_structure" not in request.ignored_params
    # The tables lived for that query only.
    with pytest.raises(DatabaseError, match="UNKNOWN_TABLE"):
        client.query("SELECT * FROM ids")
    missing = ExternalData(file_name="bare", data=b"1\n")
    with pytest.raises(DatabaseError, match="BAD_ARGUMENTS"):
        client.query("SELECT * FROM bare", external_data=missing)
