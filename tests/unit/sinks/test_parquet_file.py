"""The call-history Parquet file: written by a thread of its own, same bytes, errors raised."""

from __future__ import annotations

import threading
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


def test_an_error_of_the_last_batch_drops_the_partial_file(
    tmp_path: Path, batches: list[pa.Table]
) -> None:
    wrong = pl.DataFrame({"x": [1]}).to_arrow()  # not the call-history schema
    path = tmp_path / "last.parquet"
    parquet = ParquetCallHistory(path)
    for batch in [*batches[:2], wrong]:
        parquet.write(batch)  # queued: the error comes from the writer thread
    with pytest.raises((ValueError, pa.ArrowException)):
        parquet.close()
    assert not path.exists()
    assert not path.with_name(path.name + ".partial").exists()
    with pytest.raises((ValueError, pa.ArrowException)):
        parquet.close()  # the error is kept: no file missing the batch is published
    assert not path.exists()


def test_the_queue_is_bounded(
    tmp_path: Path, batches: list[pa.Table], monkeypatch: pytest.MonkeyPatch
) -> None:
    parquet = ParquetCallHistory(tmp_path / "q.parquet")
    writing, release = threading.Event(), threading.Event()
    write_now = parquet._write_now

    def held(table: pa.Table) -> None:
        writing.set()
        release.wait()
        write_now(table)

    monkeypatch.setattr(parquet, "_write_now", held)
    parquet.write(batches[0])  # taken by the writer thread, which then waits
    assert writing.wait(10)
    queued = 1 + files._QUEUED_BATCHES
    for batch in batches[1:queued]:
        parquet.write(batch)
    assert parquet._queue.full()
    further = threading.Thread(target=parquet.write, args=(batches[queued],))
    further.start()
    further.join(0.5)
    assert further.is_alive()  # waits while the queue is full
    release.set()
    further.join(10)
    assert not further.is_alive()
    for batch in batches[queued + 1 :]:
        parquet.write(batch)
    parquet.close()
    assert parquet.rows == sum(b.num_rows for b in batches)
    assert pq.read_table(tmp_path / "q.parquet").equals(pa.concat_tables(batches))


def test_statistics_are_kept_where_readers_filter(tmp_path: Path, batches: list[pa.Table]) -> None:
    _write(tmp_path / "s.parquet", batches, background=True)
    group = pq.ParquetFile(tmp_path / "s.parquet").metadata.row_group(0)
    with_statistics = {
        group.column(i).path_in_schema
        for i in range(group.num_columns)
        if group.column(i).is_stats_set
    }
    assert with_statistics == set(files._STATISTICS_COLUMNS)
    start = group.column(CALL_HISTORY_SCHEMA.get_field_index("start_time")).statistics
    assert start.has_min_max
