"""The streaming rater against a real Kafka broker and the real ClickHouse engine.

Raters run as separate processes (``vmgate-rating run``) so they can be killed with SIGKILL.
Call history goes either to the embedded store (one rater) or, like production, to a ClickHouse
HTTP endpoint (here the chdb engine behind pipeline/testing/clickhouse_http.py) shared by
several raters.
Every test checks the guarantees of DESIGN.md section 5: every consumed CDR ends in call history
or in the dead-letter topic, nothing twice, amounts equal to the offline ``rate`` command's.
"""

from __future__ import annotations

import json
import re
import signal
import time
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

import clickhouse_connect
import polars as pl
from confluent_kafka import Producer

from pipeline.sinks.embedded import EmbeddedStore
from pipeline.storage.reports import export_call_history
from pipeline.testing.clickhouse_http import ChdbHttpServer
from tests.support.streaming import (
    LIMIT_S,
    Pipeline,
    assert_balances_follow_history,
    assert_exact,
    export_from_server,
    network,
    rfc3339,
    sums,
    wait,
    wait_for_rows,
)


def test_one_rater_into_the_embedded_store(pipeline: Pipeline) -> None:
    cdrs, malformed, _ = network(pipeline, 4_000, seed=21)
    store = pipeline.root / "store"
    pipeline.cli("setup", "--store", str(store))
    produced = pipeline.cli("produce", "--cdrs", str(cdrs))
    assert "acknowledged 4,000" in produced.stdout
    payment = ["record-payment", "--tenant", "tnt-01", "--kind", "reseller_payout_out"]
    for payment_id, amount in (("p-1", "10.50"), ("p-2", "0.000001"), ("p-1", "10.50")):
        published = pipeline.cli(
            *payment,
            "--payment-id",
            payment_id,
            "--account",
            "tnt-01-res-01",
            "--amount",
            amount,
            "--currency",
            "EUR",
        )
        assert "published" in published.stdout
    producer = Producer({"bootstrap.servers": pipeline.bootstrap})
    producer.produce(f"{pipeline.cdr_topic}-payments", key=b"p-3", value=b'{"payment_id": "p-3"}')
    assert producer.flush(30) == 0
    del producer
    rater = pipeline.start_rater("--store", str(store), "--exit-when-idle", "4")
    wait(rater, pipeline)
    with EmbeddedStore(store) as opened:
        history = pl.from_arrow(export_call_history(opened))
        paid = opened.query(
            "SELECT payment_id, amount FROM payments FINAL ORDER BY payment_id"
        ).to_pylist()
    assert isinstance(history, pl.DataFrame)
    assert_exact(pipeline, history, cdrs, malformed)
    assert paid == [
        {"payment_id": "p-1", "amount": Decimal("10.500000")},
        {"payment_id": "p-2", "amount": Decimal("0.000001")},
    ]
    assert "payment at offset" in (pipeline.root / "rater.log").read_text()


def test_duplicate_publications_and_two_sigkills(
    pipeline: Pipeline, clickhouse: ChdbHttpServer
) -> None:
    database = f"it_{uuid.uuid4().hex[:10]}"
    pipeline.clickhouse_url = f"{clickhouse.url}/{database}"
    cdrs, malformed, malformed_lines = network(pipeline, 12_000, seed=22)
    pipeline.cli("setup")
    pipeline.cli("produce", "--cdrs", str(cdrs))
    duplicates = pipeline.root / "duplicates.jsonl"
    lines = cdrs.read_text().splitlines()
    valid = [line for n, line in enumerate(lines, start=1) if n not in malformed_lines]
    duplicates.write_text("\n".join(valid[::20]) + "\n")
    pipeline.cli("produce", "--cdrs", str(duplicates))  # the same CDRs published again

    client = clickhouse_connect.get_client(host=clickhouse.host, port=clickhouse.port)
    try:
        for kill in range(2):
            rater = pipeline.start_rater("--batch-size", "700", log_name=f"killed-{kill}")
            wait_for_rows(client, database, 2_000 * (kill + 1), rater)
            rater.send_signal(signal.SIGKILL)
            rater.wait(timeout=30)
    finally:
        client.close()
    final = pipeline.start_rater("--exit-when-idle", "4", log_name="final")
    wait(final, pipeline, "final")
    history = export_from_server(clickhouse, database)
    assert_exact(pipeline, history, cdrs, malformed)


