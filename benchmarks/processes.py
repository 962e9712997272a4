"""Child processes: the measurement workers, and commands whose peak RSS and CPU we keep.

Every measurement runs in a subprocess started by :func:`run_worker` (``python -m
benchmarks.worker TASK``): it can pin itself to one core before numpy and polars start their
thread pools, it owns its chdb engine (one per process), and its peak RSS is its own. Other
children (the raters, ``vmgate-rating rate``, the faust agent) are waited for with
:func:`wait_child`, which reads their own peak RSS and CPU time and never leaves one running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import JSON, REPO_ROOT, child_hwm_kb


class WorkerError(RuntimeError):
    """A benchmark subprocess failed; the message carries the tail of its output."""


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
    """How a child process ended, its peak memory and the CPU time it used.

    ``peak_mb`` is the child's own ``VmHWM``, read from ``/proc/PID/status`` while it runs (it
    only grows, so the last reading is the peak). Not ``wait4``'s ``ru_maxrss``: on Linux that
    includes the high-water mark of the parent's memory the child was spawned from (exec folds
    the old image's mark into it), so every child of a big harness would look as big as it.
    """

    returncode: int
    peak_mb: float
    seconds: float  # spent waiting for it here
    cpu_s: float  # user + system CPU seconds of the child
    ru_maxrss_mb: float = 0.0  # for the record; see above


def wait_child(process: subprocess.Popen[bytes], timeout_s: float) -> ChildOutcome:
    """Wait for our own child with ``wait4`` (its peak RSS); kill it (by pid) past the limit."""
    try:
        return _wait_child(process, timeout_s)
    except BaseException:  # interrupted or out of time: leave no child of ours behind
        if process.returncode is None:
            if os.getpgid(process.pid) == process.pid:  # a launcher: its session is ours
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()
            os.wait4(process.pid, 0)
            process.returncode = -9
        raise


def _wait_child(process: subprocess.Popen[bytes], timeout_s: float) -> ChildOutcome:
    started = time.monotonic()
    deadline = started + timeout_s
    peak_kb = 0
    while True:
        peak_kb = max(peak_kb, child_hwm_kb(process.pid))
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid == process.pid:
            code = os.waitstatus_to_exitcode(status)
            process.returncode = code
            return ChildOutcome(
                code,
                peak_kb / 1024,
                time.monotonic() - started,
                usage.ru_utime + usage.ru_stime,
                usage.ru_maxrss / 1024,
            )
        if time.monotonic() > deadline:
            msg = f"process {process.args!r} did not finish within {timeout_s:.0f} s: killed"
            raise WorkerError(msg)
        time.sleep(0.02)


# A small process between the harness and a worker. On Linux a process's ``ru_maxrss`` starts at
# the high-water mark of the image it was spawned from: spawned by the (big) harness, a worker's
# ``getrusage`` would report the harness's memory; spawned by this launcher, only ~10 MB of it.
_LAUNCHER = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"


def run_worker(
    task: str,
    params: JSON,
    *,
    pin: bool = False,
    timeout_s: float = 600.0,
    log_dir: Path | None = None,
) -> JSON:
    """Run ``python -m benchmarks.worker TASK`` (through :data:`_LAUNCHER`); its JSON result.

    The worker reports its own peak RSS (``process_peak_mb``); the launcher's is not its.
    """
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
            [sys.executable, "-c", _LAUNCHER, *command],
            cwd=REPO_ROOT,
            env=python_env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the worker and its launcher: one group to end on failure
        )
        outcome = wait_child(process, timeout_s)
    if outcome.returncode != 0 or not result_path.exists():
        tail = log_path.read_text(errors="replace")[-4000:]
        msg = f"benchmark worker {task!r} failed (exit {outcome.returncode}):\n{tail}"
        raise WorkerError(msg)
    result: JSON = json.loads(result_path.read_text())
    result["worker_wall_s"] = outcome.seconds
    return result


def run_reporting_child(
    command: Sequence[str],
    log: Path,
    extra_env: Mapping[str, str] | None = None,
    timeout_s: float = 3600.0,
) -> tuple[dict[str, Any], ChildOutcome]:
    """Run a child whose last stdout line is a JSON summary; return it and how the child ran.

    Stdout goes to ``log`` (named in the error when the child fails), stderr is dropped.
    """
    with log.open("wb") as handle:
        process = subprocess.Popen(
            list(command),
            cwd=REPO_ROOT,
            env=python_env(extra_env),
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.DEVNULL,
        )
        outcome = wait_child(process, timeout_s)
    if outcome.returncode != 0:
        msg = f"{' '.join(command[:4])} failed ({outcome.returncode}); see {log}"
        raise RuntimeError(msg)
    summary: dict[str, Any] = json.loads(log.read_text().strip().splitlines()[-1])
    return summary, outcome
