"""The machine a run measured on: CPUs, memory, Python, package versions, commit, load."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from pathlib import Path

from benchmarks.common import JSON, REPO_ROOT


def machine_info() -> JSON:
    """What the numbers were measured on (read once, at the start of a run)."""
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gb = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gb = int(line.split()[1]) / 1024 / 1024
    versions: dict[str, str] = {}
    from importlib import metadata

    for package in ("polars", "pyarrow", "numpy", "chdb", "confluent-kafka", "faust-streaming"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    commit = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "pipeline"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(memory_gb, 1),
        "python": platform.python_version(),
        "versions": versions,
        "commit": (commit or "unknown") + (" + uncommitted changes in pipeline/" if dirty else ""),
        "load_average": os.getloadavg(),
    }