def test_a_second_rater_joins_mid_stream(pipeline: Pipeline, clickhouse: ChdbHttpServer) -> None:
    database = f"it_{uuid.uuid4().hex[:10]}"
    pipeline.clickhouse_url = f"{clickhouse.url}/{database}"
    cdrs, malformed, _ = network(pipeline, 12_000, seed=23)
    pipeline.cli("setup")
    pipeline.cli("produce", "--cdrs", str(cdrs))
    first = pipeline.start_rater("--batch-size", "500", "--exit-when-idle", "6", log_name="first")
    time.sleep(3)
    second = pipeline.start_rater("--batch-size", "500", "--exit-when-idle", "6", log_name="second")
    wait(first, pipeline, "first")
    wait(second, pipeline, "second")
    history = export_from_server(clickhouse, database)
    assert_exact(pipeline, history, cdrs, malformed)


def test_storage_outage_pauses_and_resumes_without_loss(
    pipeline: Pipeline, clickhouse: ChdbHttpServer
) -> None:
    database = f"it_{uuid.uuid4().hex[:10]}"
    pipeline.clickhouse_url = f"{clickhouse.url}/{database}"
    cdrs, malformed, _ = network(pipeline, 8_000, seed=24)
    pipeline.cli("setup")
    pipeline.cli("produce", "--cdrs", str(cdrs))
    client = clickhouse_connect.get_client(host=clickhouse.host, port=clickhouse.port)
    rater = pipeline.start_rater("--batch-size", "500", "--exit-when-idle", "4", log_name="outage")
    try:
        wait_for_rows(client, database, 1_000, rater)
    finally:
        client.close()
    clickhouse.stop()  # ClickHouse goes away mid-stream
    log = pipeline.root / "outage.log"
    deadline = time.monotonic() + LIMIT_S
    while log.read_text().count("call-history write failed") < 3:
        assert time.monotonic() < deadline, "no failed write was reported"
        assert rater.poll() is None, "the rater died with the store"
        time.sleep(0.2)
    clickhouse.start()  # and comes back on the same address
    wait(rater, pipeline, "outage")
    text = log.read_text()
    assert "consumption paused" in text
    assert "consumption resumed" in text
    failures = text.count("call-history write failed")
    assert failures < 40, "retries must back off, not spin"
    assert f"store failures {failures}" in text.replace(",", "")
    history = export_from_server(clickhouse, database)
    assert_exact(pipeline, history, cdrs, malformed)


def test_sigterm_finishes_the_batch_in_flight_and_exits_cleanly(
    pipeline: Pipeline, clickhouse: ChdbHttpServer
) -> None:
    database = f"it_{uuid.uuid4().hex[:10]}"
    pipeline.clickhouse_url = f"{clickhouse.url}/{database}"
    cdrs, malformed, _ = network(pipeline, 8_000, seed=25)
    pipeline.cli("setup")
    pipeline.cli("produce", "--cdrs", str(cdrs))
    client = clickhouse_connect.get_client(host=clickhouse.host, port=clickhouse.port)
    rater = pipeline.start_rater("--batch-size", "300", log_name="terminated")
    try:
        wait_for_rows(client, database, 1_000, rater)
    finally:
        client.close()
    rater.send_signal(signal.SIGTERM)
    wait(rater, pipeline, "terminated")  # exit status 0
    log = (pipeline.root / "terminated.log").read_text()
    assert "stop requested" in log
    counts = re.findall(r"pipeline\.services\.rater: consumed (\d+),", log)
    assert 1_000 <= int(counts[-1]) < 8_000  # stopped mid-stream, after a whole batch
    final = pipeline.start_rater("--exit-when-idle", "4", log_name="final")
    wait(final, pipeline, "final")
    history = export_from_server(clickhouse, database)
    assert_exact(pipeline, history, cdrs, malformed)


