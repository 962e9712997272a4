"""A sensible per-row rater for a file: what a Python developer writes before vectorising.

``python -m benchmarks.per_row_file --plans DIR --cdrs FILE --out rated.jsonl --dlq dlq.jsonl``
reads the JSONL file line by line, rates each CDR with the per-message baseline of
:mod:`benchmarks.naive` (``json.loads``, dict longest-prefix lookup, ``Decimal`` money, the same
rules as the engine, checked equal to it by the harness) and writes one JSON line per rated row
and per rejected line. No database: the comparison is file in, file out, like ``rate``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from benchmarks.naive import load_reference, rate_message


def _plain(value: object) -> object:
    return str(value) if isinstance(value, Decimal) else value


def main(argv: Sequence[str] | None = None) -> int:
    """Rate the file; print a JSON summary line."""
    parser = argparse.ArgumentParser(prog="per_row_file", description=__doc__)
    parser.add_argument("--plans", type=Path, required=True)
    parser.add_argument("--cdrs", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dlq", type=Path, required=True)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    reference = load_reference(args.plans)
    rated_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    rows = rejected = 0
    with (
        args.cdrs.open("rb") as lines,
        args.out.open("w") as out,
        args.dlq.open("w") as dlq,
    ):
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            result = rate_message(reference, number, line.rstrip(b"\r\n"), rated_at)
            if isinstance(result, str):
                rejected += 1
                dlq.write(json.dumps({"line": number, "reason": result}) + "\n")
            else:
                rows += 1
                out.write(json.dumps({k: _plain(v) for k, v in result.items()}) + "\n")
    seconds = time.perf_counter() - started
    print(json.dumps({"rows": rows, "rejected": rejected, "seconds": seconds}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
