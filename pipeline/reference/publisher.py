"""Publishing a validated plans folder to the reference topics, as one transaction.

The files are chunked (:mod:`pipeline.reference.topics`), the manifest goes last, and the keys
of versions older than the newest :data:`KEEP_VERSIONS` are tombstoned, all inside one Kafka
transaction: raters
reading with ``read_committed`` see the whole publication or nothing of it. The transactional
id is fixed per set of topics, so a second importer fences an importer that died mid-way.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import KafkaException, Producer

from pipeline.config import KafkaConfig, ReferenceTopics
from pipeline.reference.topics import (
    HEADER_VERSION,
    KEEP_VERSIONS,
    Chunk,
    Manifest,
    PublishedState,
    chunks_of,
    manifest_key,
    stale_keys,
)

log = logging.getLogger(__name__)
_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Publication:
    """What an import published."""

    version: str
    files: int
    chunks: int
    bytes: int
    tombstones: int
    published_at: str
    already_current: bool = False


def publish_reference(
    config: KafkaConfig,
    topics: ReferenceTopics,
    version: str,
    files: Mapping[str, bytes],
    current: PublishedState,
    *,
    now: datetime | None = None,
    force: bool = False,
) -> Publication:
    """Publish ``files`` as ``version`` (the loader's digest of them) in one transaction.

    ``current`` is what the topics hold now (read to their end): when ``version`` is already
    the newest complete publication nothing is sent (unless ``force``). The newest
    :data:`KEEP_VERSIONS` versions stay (so raters can fall back past a bad one); keys of older
    versions are tombstoned. The caller validates the files first; raters validate again.
    """
    chunks, entries = chunks_of(version, files, topics)
    total = sum(len(data) for data in files.values())
    newest = current.newest()
    if (
        not force
        and newest is not None
        and newest.version == version
        and not isinstance(current.assemble(newest), str)
    ):
        return Publication(version, len(files), len(chunks), total, 0, newest.published_at, True)
    stamp = (now or datetime.now(UTC)).astimezone(UTC).isoformat().replace("+00:00", "Z")
    manifest = Manifest(version, stamp, entries)
    others = [m.version for m in current.newest_first() if m.version != version]
    keep = {version, *others[: KEEP_VERSIONS - 1]}
    stale = stale_keys(current, keep, topics)
    producer = Producer(
        {
            **config,
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": "lz4",
            "linger.ms": 20,
            "message.max.bytes": 1_000_000,
            "transaction.timeout.ms": 120_000,
            "transactional.id": f"vmgate-decks-import-{topics.rateplans}",
        }
    )
    producer.init_transactions(_TIMEOUT_S)
    producer.begin_transaction()
    try:
        for chunk in chunks:
            _send(producer, chunk)
        for topic, key in stale:
            _send(producer, Chunk(topic, key, b"", []), tombstone=True)
        _send(
            producer,
            Chunk(
                topics.rateplans,
                manifest_key(version),
                manifest.to_bytes(),
                [(HEADER_VERSION, version.encode())],
            ),
        )
        producer.commit_transaction(_TIMEOUT_S)
    except (KafkaException, BufferError):
        producer.abort_transaction(_TIMEOUT_S)
        raise
    log.info(
        "published reference data %s: %d files, %d chunks, %d tombstones",
        version,
        len(files),
        len(chunks),
        len(stale),
    )
    return Publication(version, len(files), len(chunks), total, len(stale), stamp)


def _send(producer: Producer, chunk: Chunk, *, tombstone: bool = False) -> None:
    while True:
        try:
            producer.produce(
                chunk.topic,
                value=None if tombstone else chunk.value,
                key=chunk.key,
                headers=chunk.headers,
            )
            break
        except BufferError:
            producer.poll(0.2)
    producer.poll(0)
