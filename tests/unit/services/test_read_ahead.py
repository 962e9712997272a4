"""The file read and decoded on its own thread: the rater gets what a plain loop would give."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipeline.rating import messages as rating_messages
from pipeline.rating.decode import decode_cdrs
from pipeline.rating.engine import rate_batch
from pipeline.rating.reference import ReferenceData
from pipeline.reference.loader import load_plans_folder
from pipeline.services import read_ahead
from pipeline.services.offline import rate_file
from pipeline.services.read_ahead import ReadAhead
from pipeline.sources.files import LineBatch, read_jsonl_batches
from pipeline.synthetic import NetworkSpec, write_network


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("network")
    plans, cdrs = folder / "plans", folder / "cdrs.jsonl"
    write_network(NetworkSpec(seed=5, cdrs=3_000, prefixes_per_plan=50), plans, cdrs)
    return plans, cdrs


def test_batches_come_in_file_order_each_with_its_decoding(network: tuple[Path, Path]) -> None:
    _, cdrs = network
    plain = list(read_jsonl_batches(cdrs, 250))
    with ReadAhead(cdrs, 250, depth=1) as ahead:
        seen = list(ahead)
    assert len(seen) == len(plain) == 12
    for (batch, decoded), expected in zip(seen, plain, strict=True):
        assert batch.line_numbers == expected.line_numbers
        assert batch.lines == expected.lines
        assert not isinstance(decoded, Exception)
        again = decode_cdrs(expected.lines)
        assert_frame_equal(decoded.good, again.good)
        assert_frame_equal(decoded.rejected, again.rejected)
    assert sum(d.rejected.height for _, d in seen if not isinstance(d, Exception)) > 0


@pytest.mark.parametrize("stage", ["screen_out", "decode_cdrs"])
def test_a_decoding_failure_is_handed_over_and_the_batch_is_isolated_by_the_rater(
    network: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, stage: str
) -> None:
    plans, cdrs = network
    reference = load_plans_folder(plans)
    rated_at = datetime(2026, 12, 1, tzinfo=UTC)
    expected = rate_file(reference, cdrs, tmp_path / "a.parquet", tmp_path / "a.dlq", rated_at)

    def failing(*_: object) -> object:
        raise MemoryError  # what decoding a batch might raise that nobody foresaw

    monkeypatch.setattr(read_ahead, stage, failing)
    with ReadAhead(cdrs, 1_000) as ahead:
        handed = [decoded for _, decoded in ahead]
    assert [type(d) for d in handed] == [MemoryError] * 3
    # rate_file still rates everything: the rater decodes such a batch again on its own.
    got = rate_file(reference, cdrs, tmp_path / "b.parquet", tmp_path / "b.dlq", rated_at)
    assert got.as_dict() | {"seconds": 0} == expected.as_dict() | {"seconds": 0}
    assert_frame_equal(
        pl.read_parquet(tmp_path / "a.parquet"), pl.read_parquet(tmp_path / "b.parquet")
    )
    assert (tmp_path / "a.dlq").read_bytes() == (tmp_path / "b.dlq").read_bytes()


def test_a_rating_failure_after_decoding_ahead_is_isolated(
    network: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    plans, cdrs = network
    reference = load_plans_folder(plans)
    rated_at = datetime(2026, 12, 1, tzinfo=UTC)
    real = rate_batch
    rate_file(reference, cdrs, tmp_path / "a.parquet", tmp_path / "a.dlq", rated_at)
    poison = pl.read_parquet(tmp_path / "a.parquet")["cdr_id"].gather_every(400).to_list()

    def failing(good: pl.DataFrame, reference: ReferenceData, at: datetime) -> object:
        if good["cdr_id"].is_in(poison).any():
            raise ZeroDivisionError("poison")
        return real(good, reference, at)

    monkeypatch.setattr(rating_messages, "rate_batch", failing)
    summary = rate_file(
        reference, cdrs, tmp_path / "x.parquet", tmp_path / "x.dlq", rated_at, batch_size=500
    )
    assert summary.rejected_by_reason["internal:ZeroDivisionError"] == len(poison) > 5
    assert summary.rated + summary.unrated + summary.rejected == summary.lines_read


def test_a_reading_error_is_raised_after_the_batches_before_it(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"{}\n" * 10)

    def batches(*_: object) -> Iterator[LineBatch]:
        yield LineBatch([1], [b"{}"], 0)
        raise OSError("disk gone")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(read_ahead, "read_jsonl_batches", batches)
        got: list[list[int]] = []

        def consume() -> None:
            with ReadAhead(path, 1) as ahead:
                got.extend(batch.line_numbers for batch, _ in ahead)

        with pytest.raises(OSError, match="disk gone"):
            consume()
    assert got == [[1]]


def test_closing_early_stops_the_thread_with_batches_still_waiting(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_bytes(b'{"cdr_id": "x"}\n' * 1_000)
    before = threading.active_count()
    with ReadAhead(path, 10, depth=1) as ahead:
        first = next(iter(ahead))
    assert first[0].line_numbers[0] == 1
    assert threading.active_count() == before
    assert not any(t.name == "read-ahead" for t in threading.enumerate())
