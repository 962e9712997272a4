"""The benchmark harness: ``python -m benchmarks.run --quick|--full [--out FILE]``.

Generates the data (a realistic network, batches of 100,000 CDRs with the 1% malformed mix and
clean, a 1,000,000-prefix deck), runs each measurement in its own subprocess, starts a local Kafka
broker for the end-to-end runs (stopped at the end, also on failure), and prints one table:
stage, throughput, the baseline measured in the same run, the ratio, and peak RSS; then the
DESIGN.md section 6 targets, met or missed. ``--out`` also writes it all as Markdown (and the
raw numbers as JSON next to it). Timings are reported, never asserted; a baseline that rates
differently from the engine fails the run.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from benchmarks.harness.config import FULL, QUICK, SECTIONS
from benchmarks.harness.inputs import generate_inputs
from benchmarks.harness.machine import machine_info
from benchmarks.harness.record import RunRecord
from benchmarks.harness.report import report_lines
from benchmarks.harness.sections import Harness


def _raise_on_term(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _workdir(path: Path | None, keep: bool) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    folder = Path(tempfile.mkdtemp(prefix="vmgate-bench-"))
    try:
        yield folder
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="under two minutes")
    size.add_argument("--full", action="store_true", help="the full run for RESULTS.md")
    parser.add_argument("--out", type=Path, help="also write the report (Markdown) and FILE.json")
    parser.add_argument("--work", type=Path, help="data folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder")
    parser.add_argument(
        "--only", help=f"comma-separated sections to run (default all: {','.join(SECTIONS)})"
    )
    parser.add_argument(
        "--report-from", type=Path, help="only print the report of an earlier run's FILE.json"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; exit 1 when a section failed (a baseline disagreeing included)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.report_from:
        print("\n".join(report_lines(RunRecord.read(args.report_from))))
        return 0
    if not (args.quick or args.full):
        parser.error("one of --quick or --full is required")
    config = FULL if args.full else QUICK
    sections = set(args.only.split(",")) if args.only else set(SECTIONS)
    unknown = sections - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    command = "python -m benchmarks.run " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    signal.signal(signal.SIGTERM, _raise_on_term)
    started = time.perf_counter()
    machine = machine_info()
    with _workdir(args.work, args.keep) as root:
        print(f"[bench] {config.name} run in {root}; generating data ...", flush=True)
        inputs = generate_inputs(config, root)
        harness = Harness(config, inputs, root, sections)
        try:
            harness.run()
        except Exception:  # report what ran, then fail
            harness.errors["harness"] = traceback.format_exc()
        record = RunRecord(
            config,
            inputs,
            machine,
            command,
            harness.timings,
            harness.results,
            harness.errors,
        )
        if args.out:  # the raw numbers first: a report bug must not lose a long run
            args.out.parent.mkdir(parents=True, exist_ok=True)
            record.write(args.out.with_suffix(args.out.suffix + ".json"))
        lines = report_lines(record, total_s=time.perf_counter() - started)
    print()
    print("\n".join(lines))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    return 1 if record.errors else 0


if __name__ == "__main__":
    sys.exit(main())
