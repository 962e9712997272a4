"""The result table: one :class:`Row` per measurement, printed as Markdown (readable as text)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class Row:
    """One line of the result table.

    ``value`` is a throughput (higher is better) unless ``unit`` is ``s``, ``ms`` or ``MB``
    (lower is better); ``ratio`` is always "times better than the baseline" (speed-up, time
    or memory saved).
    """

    stage: str
    value: float
    unit: str = "CDR/s"
    baseline: str = ""
    baseline_value: float | None = None
    peak_mb: float | None = None
    note: str = ""
    paired_ratio: float | None = None  # median of ratios taken within the same round

    @property
    def ratio(self) -> float | None:
        """How many times better than the baseline; None when there is none."""
        if self.paired_ratio is not None:
            return self.paired_ratio
        if self.baseline_value is None or not self.baseline_value or not self.value:
            return None
        if self.unit in {"s", "ms", "MB"}:
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
    widths = [
        max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)
    ]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in body]
    return out
