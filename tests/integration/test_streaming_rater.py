"""The streaming rater against a real Kafka broker and the real ClickHouse engine.

Raters run as separate processes (``vmgate-rating run``) so they can be killed with SIGKILL.
Call history goes either to the embedded store (one rater) or, like production, to a ClickHouse
HTTP endpoint (here the chdb engine behind tests/support/chdb_http.py) shared by several raters.
Every test checks the guarantees of DESIGN.md section 5: every consumed CDR ends in call history
or in the dead-letter topic, nothing twice, amounts equal to the offline ``rate`` command's.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import clickhouse_connect
import polars as pl
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from pipeline.reference.loader import load_plans_folder
from pipeline.services.offline import rate_file
from pipeline.sinks.embedded import EmbeddedStore
from pipeline.storage.reports import export_call_history
from pipeline.synthetic import NetworkSpec, write_network
from tests.support.chdb_http import ChdbHttpServer

pytestmark = pytest.mark.integration

COMPARED = [
    "reseller_id",
    "callee",
    "status",
    "unrated_reason",
    *(
        f"{leg}_{column}"
        for leg in ("customer", "client", "reseller")
        for column in ("plan_id", "prefix", "rate", "billed_seconds", "amount", "currency")
    ),
]
_LIMIT_S = 300.0  # safety net for a rater run; never asserted on


@dataclass
class Pipeline:
    """Names and environment of one test's pipeline (its own topics, group and database)."""

    root: Path
    bootstrap: str
    cdr_topic: str
    dlq_topic: str
    group: str
    clickhouse_url: str | None = None

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP": self.bootstrap,
            "VMGATE_CDR_TOPIC": self.cdr_topic,
            "VMGATE_DLQ_TOPIC": self.dlq_topic,
            "VMGATE_PAYMENTS_TOPIC": f"{self.cdr_topic}-payments",
            "VMGATE_PAYMENTS_DLQ_TOPIC": f"{self.cdr_topic}-payments-dlq",
            "VMGATE_GROUP": self.group,
        }
        if self.clickhouse_url:
            env["CLICKHOUSE_URL"] = self.clickhouse_url
        else:
            env.pop("CLICKHOUSE_URL", None)
        return env

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "pipeline", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=_LIMIT_S,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    def start_rater(self, *args: str, log_name: str = "rater") -> subprocess.Popen[bytes]:
        with (self.root / f"{log_name}.log").open("wb") as log:  # the child keeps its own copy
            return subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pipeline",
                    "run",
                    "--plans",
                    str(self.root / "plans"),
                    *args,
                ],
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )


@pytest.fixture
def pipeline(kafka_bootstrap: str, tmp_path: Path) -> Pipeline:
    run = uuid.uuid4().hex[:10]
    return Pipeline(
        root=tmp_path,
        bootstrap=kafka_bootstrap,
        cdr_topic=f"cdr-{run}",
        dlq_topic=f"dlq-{run}",
        group=f"raters-{run}",
    )


@pytest.fixture
def clickhouse(tmp_path: Path) -> Iterator[ChdbHttpServer]:
    with ChdbHttpServer(tmp_path / "clickhouse") as server:
        yield server


def _network(pipeline: Pipeline, cdrs: int, seed: int) -> tuple[Path, int, set[int]]:
    summary = write_network(
        NetworkSpec(seed=seed, cdrs=cdrs, prefixes_per_plan=400),
        pipeline.root / "plans",
        pipeline.root / "cdrs.jsonl",
    )
    return pipeline.root / "cdrs.jsonl", len(summary.malformed_lines), set(summary.malformed_lines)


def _offline(pipeline: Pipeline, cdrs: Path) -> pl.DataFrame:
    out = pipeline.root / "offline.parquet"
    rate_file(
        load_plans_folder(pipeline.root / "plans"),
        cdrs,
        out,
        pipeline.root / "offline-dlq.jsonl",
        datetime.now(UTC),
    )
    return pl.read_parquet(out)


def _wait(process: subprocess.Popen[bytes], pipeline: Pipeline, name: str = "rater") -> None:
    try:
        code = process.wait(timeout=_LIMIT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"{name} did not finish: {(pipeline.root / f'{name}.log').read_text()[-3000:]}")
    assert code == 0, (pipeline.root / f"{name}.log").read_text()[-3000:]


