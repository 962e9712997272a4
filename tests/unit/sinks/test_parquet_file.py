"""The call-history Parquet file: written by a thread of its own, same bytes, errors raised."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.rating.columns import CALL_HISTORY_SCHEMA
from pipeline.sinks import files
from pipeline.sinks.files import ParquetCallHistory
from tests.builders import cdr, rate_table, simple_reference
from tests.builders import deck_row as row


@pytest.fixture
def batches(tmp_path: Path) -> list[pa.Table]:
    reference = simple_reference(tmp_path / "plans", [row("44", "0.0100"), row("4420", "0.0200")])
    return [
        rate_table(reference, [cdr(cdr_id=f"c{n}-{i}", duration_ms=1000 * i) for i in range(50)])
        for n in range(7)
    ]


def _write(path: Path, batches: list[pa.Table], *, background: bool) -> bytes:
    with ParquetCallHistory(path, background=background) as parquet:
        for batch in batches:
            parquet.write(batch)
    assert parquet.rows == sum(b.num_rows for b in batches)
    return path.read_bytes()


def test_the_background_writer_writes_the_same_bytes(
    tmp_path: Path, batches: list[pa.Table]
) -> None:
    background = _write(tmp_path / "a.parquet", batches, background=True)
    inline = _write(tmp_path / "b.parquet", batches, background=False)
    assert background == inline
    table = pq.read_table(tmp_path / "a.parquet")
    assert table.schema.equals(CALL_HISTORY_SCHEMA, check_metadata=False)
    assert table.equals(pa.concat_tables(batches))
    assert not (tmp_path / "a.parquet.partial").exists()


def test_an_empty_run_gives_an_empty_file(tmp_path: Path) -> None:
    assert _write(tmp_path / "e.parquet", [], background=True)
    assert pq.read_table(tmp_path / "e.parquet").num_rows == 0


def test_a_write_error_is_raised_and_no_file_is_left(
    tmp_path: Path, batches: list[pa.Table]
) -> None:
    wrong = pl.DataFrame({"x": [1]}).to_arrow()  # not the call-history schema
    path = tmp_path / "bad.parquet"

    def run() -> None:
        with ParquetCallHistory(path) as parquet:
            for batch in [batches[0], wrong, *batches[1:]]:
                parquet.write(batch)

    with pytest.raises((ValueError, pa.ArrowException)):
        run()
    assert not path.exists()
    assert not path.with_name(path.name + ".partial").exists()


def test_a_failure_while_rating_drops_the_partial_file(
    tmp_path: Path, batches: list[pa.Table]
) -> None:
    path = tmp_path / "stopped.parquet"

    def run() -> None:
        with ParquetCallHistory(path) as parquet:
            for batch in batches:
                parquet.write(batch)
            raise RuntimeError

    with pytest.raises(RuntimeError):
        run()
    assert not path.exists()
    assert not path.with_name(path.name + ".partial").exists()


def test_the_queue_is_bounded(tmp_path: Path, batches: list[pa.Table]) -> None:
    parquet = ParquetCallHistory(tmp_path / "q.parquet")
    for batch in batches:
        parquet.write(batch)
        assert parquet._queue.qsize() <= files._QUEUED_BATCHES
    parquet.close()
    assert pq.read_table(tmp_path / "q.parquet").num_rows == parquet.rows
