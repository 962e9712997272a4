"""What the startup tests share: the wait lines a command logs, and a stop flag installed."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from pipeline.services.startup import StopSignal

STARTUP_LOG = "pipeline.services.startup"


class Waits(logging.Handler):
    """Collects the one-line wait messages of pipeline.services.startup; ``first`` is set on one."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []
        self.first = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        self.first.set()


@contextmanager
def waits_logged() -> Iterator[Waits]:
    """The wait lines logged while the block runs."""
    handler = Waits()
    logger = logging.getLogger(STARTUP_LOG)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@contextmanager
def stop_installed() -> Iterator[StopSignal]:
    """A :class:`StopSignal` handling SIGTERM and SIGINT; the earlier handlers come back after."""
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    stop = StopSignal()
    stop.install()
    try:
        yield stop
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
