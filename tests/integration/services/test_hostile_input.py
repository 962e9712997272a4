"""Issue 11, done when: hostile messages from a producer the project did not write, among valid
CDRs, through the real broker. The rater exits 0 twice in a row, every valid CDR is rated once,
each bad message is exactly one dead letter (whole, with its size and SHA-256), and nothing is
lost. Offline ``rate`` of the same messages gives the same call history and the same reasons.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
from confluent_kafka import Producer

from pipeline.rating.decode import decode_cdrs
from pipeline.reference.loader import load_plans_folder
from pipeline.services.offline import rate_file
from pipeline.sinks.embedded import EmbeddedStore
from pipeline.storage.reports import export_call_history
from tests.builders import RATED_AT
from tests.support.streaming import (
    Pipeline,
    dead_letters,
    lag,
    network,
    overview_of,
    sums,
    wait,
)


def _hostile(template: dict[str, object]) -> list[tuple[bytes | None, bytes | None]]:
    """(key, value) of one message of each hostile class, built on a valid CDR."""

    def variant(n: int, **fields: object) -> dict[str, object]:
        return {**template, "cdr_id": f"hostile-{n}", **fields}

    def dumps(record: dict[str, object]) -> bytes:
        return json.dumps(record).encode()

    nested = dumps(variant(1))[:-1] + b', "x": ' + b"[" * 1_100 + b"]" * 1_100 + b"}"
    call = variant(
        9, start_time="2026-03-10T12:00:00Z", end_time="2026-03-10T12:00:43Z", duration_ms=2**63 - 1
    )
    escaped = dumps(variant(12)).replace(b'"callee"', b'"call\\u0065e"')
    return [
        (b"hostile-1", nested),  # ~2 KB, 1,100 levels deep
        (
            b"hostile-2",
            dumps(variant(2, callee="7" * 600_000)),
        ),  # 600 KB, its reason would repeat it
        (b"hostile-3", b"x" * 1_040_000),  # not JSON, just under the topic's limit
        (b"hostile-4", dumps({**variant(4), "cdr_id": ["a"]})),
        (b"hostile-5", dumps(variant(5, tenant_id={"a": 1}))),
        (b"hostile-6", dumps(variant(6, callee=4420794612.0))),
        (b"hostile-7", dumps(variant(7)).replace(b'"sip_code": 200', b'"sip_code": NaN')),
        (b"hostile-8", dumps(variant(8))[:-1] + b', "cdr_id": "hostile-8b"}'),
        (b"hostile-9", dumps(call)),  # 2^63-1 ms on a 43-second call
        (b"hostile-10", dumps(variant(10)).replace(b'"ANSWERED"', b'"ANSWERED\xff"')),
        (b"k" * 200_000, b"\xef\xbb\xbf{not json"),  # a 200 KB key and a byte-order mark
        (None, None),  # no value at all (a tombstone from a careless producer)
        (b"hostile-12", escaped),  # valid: an escaped field name is the field
        (b"hostile-13", b""),
    ]


def test_hostile_messages_never_stop_the_rater(pipeline: Pipeline) -> None:
    cdrs, _, _ = network(pipeline, 2_000, seed=31)
    lines = [line for line in cdrs.read_bytes().splitlines() if line.strip()]
    valid_template = next(
        json.loads(line) for line in lines if decode_cdrs([line]).rejected.height == 0
    )
    hostile = _hostile(valid_template)
    store = pipeline.root / "store"
    pipeline.cli("setup", "--store", str(store))
    pipeline.cli("produce", "--cdrs", str(cdrs))
    producer = Producer(
        {"bootstrap.servers": pipeline.bootstrap, "message.max.bytes": 4 * 1024 * 1024}
    )
    for key, value in hostile:
        producer.produce(pipeline.cdr_topic, key=key, value=value)
    hostile_payments = [
        b'{"payment_id": "x", "note": ' + b"[" * 2_000 + b"]" * 2_000 + b"}",
        json.dumps(
            {"payment_id": "y", "kind": ["reseller_payout_out"], "currency": ["EUR"]}
        ).encode(),
        b"\xff" * 900_000,
    ]
    for n, payment in enumerate(hostile_payments):
        producer.produce(f"{pipeline.cdr_topic}-payments", key=f"bad-{n}".encode(), value=payment)
    assert producer.flush(60) == 0
    del producer

    for run in ("first", "second"):  # no crash loop: a second run finds nothing to do
        rater = pipeline.start_rater("--store", str(store), "--exit-when-idle", "3", log_name=run)
        wait(rater, pipeline, run)
    assert "consumed 0," in (pipeline.root / "second.log").read_text()

    # What offline `rate` makes of the same messages is what the rater must have done.
    everything = pipeline.root / "everything.jsonl"
    values = [value or b"" for _, value in hostile]
    everything.write_bytes(b"\n".join([*lines, *(v if v.strip() else b" " for v in values)]))
    rate_file(
        load_plans_folder(pipeline.root / "plans"),
        everything,
        pipeline.root / "offline.parquet",
        pipeline.root / "offline-dlq.jsonl",
        RATED_AT,
    )
    offline = pl.read_parquet(pipeline.root / "offline.parquet")
    with EmbeddedStore(store) as opened:
        history = pl.from_arrow(export_call_history(opened))
    assert isinstance(history, pl.DataFrame)
    assert history["cdr_id"].n_unique() == history.height, "a CDR rated twice"
    assert sorted(history["cdr_id"].to_list()) == sorted(offline["cdr_id"].to_list())
    assert "hostile-12" in history["cdr_id"].to_list()

    letters = dead_letters(pipeline)
    by_digest: dict[str, list[tuple[bytes, dict[str, bytes]]]] = {}
    for value, headers in letters:
        by_digest.setdefault(headers["dlq.original.sha256"].decode(), []).append((value, headers))
    malformed_lines = [line for line in lines if decode_cdrs([line]).rejected.height]
    refused = Counter(m for m in [*malformed_lines, *values] if decode_cdrs([m]).rejected.height)
    assert len(letters) == sum(refused.values())
    for message, times in refused.items():
        [reason] = decode_cdrs([message]).rejected["reason"].to_list()
        found = by_digest.get(hashlib.sha256(message).hexdigest(), [])
        assert len(found) == times, (message[:80], found)
        value, headers = found[0]
        assert value == message  # kept whole: the dead-letter topic takes it
        assert headers["dlq.reason"].decode() == reason
        assert int(headers["dlq.original.size"]) == len(message)
        assert len(headers["dlq.detail"]) <= 1000
        assert "dlq.truncated" not in headers
    reasons = sorted(h["dlq.reason"].decode() for _, h in letters if h["dlq.reason"] != b"empty")
    offline_reasons = sorted(
        json.loads(row)["reason"]
        for row in (pipeline.root / "offline-dlq.jsonl").read_text().splitlines()
    )
    assert reasons == offline_reasons
    big_key = [h for _, h in letters if "dlq.key.sha256" in h]
    assert len(big_key) == 1
    payment_letters = dead_letters(
        replace(pipeline, dlq_topic=f"{pipeline.cdr_topic}-payments-dlq")
    )
    assert sorted(h["dlq.original.size"] for _, h in payment_letters) == sorted(
        str(len(p)).encode() for p in hostile_payments
    )
    # Nothing lost: every message is rated or a dead letter, once.
    assert history.height + len(letters) == len(lines) + len(hostile)
    assert lag(pipeline) == 0

    # Corrected CDRs: balances are pre-aggregated, then some CDRs come again a day or a month
    # later; balances and the billing overview still equal sums over call history.
    _assert_balances_equal_history(pipeline, store, history)
    published = {
        record["cdr_id"]: record
        for record in (json.loads(line) for line in lines if decode_cdrs([line]).good.height)
    }
    corrections = []
    rated = history.filter((pl.col("status") == "rated") & pl.col("cdr_id").is_in(list(published)))
    for n, row in enumerate(rated.head(60).to_dicts()):
        shift = timedelta(days=31 if n % 2 else 1)
        record = dict(published[row["cdr_id"]])
        for field in ("start_time", "answer_time", "end_time"):
            if row[field] is not None:
                record[field] = (row[field] + shift).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        corrections.append(json.dumps(record))
    fixes = pipeline.root / "corrections.jsonl"
    fixes.write_text("\n".join(corrections) + "\n")
    pipeline.cli("produce", "--cdrs", str(fixes))
    third = pipeline.start_rater("--store", str(store), "--exit-when-idle", "3", log_name="third")
    wait(third, pipeline, "third")
    with EmbeddedStore(store) as opened:
        after = pl.from_arrow(export_call_history(opened))
    assert isinstance(after, pl.DataFrame)
    assert after.height == history.height
    assert sums(after) != sums(history)
    _assert_balances_equal_history(pipeline, store, after)


def _assert_balances_equal_history(pipeline: Pipeline, store: Path, history: pl.DataFrame) -> None:
    balances = json.loads(
        pipeline.cli("balances", "--store", str(store), "--format", "json").stdout
    )
    stored = {
        (b["tenant_id"], b["scope"], b["account_id"], b["currency"]): Decimal(b["amount"])
        for b in balances
    }
    assert stored == sums(history)
    overview = json.loads(
        pipeline.cli("billing-overview", "--store", str(store), "--format", "json").stdout
    )
    assert overview == overview_of(sums(history))


def test_offline_rate_survives_the_same_file(tmp_path: Path) -> None:
    """The command as a user runs it: one hostile file, one summary, exit 0."""
    from pipeline.cli import main
    from tests.builders import cdr, deck_row, simple_reference

    simple_reference(tmp_path / "ref", [deck_row("44", "0.1")])
    template = cdr()
    messages = [value or b"" for _, value in _hostile(template)]
    cdrs = tmp_path / "hostile.jsonl"
    cdrs.write_bytes(b"\n".join(m if m.strip() else b" " for m in messages) + b"\n")
    out = tmp_path / "out.parquet"
    status = main(
        ["rate", "--plans", str(tmp_path / "ref"), "--cdrs", str(cdrs), "--out", str(out)]
    )
    assert status == 0
    rows = pl.read_parquet(out)
    assert rows["cdr_id"].to_list() == ["hostile-12"]
    rejected = (tmp_path / "out.parquet.dlq.jsonl").read_text().splitlines()
    assert len(rejected) == len([m for m in messages if m.strip()]) - 1
