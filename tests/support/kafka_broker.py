"""The local Kafka broker of the integration tests: started once per run, also with xdist.

``deploy/local/kafka`` starts a single-node KRaft broker in a run folder. A plain ``pytest``
process starts it in its ``kafka_bootstrap`` session fixture and stops it at the end. With
pytest-xdist every worker is its own process with its own session, so the workers share ONE
broker instead: the first worker that needs it starts it under a file lock in the run's shared
temporary folder and writes its address there; the others wait for the lock and read the
address. Workers never stop it (another may still be using it): the xdist controller does, in
``pytest_sessionfinish`` (``tests/conftest.py``), once every worker is done. Every test already
names its own topics, groups and transactional ids, so sharing the broker is safe.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
KAFKA_SCRIPT = REPO_ROOT / "deploy" / "local" / "kafka"

# Safety nets only (never asserted on): the first start may fetch the jars with Maven.
START_LIMIT_S = 900.0
STOP_LIMIT_S = 120.0

ADDRESS = re.compile(r"^127\.0\.0\.1:\d+$")

#: The shared broker's folder, under the run's shared temporary folder (xdist only).
SHARED_DIR = "kafka-shared"
_ADDRESS_FILE = "address"
_FAILURE_FILE = "start-failure"


def run_script(command: str, run_dir: Path, limit_s: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KAFKA_RUN_DIR": str(run_dir)}
    try:
        return subprocess.run(
            [str(KAFKA_SCRIPT), command],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=limit_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raw = exc.stderr
        stderr = raw.decode(errors="replace") if isinstance(raw, bytes) else (raw or "")
        pytest.fail(
            f"`{KAFKA_SCRIPT} {command}` did not finish within {limit_s:.0f}s\n{stderr}",
            pytrace=False,
        )


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def start(run_dir: Path) -> str:
    """Start a broker in ``run_dir``; its address, or a failed test with the log tail."""
    started = run_script("start", run_dir, START_LIMIT_S)
    bootstrap = _last_line(started.stdout)
    if started.returncode != 0 or not ADDRESS.match(bootstrap):
        pytest.fail(
            f"local Kafka broker did not start (exit {started.returncode}, "
            f"run folder {run_dir})\n--- stdout ---\n{started.stdout}"
            f"\n--- stderr (with the broker log tail) ---\n{started.stderr}",
            pytrace=False,
        )
    return bootstrap


def stop(run_dir: Path) -> str | None:
    """Stop the broker of ``run_dir``; None when it stopped cleanly, else what went wrong."""
    stopped = run_script("stop", run_dir, STOP_LIMIT_S)
    if stopped.returncode != 0:
        return f"local Kafka broker did not stop cleanly (exit {stopped.returncode})\n" + (
            stopped.stderr
        )
    return None


def shared(shared_root: Path) -> str:
    """The address of the run's shared broker, started here if no worker has started it yet.

    A start that failed is remembered, so the other workers fail at once with its message
    rather than trying again.
    """
    run_dir = shared_root / SHARED_DIR
    run_dir.mkdir(exist_ok=True)
    with (shared_root / f"{SHARED_DIR}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        failure = run_dir / _FAILURE_FILE
        if failure.exists():
            pytest.fail(failure.read_text(), pytrace=False)
        address = run_dir / _ADDRESS_FILE
        if address.exists():
            return address.read_text().strip()
        try:
            bootstrap = start(run_dir)
        except pytest.fail.Exception as exc:
            failure.write_text(str(exc))
            raise
        address.write_text(bootstrap)
        return bootstrap


def stop_shared(shared_root: Path) -> str | None:
    """Stop the shared broker if a worker started one; None when nothing went wrong."""
    run_dir = shared_root / SHARED_DIR
    if not (run_dir / _ADDRESS_FILE).exists():
        return None
    return stop(run_dir)