def _dead_letters(pipeline: Pipeline) -> list[tuple[bytes, dict[str, bytes]]]:
    consumer = Consumer(
        {
            "bootstrap.servers": pipeline.bootstrap,
            "group.id": f"check-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    admin = AdminClient({"bootstrap.servers": pipeline.bootstrap})
    partitions = (
        admin.list_topics(pipeline.dlq_topic, timeout=10).topics[pipeline.dlq_topic].partitions
    )
    ends = {}
    for p in partitions:
        _, high = consumer.get_watermark_offsets(TopicPartition(pipeline.dlq_topic, p), timeout=10)
        ends[p] = high
    consumer.assign([TopicPartition(pipeline.dlq_topic, p, 0) for p in partitions])
    letters: list[tuple[bytes, dict[str, bytes]]] = []
    positions = dict.fromkeys(partitions, 0)
    deadline = time.monotonic() + 60
    try:
        # Transaction markers take offsets too: read until every partition's position reaches
        # its high watermark.
        while any(positions[p] < ends[p] for p in partitions):
            assert time.monotonic() < deadline, "dead-letter topic not read in time"
            for message in consumer.consume(1000, timeout=0.5):
                if message.error() is None:
                    value = message.value()
                    raw = message.headers() or []
                    pairs = raw.items() if isinstance(raw, dict) else raw
                    headers = {str(k): v for k, v in pairs if isinstance(v, bytes)}
                    letters.append((value if isinstance(value, bytes) else b"", headers))
            for tp in consumer.position(
                [TopicPartition(pipeline.dlq_topic, p) for p in partitions]
            ):
                positions[tp.partition] = max(tp.offset, 0)
    finally:
        consumer.close()
    return letters


def _lag(pipeline: Pipeline) -> int:
    admin = AdminClient({"bootstrap.servers": pipeline.bootstrap})
    from confluent_kafka import ConsumerGroupTopicPartitions

    future = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(pipeline.group)])
    committed = future[pipeline.group].result().topic_partitions
    consumer = Consumer({"bootstrap.servers": pipeline.bootstrap, "group.id": "lag-check"})
    try:
        lag = 0
        for tp in committed:
            _, high = consumer.get_watermark_offsets(tp, timeout=10)
            lag += high - max(tp.offset, 0)
        assert committed, "the group committed nothing"
    finally:
        consumer.close()
    return lag


def _assert_exact(pipeline: Pipeline, history: pl.DataFrame, cdrs: Path, malformed: int) -> None:
    offline = _offline(pipeline, cdrs)
    assert history["cdr_id"].n_unique() == history.height, "a CDR appears twice"
    assert sorted(history["cdr_id"].to_list()) == sorted(offline["cdr_id"].to_list())
    joined = history.select("cdr_id", *COMPARED).join(
        offline.select("cdr_id", *COMPARED), on="cdr_id", suffix="_offline"
    )
    for column in COMPARED:
        differs = joined.filter(pl.col(column).ne_missing(pl.col(f"{column}_offline")))
        assert differs.height == 0, (column, differs.head(3).to_dicts())
    letters = _dead_letters(pipeline)
    assert len(letters) == malformed
    offline_rejected = [
        json.loads(line)["original"].encode()
        for line in (pipeline.root / "offline-dlq.jsonl").read_text().splitlines()
    ]
    assert Counter(value for value, _ in letters) == Counter(offline_rejected)
    assert all(headers.get("dlq.reason") for _, headers in letters)
    assert all(headers.get("dlq.source.offset") for _, headers in letters)
    lines = [line for line in cdrs.read_bytes().splitlines() if line.strip()]
    # Nothing lost: every message consumed is in call history or in the dead-letter topic.
    assert history.height + len(letters) == len(lines)
    assert _lag(pipeline) == 0


def _wait_for_rows(client: Any, database: str, target: int, rater: subprocess.Popen[bytes]) -> None:
    """Wait until call history holds ``target`` rows, while the rater keeps running."""
    deadline = time.monotonic() + _LIMIT_S
    while True:
        assert time.monotonic() < deadline, "rater made no progress"
        assert rater.poll() is None, "rater exited early"
        try:
            counted = client.query(f"SELECT count() FROM {database}.call_history")
            if int(counted.result_rows[0][0]) >= target:
                return
        except Exception:  # the table may not exist yet
            pass
        time.sleep(0.2)


def _export_from_server(server: ChdbHttpServer, database: str) -> pl.DataFrame:
    from pipeline.sinks.clickhouse_server import ServerSettings, ServerStore

    with ServerStore(ServerSettings.from_url(f"{server.url}/{database}")) as store:
        frame = pl.from_arrow(export_call_history(store))
    assert isinstance(frame, pl.DataFrame)
    return frame


