"""cProfile statistics as JSON: the top functions by own time, the project's by cumulative time.

Used by the core benchmark (a profiled worker) and the end-to-end runs (a rater started under
``python -m cProfile``); the harness renders the result as a table.
"""

from __future__ import annotations

import pstats
from typing import Any

from benchmarks.common import JSON, REPO_ROOT


def summarise_profile(stats: pstats.Stats, top: int) -> JSON:
    """The top functions by own time, and the project's functions by cumulative time."""
    entries = stats.stats  # type: ignore[attr-defined]

    def row(key: tuple[str, int, str], value: tuple[Any, ...]) -> JSON:
        filename, line, name = key
        return {
            "function": name,
            "where": f"{_short(filename)}:{line}",
            "calls": value[1],
            "own_s": value[2],
            "cum_s": value[3],
        }

    by_own = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)
    by_cum = sorted(entries.items(), key=lambda item: item[1][3], reverse=True)
    return {
        "total_s": stats.total_tt,  # type: ignore[attr-defined]
        "top_own": [row(k, v) for k, v in by_own[:top]],
        "pipeline_cumulative": [row(k, v) for k, v in by_cum if "pipeline/" in k[0]][:top],
    }


def _short(filename: str) -> str:
    for marker in ("site-packages/", f"{REPO_ROOT}/", "lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename
