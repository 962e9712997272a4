"""Reference data as a stream, with the real broker: publish, rate, publish again, refuse bad ones.

A rater started without ``--plans`` waits for a published version, rates with it, swaps in a
newer one between two batches, and keeps the last good version when a publication is corrupt,
incomplete or mislabelled. Amounts are checked against the independent reference rater for the
version each row says it was rated with.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from pipeline.config import Settings
from pipeline.rating.reference import ReferenceData
from pipeline.reference.feed import ReferenceFeed, ReferenceWatcher
from pipeline.reference.files import FolderPlanFiles
from pipeline.reference.loader import load_plans_folder
from pipeline.reference.publisher import publish_reference
from pipeline.reference.topics import HEADER_VERSION, Manifest, chunks_of, manifest_key
from pipeline.sinks.clickhouse_server import ServerSettings, ServerStore
from pipeline.storage.reports import export_call_history
from pipeline.synthetic import NetworkSpec, write_network
from pipeline.testing.clickhouse_http import ChdbHttpServer
from tests.reference_rater import rate_reference

_LIMIT_S = 300.0  # safety net only, never asserted on
COMPARED = [
    "reseller_id",
    "status",
    "unrated_reason",
    *(
        f"{leg}_{column}"
        for leg in ("customer", "client", "reseller")
        for column in (
            *("plan_id", "prefix", "rate", "billed_seconds", "amount", "currency"),
            *("origin", "band"),
        )
    ),
]


@dataclass
class Run:
    """One test's own topics, group and folder."""

    root: Path
    bootstrap: str
    tag: str
    clickhouse_url: str | None = None

    def settings(self) -> Settings:
        return Settings(
            kafka_bootstrap=self.bootstrap,
            rateplans_topic=f"rateplans-{self.tag}",
            associations_topic=f"associations-{self.tag}",
            memberships_topic=f"memberships-{self.tag}",
        )

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP": self.bootstrap,
            "VMGATE_CDR_TOPIC": f"cdr-{self.tag}",
            "VMGATE_DLQ_TOPIC": f"dlq-{self.tag}",
            "VMGATE_PAYMENTS_TOPIC": f"payments-{self.tag}",
            "VMGATE_PAYMENTS_DLQ_TOPIC": f"payments-dlq-{self.tag}",
            "VMGATE_CLIENT_STATUS_TOPIC": f"client-status-{self.tag}",
            "VMGATE_CLIENT_STATUS_DLQ_TOPIC": f"client-status-dlq-{self.tag}",
            "VMGATE_RATEPLANS_TOPIC": f"rateplans-{self.tag}",
            "VMGATE_ASSOCIATIONS_TOPIC": f"associations-{self.tag}",
            "VMGATE_MEMBERSHIPS_TOPIC": f"memberships-{self.tag}",
            "VMGATE_GROUP": f"raters-{self.tag}",
            **extra,
        }
        env.pop("CLICKHOUSE_URL", None)
        if self.clickhouse_url:
            env["CLICKHOUSE_URL"] = self.clickhouse_url
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

    def start_rater(self, *args: str) -> subprocess.Popen[bytes]:
        with (self.root / "rater.log").open("wb") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "pipeline", "run", *args],
                env=self.env(VMGATE_BATCH_SIZE="400"),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def log(self) -> str:
        return (self.root / "rater.log").read_text(errors="replace")


@pytest.fixture
def run(kafka_bootstrap: str, tmp_path: Path) -> Run:
    return Run(tmp_path, kafka_bootstrap, uuid.uuid4().hex[:10])


def _schedule_rate_change(source: Path, target: Path, plan_ids: list[str], at: str) -> None:
    """Copy a plans folder; in each plan's deck, every open row gets a new rate from ``at`` on."""
    shutil.copytree(source, target)
    for plan_id in plan_ids:
        path = target / "decks" / f"{plan_id}.csv"
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))

        def key(row: dict[str, str]) -> tuple[str, str, str]:  # a row and its later versions
            return row["prefix"], row.get("origin", ""), row.get("band", "")

        latest: dict[tuple[str, str, str], dict[str, str]] = {}
        for row in rows:  # the row of each key that is in effect just before ``at``
            if row["effective_from"] < at and (
                key(row) not in latest or row["effective_from"] > latest[key(row)]["effective_from"]
            ):
                latest[key(row)] = row
        later = {key(row) for row in rows if row["effective_from"] >= at}
        out: list[dict[str, str]] = []
        for row in rows:
            if latest.get(key(row)) is row and not row["effective_until"] and key(row) not in later:
                out.append({**row, "effective_until": at})
                rate = Decimal(row["rate"]) * 2 + Decimal("0.000137")
                out.append({**row, "effective_from": at, "rate": str(rate)})
            else:
                out.append(row)
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(out)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _wait(condition: Any, rater: subprocess.Popen[bytes] | None, what: str) -> None:
    deadline = time.monotonic() + _LIMIT_S
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        if rater is not None:
            assert rater.poll() is None, f"rater exited while waiting for {what}"
        time.sleep(0.2)


