"""The sensible per-row rater for a file: what a Python developer writes before vectorising.

``python -m benchmarks.per_row_file --plans DIR --cdrs FILE --out rated.parquet --dlq dlq.jsonl``
reads the JSONL file line by line, rates each line with :func:`benchmarks.per_row.rate_line`
(``json.loads``, dict longest-prefix lookup with ``bisect``, ``Decimal`` money, the engine's
rules, tariff v2 included), keeps the rows as tuples and writes them as ONE Parquet file at the
end (pyarrow, default writer settings), the rejected lines as JSONL (``{"line", "reason"}``).
Prints a JSON summary line (rows, rejected, seconds, and where the seconds went).

``--old`` runs the per-row baseline of before issue 17 instead (:mod:`benchmarks.naive`'s
regex timestamps and linear deck scans, ``json.dumps`` of every row to a JSONL file), kept only
to show in RESULTS.md how much slower it was.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.per_row import LEG_FIELDS, LEGS, NAMES, load_reference, micros, rate_line

_TIME = pa.timestamp("us", tz="UTC")
_TYPES = {
    "start_time": _TIME,
    "answer_time": _TIME,
    "end_time": _TIME,
    "rated_at": _TIME,
    "duration_ms": pa.int64(),
    "sip_code": pa.int64(),
    **{f"{leg}_rate": pa.decimal128(38, 9) for leg in LEGS},
    **{f"{leg}_amount": pa.decimal128(38, 6) for leg in LEGS},
    **{f"{leg}_billed_seconds": pa.int64() for leg in LEGS},
}
#: The Parquet schema of the call history (the names and types of DESIGN.md section 4).
SCHEMA = pa.schema([pa.field(name, _TYPES.get(name, pa.string())) for name in NAMES])
assert len(NAMES) == 19 + len(LEGS) * len(LEG_FIELDS)


def to_table(rows: list[tuple[Any, ...]]) -> pa.Table:
    """The rows (tuples in ``NAMES`` order, times in epoch microseconds) as an Arrow table."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in NAMES]
    arrays = []
    for field, values in zip(SCHEMA, columns, strict=True):
        if field.type == _TIME:
            arrays.append(pa.array(values, pa.int64()).cast(_TIME))
        else:
            arrays.append(pa.array(values, field.type))
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def rate_file(plans: Path, cdrs: Path, out: Path, dlq: Path) -> dict[str, Any]:
    """Rate the file into ``out`` (Parquet) and ``dlq`` (JSONL); the summary.

    The cyclic garbage collector is paused while the rows pile up: the profile showed it
    re-scanning the growing list of row tuples (which hold no cycles) in full collections,
    a third of the Arrow conversion and a fifth of the whole run on 600,000 lines; a developer
    who profiles finds it (the first ``pa.array`` call "taking" 0.5 s per 100,000 rows).
    """
    gc.disable()
    try:
        return _rate_file(plans, cdrs, out, dlq)
    finally:
        gc.enable()


def _rate_file(plans: Path, cdrs: Path, out: Path, dlq: Path) -> dict[str, Any]:
    started = time.perf_counter()
    reference = load_reference(plans)
    loaded = time.perf_counter()
    rated_at = micros(datetime.now(UTC))
    rows: list[tuple[Any, ...]] = []
    rejects: list[str] = []
    with cdrs.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            result = rate_line(reference, line, rated_at)
            if isinstance(result, str):
                rejects.append(json.dumps({"line": number, "reason": result}))
            else:
                rows.append(result)
    rated = time.perf_counter()
    table = to_table(rows)
    built = time.perf_counter()
    pq.write_table(table, out)
    dlq.write_text("".join(r + "\n" for r in rejects))
    done = time.perf_counter()
    return {
        "rows": len(rows),
        "rejected": len(rejects),
        "seconds": done - started,
        "load_s": loaded - started,
        "rate_s": rated - loaded,
        "arrow_s": built - rated,
        "write_s": done - built,
    }


def _plain(value: object) -> object:
    return str(value) if isinstance(value, Decimal) else value


def old_rate_file(plans: Path, cdrs: Path, out: Path, dlq: Path) -> dict[str, Any]:
    """The per-row baseline of before issue 17 (for the comparison in RESULTS.md only)."""
    from benchmarks import naive

    started = time.perf_counter()
    reference = naive.old_load_reference(plans)
    rated_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    rows = rejected = 0
    with cdrs.open("rb") as lines, out.open("w") as handle, dlq.open("w") as dead:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            result = naive.old_rate_message(reference, number, line.rstrip(b"\r\n"), rated_at)
            if isinstance(result, str):
                rejected += 1
                dead.write(json.dumps({"line": number, "reason": result}) + "\n")
            else:
                rows += 1
                handle.write(json.dumps({k: _plain(v) for k, v in result.items()}) + "\n")
    return {"rows": rows, "rejected": rejected, "seconds": time.perf_counter() - started}


def main(argv: Sequence[str] | None = None) -> int:
    """Rate the file; print a JSON summary line."""
    parser = argparse.ArgumentParser(prog="per_row_file", description=__doc__)
    parser.add_argument("--plans", type=Path, required=True)
    parser.add_argument("--cdrs", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dlq", type=Path, required=True)
    parser.add_argument("--old", action="store_true", help="the slow baseline of before")
    args = parser.parse_args(argv)
    run = old_rate_file if args.old else rate_file
    print(json.dumps(run(args.plans, args.cdrs, args.out, args.dlq)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
