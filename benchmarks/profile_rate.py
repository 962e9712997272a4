"""Where ``vmgate-rating rate`` spends its time, stage by stage, in one process (issue 17).

``python -m benchmarks.profile_rate --plans DIR --cdrs FILE [--rounds 3]`` times, on the whole
file: reading it in batches, the screen, parsing (``_parse``), validation, ``rate_batch``,
the Parquet write and the dead-letter write, plus the reference-data load. Each stage is timed
exclusively by wrapping the engine's own functions (the command is not changed); medians of
``--rounds`` are printed with the load average. Standalone: not part of the harness.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_TIMES: dict[str, float] = defaultdict(float)
_CPU: dict[str, float] = defaultdict(float)  # CPU of the calling thread (polars' own threads not)


def _timed(module: Any, name: str, label: str) -> None:
    inner: Callable[..., Any] = getattr(module, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            return inner(*args, **kwargs)
        finally:
            _TIMES[label] += time.perf_counter() - started
            _CPU[label] += time.thread_time() - cpu

    setattr(module, name, wrapper)


def main(argv: list[str] | None = None) -> int:
    """Time the stages of ``rate_file`` on a file; print medians per stage."""
    parser = argparse.ArgumentParser(prog="profile_rate", description=__doc__)
    parser.add_argument("--plans", type=Path, required=True)
    parser.add_argument("--cdrs", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    from pipeline.rating import decode, messages
    from pipeline.reference.loader import load_plans_folder
    from pipeline.services import offline
    from pipeline.sinks import files as sink_files

    _timed(decode, "screen", "screen")
    _timed(decode, "_parse", "parse")
    _timed(decode, "_validate", "validate")
    _timed(messages, "rate_batch", "rate_batch")
    _timed(sink_files.ParquetCallHistory, "write", "parquet")
    _timed(sink_files.ParquetCallHistory, "close", "parquet")
    _timed(sink_files.DeadLetterFile, "write", "dead letters")
    rounds: dict[str, list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(args.rounds):
            _TIMES.clear()
            _CPU.clear()
            started, process_cpu = time.perf_counter(), time.process_time()
            reference = load_plans_folder(args.plans)
            loaded = time.perf_counter()
            out = Path(scratch) / "out.parquet"
            offline.rate_file(reference, args.cdrs, out, Path(scratch) / "dlq", datetime.now(UTC))
            ended = time.perf_counter()
            rounds["load plans"].append(loaded - started)
            rounds["rate_file"].append(ended - loaded)
            rounds["process CPU (all threads)"].append(time.process_time() - process_cpu)
            for label, seconds in _TIMES.items():
                rounds[label].append(seconds)
                rounds[f"  {label}, thread CPU"].append(_CPU[label])
            staged = sum(_TIMES.values())
            rounds["rest (read file, glue)"].append(ended - loaded - staged)
    print(f"load average {os.getloadavg()[0]:.2f}; medians of {args.rounds} rounds, seconds")
    for label, values in rounds.items():
        each = ", ".join(f"{v:.3f}" for v in values)
        print(f"{label:<24} {statistics.median(values):7.3f}  ({each})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
