"""The local Kafka broker behaves like the real thing the raters rely on.

Idempotent keyed produce, consume back with manual commits, and a consumer of the same group
resuming exactly at the committed offsets (no redelivery of committed messages). Every loop
has a deadline as a safety net; no test asserts on how long anything took.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

MESSAGE_COUNT = 1_000
_LIMIT_S = 60.0


@dataclass(frozen=True)
class _Record:
    key: str
    value: bytes
    partition: int
    offset: int


def _key(seq: int) -> str:
    return f"cdr-{seq:05d}"


def _value(seq: int) -> bytes:
    return json.dumps({"cdr_id": _key(seq), "seq": seq}).encode()


def _where(msg: Message) -> tuple[str, int, int]:
    """Key, partition and offset of a delivered or consumed message."""
    key, partition, offset = msg.key(), msg.partition(), msg.offset()
    assert key is not None, "message without key"
    assert partition is not None, f"message {key!r} without partition"
    assert offset is not None, f"message {key!r} without offset"
    return key.decode(), partition, offset


def _produce_keyed(bootstrap: str, topic: str, count: int) -> dict[str, tuple[int, int]]:
    """Produce ``count`` keyed messages idempotently; return key -> (partition, offset)."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5}
    )
    delivered: dict[str, tuple[int, int]] = {}
    failures: list[str] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            failures.append(f"{msg.key()!r}: {err}")
        else:
            key, partition, offset = _where(msg)
            delivered[key] = (partition, offset)

    deadline = time.monotonic() + _LIMIT_S
    for seq in range(count):
        while True:
            try:
                producer.produce(topic, key=_key(seq), value=_value(seq), on_delivery=on_delivery)
                break
            except BufferError:
                if time.monotonic() > deadline:
                    pytest.fail(f"producer queue still full after {_LIMIT_S:.0f}s at seq {seq}")
                producer.poll(0.1)
        producer.poll(0)
    undelivered = producer.flush(_LIMIT_S)

    assert undelivered == 0, f"{undelivered} messages not delivered after flush"
    assert failures == [], f"delivery failed: {failures[:5]}"
    assert len(delivered) == count
    return delivered


def _consumer(bootstrap: str, group: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )


def _consume(consumer: Consumer, want: int, *, commit: bool) -> list[_Record]:
    """Consume exactly ``want`` messages (never more), committing each batch when asked."""
    records: list[_Record] = []
    deadline = time.monotonic() + _LIMIT_S
    while len(records) < want:
        if time.monotonic() > deadline:
            pytest.fail(f"consumed only {len(records)} of {want} messages within {_LIMIT_S:.0f}s")
        batch = consumer.consume(num_messages=min(500, want - len(records)), timeout=1.0)
        for msg in batch:
            if msg.error() is not None:
                pytest.fail(f"consumer error: {msg.error()}")
            key, partition, offset = _where(msg)
            value = msg.value()
            assert value is not None, f"message {key} has no value"
            records.append(_Record(key, value, partition, offset))
        if commit and batch:
            consumer.commit(asynchronous=False)
    return records


def _committed(consumer: Consumer, topic: str, partitions: list[int]) -> dict[int, int]:
    """Committed offset per partition of the consumer's group (negative: nothing committed)."""
    committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=_LIMIT_S)
    result: dict[int, int] = {}
    for tp in committed:
        assert tp.error is None, f"committed() failed for partition {tp.partition}: {tp.error}"
        result[tp.partition] = tp.offset
    return result


def _high_watermarks(consumer: Consumer, topic: str, partitions: list[int]) -> dict[int, int]:
    marks: dict[int, int] = {}
    for p in partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=_LIMIT_S)
        assert low == 0, f"partition {p} starts at {low}, expected 0 on a fresh topic"
        marks[p] = high
    return marks


def _partitions(consumer: Consumer, topic: str) -> list[int]:
    metadata = consumer.list_topics(topic=topic, timeout=_LIMIT_S)
    return sorted(metadata.topics[topic].partitions)


