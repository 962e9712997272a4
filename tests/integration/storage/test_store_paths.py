"""Both call-history paths, embedded (chdb in a folder) and server (clickhouse-connect over HTTP).

The server path runs the production client against ``ChdbHttpServer``: the real ClickHouse engine
behind ClickHouse's HTTP interface. Both paths run the same DDL and SQL, so they must hold and
return the same data in the same Arrow types. chdb runs one engine per process: a test never
has an embedded store open while a server runs; cross-path tests use the paths one after the
other. Every test works in a database of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from clickhouse_connect.driver.exceptions import OperationalError

from pipeline.config import Secret
from pipeline.rating.columns import CALL_HISTORY_SCHEMA
from pipeline.sinks.clickhouse_server import ServerStore
from pipeline.sinks.contracts import CallHistoryStore
from pipeline.sinks.embedded import EmbeddedStore
from pipeline.sinks.open_store import open_store
from pipeline.storage.migrations import load_migrations
from pipeline.storage.reports import (
    LEG_TOTALS_SQL,
    OWED_TO_RESELLERS_SQL,
    SAMPLE_SQL,
    UNRATED_SQL,
    export_call_history,
)
from tests.builders import deck_row, simple_reference
from tests.support.stores import (
    COLUMNS_SQL,
    PATHS,
    RATED_AT,
    StorePath,
    by_key,
    calls,
    network,
    on_both_paths,
    open_path,
    rated,
    unique_database,
)

REPORTS: dict[str, tuple[str, dict[str, object] | None]] = {
    "leg_totals": (LEG_TOTALS_SQL, None),
    "owed_to_resellers": (OWED_TO_RESELLERS_SQL, None),
    "unrated": (UNRATED_SQL, None),
    "sample": (SAMPLE_SQL, {"limit": 7}),
}


@pytest.fixture(params=PATHS)
def path(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorePath]:
    with open_path(request.param, tmp_path, unique_database()) as opened:
        yield opened


# -- rated batches built with the real engine -------------------------------------------------


# -- tests --------------------------------------------------------------------------------------


def test_migrate_is_idempotent_and_creates_the_call_history_columns(path: StorePath) -> None:
    store = path.store
    assert store.migrate() == [m.name for m in load_migrations()]
    assert store.migrate() == []
    recorded = store.query("SELECT name, checksum FROM schema_migrations FINAL ORDER BY name")
    assert recorded.to_pylist() == [
        {"name": m.name, "checksum": m.checksum} for m in load_migrations()
    ]
    columns = store.query(COLUMNS_SQL, {"db": store.database}).to_pylist()
    assert [c["name"] for c in columns] == CALL_HISTORY_SCHEMA.names
    types = {c["name"]: c["type"] for c in columns}
    for leg in ("customer", "client", "reseller"):
        assert types[f"{leg}_rate"] == "Nullable(Decimal(38, 9))"
        assert types[f"{leg}_amount"] == "Nullable(Decimal(38, 6))"
    assert not [name for name, kind in types.items() if "Float" in kind]


def test_open_store_gives_the_configured_path(path: StorePath, tmp_path: Path) -> None:
    # The fixture's store is closed for the embedded path first: one chdb engine per process.
    database = unique_database()
    if path.server is None:
        path.store.close()
        store = open_store(path.folder, None, database)
        assert isinstance(store, EmbeddedStore)
    else:
        with_credentials = f"{path.server.url.replace('://', '://url-user:url-pw@')}/{database}"
        # Credentials in the URL and in CLICKHOUSE_USER / CLICKHOUSE_PASSWORD: refused.
        with pytest.raises(ValueError, match="credentials given twice"):
            open_store(tmp_path / "unused", with_credentials, username="rater")
        url = f"{path.server.url}/{database}"
        store = open_store(tmp_path / "unused", url, username="rater", password=Secret("s3"))
        assert isinstance(store, ServerStore)
        assert not (tmp_path / "unused").exists()
        assert store.settings.username == "rater"
        assert store.settings.password.reveal() == "s3"
    try:
        assert store.migrate() == [m.name for m in load_migrations()]
        current = store.query("SELECT currentDatabase() AS db").column("db").to_pylist()
        assert current == [database]
    finally:
        store.close()


def test_export_round_trips_a_rated_batch_exactly(path: StorePath, tmp_path: Path) -> None:
    batch = rated(network(tmp_path / "plans"), calls(60), RATED_AT)
    path.store.migrate()
    path.store.write_call_history(batch)
    path.store.write_call_history(batch.slice(0, 0))  # an empty batch is a no-op
    exported = export_call_history(path.store)
    assert exported.schema == CALL_HISTORY_SCHEMA
    assert exported.equals(by_key(batch))


def test_export_and_reports_are_identical_on_both_paths(tmp_path: Path) -> None:
    batch = rated(network(tmp_path / "plans"), calls(200), RATED_AT)

    def work(store: CallHistoryStore) -> dict[str, pa.Table]:
        store.write_call_history(batch.slice(0, 120))
        store.write_call_history(batch.slice(120))
        out = {"export": export_call_history(store)}
        for name, (sql, parameters) in REPORTS.items():
            out[name] = store.query(sql, parameters)
        return out

    results = on_both_paths(tmp_path, work)
    embedded, server = results["embedded"], results["server"]
    for name in embedded:
        # Types as the engine returns them (no cast in the test), then the values.
        assert server[name].schema == embedded[name].schema, name
        assert server[name].equals(embedded[name]), name

    assert embedded["export"].equals(by_key(batch))
    assert embedded["sample"].num_rows == 7
    totals = {(r["leg"], r["currency"]): r for r in embedded["leg_totals"].to_pylist()}
    rows = batch.to_pylist()
    for leg, currency in (("customer", "EUR"), ("client", "EUR"), ("reseller", "USD")):
        amounts = [r[f"{leg}_amount"] for r in rows if r[f"{leg}_amount"] is not None]
        assert totals[leg, currency]["amount"] == sum(amounts, Decimal(0))
        assert totals[leg, currency]["calls"] == len(amounts)
        assert isinstance(totals[leg, currency]["amount"], Decimal)
    owed = embedded["owed_to_resellers"].to_pylist()
    assert [(r["reseller_id"], r["currency"]) for r in owed] == [("res", "USD")]
    assert owed[0]["owed"] == totals["reseller", "USD"]["amount"]
    reasons = dict(zip(*embedded["unrated"].to_pydict().values(), strict=True))
    assert reasons["customer:no_prefix"] > 0
    assert reasons["client:no_prefix"] > 0


def test_redelivery_keeps_one_row_per_cdr_with_the_latest_rating(
    path: StorePath, tmp_path: Path
) -> None:
    records = calls(40)
    first = rated(network(tmp_path / "plans"), records, RATED_AT)
    cheaper = simple_reference(tmp_path / "plans-v2", [deck_row("4", "0.001")])
    later = rated(cheaper, records, RATED_AT + timedelta(hours=1))
    path.store.migrate()
    path.store.write_call_history(first)
    path.store.write_call_history(later)
    path.store.write_call_history(first)  # a stale re-delivery after the re-rating
    exported = export_call_history(path.store)
    assert exported.num_rows == len(records)
    assert exported.equals(by_key(later))
    stored = path.store.query("SELECT count() AS n FROM call_history").column("n")[0].as_py()
    assert stored in (len(records), 2 * len(records), 3 * len(records))  # merges may have run


def test_report_totals_follow_the_latest_rating_on_both_paths(tmp_path: Path) -> None:
    records = calls(50)
    first = rated(network(tmp_path / "plans"), records, RATED_AT)
    cheaper = simple_reference(tmp_path / "plans-v2", [deck_row("4", "0.001")])
    later = rated(cheaper, records, RATED_AT + timedelta(hours=1))

    def work(store: CallHistoryStore) -> pa.Table:
        store.write_call_history(first)
        store.write_call_history(later)
        return store.query(LEG_TOTALS_SQL)

    results = on_both_paths(tmp_path, work)
    assert results["server"].equals(results["embedded"])
    amounts = [a for a in later.column("customer_amount").to_pylist() if a is not None]
    assert results["embedded"].to_pylist() == [
        {
            "tenant_id": "t1",
            "leg": "customer",
            "currency": "EUR",
            "calls": len(amounts),
            "amount": sum(amounts, Decimal(0)),
        }
    ]


def test_a_failing_write_raises(path: StorePath, tmp_path: Path) -> None:
    batch = rated(network(tmp_path / "plans"), calls(5), RATED_AT)
    path.store.migrate()
    path.store.execute("DROP TABLE call_history")
    # The engine's exception type differs by path (chdb's ChdbError, clickhouse-connect's
    # DatabaseError); both carry ClickHouse's error name.
    with pytest.raises(Exception, match="UNKNOWN_TABLE"):
        path.store.write_call_history(batch)


def test_a_write_to_a_stopped_server_raises(tmp_path: Path) -> None:
    batch = rated(network(tmp_path / "plans"), calls(5), RATED_AT)
    with open_path("server", tmp_path, unique_database()) as path:
        assert path.server is not None
        path.store.migrate()
        path.store.write_call_history(batch)
        path.server.stop()
        with pytest.raises(OperationalError):
            path.store.write_call_history(batch)


def test_a_mistyped_batch_is_refused_not_converted(
    path: StorePath, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    batch = rated(network(tmp_path / "plans"), calls(3), RATED_AT)
    index = batch.schema.get_field_index("customer_amount")
    wrong = batch.set_column(
        index,
        "customer_amount",
        pa.array([Decimal("0.1234567")] * 3, pa.decimal128(38, 9)),
    )
    path.store.migrate()
    with pytest.raises(ValueError, match="customer_amount is decimal128"):
        path.store.write_call_history(wrong)
    assert path.store.query("SELECT count() AS n FROM call_history").column("n")[0].as_py() == 0


@pytest.mark.parametrize(
    ("sql", "parameters", "expected"),
    [
        ("SELECT {v:UInt32} AS v", {"v": 7}, 7),
        ("SELECT {v:Decimal(38, 6)} AS v", {"v": Decimal("1.000001")}, Decimal("1.000001")),
        ("SELECT {v:String} AS v", {"v": "plain"}, "plain"),
        pytest.param(
            "SELECT {v:String} AS v",
            {"v": "tab\tback\\slash'quote"},
            "tab\tback\\slash'quote",
            id="escaped-string",
        ),
        pytest.param("SELECT {v:Nullable(String)} AS v", {"v": None}, None, id="null"),
        pytest.param("SELECT {v:String} AS v", {"v": "\\N"}, "\\N", id="backslash-N-text"),
        pytest.param(
            "SELECT {v:String} AS v", {"v": "line\nbreak\r"}, "line\nbreak\r", id="newline"
        ),
        pytest.param(
            "SELECT {v:Array(String)} AS v",
            {"v": ["plain", "quo'te", "back\\slash", "tab\tnew\nline", ""]},
            ["plain", "quo'te", "back\\slash", "tab\tnew\nline", ""],
            id="array-of-strings",
        ),
        pytest.param(
            "SELECT {v:Array(UInt64)} AS v", {"v": [0, 2**64 - 1]}, [0, 2**64 - 1], id="uint64s"
        ),
        pytest.param(
            "SELECT {v:Array(Date)} AS v",
            {"v": ["2026-03-01", "2026-12-31"]},
            [date(2026, 3, 1), date(2026, 12, 31)],
            id="array-of-dates",
        ),
    ],
)
def test_bound_parameters(
    path: StorePath,
    sql: str,
    parameters: dict[str, object],
    expected: object,
) -> None:
    assert path.store.query(sql, parameters).column("v").to_pylist() == [expected]
