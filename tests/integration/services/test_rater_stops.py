"""What retrying cannot mend stops the rater with one clear line, nothing stored, nothing committed.

A dead-letter topic that refuses the rater's records, and a call-history table whose schema does
not match, are permanent failures: the rater exits 3 naming what to fix, without writing the
batch and without committing its offsets. Once the operator fixes it, a restart rates every CDR
exactly once: a stop never leads to the batch being inserted again on every restart.
"""

from __future__ import annotations

import hashlib
import random
import time
from pathlib import Path

import polars as pl
from confluent_kafka import Producer
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
)

from pipeline.sinks.embedded import EmbeddedStore
from pipeline.storage.reports import export_call_history
from tests.support.streaming import (
    LIMIT_S,
    Pipeline,
    dead_letters,
    lag,
    network,
    wait,
)


def _rows(store: Path) -> int:
    with EmbeddedStore(store) as opened:
        return int(opened.query("SELECT count() AS n FROM call_history").to_pylist()[0]["n"])


def _stops(pipeline: Pipeline, log_name: str, store: Path) -> str:
    rater = pipeline.start_rater("--store", str(store), "--exit-when-idle", "20", log_name=log_name)
    code = rater.wait(timeout=LIMIT_S)
    text = (pipeline.root / f"{log_name}.log").read_text()
    assert code == 3, text[-3000:]
    assert "Traceback" not in text
    return text


def _committed(pipeline: Pipeline) -> int:
    """How many CDR messages the group has committed (the CDR topic has no transactions)."""
    from confluent_kafka import ConsumerGroupTopicPartitions

    admin = AdminClient({"bootstrap.servers": pipeline.bootstrap})
    future = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(pipeline.group)])
    return sum(max(tp.offset, 0) for tp in future[pipeline.group].result().topic_partitions)


def _set_topic_limit(pipeline: Pipeline, topic: str, limit: int) -> None:
    admin = AdminClient({"bootstrap.servers": pipeline.bootstrap})
    entry = ConfigEntry(
        "max.message.bytes", str(limit), incremental_operation=AlterConfigOpType.SET
    )
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[entry])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)


def test_a_dead_letter_the_topic_refuses_stops_the_rater_before_anything_is_stored(
    pipeline: Pipeline,
) -> None:
    cdrs, _, _ = network(pipeline, 300, seed=41)
    store = pipeline.root / "store"
    pipeline.cli("setup", "--store", str(store))
    # A rater starts, reads the topic's limit, and waits.
    rater = pipeline.start_rater("--store", str(store), "--exit-when-idle", "60", log_name="first")
    log = pipeline.root / "first.log"
    deadline = time.monotonic() + LIMIT_S
    while "assigned" not in log.read_text():
        assert time.monotonic() < deadline, "the rater was not assigned its partitions"
        assert rater.poll() is None, log.read_text()[-3000:]
        time.sleep(0.2)
    # Then an operator shrinks the dead-letter topic below what the rater believes it takes,
    # and CDRs arrive with a bad message among them.
    _set_topic_limit(pipeline, pipeline.dlq_topic, 2_000)
    pipeline.cli("produce", "--cdrs", str(cdrs))
    producer = Producer({"bootstrap.servers": pipeline.bootstrap})
    noise = random.Random(41).randbytes(9_000)  # incompressible: lz4 cannot make it fit
    producer.produce(pipeline.cdr_topic, key=b"bad", value=noise)
    assert producer.flush(30) == 0
    code = rater.wait(timeout=LIMIT_S)
    text = log.read_text()
    assert code == 3, text[-3000:]
    assert "rater stopped, batch not committed" in text
    assert "MSG_SIZE_TOO_LARGE" in text or "too large" in text.lower()
    # Nothing of the refused batch was stored: the rows are those of the batches committed
    # before it (the dead letter is written before call history).
    assert _rows(store) + len(dead_letters(pipeline)) == _committed(pipeline)
    assert _committed(pipeline) < 301
    # A restart reads the topic's limit again and fits the letter to it.
    second = pipeline.start_rater("--store", str(store), "--exit-when-idle", "4", log_name="second")
    wait(second, pipeline, "second")
    digest = hashlib.sha256(noise).hexdigest().encode()
    [(value, letter)] = [
        (v, h) for v, h in dead_letters(pipeline) if h["dlq.original.sha256"] == digest
    ]
    assert letter["dlq.truncated"] == b"true"
    assert letter["dlq.original.size"] == b"9000"
    assert noise.startswith(value)
    lines = [line for line in cdrs.read_bytes().splitlines() if line.strip()]
    with EmbeddedStore(store) as opened:
        history = pl.from_arrow(export_call_history(opened))
    assert isinstance(history, pl.DataFrame)
    rejected = len(dead_letters(pipeline))
    assert history.height + rejected == len(lines) + 1
    assert history["cdr_id"].n_unique() == history.height
    assert lag(pipeline) == 0


def test_a_call_history_schema_mismatch_stops_the_rater_without_committing(
    pipeline: Pipeline,
) -> None:
    cdrs, _, _ = network(pipeline, 500, seed=42)
    store = pipeline.root / "store"
    pipeline.cli("setup", "--store", str(store))
    pipeline.cli("produce", "--cdrs", str(cdrs))
    with EmbeddedStore(store) as opened:
        opened.execute("ALTER TABLE call_history DROP COLUMN caller")
    for attempt in ("first", "again"):  # the same stop, not a retry loop, each time
        text = _stops(pipeline, attempt, store)
        assert "call-history write failed" in text
        assert "caller" in text
        assert text.count("call-history write failed") == 1
        assert _rows(store) == 0
    with EmbeddedStore(store) as opened:
        opened.execute("ALTER TABLE call_history ADD COLUMN caller String AFTER cdr_reseller_id")
    fixed = pipeline.start_rater("--store", str(store), "--exit-when-idle", "4", log_name="fixed")
    wait(fixed, pipeline, "fixed")
    lines = [line for line in cdrs.read_bytes().splitlines() if line.strip()]
    with EmbeddedStore(store) as opened:
        history = pl.from_arrow(export_call_history(opened))
        raw = opened.query("SELECT count() AS n FROM call_history").to_pylist()[0]["n"]
    assert isinstance(history, pl.DataFrame)
    assert raw == history.height  # the stopped attempts inserted nothing, not even once
    assert history["cdr_id"].n_unique() == history.height
    assert history.height + len(dead_letters(pipeline)) == len(lines)
    assert lag(pipeline) == 0