def _count(store: ServerStore) -> int:
    try:
        return int(store.query("SELECT count() FROM call_history").column(0)[0].as_py())
    except Exception:  # the table may not exist yet
        return 0


def _deck_versions(reference: ReferenceData) -> dict[str, str]:
    return dict(
        zip(
            reference.plans["plan_id"].to_list(),
            reference.plans["deck_version"].to_list(),
            strict=True,
        )
    )


def _assert_rows_match(rows: list[dict[str, Any]], expected: dict[str, dict[str, Any]]) -> None:
    assert sorted(r["cdr_id"] for r in rows) == sorted(expected)
    for row in rows:
        want = expected[row["cdr_id"]]
        got = {c: row[c] for c in COMPARED}
        assert got == {c: want[c] for c in COMPARED}, row["cdr_id"]


def test_a_version_published_mid_run_takes_effect_between_batches(
    run: Run, clickhouse: ChdbHttpServer
) -> None:
    plans, cdrs = run.root / "plans", run.root / "cdrs.jsonl"
    network = write_network(
        NetworkSpec(
            seed=61,
            cdrs=3_000,
            prefixes_per_plan=150,
            malformed_ratio=0.0,
            price_shape=True,  # and the whole tariff model travels through the topics
            origins_and_bands=True,
        ),
        plans,
        cdrs,
    )
    changed = run.root / "plans-v2"
    _schedule_rate_change(plans, changed, list(network.plan_ids), "2026-03-16T00:00:00Z")
    v1, v2 = load_plans_folder(plans), load_plans_folder(changed)
    lines = cdrs.read_text().splitlines()
    first, second = lines[: len(lines) // 2], lines[len(lines) // 2 :]
    (run.root / "first.jsonl").write_text("\n".join(first) + "\n")
    (run.root / "second.jsonl").write_text("\n".join(second) + "\n")
    # The new version moves money for CDRs of the second half, so a rater that kept v1 fails.
    assert rate_reference(plans, second).rows != rate_reference(changed, second).rows

    database = f"db_{run.tag}"
    run.clickhouse_url = f"{clickhouse.url}/{database}"
    run.cli("setup")
    run.cli("decks", "import", "--plans", str(plans))
    port = _free_port()
    rater = run.start_rater("--metrics-port", str(port))
    try:
        with ServerStore(ServerSettings.from_url(run.clickhouse_url)) as store:
            run.cli("produce", "--cdrs", str(run.root / "first.jsonl"))
            _wait(lambda: _count(store) >= len(first), rater, "the first half")
            published = run.cli("decks", "import", "--plans", str(changed)).stdout
            assert v2.version in published
            _wait(lambda: f"-> {v2.version}" in run.log(), rater, "the swap to v2")
            run.cli("produce", "--cdrs", str(run.root / "second.jsonl"))
            _wait(lambda: _count(store) >= len(lines), rater, "the second half")
            history = export_call_history(store).to_pylist()
            scraped = _scrape(port)
    finally:
        rater.send_signal(signal.SIGTERM)
        assert rater.wait(timeout=_LIMIT_S) == 0, run.log()[-3000:]

    # The metrics say which version is in use and how much was consumed.
    assert scraped[("vmgate_reference_data_info", (("version", v2.version),))] == 1
    assert ("vmgate_reference_data_info", (("version", v1.version),)) not in scraped
    assert scraped[("vmgate_cdrs_consumed_total", ())] == len(lines)
    assert scraped[("vmgate_cdrs_rated_total", ())] == sum(
        1 for row in history if row["status"] == "rated"
    )
    first_ids = {json.loads(line)["cdr_id"] for line in first}
    old_rows = [r for r in history if r["cdr_id"] in first_ids]
    new_rows = [r for r in history if r["cdr_id"] not in first_ids]
    assert {r["reference_version"] for r in old_rows} == {v1.version}
    assert {r["reference_version"] for r in new_rows} == {v2.version}
    _assert_rows_match(old_rows, rate_reference(plans, first).rows)
    _assert_rows_match(new_rows, rate_reference(changed, second).rows)
    # No row mixes versions: each leg's deck version is that of the row's reference version.
    decks = {v1.version: _deck_versions(v1), v2.version: _deck_versions(v2)}
    for row in history:
        for leg in ("customer", "client", "reseller"):
            if row[f"{leg}_plan_id"] is not None:
                wanted = decks[row["reference_version"]][row[f"{leg}_plan_id"]]
                assert row[f"{leg}_deck_version"] == wanted, row["cdr_id"]


def _watch(run: Run) -> ReferenceWatcher:
    settings = run.settings()
    watcher = ReferenceWatcher(ReferenceFeed(settings.kafka(), settings.reference_topics()))
    watcher.start()
    return watcher


def _publish(run: Run, version: str, files: dict[str, bytes], watcher: ReferenceWatcher) -> None:
    settings = run.settings()
    publish_reference(
        settings.kafka(), settings.reference_topics(), version, files, watcher.feed.state
    )


def test_a_bad_publication_never_replaces_the_good_one(run: Run) -> None:
    plans, cdrs = run.root / "plans", run.root / "cdrs.jsonl"
    network = write_network(
        NetworkSpec(seed=62, cdrs=1_500, prefixes_per_plan=100, malformed_ratio=0.0), plans, cdrs
    )
    good = load_plans_folder(plans)
    run.cli("decks", "import", "--plans", str(plans))
    watcher = _watch(run)
    try:
        assert watcher.wait_first().version == good.version

        # A deck row with a negative rate, published past the importer's validation.
        files = FolderPlanFiles(plans).all_files()
        deck = f"decks/{network.plan_ids[0]}.csv"
        header, first_row, *rest = files[deck].decode().splitlines()
        cells = next(csv.reader([first_row]))
        cells[2] = "-0.5"
        broken = "\n".join([header, ",".join(cells), *rest]) + "\n"
        _publish(run, "corrupt-1", {**files, deck: broken.encode()}, watcher)
        _wait(lambda: len(watcher.refusals) >= 1, None, "the corrupt version refused")
        refusal = watcher.refusals[-1]
        assert refusal.version == "corrupt-1"
        assert f"{deck}, line 2, column rate" in refusal.reason

        # Valid files under a version label that is not their content digest.
        _publish(run, "mislabelled-1", files, watcher)
        _wait(lambda: len(watcher.refusals) >= 2, None, "the mislabelled version refused")
        assert watcher.refusals[-1].version == "mislabelled-1"
        assert "does not match the published version" in watcher.refusals[-1].reason

        # A manifest whose chunks never arrived (a publisher that skipped the transaction).
        chunks, entries = chunks_of("partial-1", files, run.settings().reference_topics())
        producer = Producer({"bootstrap.servers": run.bootstrap})
        for chunk in chunks[:-1]:
            producer.produce(chunk.topic, chunk.value, chunk.key, headers=chunk.headers)
        manifest = Manifest("partial-1", "2026-11-26T00:00:00Z", entries)
        producer.produce(
            run.settings().rateplans_topic,
            manifest.to_bytes(),
            manifest_key("partial-1"),
            headers=[(HEADER_VERSION, b"partial-1")],
        )
        assert producer.flush(30) == 0
        _wait(lambda: len(watcher.refusals) >= 3, None, "the incomplete version refused")
        assert watcher.refusals[-1].version == "partial-1"
        assert "incomplete" in watcher.refusals[-1].reason
        latest = watcher.latest()
        assert latest is not None
        assert latest.version == good.version

        # A rater started now still rates with the last good version, and says why.
        run.cli("setup", "--store", str(run.root / "store"))
        run.cli("produce", "--cdrs", str(cdrs))
        rater = run.start_rater("--store", str(run.root / "store"), "--exit-when-idle", "3")
        assert rater.wait(timeout=_LIMIT_S) == 0, run.log()[-3000:]
        assert "refused, keeping" in run.log()
        out = run.root / "history.parquet"
        run.cli("export", "--store", str(run.root / "store"), "--out", str(out))
        history = pl.read_parquet(out)
        assert history.height > 1000
        assert history["reference_version"].unique().to_list() == [good.version]

        # A good publication afterwards is taken again.
        changed = run.root / "plans-v2"
        _schedule_rate_change(plans, changed, [network.plan_ids[0]], "2026-03-20T00:00:00Z")
        run.cli("decks", "import", "--plans", str(changed))
        v2 = load_plans_folder(changed).version
        _wait(lambda: watcher.newer_than(good.version) is not None, None, "v2 taken")
        assert watcher.latest().version == v2  # type: ignore[union-attr]
    finally:
        watcher.close()


def test_an_import_with_errors_names_each_bad_line_and_publishes_nothing(run: Run) -> None:
    plans = run.root / "plans"
    network = write_network(
        NetworkSpec(seed=63, cdrs=10, prefixes_per_plan=20), plans, run.root / "cdrs.jsonl"
    )
    deck = plans / "decks" / f"{network.plan_ids[0]}.csv"
    lines = deck.read_text().splitlines()
    cells = next(csv.reader([lines[3]]))
    cells[2] = "abc"
    lines[3] = ",".join(cells)
    deck.write_text("\n".join(lines) + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "decks", "import", "--plans", str(plans)],
        env=run.env(),
        capture_output=True,
        text=True,
        timeout=_LIMIT_S,
        check=False,
    )
    assert done.returncode == 2
    assert f"decks/{network.plan_ids[0]}.csv, line 4" in done.stderr
    assert "column rate: 'abc'" in done.stderr
    watcher = _watch(run)
    try:
        watcher.feed.read_to_end(limit_s=10)
        assert watcher.feed.state.manifests == {}  # nothing was published
    finally:
        watcher.close()


