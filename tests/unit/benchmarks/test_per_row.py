"""The sensible per-row baseline of the benchmarks agrees with the engine (no timing here)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from benchmarks import naive, per_row
from benchmarks.command_bench import compare_outputs
from benchmarks.common import RATED_AT
from benchmarks.per_row_file import SCHEMA, rate_file
from pipeline.rating.columns import CALL_HISTORY_SCHEMA
from pipeline.rating.decode import decode_cdrs
from pipeline.rating.engine import rate_batch
from pipeline.reference.loader import load_plans_folder
from pipeline.services.offline import rate_file as engine_rate_file
from pipeline.synthetic import NetworkSpec, write_network


def _network(root: Path, *, v2: bool) -> tuple[Path, Path]:
    spec = NetworkSpec(
        seed=3,
        cdrs=3_000,
        prefixes_per_plan=300,
        malformed_ratio=0.03,
        price_shape=v2,
        origins_and_bands=v2,
    )
    write_network(spec, root / "plans", root / "cdrs.jsonl")
    return root / "plans", root / "cdrs.jsonl"


def test_its_columns_are_the_call_history_columns() -> None:
    assert tuple(CALL_HISTORY_SCHEMA.names) == per_row.NAMES
    assert [f.type for f in SCHEMA] == [f.type for f in CALL_HISTORY_SCHEMA]


@pytest.mark.parametrize("v2", [False, True], ids=["malformed-lines", "tariff-v2"])
def test_per_message_rows_equal_the_engine(tmp_path: Path, v2: bool) -> None:
    plans, cdrs = _network(tmp_path, v2=v2)
    messages = [line for line in cdrs.read_bytes().split(b"\n") if line.strip()]
    reference = naive.load_reference(plans)
    results = [
        naive.rate_message(reference, i, m, "2026-04-01 00:00:00") for i, m in enumerate(messages)
    ]
    rows = [r for r in results if not isinstance(r, str)]
    rejected = {i: r for i, r in enumerate(results) if isinstance(r, str)}
    decoded = decode_cdrs(messages)
    table = rate_batch(decoded.good, load_plans_folder(plans), RATED_AT)
    checked = naive.compare_with_engine(
        rows, rejected, table, set(decoded.rejected["position"].to_list())
    )
    assert checked == len(rows) == table.num_rows
    assert len(rejected) >= 80  # 3% of 3,000 lines are malformed, every kind
    if v2:  # the network does use the v2 rules: some winning rows name an origin or a band
        assert any(r["customer_origin"] or r["customer_band"] for r in rows)


@pytest.mark.parametrize("v2", [False, True], ids=["malformed-lines", "tariff-v2"])
def test_the_file_rater_agrees_with_rate_row_for_row(tmp_path: Path, v2: bool) -> None:
    plans, cdrs = _network(tmp_path, v2=v2)
    engine = engine_rate_file(
        load_plans_folder(plans), cdrs, tmp_path / "rate.parquet", tmp_path / "rate.dlq", RATED_AT
    )
    summary = rate_file(plans, cdrs, tmp_path / "per-row.parquet", tmp_path / "per-row.dlq")
    assert summary["rows"] == engine.rated + engine.unrated
    assert summary["rejected"] == engine.rejected
    checked = compare_outputs(
        tmp_path / "rate.parquet",
        tmp_path / "rate.dlq",
        tmp_path / "per-row.parquet",
        tmp_path / "per-row.dlq",
    )
    assert checked == summary["rows"]
    assert pq.read_schema(tmp_path / "per-row.parquet").names == CALL_HISTORY_SCHEMA.names


def test_the_comparison_catches_a_different_amount(tmp_path: Path) -> None:
    plans, cdrs = _network(tmp_path, v2=False)
    engine_rate_file(
        load_plans_folder(plans), cdrs, tmp_path / "rate.parquet", tmp_path / "rate.dlq", RATED_AT
    )
    rate_file(plans, cdrs, tmp_path / "per-row.parquet", tmp_path / "per-row.dlq")
    table = pq.read_table(tmp_path / "per-row.parquet").to_pylist()
    first = next(r for r in table if r["customer_amount"])
    first["customer_amount"] += 1
    pq.write_table(pq.read_table(tmp_path / "per-row.parquet").from_pylist(table, SCHEMA),
                   tmp_path / "per-row.parquet")  # fmt: skip
    with pytest.raises(AssertionError, match="customer_amount"):
        compare_outputs(
            tmp_path / "rate.parquet",
            tmp_path / "rate.dlq",
            tmp_path / "per-row.parquet",
            tmp_path / "per-row.dlq",
        )


def test_the_null_rater_writes_a_call_history_row_per_valid_cdr(tmp_path: Path) -> None:
    from benchmarks import null_rater
    from pipeline.rating.columns import call_history_batch

    plans, cdrs = _network(tmp_path, v2=False)
    null_rater._load_template(cdrs, plans, count=500)
    messages = [line for line in cdrs.read_bytes().split(b"\n") if line.strip()]
    rated = null_rater.null_rate(messages, None, RATED_AT)
    decoded = decode_cdrs(messages)
    assert rated.table.num_rows == decoded.good.height
    assert rated.table.column("cdr_id").to_pylist() == decoded.good["cdr_id"].to_list()
    assert rated.rejected.height == decoded.rejected.height
    call_history_batch(rated.table)  # the store's own check of a batch passes
