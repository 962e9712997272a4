"""Where the time of ``vmgate-rating rate`` goes: cProfile of the whole command, by part.

``python -m benchmarks.rate_profile [--cdrs 600000 | --file F --plans DIR] [--seed N]`` runs
``python -m cProfile -m pipeline rate`` on a fresh synthetic file (1% malformed) and prints the
cumulative seconds of the parts issue 17 names: decoding (``decode_cdrs``), rating
(``rate_batch``), the Parquet write (``ParquetCallHistory.write`` and ``close``), the dead-letter
file, reading the file (``read_jsonl_batches``), loading plans (``load_plans_folder``), imports
(``importlib``'s ``_find_and_load``, wherever they happen: lazy ones inside ``main`` too), and
what runs before ``main`` (interpreter start and the module-level imports).
cProfile slows Python-heavy code more than native code, so the parts are indicative; the
unprofiled wall time of the same command is printed next to them. cProfile sees the main
thread only: the Parquet encoding runs on the ``parquet-writer`` thread
(:class:`~pipeline.sinks.files.ParquetCallHistory`), so the write part is the queueing and
``close`` waiting for that thread, not the encoding itself.

``--stages [--rounds 3]`` times instead, in this process, the reference-data load and each
stage of ``rate_file`` on the whole file: the screen, parsing (``_parse``), validation,
``rate_batch``, the Parquet write and the dead-letter write, each exclusively, by wrapping the
engine's own functions (the command is not changed); wall and thread CPU (polars' own threads
and the ``parquet-writer`` thread are not in the latter), medians of ``--rounds`` with the load
average.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.processes import python_env

# (label, module path suffix, function name); cumulative time of the first match
PARTS = (
    ("decode (decode_cdrs)", "rating/decode.py", "decode_cdrs"),
    ("rating (rate_batch)", "rating/engine.py", "rate_batch"),
    ("Parquet + dead-letter file writes", "sinks/files.py", "write"),
    ("Parquet + dead-letter file close", "sinks/files.py", "close"),
    ("reading the file (read_jsonl_batches)", "sources/files.py", "read_jsonl_batches"),
    ("loading plans (load_plans_folder)", "reference/loader.py", "load_plans_folder"),
    ("imports (importlib _find_and_load)", "<frozen importlib._bootstrap>", "_find_and_load"),
    ("whole command (cli.main)", "pipeline/cli.py", "main"),
)


def parts(profile: Path) -> dict[str, float]:
    """Cumulative seconds per part (0 when the function is not in the profile)."""
    stats = pstats.Stats(str(profile))
    found: dict[str, float] = {}
    for (filename, _, function), row in stats.stats.items():  # type: ignore[attr-defined]
        for label, where, name in PARTS:
            if function == name and filename.endswith(where):
                found[label] = found.get(label, 0.0) + float(row[3])
    return {label: found.get(label, 0.0) for label, _, _ in PARTS}


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


def stages(plans: Path, cdrs: Path, rounds: int) -> None:
    """Time the stages of ``rate_file`` on a file in this process; print medians per stage."""
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
    found: dict[str, list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(rounds):
            _TIMES.clear()
            _CPU.clear()
            started, process_cpu = time.perf_counter(), time.process_time()
            reference = load_plans_folder(plans)
            loaded = time.perf_counter()
            out = Path(scratch) / "out.parquet"
            offline.rate_file(reference, cdrs, out, Path(scratch) / "dlq", datetime.now(UTC))
            ended = time.perf_counter()
            found["load plans"].append(loaded - started)
            found["rate_file"].append(ended - loaded)
            found["process CPU (all threads)"].append(time.process_time() - process_cpu)
            for label, seconds in _TIMES.items():
                found[label].append(seconds)
                found[f"  {label}, thread CPU"].append(_CPU[label])
            staged = sum(_TIMES.values())
            found["rest (read file, glue)"].append(ended - loaded - staged)
    print(f"load average {os.getloadavg()[0]:.2f}; medians of {rounds} rounds, seconds")
    for label, values in found.items():
        each = ", ".join(f"{v:.3f}" for v in values)
        print(f"{label:<24} {statistics.median(values):7.3f}  ({each})")


def main(argv: list[str] | None = None) -> int:
    """Generate (unless given a file), then profile the command by part, or time its stages."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rate_profile", description=__doc__)
    parser.add_argument("--cdrs", type=int, default=600_000)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--file", type=Path)
    parser.add_argument("--plans", type=Path)
    parser.add_argument("--stages", action="store_true", help="time the stages in-process")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --stages")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="vmgate-rate-profile-"))
    try:
        if args.file and args.plans:
            cdrs, plans = args.file, args.plans
        else:
            from benchmarks.datagen import network

            data = network(root / "data", args.cdrs, 0.01, seed=args.seed)
            cdrs, plans = data.cdrs, data.plans
        if args.stages:
            stages(plans, cdrs, args.rounds)
            return 0
        rate = ["-m", "pipeline", "rate", "--plans", str(plans), "--cdrs", str(cdrs),
                "--out", str(root / "out.parquet"), "--dlq", str(root / "dlq.jsonl")]  # fmt: skip
        env = python_env()
        began = time.perf_counter()
        subprocess.run([sys.executable, *rate], env=env, check=True, capture_output=True)
        plain_s = time.perf_counter() - began
        profile = root / "rate.prof"
        began = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "cProfile", "-o", str(profile), *rate],
            env=env,
            check=True,
            capture_output=True,
        )
        profiled_s = time.perf_counter() - began
        found = parts(profile)
        whole = found["whole command (cli.main)"]
        print(f"rate, unprofiled wall: {plain_s:.2f} s; profiled wall: {profiled_s:.2f} s")
        for label, seconds in found.items():
            print(f"  {label:<42} {seconds:>7.2f} s")
        print(f"  {'before main (interpreter start, imports)':<42} {profiled_s - whole:>7.2f} s")
        print(json.dumps({"plain_s": plain_s, "profiled_s": profiled_s, "parts": found}))
        return 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
