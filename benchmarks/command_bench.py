"""The whole ``rate`` command against the sensible per-row rater and against its own floor.

Three processes on the same JSONL file, each timed from spawn to exit (interpreter start,
imports and reference loading included), back to back, their order alternating per round:

- ``vmgate-rating rate`` (Parquet + dead-letter file out, both cores, as users run it);
- the sensible per-row rater (:mod:`benchmarks.per_row_file`, one Parquet write at the end);
- the command's floor (``python -m benchmarks.command_bench floor``): read the file, keep its
  valid lines, ``polars.read_ndjson`` of them, and write the command's own rated rows to
  Parquet with the command's writer (:class:`pipeline.sinks.files.ParquetCallHistory`, in the
  command's batch size), so whatever writer settings the command uses, its floor uses too.
  The rated rows are loaded before the floor's clock starts (``preload_s``, subtracted from the
  process's wall time): the floor is read + decode + write, no rating.

Before any number is reported, the per-row rater's output is checked against the command's
(:func:`compare_outputs`): the same rated rows with the same amounts, prefixes, plans,
statuses, origins and bands, and the same rejected line numbers. Ratios are taken within a
round and their median reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import JSON
from benchmarks.processes import run_reporting_child
from pipeline.config import RATE_BATCH_SIZE

#: The batch size ``rate`` writes Parquet in.
COMMAND_BATCH = RATE_BATCH_SIZE
#: Each leg's columns compared (here and by :func:`benchmarks.naive.compare_with_engine`).
LEG_COMPARED = ("plan_id", "prefix", "rate", "billed_seconds", "amount", "currency", "origin",
                "band")  # fmt: skip
COMPARED = (
    "reseller_id",
    "callee",
    "status",
    "unrated_reason",
    "duration_ms",
    *(f"{leg}_{c}" for leg in ("customer", "client", "reseller") for c in LEG_COMPARED),
)


class OutputMismatchError(AssertionError):
    """The per-row rater and the command disagree: the comparison would be meaningless."""


def _dlq_lines(path: Path) -> list[int]:
    return sorted(json.loads(line)["line"] for line in path.read_text().splitlines() if line)


def compare_outputs(engine: Path, engine_dlq: Path, per_row: Path, per_row_dlq: Path) -> int:
    """Raise :class:`OutputMismatchError` unless both outputs agree row for row; the row count."""
    import polars as pl

    problems: list[str] = []
    mine_lines, their_lines = _dlq_lines(per_row_dlq), _dlq_lines(engine_dlq)
    if mine_lines != their_lines:
        only_mine = sorted(set(mine_lines) - set(their_lines))[:5]
        only_theirs = sorted(set(their_lines) - set(mine_lines))[:5]
        problems.append(f"rejected lines differ: per-row only {only_mine}, rate only {only_theirs}")
    wanted = ["cdr_id", *COMPARED]
    theirs = pl.read_parquet(engine, columns=wanted)
    mine = pl.read_parquet(per_row, columns=wanted)
    if theirs.height != mine.height:
        problems.append(f"rated rows: per-row {mine.height:,}, rate {theirs.height:,}")
    joined = mine.join(theirs, on="cdr_id", how="full", suffix="_rate", coalesce=True)
    for column in COMPARED:
        differ = joined.filter(pl.col(column).ne_missing(pl.col(f"{column}_rate")))
        if differ.height:
            first = differ.row(0, named=True)
            problems.append(
                f"{column}: {differ.height:,} rows differ, e.g. {first['cdr_id']}: "
                f"per-row {first[column]!r} rate {first[f'{column}_rate']!r}"
            )
    if problems:
        msg = "the per-row rater disagrees with rate:\n  " + "\n  ".join(problems[:12])
        raise OutputMismatchError(msg)
    return mine.height


def _floor_rows(rated: Path, dlq: Path) -> tuple[Any, set[int]]:
    import pyarrow.parquet as pq

    return pq.read_table(rated), set(_dlq_lines(dlq))


def floor(cdrs: Path, rated: Path, dlq: Path, out: Path) -> JSON:
    """The floor: read + ``read_ndjson`` of the valid lines + the command's Parquet write."""
    import io

    import polars as pl

    from pipeline.rating.cdr_contract import CDR_SCHEMA
    from pipeline.sinks.files import ParquetCallHistory

    began = time.perf_counter()
    table, rejected = _floor_rows(rated, dlq)
    preload_s = time.perf_counter() - began
    started = time.perf_counter()
    lines = cdrs.read_bytes().split(b"\n")
    valid = [line for n, line in enumerate(lines, start=1) if n not in rejected and line.strip()]
    read_s = time.perf_counter() - started
    frame = pl.read_ndjson(io.BytesIO(b"\n".join(valid)), schema=CDR_SCHEMA)
    decode_s = time.perf_counter() - started - read_s
    with ParquetCallHistory(out) as parquet:
        for first in range(0, table.num_rows, COMMAND_BATCH):
            parquet.write(table.slice(first, COMMAND_BATCH))
    total = time.perf_counter() - started
    return {
        "rows": frame.height,
        "written": table.num_rows,
        "preload_s": preload_s,
        "read_s": read_s,
        "decode_s": decode_s,
        "write_s": total - read_s - decode_s,
        "seconds": total,
    }


