"""Where the time of ``vmgate-rating rate`` goes: cProfile of the whole command, by part.

``python -m benchmarks.rate_profile [--cdrs 600000 | --file F --plans DIR] [--seed N]`` runs
``python -m cProfile -m pipeline rate`` on a fresh synthetic file (1% malformed) and prints the
cumulative seconds of the parts issue 17 names: decoding (``decode_cdrs``), rating
(``rate_batch``), the Parquet write (``ParquetCallHistory.write`` and ``close``), the dead-letter
file, reading the file (``read_jsonl_batches``), loading plans (``load_plans_folder``), imports
(``importlib``'s ``_find_and_load``, wherever they happen: lazy ones inside ``main`` too), and
what runs before ``main`` (interpreter start and the module-level imports).
cProfile slows Python-heavy code more than native code, so the parts are indicative; the
unprofiled wall time of the same command is printed next to them.
"""

from __future__ import annotations

import argparse
import json
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def main(argv: list[str] | None = None) -> int:
    """Generate (unless given a file), run the command unprofiled and profiled, print parts."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rate_profile", description=__doc__)
    parser.add_argument("--cdrs", type=int, default=600_000)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--file", type=Path)
    parser.add_argument("--plans", type=Path)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="vmgate-rate-profile-"))
    try:
        if args.file and args.plans:
            cdrs, plans = args.file, args.plans
        else:
            from benchmarks.datagen import network

            data = network(root / "data", args.cdrs, 0.01, seed=args.seed)
            cdrs, plans = data.cdrs, data.plans
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
