"""``rate --jobs N``: the file cut into ranges of whole lines, rated by N processes, same output."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.cli import main
from pipeline.sinks.embedded import EmbeddedStore
from pipeline.sources import files
from pipeline.sources.files import line_ranges, read_jsonl_batches
from pipeline.synthetic import NetworkSpec, write_network


@settings(max_examples=60, deadline=None)
@given(
    lines=st.lists(
        st.sampled_from([b"", b" ", b"a", b"bb", b"x" * 40, b"\r", b"c\r\r", b"\t{}", b" x "]),
        max_size=40,
    ),
    trailing_newline=st.booleans(),
    parts=st.integers(min_value=1, max_value=12),
    block=st.integers(min_value=1, max_value=50),
)
def test_ranges_cover_every_line_once_numbered_as_in_the_file(
    tmp_path_factory: pytest.TempPathFactory,
    lines: list[bytes],
    trailing_newline: bool,
    parts: int,
    block: int,
) -> None:
    path = tmp_path_factory.mktemp("ranges") / "f.jsonl"
    path.write_bytes(b"\n".join(lines) + (b"\n" if trailing_newline and lines else b""))

    def read(ranges: list[object] | None) -> list[tuple[int, bytes, int]]:
        out = []
        for part in ranges or [None]:
            for batch in read_jsonl_batches(path, 3, part):  # type: ignore[arg-type]
                out += [(n, line, batch.blank_lines) for n, line in zip(
                    batch.line_numbers, batch.lines, strict=True)]  # fmt: skip
        return out

    whole = [(n, line) for n, line, _ in read(None)]
    # What a plain line-by-line reader sees: the block reader must agree with it, also when
    # its blocks end in the middle of lines.
    with path.open("rb") as handle:
        plain = [(n, raw.rstrip(b"\r\n")) for n, raw in enumerate(handle, start=1)]
    assert whole == [(n, line) for n, line in plain if line.strip()]
    saved = files._BLOCK_BYTES
    try:
        files._BLOCK_BYTES = block
        assert [(n, line) for n, line, _ in read(None)] == whole
    finally:
        files._BLOCK_BYTES = saved
    ranges = line_ranges(path, parts)
    assert [(n, line) for n, line, _ in read(list(ranges))] == whole
    assert ranges[0].start == 0
    assert ranges[-1].end == path.stat().st_size
    assert all(a.end == b.start for a, b in itertools.pairwise(ranges))
    blanks = sum(b.blank_lines for r in ranges for b in read_jsonl_batches(path, 3, r))
    assert blanks == sum(b.blank_lines for b in read_jsonl_batches(path, 3))


def test_rating_with_three_jobs_gives_what_one_gives(tmp_path: Path) -> None:
    plans, cdrs = tmp_path / "plans", tmp_path / "cdrs.jsonl"
    write_network(NetworkSpec(seed=81, cdrs=5_000, prefixes_per_plan=100), plans, cdrs)
    lines = cdrs.read_bytes().split(b"\n")
    lines.insert(100, b"   ")  # a blank line
    lines.insert(2_000, lines[10])  # a CDR sent twice, far apart
    cdrs.write_bytes(b"\n".join(lines))
    summaries = {}
    for jobs in (1, 3):
        out = tmp_path / f"rated-{jobs}.parquet"
        args = ["rate", "--plans", str(plans), "--cdrs", str(cdrs), "--out", str(out), "--json",
                "--jobs", str(jobs), "--store", str(tmp_path / f"store-{jobs}")]  # fmt: skip
        assert main(args) == 0
    for jobs in (1, 3):
        out = tmp_path / f"rated-{jobs}.parquet"
        summaries[jobs] = pl.read_parquet(out).drop("rated_at")
    assert summaries[1].height > 4_000
    assert summaries[1].equals(summaries[3])
    dead = [(tmp_path / f"rated-{j}.parquet.dlq.jsonl").read_text() for j in (1, 3)]
    assert dead[0] == dead[1]
    assert len(dead[0].splitlines()) == 50  # 1% of 5,000 malformed, named by line
    assert json.loads(dead[0].splitlines()[0])["line"] >= 1
    counts = []
    for jobs in (1, 3):
        with EmbeddedStore(tmp_path / f"store-{jobs}").open() as store:
            table = store.query(
                "SELECT count() AS n, sum(customer_amount) AS s FROM call_history FINAL"
            )
            counts.append(table.to_pylist())
    assert counts[0] == counts[1]
