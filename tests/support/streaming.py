"""Running the pipeline as its users do, for the broker tests: topics, group, CLI, raters,
and what they left behind (call history, dead letters, lag, balances)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from pipeline.reference.loader import load_plans_folder
from pipeline.services.offline import rate_file
from pipeline.storage.reports import export_call_history
from pipeline.synthetic import NetworkSpec, write_network
from pipeline.testing.clickhouse_http import ChdbHttpServer

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


LIMIT_S = 300.0  # safety net for a rater run; never asserted on


@dataclass
class Pipeline:
    """Names and environment of one test's pipeline (its own topics, group and database)."""

    root: Path
    bootstrap: str
    cdr_topic: str
    dlq_topic: str
    group: str
    clickhouse_url: str | None = None

    @property
    def status_topic(self) -> str:
        return f"{self.cdr_topic}-client-status"

    @property
    def status_dlq_topic(self) -> str:
        return f"{self.cdr_topic}-client-status-dlq"

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP": self.bootstrap,
            "VMGATE_CDR_TOPIC": self.cdr_topic,
            "VMGATE_DLQ_TOPIC": self.dlq_topic,
            "VMGATE_PAYMENTS_TOPIC": f"{self.cdr_topic}-payments",
            "VMGATE_PAYMENTS_DLQ_TOPIC": f"{self.cdr_topic}-payments-dlq",
            "VMGATE_CLIENT_STATUS_TOPIC": self.status_topic,
            "VMGATE_CLIENT_STATUS_DLQ_TOPIC": self.status_dlq_topic,
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
            timeout=LIMIT_S,
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


def network(pipeline: Pipeline, cdrs: int, seed: int) -> tuple[Path, int, set[int]]:
    summary = write_network(
        NetworkSpec(seed=seed, cdrs=cdrs, prefixes_per_plan=400),
        pipeline.root / "plans",
        pipeline.root / "cdrs.jsonl",
    )
    return pipeline.root / "cdrs.jsonl", len(summary.malformed_lines), set(summary.malformed_lines)


def rate_offline(pipeline: Pipeline, cdrs: Path) -> pl.DataFrame:
    out = pipeline.root / "offline.parquet"
    rate_file(
        load_plans_folder(pipeline.root / "plans"),
        cdrs,
        out,
        pipeline.root / "offline-dlq.jsonl",
        datetime.now(UTC),
    )
    return pl.read_parquet(out)


def wait(process: subprocess.Popen[bytes], pipeline: Pipeline, name: str = "rater") -> None:
    try:
        code = process.wait(timeout=LIMIT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"{name} did not finish: {(pipeline.root / f'{name}.log').read_text()[-3000:]}")
    assert code == 0, (pipeline.root / f"{name}.log").read_text()[-3000:]


def dead_letters(
    pipeline: Pipeline, topic: str | None = None
) -> list[tuple[bytes, dict[str, bytes]]]:
    """The letters of ``topic`` (the CDR dead-letter topic unless given), read committed."""
    dlq_topic = topic or pipeline.dlq_topic
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
    partitions = admin.list_topics(dlq_topic, timeout=10).topics[dlq_topic].partitions
    ends = {}
    for p in partitions:
        _, high = consumer.get_watermark_offsets(TopicPartition(dlq_topic, p), timeout=10)
        ends[p] = high
    consumer.assign([TopicPartition(dlq_topic, p, 0) for p in partitions])
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
            for tp in consumer.position([TopicPartition(dlq_topic, p) for p in partitions]):
                positions[tp.partition] = max(tp.offset, 0)
    finally:
        consumer.close()
    return letters


def lag(pipeline: Pipeline, group: str | None = None) -> int:
    """Messages between the group's committed offsets and the ends (the raters' unless given)."""
    group = group or pipeline.group
    admin = AdminClient({"bootstrap.servers": pipeline.bootstrap})
    from confluent_kafka import ConsumerGroupTopicPartitions

    future = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
    committed = future[group].result().topic_partitions
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


def assert_exact(pipeline: Pipeline, history: pl.DataFrame, cdrs: Path, malformed: int) -> None:
    offline = rate_offline(pipeline, cdrs)
    assert history["cdr_id"].n_unique() == history.height, "a CDR appears twice"
    assert sorted(history["cdr_id"].to_list()) == sorted(offline["cdr_id"].to_list())
    joined = history.select("cdr_id", *COMPARED).join(
        offline.select("cdr_id", *COMPARED), on="cdr_id", suffix="offline"
    )
    for column in COMPARED:
        differs = joined.filter(pl.col(column).ne_missing(pl.col(f"{column}offline")))
        assert differs.height == 0, (column, differs.head(3).to_dicts())
    letters = dead_letters(pipeline)
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
    assert lag(pipeline) == 0


def wait_for_rows(client: Any, database: str, target: int, rater: subprocess.Popen[bytes]) -> None:
    """Wait until call history holds ``target`` rows, while the rater keeps running."""
    deadline = time.monotonic() + LIMIT_S
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


def export_from_server(server: ChdbHttpServer, database: str) -> pl.DataFrame:
    from pipeline.sinks.clickhouse_server import ServerSettings, ServerStore

    with ServerStore(ServerSettings.from_url(f"{server.url}/{database}")) as store:
        frame = pl.from_arrow(export_call_history(store))
    assert isinstance(frame, pl.DataFrame)
    return frame


def sums(history: pl.DataFrame) -> dict[tuple[str, str, str, str], Decimal]:
    """Rated amounts per tenant, scope, account and currency, summed from current rows."""
    out: dict[tuple[str, str, str, str], Decimal] = {}
    account = {"customer": "customer_id", "client": "client_id", "reseller": "reseller_id"}
    for row in history.to_dicts():
        for leg in ("customer", "client", "reseller"):
            if row[f"{leg}_amount"] is not None:
                key = (row["tenant_id"], leg, row[account[leg]] or "", row[f"{leg}_currency"])
                out[key] = out.get(key, Decimal(0)) + row[f"{leg}_amount"]
    return out


def stored_balances(
    pipeline: Pipeline,
) -> tuple[dict[tuple[str, str, str, str], Decimal], list[Any]]:
    """``balances`` and ``billing-overview`` as the commands print them (each refreshes first)."""
    balances = json.loads(pipeline.cli("balances", "--format", "json").stdout)
    overview = json.loads(pipeline.cli("billing-overview", "--format", "json").stdout)
    assert all(Decimal(b["payments"]) == 0 for b in balances)
    return {
        (b["tenant_id"], b["scope"], b["account_id"], b["currency"]): Decimal(b["amount"])
        for b in balances
    }, overview


def overview_of(sums: dict[tuple[str, str, str, str], Decimal]) -> list[dict[str, str]]:
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


def assert_balances_follow_history(pipeline: Pipeline, history: pl.DataFrame) -> None:
    want = sums(history)
    stored, overview = stored_balances(pipeline)
    assert stored == want
    assert overview == overview_of(want)


def rfc3339(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