def test_idempotent_produce_then_consume_all_with_manual_commits(
    kafka_bootstrap: str, unique_topic: str
) -> None:
    delivered = _produce_keyed(kafka_bootstrap, unique_topic, MESSAGE_COUNT)
    assert len({partition for partition, _ in delivered.values()}) > 1, (
        "keyed messages should spread over the topic's partitions"
    )

    consumer = _consumer(kafka_bootstrap, f"it-group-{uuid.uuid4().hex}")
    try:
        consumer.subscribe([unique_topic])
        records = _consume(consumer, MESSAGE_COUNT, commit=True)
        partitions = _partitions(consumer, unique_topic)
        committed = _committed(consumer, unique_topic, partitions)
        high = _high_watermarks(consumer, unique_topic, partitions)
    finally:
        consumer.close()

    # Exact count and content: every key once, with its own value, where the producer put it.
    assert len(records) == MESSAGE_COUNT
    by_key = {r.key: r for r in records}
    assert len(by_key) == MESSAGE_COUNT, "a message was delivered twice"
    assert set(by_key) == {_key(seq) for seq in range(MESSAGE_COUNT)}
    for seq in range(MESSAGE_COUNT):
        record = by_key[_key(seq)]
        assert record.value == _value(seq)
        assert (record.partition, record.offset) == delivered[record.key]

    # Per partition, the idempotent producer kept the send order.
    seqs_by_partition: dict[int, list[int]] = defaultdict(list)
    for record in records:
        seqs_by_partition[record.partition].append(json.loads(record.value)["seq"])
    for partition, seqs in seqs_by_partition.items():
        assert seqs == sorted(seqs), f"partition {partition} out of order"

    # The topic holds exactly what was produced, and the group committed all of it.
    assert sum(high.values()) == MESSAGE_COUNT
    assert committed == high


def test_new_consumer_of_the_group_resumes_from_committed_offsets(
    kafka_bootstrap: str, unique_topic: str
) -> None:
    _produce_keyed(kafka_bootstrap, unique_topic, MESSAGE_COUNT)
    group = f"it-group-{uuid.uuid4().hex}"
    first_share = 400

    # First consumer: process part of the topic, commit exactly what it processed, leave.
    first = _consumer(kafka_bootstrap, group)
    try:
        first.subscribe([unique_topic])
        processed = _consume(first, first_share, commit=False)
        next_offsets: dict[int, int] = {}
        for record in processed:
            next_offsets[record.partition] = max(
                next_offsets.get(record.partition, 0), record.offset + 1
            )
        first.commit(
            offsets=[TopicPartition(unique_topic, p, o) for p, o in next_offsets.items()],
            asynchronous=False,
        )
    finally:
        first.close()

    # Second consumer, same group: starts at the committed offsets and gets only the rest.
    second = _consumer(kafka_bootstrap, group)
    try:
        second.subscribe([unique_topic])
        partitions = _partitions(second, unique_topic)
        committed = _committed(second, unique_topic, partitions)
        rest = _consume(second, MESSAGE_COUNT - first_share, commit=True)
        high = _high_watermarks(second, unique_topic, partitions)
        committed_after = _committed(second, unique_topic, partitions)
    finally:
        second.close()

    assert {p: committed[p] for p in next_offsets} == next_offsets

    first_keys = {r.key for r in processed}
    rest_keys = {r.key for r in rest}
    assert len(first_keys) == first_share
    assert len(rest_keys) == len(rest) == MESSAGE_COUNT - first_share
    assert first_keys.isdisjoint(rest_keys), "committed messages were delivered again"
    assert first_keys | rest_keys == {_key(seq) for seq in range(MESSAGE_COUNT)}

    # Where the first consumer committed, the second one started right there.
    first_offset_seen: dict[int, int] = {}
    for record in rest:
        first_offset_seen.setdefault(record.partition, record.offset)
    for partition, offset in next_offsets.items():
        if offset < high[partition]:
            assert first_offset_seen[partition] == offset
        else:
            assert partition not in first_offset_seen
    # Where it committed nothing, the group starts from the beginning (auto.offset.reset).
    for partition, offset in first_offset_seen.items():
        if partition not in next_offsets:
            assert offset == 0
    assert committed_after == high
