"""client-status.v1 through a real broker: the command publishes, a rater stores, hostile
messages are dead-lettered with reasons, and redelivery changes nothing in the current status."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from pipeline.sinks.embedded import EmbeddedStore
from tests.support.streaming import Pipeline, dead_letters, lag, network, wait

_START = datetime(2026, 3, 1, 8, tzinfo=UTC)

# Raw messages from outside the project's code: (key, value, reason the rater must give).
_HOSTILE: list[tuple[bytes | None, bytes, str]] = [
    (b"cl-x", b"not json at all", "not_json"),
    (b"cl-x", b"[" * 100 + b"]" * 100, "too_deep"),
    (b"cl-x", b'{"x": "' + b"y" * 70_000 + b'"}', "too_large"),
    (
        b"cl-1",
        b'{"client_id": "cl-1", "tenant_id": "tnt-01", "online": "true", '
        b'"at": "2026-03-01T08:00:00Z"}',
        "invalid:online",
    ),
    (
        b"cl-2",
        b'{"client_id": "cl-1", "tenant_id": "tnt-01", "online": true, '
        b'"at": "2026-03-01T08:00:00Z"}',
        "invalid:key",
    ),
    (
        b"cl-3",
        b'{"client_id": "cl-3", "online": true, "at": "2026-03-01"}',
        "missing:tenant_id;invalid:at",
    ),
    (b"cl-3", b'"cl-3"', "not_object"),
]


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _events() -> list[dict[str, Any]]:
    """A day of status changes of 12 clients over two tenants, in publication order."""
    events = []
    for n in range(120):
        client = n % 12
        events.append(
            {
                "client_id": f"cl-{client}",
                "tenant_id": f"tnt-0{1 + client % 2}",
                "online": (n // 12) % 2 == 0,
                "at": _iso(_START + timedelta(minutes=n)),
            }
        )
    return events


def _current(store: Path) -> tuple[list[dict[str, Any]], int]:
    with EmbeddedStore(store) as opened:
        rows = opened.query(
            "SELECT tenant_id, client_id, online, at FROM client_status_current "
            "ORDER BY tenant_id, client_id"
        ).to_pylist()
    for row in rows:
        row["at"] = _iso(row["at"])
    return rows, len(rows)


def _summary(pipeline: Pipeline, log: str) -> tuple[int, int, int]:
    text = (pipeline.root / f"{log}.log").read_text()
    found = re.findall(
        r"client status: stored (\d+), refused (\d+), tombstones skipped (\d+)", text
    )
    assert found, text[-3000:]
    stored, refused, tombstones = (int(n) for n in found[-1])
    return stored, refused, tombstones


def _replay_from_the_start(pipeline: Pipeline) -> None:
    """What a crash between the INSERT and the commit leaves: offsets behind stored events."""
    admin = AdminClient({"bootstrap.servers": pipeline.bootstrap})
    topic = pipeline.status_topic
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    group = f"{pipeline.group}-client-status"
    reset = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p, 0) for p in partitions])
    admin.alter_consumer_group_offsets([reset])[group].result()


def test_published_status_is_stored_once_and_hostile_messages_are_dead_lettered(
    pipeline: Pipeline,
) -> None:
    network(pipeline, 50, seed=31)  # the plans a rater needs (and a few CDRs)
    store = pipeline.root / "store"
    pipeline.cli("setup", "--store", str(store))
    events = _events()
    file = pipeline.root / "status.jsonl"
    file.write_text("".join(json.dumps(e) + "\n" for e in events))
    assert "published 120 " in pipeline.cli("client-status", "--file", str(file)).stdout
    # Late and repeated events, through the single form of the command.
    late = ["--tenant", "tnt-01", "--client", "cl-0", "--online", "--at", _iso(_START)]
    newest_cl0 = [e for e in events if e["client_id"] == "cl-0"][-1]
    repeat = ["--tenant", "tnt-01", "--client", "cl-0", "--at", newest_cl0["at"]]
    repeat.append("--online" if newest_cl0["online"] else "--offline")
    for argv in (late, repeat, repeat):
        assert "published 1 " in pipeline.cli("client-status", *argv).stdout
    producer = Producer({"bootstrap.servers": pipeline.bootstrap})
    for key, value, _ in _HOSTILE:
        producer.produce(pipeline.status_topic, key=key, value=value)
    producer.produce(pipeline.status_topic, key=b"cl-gone", value=None)  # a tombstone
    assert producer.flush(30) == 0
    del producer
    published_valid = len(events) + 3

    rater = pipeline.start_rater("--store", str(store), "--exit-when-idle", "4")
    wait(rater, pipeline)

    newest: dict[tuple[str, str], dict[str, Any]] = {}
    for event in events:  # later in the list is later in time
        newest[(event["tenant_id"], event["client_id"])] = event
    want = [
        {"tenant_id": t, "client_id": c, "online": e["online"], "at": e["at"]}
        for (t, c), e in sorted(newest.items())
    ]
    current, clients = _current(store)
    assert current == want
    assert clients == 12
    stored, refused, tombstones = _summary(pipeline, "rater")
    # Nothing lost: every message is an event stored, a dead letter, or the tombstone.
    assert (stored, refused, tombstones) == (published_valid, len(_HOSTILE), 1)
    letters = dead_letters(pipeline, pipeline.status_dlq_topic)
    assert sorted((v, h["dlq.reason"].decode()) for v, h in letters) == sorted(
        (value, reason) for _, value, reason in _HOSTILE
    )
    assert all(h["dlq.source.topic"].decode() == pipeline.status_topic for _, h in letters)
    assert lag(pipeline, f"{pipeline.group}-client-status") == 0

    # Redelivery, as after a crash between the write and the commit: stored again, same status.
    _replay_from_the_start(pipeline)
    again = pipeline.start_rater("--store", str(store), "--exit-when-idle", "4", log_name="again")
    wait(again, pipeline, "again")
    assert _summary(pipeline, "again") == (published_valid, len(_HOSTILE), 1)
    assert _current(store) == (want, 12)
    assert lag(pipeline, f"{pipeline.group}-client-status") == 0