def test_corrected_cdrs_published_on_other_days_move_the_balances(
    pipeline: Pipeline, clickhouse: ChdbHttpServer
) -> None:
    """Issue 11 item 3 end to end: corrections with another start day, month or customer."""
    database = f"it_{uuid.uuid4().hex[:10]}"
    pipeline.clickhouse_url = f"{clickhouse.url}/{database}"
    cdrs, _, malformed_lines = network(pipeline, 3_000, seed=26)
    pipeline.cli("setup")
    pipeline.cli("produce", "--cdrs", str(cdrs))
    first = pipeline.start_rater("--batch-size", "400", "--exit-when-idle", "4", log_name="first")
    wait(first, pipeline, "first")
    before = export_from_server(clickhouse, database)
    assert_balances_follow_history(pipeline, before)  # and every day is pre-aggregated now

    # Several hundred corrections: the same cdr_id with another start day (1 to 5 days later),
    # another month (31 days later), some with another customer of the same tenant.
    lines = cdrs.read_text().splitlines()
    records = [
        json.loads(line) for n, line in enumerate(lines, start=1) if n not in malformed_lines
    ]
    current = {row["cdr_id"]: row for row in before.to_dicts()}
    customers: dict[str, list[str]] = {}
    for record in records:
        customers.setdefault(record["tenant_id"], [])
        if record["customer_id"] not in customers[record["tenant_id"]]:
            customers[record["tenant_id"]].append(record["customer_id"])
    corrections = []
    moved: dict[str, datetime] = {}
    for n, record in enumerate(records[::7][:400]):
        row = current[record["cdr_id"]]
        shift = timedelta(days=31 if n % 3 == 0 else 1 + n % 5)
        fixed = dict(record)
        fixed["start_time"] = rfc3339(row["start_time"] + shift)
        fixed["answer_time"] = rfc3339(row["answer_time"] and row["answer_time"] + shift)
        fixed["end_time"] = rfc3339(row["end_time"] + shift)
        if n % 4 == 1:
            others = customers[record["tenant_id"]]
            fixed["customer_id"] = others[(others.index(record["customer_id"]) + 1) % len(others)]
        corrections.append(json.dumps(fixed))
        moved[record["cdr_id"]] = row["start_time"] + shift
    fixes = pipeline.root / "corrections.jsonl"
    fixes.write_text("\n".join(corrections) + "\n")
    pipeline.cli("produce", "--cdrs", str(fixes))
    second = pipeline.start_rater("--batch-size", "400", "--exit-when-idle", "4", log_name="second")
    wait(second, pipeline, "second")

    after = export_from_server(clickhouse, database)
    assert after["cdr_id"].n_unique() == after.height == before.height
    by_id = {row["cdr_id"]: row for row in after.to_dicts()}
    for cdr_id, start in moved.items():
        assert by_id[cdr_id]["start_time"] == start, cdr_id
    changed_currency = [
        cdr_id
        for cdr_id in moved
        if by_id[cdr_id]["customer_currency"] != current[cdr_id]["customer_currency"]
        and by_id[cdr_id]["customer_currency"] is not None
        and current[cdr_id]["customer_currency"] is not None
    ]
    assert changed_currency, "no correction moved a CDR to a customer in another currency"
    assert before.filter(pl.col("cdr_id").is_in(list(moved))).height == len(moved)
    assert_balances_follow_history(pipeline, after)
    assert sums(after) != sums(before)
    # The old days' rows hide behind tombstones: a window over each old day lists none of them.
    client = clickhouse_connect.get_client(host=clickhouse.host, port=clickhouse.port)
    try:
        for cdr_id in list(moved)[:40]:
            old = current[cdr_id]["start_time"]
            day = old.replace(hour=0, minute=0, second=0, microsecond=0)
            shown = client.query(
                f"SELECT count() FROM {database}.call_history_current WHERE cdr_id = %(id)s "
                "AND start_time >= %(a)s AND start_time < %(b)s",
                parameters={"id": cdr_id, "a": day, "b": day + timedelta(days=1)},
                settings={"defer_partition_pruning_after_final": 0},
            )
            assert shown.result_rows[0][0] == 0, cdr_id
    finally:
        client.close()
