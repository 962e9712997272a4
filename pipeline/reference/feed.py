"""Reference data from the compacted topics: read publications, build them off the hot path.

:class:`ReferenceFeed` reads ``rateplans.v1``, ``associations.v1`` and ``memberships.v1`` from
the beginning with ``read_committed`` (no consumer group: every rater reads everything and
commits nothing) into a :class:`~pipeline.reference.topics.PublishedState`.

:class:`ReferenceWatcher` runs a feed in a thread of its own. When a new complete publication
appears it reassembles the files, loads and validates them with the same loader as a plans
folder, builds the indexes, and offers the result; the rater swaps it in between two batches
(:meth:`ReferenceWatcher.newer_than`), so every batch is rated against one version. A
publication that does not load (a bad row, a digest that does not match, chunks missing once
the topics were read to their end) is refused with a log line and counted, and the rater keeps
the last good version.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import overload

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from pipeline.config import KafkaConfig, ReferenceTopics
from pipeline.rating.exceptions import ReferenceDataError
from pipeline.rating.reference import ReferenceData
from pipeline.reference.files import PublishedPlanFiles
from pipeline.reference.loader import load_plans
from pipeline.reference.topics import Manifest, PublishedState

log = logging.getLogger(__name__)
_TOPIC_RECHECK_S = 5.0


class ReferenceFeed:
    """Reads the reference topics from their beginning into a :class:`PublishedState`."""

    def __init__(self, config: KafkaConfig, topics: ReferenceTopics) -> None:
        """Remember the settings; nothing connects until :meth:`start`."""
        self._config: KafkaConfig = {
            **config,
            "group.id": f"vmgate-reference-{uuid.uuid4().hex[:12]}",  # never joins or commits
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            # Small client buffers: a 1M-row deck is ~60 MB of chunks, held once, not thrice.
            "fetch.max.bytes": 8_388_608,
            "max.partition.fetch.bytes": 2_097_152,
            "queued.max.messages.kbytes": 8_192,
        }
        self.topics = topics
        self.state = PublishedState()
        self._consumer: Consumer | None = None
        self._assigned: set[str] = set()
        self._checked_at = 0.0

    def start(self) -> None:
        """Connect and start reading every existing reference topic from its beginning."""
        self._consumer = Consumer(self._config)
        self._assign_new_topics()

    @property
    def consumer(self) -> Consumer:
        """The underlying consumer (started)."""
        if self._consumer is None:
            msg = "reference feed not started"
            raise RuntimeError(msg)
        return self._consumer

    def _assign_new_topics(self) -> None:
        self._checked_at = time.monotonic()
        missing = [t for t in self.topics.all() if t not in self._assigned]
        if not missing:
            return
        metadata = self.consumer.list_topics(timeout=10)
        added: list[TopicPartition] = []
        for topic in missing:
            found = metadata.topics.get(topic)
            if found is None or found.error is not None:
                continue
            added.extend(TopicPartition(topic, p, OFFSET_BEGINNING) for p in found.partitions)
            self._assigned.add(topic)
        if added:
            self.consumer.incremental_assign(added)
        still = [t for t in self.topics.all() if t not in self._assigned]
        if still:
            log.info("reference topics not there yet: %s", ", ".join(still))

    def poll(self, timeout_s: float) -> int:
        """Read what is available (waiting at most ``timeout_s``); return how many messages."""
        if len(self._assigned) < 3 and time.monotonic() - self._checked_at >= _TOPIC_RECHECK_S:
            self._assign_new_topics()
        if not self._assigned:
            time.sleep(timeout_s)
            return 0
        messages = self.consumer.consume(num_messages=1000, timeout=timeout_s)
        count = 0
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                if error.fatal():
                    raise KafkaException(error)
                log.warning("reference feed: %s", error)
                continue
            headers = {
                str(name): value if isinstance(value, bytes) else str(value or "").encode()
                for name, value in list(message.headers() or [])
            }
            key = message.key()
            self.state.apply(
                message.topic() or "",
                key.encode() if isinstance(key, str) else key,
                message.value(),
                headers,
                message.offset() or 0,
            )
            count += 1
        return count

    def caught_up(self) -> bool:
        """True when every reference topic exists and was read to its end."""
        if len(self._assigned) < 3:
            return False
        for partition in self.consumer.assignment():
            try:
                _, high = self.consumer.get_watermark_offsets(partition, timeout=5, cached=False)
                position = self.consumer.position([partition])[0].offset
            except KafkaException:
                return False
            if high > 0 and (position < 0 or position < high):
                return False
        return True

    def read_to_end(self, limit_s: float = 60.0) -> PublishedState:
        """Read until caught up (or ``limit_s`` passed); the state then."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            self.poll(0.2)
            if self.caught_up():
                break
        return self.state

    def close(self) -> None:
        """Disconnect."""
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


@dataclass(frozen=True)
class Refusal:
    """A publication that was not taken, and why."""

    version: str
    reason: str


