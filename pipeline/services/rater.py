"""The streaming rater: consume -> decode -> rate -> write call history -> commit.

One :class:`Rater` is one member of the consumer group. Each batch is rated against one
reference-data version and written to the call-history store; only once the store acknowledged
the write are the batch's dead letters produced and its offsets committed, together, in one
Kafka transaction. A crash anywhere before that commit makes the group consume the batch again;
the store keeps one row per CDR (the latest rating), so a batch written twice is seen once.

When the store fails, the rater pauses its partitions (backpressure), keeps its group membership
alive, retries with exponential backoff and resumes: nothing is lost and nothing busy-loops.
SIGTERM or SIGINT let the batch in flight finish and commit, then the rater exits.

Reference data published to the topics (``decks import``) is watched in the background and a
new version is swapped in between two batches, never during one; every row records the
version it was rated with. The roster of each version the rater rates with (accounts, join
codes, enrollments, memberships: the Resellers page) is written to the store when the rater
starts and when it swaps, and at the latest with the first batch rated with that version,
under the same retries as call history (idempotent: :mod:`pipeline.storage.roster`).

The rater reaches Kafka and storage only through seams (:class:`CdrSource`,
:class:`BatchCommitter`, :class:`CallHistoryStore`, :class:`ReferenceUpdates`);
:mod:`pipeline.testing` implements them in memory, so the loop is unit-tested without a broker.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType
from typing import Protocol

import polars as pl
import pyarrow as pa

from pipeline.rating.messages import rate_messages
from pipeline.rating.reference import ReferenceData
from pipeline.services.client_status_ingest import ClientStatusIngest
from pipeline.services.metrics import RaterMetrics
from pipeline.services.outcomes import Outcomes
from pipeline.services.payments_ingest import PaymentsIngest
from pipeline.sinks.contracts import BatchCommitter, CallHistoryStore
from pipeline.sinks.kafka_dlq import DeadLetter, DeadLetterError, TransactionAbortedError
from pipeline.sources.contracts import CdrBatch, CdrSource
from pipeline.storage.errors import StoreErrorKind, examine_store_error
from pipeline.storage.roster import roster_rows

log = logging.getLogger(__name__)


@dataclass
class RaterStats(Outcomes):
    """Running counters of one rater process."""

    consumed: int = 0
    batches: int = 0
    store_failures: int = 0
    aborted_batches: int = 0
    dropped_on_rebalance: int = 0
    reference_swaps: int = 0
    client_status_stored: int = 0
    client_status_refused: int = 0
    client_status_tombstones: int = 0


class RaterStoppedError(RuntimeError):
    """A failure that retrying cannot mend: the rater stops, the batch not committed."""


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff between store retries."""

    first_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        return float(min(self.max_s, self.first_s * self.factor ** (attempt - 1)))


class ReferenceUpdates(Protocol):
    """Newer good reference data, built elsewhere (the published-topics watcher).

    :class:`pipeline.reference.feed.ReferenceWatcher` implements it.
    """

    @property
    def refusals(self) -> Sequence[object]:
        """Publications refused so far (the rater counts them)."""
        ...

    def newer_than(self, version: str) -> ReferenceData | None:
        """The newest good version if it is not ``version``, else None; cheap."""
        ...


