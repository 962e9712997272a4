"""Progress lines for long work, on standard error.

On a terminal the line is redrawn in place; otherwise (CI, logs) a line is printed at most every
few seconds, so long runs show they are alive without flooding the log.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Reports ``done`` of ``total`` (if known) with a rate."""

    def __init__(self, what: str, total: int | None = None, stream: TextIO | None = None) -> None:
        """Start the clock; nothing is printed until :meth:`update`."""
        self.what = what
        self.total = total
        self.stream = stream or sys.stderr
        self._tty = self.stream.isatty()
        self._started = time.monotonic()
        self._last = self._started
        self._shown = False

    def update(self, done: int, *, final: bool = False) -> None:
        """Show progress if it is time to (always when ``final``)."""
        now = time.monotonic()
        if not final and now - self._last < (0.2 if self._tty else 5.0):
            return
        self._last = now
        elapsed = max(now - self._started, 1e-9)
        of = f"/{self.total:,}" if self.total else ""
        text = f"{self.what}: {done:,}{of} ({done / elapsed:,.0f}/s)"
        if self._tty:
            self.stream.write("\r" + text + ("\n" if final else ""))
        elif final and not self._shown:
            return
        else:
            self.stream.write(text + "\n")
        self._shown = True
        self.stream.flush()