def test_one_rater_into_the_embedded_store(pipeline: Pipeline) -> None:
    cdrs, malformed, _ = _network(pipeline, 4_000, seed=21)
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
    _wait(rater, pipeline)
    with EmbeddedStore(store) as opened:
        history = pl.from_arrow(export_call_history(opened))
        paid = opened.query(
            "SELECT payment_id, amount FROM payments FINAL ORDER BY payment_id"
        ).to_pylist()
    assert isinstance(history, pl.DataFrame)
    _assert_exact(pipeline, history, cdrs, malformed)
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
    cdrs, malformed, malformed_lines = _network(pipeline, 12_000, seed=22)
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
            _wait_for_rows(client, database, 2_000 * (kill + 1), rater)
            rater.send_signal(signal.SIGKILL)
            rater.wait(timeout=30)
    finally:
        client.close()
    final = pipeline.start_rater("--exit-when-idle", "4", log_name="final")
    _wait(final, pipeline, "final")
    history = _export_from_server(clickhouse, database)
    _assert_exact(pipeline, history, cdrs, malformed)


def test_a_second_rater_joins_mid_stream(pipeline: Pipeline, clickhouse: ChdbHttpServer) -> None:
    database = f"it_{uuid.uuid4().hex[:10]}"
    pipeline.clickhouse_url = f"{clickhouse.url}/{database}"
    cdrs, malformed, _ = _network(pipeline, 12_000, seed=23)
    pipeline.cli("setup")
    pipeline.cli("produce", "--cdrs", str(cdrs))
    first = pipeline.start_rater("--batch-size", "500", "--exit-when-idle", "6", log_name="first")
    time.sleep(3)
    second = pipeline.start_rater("--batch-size", "500", "--exit-when-idle", "6", log_name="second")
    _wait(first, pipeline, "first")
    _wait(second, pipeline, "second")
    history = _export_from_server(clickhouse, database)
    _assert_exact(pipeline, history, cdrs, malformed)


def test_storage_outage_pauses_and_resumes_without_loss(
    pipeline: Pipeline, clickhouse: ChdbHttpServer
) -> None:
    database = f"it_{uuid.uuid4().hex[:10]}"
    pipeline.clickhouse_url = f"{clickhouse.url}/{database}"
    cdrs, malformed, _ = _network(pipeline, 8_000, seed=24)
    pipeline.cli("setup")
    pipeline.cli("produce", "--cdrs", str(cdrs))
    client = clickhouse_connect.get_client(host=clickhouse.host, port=clickhouse.port)
    rater = pipeline.start_rater("--batch-size", "500", "--exit-when-idle", "4", log_name="outage")
    try:
        _wait_for_rows(client, database, 1_000, rater)
    finally:
        client.close()
    clickhouse.stop()  # ClickHouse goes away mid-stream
    log = pipeline.root / "outage.log"
    deadline = time.monotonic() + _LIMIT_S
    while log.read_text().count("call-history write failed") < 3:
        assert time.monotonic() < deadline, "no failed write was reported"
        assert rater.poll() is None, "the rater died with the store"
        time.sleep(0.2)
    clickhouse.start()  # and comes back on the same address
    _wait(rater, pipeline, "outage")
    text = log.read_text()
    assert "consumption paused" in text
    assert "consumption resumed" in text
    failures = text.count("call-history write failed")
    assert failures < 40, "retries must back off, not spin"
    assert f"store failures {failures}" in text.replace(",", "")
    history = _export_from_server(clickhouse, database)
    _assert_exact(pipeline, history, cdrs, malformed)


def test_sigterm_finishes_the_batch_in_flight_and_exits_cleanly(
    pipeline: Pipeline, clickhouse: ChdbHttpServer
) -> None:
    database = f"it_{uuid.uuid4().hex[:10]}"
    pipeline.clickhouse_url = f"{clickhouse.url}/{database}"
    cdrs, malformed, _ = _network(pipeline, 8_000, seed=25)
    pipeline.cli("setup")
    pipeline.cli("produce", "--cdrs", str(cdrs))
    client = clickhouse_connect.get_client(host=clickhouse.host, port=clickhouse.port)
    rater = pipeline.start_rater("--batch-size", "300", log_name="terminated")
    try:
        _wait_for_rows(client, database, 1_000, rater)
    finally:
        client.close()
    rater.send_signal(signal.SIGTERM)
    _wait(rater, pipeline, "terminated")  # exit status 0
    log = (pipeline.root / "terminated.log").read_text()
    assert "stop requested" in log
    counts = re.findall(r"pipeline\.runtime: consumed (\d+),", log)
    assert 1_000 <= int(counts[-1]) < 8_000  # stopped mid-stream, after a whole batch
    final = pipeline.start_rater("--exit-when-idle", "4", log_name="final")
    _wait(final, pipeline, "final")
    history = _export_from_server(clickhouse, database)
    _assert_exact(pipeline, history, cdrs, malformed)