class ReferenceWatcher:
    """Keeps the newest good published reference data ready, built in a background thread."""

    def __init__(
        self,
        feed: ReferenceFeed,
        load: Callable[[PublishedPlanFiles], ReferenceData] = load_plans,
        poll_s: float = 0.5,
    ) -> None:
        """Watch ``feed``; nothing starts until :meth:`start`."""
        self.feed = feed
        self._load = load
        self._poll_s = poll_s
        self._lock = threading.Lock()
        self._latest: ReferenceData | None = None
        self._refused: list[Refusal] = []
        self._tried: set[str] = set()
        self._reported: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    def start(self) -> None:
        """Connect and begin watching in a daemon thread."""
        self.feed.start()
        self._thread = threading.Thread(target=self._watch, name="reference-watcher", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        try:
            while not self._stop.is_set():
                self.feed.poll(self._poll_s)
                self._consider()
        except BaseException as exc:  # surfaced to the rater by latest()/newer_than()
            self._failure = exc
            log.exception("reference watcher stopped")

    def _consider(self) -> None:
        """Take the newest publication that is complete and loads; fall back past bad ones."""
        state = self.feed.state
        for key, problem in state.problems.items():
            self._report_once(key.decode(errors="replace"), problem)
        caught_up: bool | None = None
        current = self._latest.version if self._latest is not None else None
        for manifest in state.newest_first():
            identity = f"{manifest.version}@{manifest.published_at}"
            if manifest.version == current:
                return  # nothing newer than what is in use is good
            if identity in self._tried:
                continue  # refused before: look at the next older one
            assembled = state.assemble(manifest)
            if isinstance(assembled, str):
                # Mid-read a publication looks incomplete; judge it only once read to the end.
                if caught_up is None:
                    caught_up = self.feed.caught_up()
                if not caught_up:
                    return
                self._report_once(identity, f"incomplete publication: {assembled}", manifest)
                continue
            self._tried.add(identity)
            state.forget({manifest.version})  # its bytes are in ``assembled`` now, once
            if self._build(manifest, assembled):
                state.forget(state.older_than(manifest))  # never needed again
                return

    def _build(self, manifest: Manifest, files: dict[str, bytes]) -> bool:
        started = time.monotonic()
        published = PublishedPlanFiles(files)
        files.clear()  # the only reference left is ``published``, dropped once loaded
        try:
            reference = self._load(published)
        except ReferenceDataError as exc:
            self._refuse(manifest.version, str(exc))
            return False
        except Exception as exc:  # whatever a publication holds, it never stops the watcher
            self._refuse(manifest.version, f"could not be loaded: {type(exc).__name__}: {exc}")
            return False
        finally:
            published.files.clear()
        if reference.version != manifest.version:
            self._refuse(
                manifest.version,
                f"content digest {reference.version} does not match the published version",
            )
            return False
        log.info(
            "reference data %s built from the topics in %.1f s: %d plans, %d deck rows",
            reference.version,
            time.monotonic() - started,
            reference.plan_count,
            reference.deck_row_count,
        )
        with self._lock:
            self._latest = reference
        return True

    def _report_once(self, identity: str, reason: str, manifest: Manifest | None = None) -> None:
        if identity in self._reported:
            return
        self._reported.add(identity)
        self._refuse(manifest.version if manifest is not None else identity, reason)

    def _refuse(self, version: str, reason: str) -> None:
        with self._lock:
            kept = self._latest.version if self._latest is not None else "none yet"
            self._refused.append(Refusal(version, reason))
        log.error("reference data %s refused, keeping %s: %s", version, kept, reason)

    def _check(self) -> None:
        if self._failure is not None:
            msg = f"reference watcher failed: {self._failure}"
            raise RuntimeError(msg) from self._failure

    def latest(self) -> ReferenceData | None:
        """The newest good version built so far (None before the first)."""
        self._check()
        with self._lock:
            return self._latest

    def newer_than(self, version: str) -> ReferenceData | None:
        """The newest good version if it is not ``version``; None otherwise (cheap, lock only)."""
        latest = self.latest()
        if latest is None or latest.version == version:
            return None
        return latest

    @property
    def refusals(self) -> list[Refusal]:
        """Publications refused so far, oldest first."""
        with self._lock:
            return list(self._refused)

    @overload
    def wait_first(self, report_every_s: float = 10.0) -> ReferenceData: ...

    @overload
    def wait_first(
        self, report_every_s: float = 10.0, *, stopped: Callable[[], bool]
    ) -> ReferenceData | None: ...

    def wait_first(
        self, report_every_s: float = 10.0, *, stopped: Callable[[], bool] | None = None
    ) -> ReferenceData | None:
        """Block until a first good version is built, saying so now and every ``report_every_s``.

        With ``stopped``, None as soon as ``stopped()`` is true (a stop signal arrived).
        """
        started = last = time.monotonic()
        log.info("waiting for published reference data on %s", ", ".join(self.feed.topics.all()))
        while True:
            latest = self.latest()
            if latest is not None:
                return latest
            if stopped is not None and stopped():
                return None
            if time.monotonic() - last >= report_every_s:
                last = time.monotonic()
                log.info(
                    "waiting for published reference data on %s (%.0f s)",
                    ", ".join(self.feed.topics.all()),
                    last - started,
                )
            time.sleep(0.1)

    def close(self) -> None:
        """Stop the thread and disconnect."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.feed.close()