class Rater:
    """One stateless rater: a consumer-group member writing call history.

    ``clock`` gives the rated-at time of a batch; ``monotonic`` measures the backoff waits,
    idleness and report intervals (a test may pass a clock that only the source advances).
    """

    def __init__(
        self,
        source: CdrSource,
        committer: BatchCommitter,
        store: CallHistoryStore,
        reference: ReferenceData,
        *,
        batch_size: int = 50_000,
        batch_timeout_s: float = 0.5,
        batch_linger_s: float = 0.1,
        exit_when_idle_s: float | None = None,
        backoff: Backoff | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        payments: PaymentsIngest | None = None,
        client_status: ClientStatusIngest | None = None,
        reference_updates: ReferenceUpdates | None = None,
        metrics: RaterMetrics | None = None,
        max_unrecognised_attempts: int = 10,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Wire the parts; nothing connects until :meth:`run`."""
        self.source = source
        self.committer = committer
        self.store = store
        self.reference = reference
        self.batch_size = batch_size
        self.batch_timeout_s = batch_timeout_s
        self.batch_linger_s = batch_linger_s
        self.exit_when_idle_s = exit_when_idle_s
        self.backoff = backoff or Backoff()
        self.clock = clock
        self.payments = payments
        self.client_status = client_status
        self.reference_updates = reference_updates
        self.metrics = metrics or RaterMetrics()
        self.max_unrecognised_attempts = max_unrecognised_attempts
        self._monotonic = monotonic
        self.metrics.reference_in_use(reference.version)
        self._refusals_seen = 0
        self._roster_written: str | None = None  # the version whose roster the store has
        self.stats = RaterStats()
        self._stopping = False

    def stop(self, *_: object) -> None:
        """Ask the rater to finish the batch in flight and exit (signal-handler compatible)."""
        if not self._stopping:
            log.info("stop requested: finishing the batch in flight")
        self._stopping = True

    def run(self) -> RaterStats:
        """Consume until stopped (or idle for ``exit_when_idle_s``); return the counters."""
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        self.source.start()
        self.committer.start()
        if self.payments is not None:
            self.payments.start()
        if self.client_status is not None:
            self.client_status.start()
        idle_since = self._monotonic()
        last_report = self._monotonic()
        self._try_roster()
        try:
            while not self._stopping:
                self._ingest_payments()
                self._ingest_client_status()
                self._swap_reference()
                batch = self.source.next_batch(
                    self.batch_size, self.batch_timeout_s, self.batch_linger_s
                )
                if len(batch) == 0:
                    if (
                        self.exit_when_idle_s is not None
                        and self._monotonic() - idle_since >= self.exit_when_idle_s
                    ):
                        if (
                            self.source.caught_up()
                            and (self.payments is None or self.payments.caught_up())
                            and (self.client_status is None or self.client_status.caught_up())
                        ):
                            log.info(
                                "caught up and idle for %.1f s: exiting", self.exit_when_idle_s
                            )
                            break
                        idle_since = self._monotonic()  # no assignment yet, or lag left
                    continue
                idle_since = self._monotonic()
                self._process(batch)
                if self._monotonic() - last_report >= 5.0:
                    last_report = self._monotonic()
                    self._report()
        finally:
            self._report()
            self.source.close()
            self.committer.close()
            if self.payments is not None:
                self.payments.close()
            if self.client_status is not None:
                self.client_status.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self.stats

    def _ingest_payments(self) -> None:
        if self.payments is None:
            return
        try:
            self.payments.poll()
        except Exception as exc:  # the store failed; the CDR path backs off on its own
            log.error("payments not written (%s): they will be consumed again", exc)

    def _ingest_client_status(self) -> None:
        if self.client_status is None:
            return
        try:
            outcome = self.client_status.poll()
        except Exception as exc:  # the store failed; the CDR path backs off on its own
            log.error("client status not written (%s): it will be consumed again", exc)
            return
        self.stats.client_status_stored += outcome.stored
        self.stats.client_status_refused += outcome.refused
        self.stats.client_status_tombstones += outcome.tombstones
        if outcome.stored or outcome.refused:
            self.metrics.client_status(outcome.stored, outcome.refused_by_reason)

    def _swap_reference(self) -> None:
        """Between batches: take a newer good published version, if one was built."""
        if self.reference_updates is None:
            return
        refused = len(self.reference_updates.refusals)
        if refused > self._refusals_seen:
            self.metrics.reference_refused.inc(refused - self._refusals_seen)
            self._refusals_seen = refused
        newer = self.reference_updates.newer_than(self.reference.version)
        if newer is None:
            return
        log.info(
            "reference data %s -> %s (%d plans, %d deck rows): rating with it from this batch on",
            self.reference.version,
            newer.version,
            newer.plan_count,
            newer.deck_row_count,
        )
        self.reference = newer
        self.metrics.reference_in_use(newer.version)
        self.stats.reference_swaps += 1
        self._try_roster()

    def _write_roster(self) -> None:
        """The roster of the version in use, once per version (the store's write is idempotent)."""
        if self._roster_written != self.reference.version:
            # loaded_at is wall-clock time: ``clock`` stamps batches (tests script its ticks).
            self.store.write_roster(roster_rows(self.reference), datetime.now(UTC))
            self._roster_written = self.reference.version

    def _try_roster(self) -> None:
        """Write the roster now if the store takes it; else the next batch's write does."""
        try:
            self._write_roster()
        except Exception as exc:  # the batch path retries it with backoff, or stops
            log.warning(
                "roster of reference data %s not written yet (%s)", self.reference.version, exc
            )

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stop()

    def _report(self) -> None:
        try:
            self.metrics.lag_of(self.source.lag())
        except Exception as exc:  # metrics must never stop rating
            log.debug("lag not measured: %s", exc)
        s = self.stats
        log.info(
            "consumed %d, rated %d, unrated %d, rejected %d in %d batches; store failures %d",
            s.consumed,
            s.rated,
            s.unrated,
            s.rejected,
            s.batches,
            s.store_failures,
        )

    def _process(self, batch: CdrBatch) -> None:
        started = time.monotonic()
        generation = self.source.generation
        rated = rate_messages(batch.values, self.reference, self.clock())  # one version a batch
        letters = [
            DeadLetter(
                batch.values[position],
                batch.key(position),
                reason,
                detail,
                *batch.source(position),
            )
            for position, reason, detail in rated.rejected.select(
                "position", "reason", "detail"
            ).iter_rows()
        ]
        if not self._deliver(rated.table, letters, batch, generation):
            return
        self._count(batch, rated.rejected, rated.table, time.monotonic() - started)

    def _deliver(
        self, table: pa.Table, letters: list[DeadLetter], batch: CdrBatch, generation: int
    ) -> bool:
        """Dead letters, call history and offsets of a batch, in that order, in one transaction.

        A transient failure (store or dead-letter topic unreachable, busy, out of parts) aborts
        the transaction, pauses consumption and tries again with backoff; a permanent one
        (schema, types, credentials, a dead letter the topic refuses) raises
        :class:`RaterStoppedError` with nothing committed. False when the batch was left to the
        group (partitions revoked, stopping, or the transaction aborted by the broker).
        """
        attempt = 0
        paused = False
        try:
            while True:
                if attempt:
                    self.metrics.write_retries.inc()
                try:
                    self._write_once(table, letters, batch)
                    return True
                except TransactionAbortedError as exc:
                    self.stats.aborted_batches += 1
                    log.warning("transaction aborted (%s): consuming the batch again", exc)
                    self.source.rewind(batch)
                    return False
                except Exception as exc:  # classified by _failure: retry, or stop
                    attempt += 1
                    what = self._failure(exc, attempt)
                    delay = self.backoff.delay(attempt)
                    log.error(
                        "%s (attempt %d); consumption paused, retrying in %.1f s",
                        what,
                        attempt,
                        delay,
                    )
                    if not paused:
                        self.source.pause()
                        paused = True
                    if not self._wait(delay, generation):
                        self.stats.dropped_on_rebalance += 1
                        log.warning(
                            "batch not written (partitions revoked or stopping): left to the group"
                        )
                        return False
        finally:
            if paused and self.source.generation == generation:
                self.source.resume()
                log.info(
                    "writes work again after %d failed attempt(s): consumption resumed", attempt
                )

    def _wait(self, delay: float, generation: int) -> bool:
        """Sleep ``delay`` s, keeping group membership; False if revoked or stopping meanwhile."""
        deadline = self._monotonic() + delay
        while self._monotonic() < deadline:
            self.source.wait_paused(min(0.2, max(0.0, deadline - self._monotonic())))
            if self.source.generation != generation or self._stopping:
                return False
        return True

    def _write_once(self, table: pa.Table, letters: list[DeadLetter], batch: CdrBatch) -> None:
        """One attempt: dead letters (acknowledged first), call history, then the offsets.

        A batch without dead letters opens its transaction only after the store write, so a
        rater killed while writing leaves no open transaction to hold back the group.
        """
        try:
            if letters:
                self.committer.begin()
                self.committer.send(letters)  # acknowledged before anything is stored
            self._write_roster()
            self.store.write_call_history(table)
            if not letters:
                self.committer.begin()
            self.committer.commit(batch.next_offsets(), self.source.group_metadata())
        except BaseException:
            self.committer.abort()
            raise

    def _failure(self, exc: Exception, attempt: int) -> str:
        """What failed, as a log line; raises :class:`RaterStoppedError` if retrying cannot help."""
        if isinstance(exc, DeadLetterError):
            if exc.permanent:
                msg = f"{exc}: fix the dead-letter topic or the rater's rights, then restart"
                raise RaterStoppedError(msg) from exc
            return str(exc)
        self.stats.store_failures += 1
        self.metrics.write_errors.inc()
        failure = examine_store_error(exc)
        if failure.kind is StoreErrorKind.PERMANENT:
            msg = f"call-history write failed: {failure.message}"
            raise RaterStoppedError(msg) from exc
        if not failure.recognised and attempt >= self.max_unrecognised_attempts:
            msg = (
                f"call-history write failed {attempt} times with an unrecognised error: "
                f"{failure.message}"
            )
            raise RaterStoppedError(msg) from exc
        return f"call-history write failed: {failure.message}"

    def _count(
        self, batch: CdrBatch, rejected: pl.DataFrame, table: pa.Table, seconds: float
    ) -> None:
        outcome = Outcomes()
        outcome.add(table, rejected)
        self.stats.batches += 1
        self.stats.consumed += len(batch)
        self.stats.merge(outcome)
        self.metrics.batch(len(batch), outcome, seconds)
