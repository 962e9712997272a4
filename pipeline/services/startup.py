"""Starting up in a stack that is starting too: wait for the servers, and stop when told to.

In a compose stack the raters and the one-shot ``setup`` may start before Kafka or ClickHouse
accept connections, and the ClickHouse image runs a temporary server first and then restarts
it. :func:`wait_until_ready` makes an attempt (connect, ask for metadata) again with backoff
while the failure is one a starting server gives (connection refused or reset, time-outs, HTTP
5xx, a broker without a leader), logging each wait in one line, for at most ``limit_s``; then it
raises :class:`ServerUnavailableError` naming the server and how long it waited. A failure that
waiting cannot mend (a wrong password, an unknown user, a refused TLS handshake) raises at once.

:class:`StopSignal` turns SIGTERM and SIGINT into a flag that every wait looks at: a command
installs it first thing, so a stop request ends a wait within a fraction of a second, also when
the process is PID 1 in a container (where a signal without a handler is ignored).
:class:`StopRequestedError` then says what was being waited for; the CLI exits 0.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, TypeVar

from pipeline.storage.errors import StoreErrorKind, examine_store_error

if TYPE_CHECKING:
    from pipeline.config import Settings
    from pipeline.sinks.contracts import CallHistoryStore

log = logging.getLogger(__name__)

T = TypeVar("T")

_SLICE_S = 0.1  # how often a sleeping wait looks at the stop flag


class ServerUnavailableError(RuntimeError):
    """A server did not accept connections within the startup wait, or refused us for good."""


class StopRequestedError(Exception):
    """SIGTERM or SIGINT arrived while the command waited; nothing was done half-way."""

    def __init__(self, signal_name: str, waiting_for: str) -> None:
        """Which signal, and what was being waited for."""
        super().__init__(f"stopped by {signal_name} while waiting for {waiting_for}")
        self.signal_name = signal_name
        self.waiting_for = waiting_for


class StopSignal:
    """SIGTERM and SIGINT as a flag, with listeners (a running rater's ``stop``).

    :meth:`install` replaces the handlers of both signals for the rest of the process (a
    :class:`~pipeline.services.rater.Rater` installs its own while it runs and puts these back).
    The handler only sets the flag and calls the listeners; waits poll the flag.
    """

    def __init__(self) -> None:
        """Not requested; no handler installed until :meth:`install`."""
        self.signal_name: str | None = None
        self._listeners: list[Callable[[], object]] = []

    def install(self) -> None:
        """Handle SIGTERM and SIGINT from now on (main thread only)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    @property
    def requested(self) -> bool:
        """Whether a stop was asked for."""
        return self.signal_name is not None

    def on_stop(self, listener: Callable[[], object]) -> None:
        """Call ``listener`` when a stop is asked for (at once if it already was)."""
        self._listeners.append(listener)
        if self.requested:
            listener()

    def request(self, name: str = "a stop request") -> None:
        """Ask for a stop, as the signal handler does."""
        first = not self.requested
        self.signal_name = self.signal_name or name
        if first:
            log.info("%s received: stopping", name)
            for listener in list(self._listeners):
                listener()

    def sleep(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; False as soon as a stop is asked for."""
        deadline = time.monotonic() + seconds
        while not self.requested:
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(_SLICE_S, left))
        return False

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.request(signal.Signals(signum).name)


@dataclass(frozen=True)
class Backoff:
    """Seconds between attempts: ``first_s``, doubling, at most ``max_s``."""

    first_s: float = 0.5
    max_s: float = 5.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.max_s, self.first_s * 2 ** (attempt - 1)))


def wait_until_ready(
    what: str,
    attempt: Callable[[], T],
    judge: Callable[[Exception], tuple[bool, str]],
    limit_s: float,
    stop: StopSignal,
    backoff: Backoff | None = None,
) -> T:
    """``attempt()``'s result, trying again while ``judge`` says the failure may pass.

    ``what`` names the server and its address (``ClickHouse at http://clickhouse:8123``);
    ``judge(exc)`` gives (worth waiting for, the error in words). Each wait is logged in one
    line. Raises :class:`ServerUnavailableError` on a failure not worth waiting for, or once
    ``limit_s`` seconds have passed; :class:`StopRequestedError` when ``stop`` is requested.
    """
    backoff = backoff or Backoff()
    started = time.monotonic()
    number = 0
    while True:
        if stop.requested:
            raise StopRequestedError(stop.signal_name or "a stop request", what)
        number += 1
        try:
            return attempt()
        except Exception as exc:  # judged below: wait, or stop with the judge's words
            waitable, why = judge(exc)
            if not waitable:
                msg = f"{what}: {why}"
                raise ServerUnavailableError(msg) from exc
            waited = time.monotonic() - started
            if waited >= limit_s:
                msg = (
                    f"{what} did not accept connections: gave up after waiting {waited:.0f} s "
                    f"(VMGATE_STARTUP_WAIT_S={limit_s:g}, {number} attempts); last error: {why}"
                )
                raise ServerUnavailableError(msg) from exc
            delay = min(backoff.delay(number), limit_s - waited)
            log.warning(
                "%s not ready (attempt %d, %.0f s of %g s): %s; trying again in %.1f s",
                what,
                number,
                waited,
                limit_s,
                why,
                delay,
            )
        if not stop.sleep(delay):
            raise StopRequestedError(stop.signal_name or "a stop request", what)


def clickhouse_not_ready(exc: BaseException) -> tuple[bool, str]:
    """Whether a store error is one a starting server gives (transient and recognised).

    Connection refused or reset, time-outs, HTTP 5xx and "shutting down" are; wrong
    credentials, missing rights, bad SQL and errors nobody recognises are not.
    """
    failure = examine_store_error(exc)
    return failure.kind is StoreErrorKind.TRANSIENT and failure.recognised, failure.message


def wait_for_kafka(settings: Settings, stop: StopSignal) -> None:
    """Return once a broker of ``settings`` answers (see :func:`wait_until_ready`)."""
    from pipeline.sinks.topics import BrokerProbe, broker_not_ready

    probe = BrokerProbe(settings)
    wait_until_ready(
        f"Kafka at {probe.address}",
        probe.check,
        broker_not_ready,
        settings.startup_wait_s,
        stop,
    )


def open_store_when_ready(
    settings: Settings, store_dir: Path | None, stop: StopSignal
) -> CallHistoryStore:
    """The configured store, opened; a ClickHouse server is waited for (not the embedded one)."""
    from pipeline.sinks.clickhouse_server import ServerStore
    from pipeline.sinks.open_store import open_store, server_settings

    if settings.clickhouse_url is None:
        return open_store(store_dir or Path("store"), None, settings.database)
    server = server_settings(
        settings.clickhouse_url.reveal(),
        settings.database,
        settings.clickhouse_user,
        settings.clickhouse_password,
    )
    opened: CallHistoryStore = wait_until_ready(
        f"ClickHouse at {server.url}",
        ServerStore(server).open,
        clickhouse_not_ready,
        settings.startup_wait_s,
        stop,
    )
    return opened