def _wall(summary: dict[str, Any], seconds: float, cpu_s: float, peak_mb: float) -> JSON:
    return {**summary, "wall_s": seconds, "cpu_s": cpu_s, "peak_mb": peak_mb}


def command_rounds(plans: Path, cdrs: Path, root: Path, rounds: int) -> JSON:
    """``rate``, the per-row rater and the floor, back to back, ``rounds`` times; ratios."""
    root.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    rated, dead = root / "rate.parquet", root / "rate.dlq.jsonl"
    mine, mine_dead = root / "per-row.parquet", root / "per-row.dlq.jsonl"
    commands = {
        "rate": [py, "-m", "pipeline", "rate", "--plans", str(plans), "--cdrs", str(cdrs),
                 "--out", str(rated), "--dlq", str(dead), "--json"],
        "per-row": [py, "-m", "benchmarks.per_row_file", "--plans", str(plans), "--cdrs",
                    str(cdrs), "--out", str(mine), "--dlq", str(mine_dead)],
        "floor": [py, "-m", "benchmarks.command_bench", "floor", "--cdrs", str(cdrs), "--rated",
                  str(rated), "--dlq", str(dead), "--out", str(root / "floor.parquet")],
    }  # fmt: skip
    runs: dict[str, list[JSON]] = {name: [] for name in commands}
    checked = 0
    for number in range(rounds):
        order = ["rate", "per-row", "floor"] if number % 2 == 0 else ["floor", "per-row", "rate"]
        if number == 0:
            order = ["rate", "per-row", "floor"]  # the floor needs the command's rows
        for name in order:
            summary, outcome = run_reporting_child(commands[name], root / f"{name}.log")
            run = _wall(summary, outcome.seconds, outcome.cpu_s, outcome.peak_mb)
            if name == "floor":
                run["wall_s"] -= float(summary["preload_s"])
            runs[name].append(run)
        if number == 0:
            checked = compare_outputs(rated, dead, mine, mine_dead)
    ratios = {
        "per-row/rate": statistics.median(
            p["wall_s"] / r["wall_s"] for p, r in zip(runs["per-row"], runs["rate"], strict=True)
        ),
        "rate/floor": statistics.median(
            r["wall_s"] / f["wall_s"] for r, f in zip(runs["rate"], runs["floor"], strict=True)
        ),
    }
    return {"runs": runs, "ratios": ratios, "rounds": rounds, "checked_rows": checked}


def main(argv: Sequence[str] | None = None) -> int:
    """``floor``: one floor run, its JSON summary printed last."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.command_bench")
    sub = parser.add_subparsers(dest="what", required=True)
    one = sub.add_parser("floor", help="read + read_ndjson + the command's Parquet write")
    one.add_argument("--cdrs", type=Path, required=True)
    one.add_argument("--rated", type=Path, required=True, help="the command's Parquet output")
    one.add_argument("--dlq", type=Path, required=True, help="the command's dead-letter file")
    one.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    print(json.dumps(floor(args.cdrs, args.rated, args.dlq, args.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
