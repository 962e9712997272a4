"""``vmgate-rating rate`` on a big file it has never seen, against a per-row rater, back to back.

``python -m benchmarks.offline_file [--cdrs 600000] [--seed N] [--rounds 2]`` writes a fresh
synthetic network (a random seed unless given: data the project has never seen), then runs, as
whole processes on the same file, alternating their order each round:

- ``vmgate-rating rate`` (Parquet + DLQ out) on both cores, pinned to one core (``taskset -c
  0``, ``POLARS_MAX_THREADS=1``), and with ``--jobs 2`` (two processes, one range of the file
  each): what the second core gives the offline command;
- the sensible per-row rater of :mod:`benchmarks.per_row_file` (issue 17: ``json.loads``,
  dict + ``bisect``, ``Decimal``, one Parquet write; pinned to one core: it is single-threaded
  either way);
- the command's floor of :mod:`benchmarks.command_bench` (read + ``read_ndjson`` of the valid
  lines + the command's Parquet write of its rows, rows loaded before its clock starts).

Wall time of each process is measured from spawn to exit (interpreter start, imports and
reference-data loading included). It prints a table and the ratios, and exits 1 if the per-row
rater and ``rate`` disagree on any rated row (amounts, prefixes, plans, statuses...) or on the
rejected line numbers (:func:`benchmarks.command_bench.compare_outputs`). ``--old`` also runs,
once, the per-row baseline of before issue 17 on the same file.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.command_bench import OutputMismatchError, compare_outputs
from benchmarks.datagen import network
from benchmarks.processes import run_reporting_child

REPO_ROOT = Path(__file__).resolve().parents[1]


def _run(
    command: list[str], log: Path, extra_env: dict[str, str] | None = None
) -> dict[str, float]:
    summary, outcome = run_reporting_child(command, log, extra_env)
    return {
        "wall_s": outcome.seconds,
        "cpu_s": outcome.cpu_s,
        "peak_mb": outcome.peak_mb,
        **{k: float(v) for k, v in summary.items() if isinstance(v, int | float)},
    }


def main(argv: list[str] | None = None) -> int:
    """Generate, run both back to back, print the table."""
    parser = argparse.ArgumentParser(prog="offline_file", description=__doc__)
    parser.add_argument("--cdrs", type=int, default=600_000, help="lines in the file (600000)")
    parser.add_argument("--seed", type=int, help="data seed (default: random, never seen)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, order alternating (2)")
    parser.add_argument("--keep", type=Path, help="keep the data and outputs in this folder")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--old", action="store_true", help="also the old per-row baseline, once")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    root = args.keep or Path(tempfile.mkdtemp(prefix="vmgate-offline-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        data = network(root / "data", args.cdrs, 0.01, seed=seed)
        size_mb = data.cdrs.stat().st_size / 2**20
        print(
            f"file: {args.cdrs:,} lines ({size_mb:.0f} MB), seed {seed}, {data.prefixes:,} prefixes"
        )
        rate = [sys.executable, "-m", "pipeline", "rate", "--plans", str(data.plans),
                "--cdrs", str(data.cdrs), "--json"]  # fmt: skip
        pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
        runs: dict[str, list[dict[str, float]]] = {
            "rate-2": [],
            "rate-jobs2": [],
            "rate-1": [],
            "per-row": [],
            "floor": [],
        }

        def one(name: str) -> None:
            out = root / f"{name}.out"
            if name in ("per-row", "old-per-row"):
                command = [*pin, sys.executable, "-m", "benchmarks.per_row_file", "--plans",
                           str(data.plans), "--cdrs", str(data.cdrs), "--out",
                           str(out) + ".parquet", "--dlq", str(out) + ".dlq"]  # fmt: skip
                if name == "old-per-row":
                    command = [*command, "--old"]
                runs.setdefault(name, []).append(_run(command, root / f"{name}.log"))
                return
            if name == "floor":
                engine = root / "rate-2.out"
                command = [sys.executable, "-m", "benchmarks.command_bench", "floor", "--cdrs",
                           str(data.cdrs), "--rated", str(engine) + ".parquet", "--dlq",
                           str(engine) + ".dlq", "--out", str(out) + ".parquet"]  # fmt: skip
                run = _run(command, root / f"{name}.log")
                run["wall_s"] -= run["preload_s"]
                runs[name].append(run)
                return
            command = [*rate, "--out", str(out) + ".parquet", "--dlq", str(out) + ".dlq"]
            if name == "rate-jobs2":
                command = [*command, "--jobs", "2"]
            if name == "rate-1":
                command = [*pin, *command]
                extra = {"POLARS_MAX_THREADS": "1"}
                runs[name].append(_run(command, root / f"{name}.log", extra))
            else:
                runs[name].append(_run(command, root / f"{name}.log"))

        checked = 0
        for round_number in range(args.rounds):
            order = ["rate-2", "per-row", "rate-jobs2", "rate-1", "floor"]
            for name in order if round_number % 2 == 0 else list(reversed(order)):
                one(name)
            if round_number == 0:  # the per-row rater agrees with rate, row for row
                try:
                    checked = compare_outputs(
                        root / "rate-2.out.parquet",
                        root / "rate-2.out.dlq",
                        root / "per-row.out.parquet",
                        root / "per-row.out.dlq",
                    )
                except OutputMismatchError as exc:
                    print(exc)
                    return 1
        if args.old:
            one("old-per-row")
        rated = runs["rate-2"][-1]
        baseline = runs["per-row"][-1]
        engine_rows = int(rated.get("rated", 0) + rated.get("unrated", 0))
        engine_rejected = int(rated.get("rejected", 0))
        agree = engine_rows == int(baseline["rows"]) and engine_rejected == int(
            baseline["rejected"]
        )
        wall = {name: statistics.median(r["wall_s"] for r in rs) for name, rs in runs.items()}
        peak = {name: max(r["peak_mb"] for r in rs) for name, rs in runs.items()}
        cpu = {name: statistics.median(r["cpu_s"] for r in rs) for name, rs in runs.items()}
        print(
            f"{'process':<44} {'wall s':>8} {'CPU s':>7} {'CDR/s':>10} {'peak MB':>8} "
            f"{'vs per-row':>10}"
        )
        labels = {
            "rate-2": "vmgate-rating rate (2 cores)",
            "rate-jobs2": "vmgate-rating rate --jobs 2 (2 processes)",
            "rate-1": "vmgate-rating rate (1 core, taskset)",
            "floor": "floor: read + read_ndjson + Parquet write",
            "per-row": "sensible per-row rater (json.loads, dict)",
            "old-per-row": "old per-row baseline (before issue 17)",
        }
        for name, label in labels.items():
            if name not in wall:
                continue
            ratio = wall["per-row"] / wall[name]
            print(
                f"{label:<44} {wall[name]:>8.2f} {cpu[name]:>7.1f} "
                f"{args.cdrs / wall[name]:>10,.0f} {peak[name]:>8.0f} {ratio:>9.1f}x"
            )
        print(
            f"rows {engine_rows:,} / {int(baseline['rows']):,}, rejected {engine_rejected:,} / "
            f"{int(baseline['rejected']):,}: {'agree' if agree else 'DISAGREE'} "
            f"({checked:,} rated rows compared column by column); rounds {args.rounds}, medians"
        )
        speedup = wall["per-row"] / wall["rate-2"]
        distance = wall["rate-2"] / wall["floor"]
        print(
            f"issue 17 Done-when: rate {speedup:.2f}x the sensible per-row rater (target >= 5x: "
            f"{'met' if speedup >= 5 else 'MISSED'}); rate {distance:.2f}x its floor (target "
            f"within 3x: {'met' if distance <= 3 else 'MISSED'}); load average "
            f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}"
        )
        if args.json:
            args.json.write_text(
                json.dumps({"seed": seed, "cdrs": args.cdrs, "runs": runs, "wall": wall}, indent=2)
            )
        return 0 if agree else 1
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