def _sums(history: pl.DataFrame) -> dict[tuple[str, str, str, str], Decimal]:
    """Rated amounts per tenant, scope, account and currency, summed from current rows."""
    out: dict[tuple[str, str, str, str], Decimal] = {}
    account = {"customer": "customer_id", "client": "client_id", "reseller": "reseller_id"}
    for row in history.to_dicts():
        for leg in ("customer", "client", "reseller"):
            if row[f"{leg}_amount"] is not None:
                key = (row["tenant_id"], leg, row[account[leg]] or "", row[f"{leg}_currency"])
                out[key] = out.get(key, Decimal(0)) + row[f"{leg}_amount"]
    return out


def _stored(pipeline: Pipeline) -> tuple[dict[tuple[str, str, str, str], Decimal], list[Any]]:
    """``balances`` and ``billing-overview`` as the commands print them (each refreshes first)."""
    balances = json.loads(pipeline.cli("balances", "--format", "json").stdout)
    overview = json.loads(pipeline.cli("billing-overview", "--format", "json").stdout)
    assert all(Decimal(b["payments"]) == 0 for b in balances)
    return {
        (b["tenant_id"], b["scope"], b["account_id"], b["currency"]): Decimal(b["amount"])
        for b in balances
    }, overview


def _overview_of(sums: dict[tuple[str, str, str, str], Decimal]) -> list[dict[str, str]]:
    totals: dict[tuple[str, str], dict[str, Decimal]] = {}
    for (tenant, scope, _, currency), amount in sums.items():
        row = totals.setdefault(
            (tenant, currency),
            {"customer": Decimal(0), "client": Decimal(0), "reseller": Decimal(0)},
        )
        row[scope] += amount
    six = Decimal("0.000001")
    return [
        {
            "tenant_id": tenant,
            "currency": currency,
            "customer_total": str(row["customer"].quantize(six)),
            "customer_payments": "0.000000",
            "client_total": str(row["client"].quantize(six)),
            "client_payouts": "0.000000",
            "reseller_total": str(row["reseller"].quantize(six)),
            "reseller_payouts": "0.000000",
            "owed_to_resellers": str(row["reseller"].quantize(six)),
        }
        for (tenant, currency), row in sorted(totals.items())
    ]


def _assert_balances_follow_history(pipeline: Pipeline, history: pl.DataFrame) -> None:
    want = _sums(history)
    stored, overview = _stored(pipeline)
    assert stored == want
    assert overview == _overview_of(want)


def _rfc3339(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_corrected_cdrs_published_on_other_days_move_the_balances(
    pipeline: Pipeline, clickhouse: ChdbHttpServer
) -> None:
    """Issue 11 item 3 end to end: corrections with another start day, month or customer."""
    database = f"it_{uuid.uuid4().hex[:10]}"
    pipeline.clickhouse_url = f"{clickhouse.url}/{database}"
    cdrs, _, malformed_lines = _network(pipeline, 3_000, seed=26)
    pipeline.cli("setup")
    pipeline.cli("produce", "--cdrs", str(cdrs))
    first = pipeline.start_rater("--batch-size", "400", "--exit-when-idle", "4", log_name="first")
    _wait(first, pipeline, "first")
    before = _export_from_server(clickhouse, database)
    _assert_balances_follow_history(pipeline, before)  # and every day is pre-aggregated now

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
        fixed["start_time"] = _rfc3339(row["start_time"] + shift)
        fixed["answer_time"] = _rfc3339(row["answer_time"] and row["answer_time"] + shift)
        fixed["end_time"] = _rfc3339(row["end_time"] + shift)
        if n % 4 == 1:
            others = customers[record["tenant_id"]]
            fixed["customer_id"] = others[(others.index(record["customer_id"]) + 1) % len(others)]
        corrections.append(json.dumps(fixed))
        moved[record["cdr_id"]] = row["start_time"] + shift
    fixes = pipeline.root / "corrections.jsonl"
    fixes.write_text("\n".join(corrections) + "\n")
    pipeline.cli("produce", "--cdrs", str(fixes))
    second = pipeline.start_rater("--batch-size", "400", "--exit-when-idle", "4", log_name="second")
    _wait(second, pipeline, "second")

    after = _export_from_server(clickhouse, database)
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
    _assert_balances_follow_history(pipeline, after)
    assert _sums(after) != _sums(before)
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
