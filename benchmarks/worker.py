"""Entry point of a benchmark subprocess: ``python -m benchmarks.worker TASK --params JSON``.

With ``--pin`` the process binds itself to CPU 0 with ``os.sched_setaffinity`` *before* numpy,
polars or pyarrow are imported, so their thread pools see one core. The task's JSON result is
written to ``--result`` with the process's own peak RSS (``resource.getrusage``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import JSON, process_peak_mb


def _tasks() -> dict[str, Callable[[JSON], JSON]]:
    from benchmarks import core_bench, deck_bench, naive, sql_rating, store_bench

    return {
        "core_stages": core_bench.core_stages,
        "core_whole": core_bench.core_whole,
        "core_profile": core_bench.core_profile,
        "deck_build": deck_bench.deck_build,
        "naive_deck": deck_bench.naive_deck,
        "naive": naive.naive_task,
        "sql_rating": sql_rating.sql_task,
        "store_writes": store_bench.store_task,
    }


def main(argv: list[str] | None = None) -> int:
    """Run one task and write its result."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker")
    parser.add_argument("task")
    parser.add_argument("--params", default="{}")
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--pin", action="store_true", help="bind to CPU 0 before any import")
    args = parser.parse_args(argv)
    pinned: list[int] = []
    if args.pin:
        os.sched_setaffinity(0, {0})
        pinned = sorted(os.sched_getaffinity(0))
    tasks = _tasks()
    if args.task not in tasks:
        print(f"unknown task {args.task!r}; known: {', '.join(sorted(tasks))}", file=sys.stderr)
        return 2
    result = tasks[args.task](json.loads(args.params))
    result["pinned_cpus"] = pinned
    result["process_peak_mb"] = process_peak_mb()
    args.result.write_text(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
