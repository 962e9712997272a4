"""Shared helpers: timing, peak RSS, subprocess workers and the result table.

Every measurement runs in a subprocess started by :func:`run_worker` (``python -m
benchmarks.worker TASK``): it can pin itself to one core before numpy and polars start their
thread pools, it owns its chdb engine (one per process), and its peak RSS is its own. Inside a
worker, :class:`PeakRss` resets the kernel's high-water mark (``/proc/self/clear_refs``) so a
stage's peak is not hidden by an earlier, bigger one.
"""

from __future__ import annotations

import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
_HWM = re.compile(r"VmHWM:\s+(\d+)\s+kB")
_RSS = re.compile(r"VmRSS:\s+(\d+)\s+kB")

JSON = dict[str, Any]


class WorkerError(RuntimeError):
    """A benchmark subprocess failed; the message carries the tail of its output."""


def median(values: Sequence[float]) -> float:
    """Median of the measurements (the table reports medians, never best-of)."""
    return float(statistics.median(values))


def repeat(function: Callable[[], object], runs: int, warmup: int = 1) -> list[float]:
    """Seconds of ``runs`` calls of ``function`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        function()
    seconds: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - started)
    return seconds


def _status_kb(pattern: re.Pattern[str]) -> int:
    text = Path("/proc/self/status").read_text()
    found = pattern.search(text)
    return int(found.group(1)) if found else 0


class PeakRss:
    """Peak resident memory of this process, per stage when the kernel lets us reset it."""

    def __init__(self) -> None:
        self.resettable = True

    def reset(self) -> None:
        """Start a new high-water mark at the current RSS (Linux ``clear_refs`` 5)."""
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            self.resettable = False

    def peak_mb(self) -> float:
        """Peak RSS since the last reset (or since start) in MiB."""
        kb = _status_kb(_HWM)
        if not kb:  # no /proc: the process-wide peak
            kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return kb / 1024

    @staticmethod
    def current_mb() -> float:
        """Current RSS in MiB."""
        return _status_kb(_RSS) / 1024


def process_peak_mb() -> float:
    """Peak RSS of this whole process (``getrusage``), in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class StageTimer:
    """Accumulates seconds and peak RSS per named stage across repeated runs."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    peak_mb: dict[str, float] = field(default_factory=dict)
    rss: PeakRss = field(default_factory=PeakRss)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block; keep the stage's peak RSS."""
        self.rss.reset()
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            self.seconds.setdefault(name, []).append(elapsed)
            self.peak_mb[name] = max(self.peak_mb.get(name, 0.0), self.rss.peak_mb())

    def medians(self) -> dict[str, float]:
        """Median seconds per stage."""
        return {name: median(values) for name, values in self.seconds.items()}


def python_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a child Python: the repository on ``PYTHONPATH``, unbuffered output."""
    env = dict(os.environ)
    path = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + path if path else "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


@dataclass
class ChildOutcome:
    """How a child process ended and how much memory it used at its peak."""

    returncode: int
    peak_mb: float
    seconds: float


def wait_child(process: subprocess.Popen[bytes], timeout_s: float) -> ChildOutcome:
    """Wait for our own child with ``wait4`` (its peak RSS); kill it (by pid) past the limit."""
    started = time.monotonic()
    deadline = started + timeout_s
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid == process.pid:
            code = os.waitstatus_to_exitcode(status)
            process.returncode = code
            return ChildOutcome(code, usage.ru_maxrss / 1024, time.monotonic() - started)
        if time.monotonic() > deadline:
            process.kill()
            pid, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            msg = f"process {process.args!r} did not finish within {timeout_s:.0f} s: killed"
            raise WorkerError(msg)
        time.sleep(0.02)


def run_worker(
    task: str,
    params: JSON,
    *,
    pin: bool = False,
    timeout_s: float = 600.0,
    log_dir: Path | None = None,
) -> JSON:
    """Run ``python -m benchmarks.worker TASK`` and return its JSON result (plus ``peak_mb``)."""
    folder = Path(log_dir or tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    result_path = folder / f"{task}-{os.getpid()}-{time.monotonic_ns()}.json"
    log_path = result_path.with_suffix(".log")
    command = [
        sys.executable,
        "-m",
        "benchmarks.worker",
        task,
        "--params",
        json.dumps(params),
        "--result",
        str(result_path),
    ]
    if pin:
        command.append("--pin")
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=python_env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        outcome = wait_child(process, timeout_s)
    if outcome.returncode != 0 or not result_path.exists():
        tail = log_path.read_text(errors="replace")[-4000:]
        msg = f"benchmark worker {task!r} failed (exit {outcome.returncode}):\n{tail}"
        raise WorkerError(msg)
    result: JSON = json.loads(result_path.read_text())
    result["peak_mb"] = outcome.peak_mb
    result["wall_s"] = outcome.seconds
    return result


@dataclass
class Row:
    """One line of the result table.

    ``value`` is a throughput (higher is better) unless ``unit`` is ``s`` or ``ms`` (lower is
    better); ``ratio`` is always "times better than the baseline" (speed-up or time saved).
    """

    stage: str
    value: float
    unit: str = "CDR/s"
    baseline: str = ""
    baseline_value: float | None = None
    peak_mb: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """How many times better than the baseline; None when there is none."""
        if self.baseline_value is None or not self.baseline_value or not self.value:
            return None
        if self.unit in {"s", "ms"}:
            return self.baseline_value / self.value
        return self.value / self.baseline_value


def format_value(value: float | None, unit: str) -> str:
    """A number with its unit, readable in a table."""
    if value is None:
        return ""
    if unit in {"s", "ms"}:
        return f"{value:,.2f} {unit}" if value < 100 else f"{value:,.0f} {unit}"
    return f"{value:,.0f} {unit}" if value >= 100 else f"{value:,.1f} {unit}"


def table_lines(rows: Sequence[Row]) -> list[str]:
    """The rows as a Markdown table (also readable as plain text)."""
    header = ["stage", "result", "baseline (same run)", "baseline result", "ratio", "peak RSS"]
    body: list[list[str]] = []
    for row in rows:
        ratio = row.ratio
        body.append(
            [
                row.stage,
                format_value(row.value, row.unit),
                row.baseline,
                format_value(row.baseline_value, row.unit),
                f"{ratio:,.1f}x" if ratio is not None else "",
                f"{row.peak_mb:,.0f} MB" if row.peak_mb else "",
            ]
        )
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in body]
    return out