_LOAD_CHILD = """
import json, sys
from pathlib import Path
from pipeline.config import load_settings
from pipeline.reference.loader import load_plans_folder
from pipeline.reference.feed import ReferenceFeed, ReferenceWatcher
if sys.argv[1] == "topics":
    settings = load_settings()
    watcher = ReferenceWatcher(ReferenceFeed(settings.kafka(), settings.reference_topics()))
    watcher.start()
    reference = watcher.wait_first()
    watcher.close()
else:
    reference = load_plans_folder(Path(sys.argv[2]))
status = dict(
    line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line
)
print(json.dumps({"version": reference.version, "rows": reference.deck_row_count,
                  "peak_kb": int(status["VmHWM"].split()[0])}))
"""


@pytest.mark.slow
def test_a_million_row_deck_publishes_in_chunks_and_loads_in_bounded_memory(run: Run) -> None:
    """No timing here: the benchmark measures it. Memory: the rater that loads the deck from
    the topics peaks at most two publication sizes above one that loads the same folder."""
    from tests.support.large_deck import PREFIXES, write_large_deck_folder

    plans = run.root / "plans"
    write_large_deck_folder(plans)
    size = sum(path.stat().st_size for path in plans.rglob("*.csv"))
    published = run.cli("decks", "import", "--plans", str(plans)).stdout
    assert f"{PREFIXES:,} deck rows" in published
    reports: dict[str, dict[str, Any]] = {}
    # A process's peak varies by tens of MB from run to run (allocator, page cache, and in
    # `make test` another worker busy on the other core): each source is loaded three times,
    # in alternation, and its lowest peak counts.
    for source in ("topics", "folder") * 3:
        done = subprocess.run(
            [sys.executable, "-c", _LOAD_CHILD, source, str(plans)],
            env=run.env(),
            capture_output=True,
            text=True,
            timeout=_LIMIT_S,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        report = json.loads(done.stdout.strip().splitlines()[-1])
        if source not in reports or report["peak_kb"] < reports[source]["peak_kb"]:
            reports[source] = report
    assert reports["topics"]["rows"] == reports["folder"]["rows"] == PREFIXES
    assert reports["topics"]["version"] == reports["folder"]["version"]
    assert "chunks" in published
    assert reports["folder"]["version"] in published
    extra_mb = (reports["topics"]["peak_kb"] - reports["folder"]["peak_kb"]) / 1024
    assert extra_mb < 2 * size / 2**20, (extra_mb, size, reports)
