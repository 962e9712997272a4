"""Errors of the rating core."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with reference data: where it is and what is wrong."""

    file: str
    line: int | None  # 1-based line in the file; None when the problem is the whole file
    column: str | None
    value: str | None
    message: str

    def __str__(self) -> str:
        """Format as ``file, line N, column C: 'value': message``."""
        where = self.file
        if self.line is not None:
            where += f", line {self.line}"
        if self.column is not None:
            where += f", column {self.column}"
        shown = "" if self.value is None else f" {self.value!r}:"
        return f"{where}:{shown} {self.message}"


class ReferenceDataError(ValueError):
    """Reference data (plans, decks, associations, memberships) refused; lists every problem."""

    def __init__(self, problems: list[Problem]) -> None:
        """Keep every problem; the message shows them all, one per line."""
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"reference data refused, {len(problems)} problem(s):\n{lines}")
