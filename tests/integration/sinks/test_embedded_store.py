"""The embedded ClickHouse engine (chdb): migrations, writes, one row per CDR, export."""

from __future__ import annotations

import json
from decimal import Decimal
from importlib import resources
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from pipeline.cli import main
from pipeline.rating.columns import CALL_HISTORY_SCHEMA
from pipeline.sinks.embedded import EmbeddedStore
from pipeline.storage.migrations import MigrationChangedError, load_migrations
from pipeline.storage.reports import export_call_history
from tests.builders import cdr, deck_row, simple_reference


def test_ddl_matches_the_call_history_schema(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "store") as store:
        assert store.migrate() == [m.name for m in load_migrations()]
        assert store.migrate() == []  # idempotent
        columns = store.query(
            "SELECT name, type FROM system.columns WHERE database = {db:String} "
            "AND table = 'call_history' ORDER BY position",
            {"db": store.database},
        ).to_pylist()
    assert [c["name"] for c in columns] == CALL_HISTORY_SCHEMA.names
    money = {c["name"]: c["type"] for c in columns if c["name"].endswith(("_amount", "_rate"))}
    assert all("Decimal" in t for t in money.values()), money


def test_rate_into_store_then_export_one_row_per_cdr(tmp_path: Path) -> None:
    simple_reference(tmp_path / "plans", [deck_row("44", "0.0123", connection_fee="0.001")])
    first = [json.dumps(cdr(cdr_id=f"c{i}", duration_ms=1000 * i)) for i in range(20)]
    cdrs = tmp_path / "cdrs.jsonl"
    cdrs.write_text("\n".join(first) + "\n")
    store = tmp_path / "store"
    args = ["rate", "--plans", str(tmp_path / "plans"), "--cdrs", str(cdrs), "--store", str(store)]
    assert main([*args, "--out", str(tmp_path / "a.parquet")]) == 0
    # The same CDRs again (a re-delivery): the store still holds one row per cdr_id.
    assert main([*args, "--out", str(tmp_path / "b.parquet")]) == 0
    exported = tmp_path / "export.parquet"
    assert main(["export", "--store", str(store), "--out", str(exported)]) == 0
    table = pl.read_parquet(exported)
    assert table.height == 20
    assert sorted(table["cdr_id"].to_list()) == sorted(f"c{i}" for i in range(20))
    rated = pl.read_parquet(tmp_path / "b.parquet")
    joined = table.join(rated, on="cdr_id", suffix="_file")
    assert (joined["customer_amount"] == joined["customer_amount_file"]).all()
    assert (joined["rated_at"] == joined["rated_at_file"]).all()  # the later rating is kept
    assert (
        pq.read_schema(exported).field("customer_amount").type
        == CALL_HISTORY_SCHEMA.field("customer_amount").type
    )
    by_id = {r["cdr_id"]: r for r in table.to_dicts()}
    assert by_id["c7"]["customer_amount"] == Decimal("0.002435")  # 0.001 + 0.0123 * 7 / 60


def test_export_of_an_empty_store(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "store") as store:
        store.migrate()
        table = export_call_history(store)
    assert table.num_rows == 0
    assert table.schema == CALL_HISTORY_SCHEMA


def test_an_applied_migration_that_changed_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    for migration in load_migrations():
        source = resources.files("pipeline.schemas") / "clickhouse" / migration.name
        (schemas / migration.name).write_text(source.read_text(encoding="utf-8"))
    monkeypatch.setenv("VMGATE_SCHEMAS", str(schemas))
    store = tmp_path / "store"
    assert main(["setup", "--no-kafka", "--store", str(store)]) == 0
    capsys.readouterr()
    # Someone edits an applied file instead of adding a new one.
    edited = schemas / "002_payments.sql"
    edited.write_text(edited.read_text().replace("note String", "note String, extra String"))
    assert main(["setup", "--no-kafka", "--store", str(store)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "migration 002_payments.sql changed after it was applied" in err[0]
    assert "new migration file" in err[0]
    with EmbeddedStore(store) as opened, pytest.raises(MigrationChangedError):
        opened.migrate()
    # A new file is the way: the edit restored, the change added as 099.
    edited.write_text(
        (resources.files("pipeline.schemas") / "clickhouse" / edited.name).read_text()
    )
    (schemas / "099_extra.sql").write_text(
        "ALTER TABLE payments ADD COLUMN IF NOT EXISTS extra String;\n"
    )
    assert main(["setup", "--no-kafka", "--store", str(store)]) == 0
    assert "099_extra.sql" in capsys.readouterr().out
