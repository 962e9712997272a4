"""What every benchmark shares: the repository root, the result type, the rated-at instant,
medians, and peak RSS.

Inside a measurement subprocess (:mod:`benchmarks.processes`), :class:`PeakRss` resets the
kernel's high-water mark (``/proc/self/clear_refs``) so a stage's peak is not hidden by an
earlier, bigger one; :func:`child_hwm_kb` reads a running child's.
"""

from __future__ import annotations

import re
import resource
import statistics
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
_HWM = re.compile(r"VmHWM:\s+(\d+)\s+kB")
_RSS = re.compile(r"VmRSS:\s+(\d+)\s+kB")

JSON = dict[str, Any]

#: The rated-at instant every benchmark passes to the engine and to the baselines (the rating
#: core reads no clock): fixed, so every run rates the same input the same way.
RATED_AT = datetime(2026, 4, 1, tzinfo=UTC)


def median(values: Sequence[float]) -> float:
    """Median of the measurements (the table reports medians, never best-of)."""
    return float(statistics.median(values))


def _status_kb(pattern: re.Pattern[str]) -> int:
    text = Path("/proc/self/status").read_text()
    found = pattern.search(text)
    return int(found.group(1)) if found else 0


_HIGHEST_KB = [0]  # the process-wide peak across resets (a reset also clears ru_maxrss)


def _hwm_kb() -> int:
    kb = _status_kb(_HWM) or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _HIGHEST_KB[0] = max(_HIGHEST_KB[0], kb)
    return kb


class PeakRss:
    """Peak resident memory of this process, per stage when the kernel lets us reset it."""

    def __init__(self) -> None:
        self.resettable = True

    def reset(self) -> None:
        """Start a new high-water mark at the current RSS (Linux ``clear_refs`` 5)."""
        _hwm_kb()  # keep the peak so far before the kernel forgets it
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            self.resettable = False

    def peak_mb(self) -> float:
        """Peak RSS since the last reset (or since start) in MiB."""
        return _hwm_kb() / 1024

    @staticmethod
    def current_mb() -> float:
        """Current RSS in MiB."""
        return _status_kb(_RSS) / 1024


def process_peak_mb() -> float:
    """Peak RSS of this whole process in MiB, including peaks before :meth:`PeakRss.reset`.

    ``getrusage``'s ``ru_maxrss`` is the kernel's high-water mark, which a reset clears too; the
    highest mark seen before each reset is kept here.
    """
    _hwm_kb()
    return _HIGHEST_KB[0] / 1024


def child_hwm_kb(pid: int) -> int:
    """VmHWM of a running process in KiB (0 once it exited or when unreadable)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    found = _HWM.search(text)
    return int(found.group(1)) if found else 0
