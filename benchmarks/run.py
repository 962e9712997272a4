"""The benchmark harness: ``python -m benchmarks.run --quick|--full [--out FILE]``.

Generates the data (a realistic network, batches of 100,000 CDRs with the 1% malformed mix and
clean, a 1,000,000-prefix deck), runs each measurement in its own subprocess, starts a local Kafka
broker for the end-to-end runs (stopped at the end, also on failure), and prints one table:
stage, throughput, the baseline measured in the same run, the ratio, and peak RSS; then the
DESIGN.md section 6 targets, met or missed. ``--out`` also writes it all as Markdown (and the
raw numbers as JSON next to it). Timings are reported, never asserted; a baseline that rates
differently from the engine fails the run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from benchmarks.common import JSON, REPO_ROOT, Row, WorkerError, run_worker, table_lines


@dataclass(frozen=True)
class Plan:
    """How much of everything a run does."""

    name: str
    batch: int
    e2e_cdrs: int
    stage_runs: int
    whole_runs: int
    naive_count: int
    naive_inserts: int
    sql_runs: int
    sql_rows: int
    naive_in_core: int  # naive messages timed in each whole-core round
    store_runs: int
    deck_prefixes: int
    deck_cdrs: int
    deck_runs: int
    naive_deck_count: int  # 0: skip the naive 1M-prefix dict (about 20 s and 1.2 GB)
    latency_loads: tuple[tuple[int, float], ...]  # (offered CDR/s, seconds) per latency run
    faust_events: int
    faust_loads_only: bool
    unpinned: bool
    profile: bool
    http_store: bool


QUICK = Plan(
    name="quick",
    batch=100_000,
    e2e_cdrs=100_000,
    stage_runs=1,
    whole_runs=3,
    naive_count=10_000,
    naive_inserts=3_000,
    sql_runs=1,
    sql_rows=30_000,
    naive_in_core=5_000,
    store_runs=2,
    deck_prefixes=1_000_000,
    deck_cdrs=50_000,
    deck_runs=1,
    naive_deck_count=0,
    latency_loads=((20_000, 5.0),),
    faust_events=6_000,
    faust_loads_only=False,
    unpinned=False,
    profile=False,
    http_store=False,
)
FULL = Plan(
    name="full",
    batch=100_000,
    e2e_cdrs=1_000_000,
    stage_runs=5,
    whole_runs=7,
    naive_count=100_000,
    naive_inserts=20_000,
    sql_runs=3,
    sql_rows=100_000,
    naive_in_core=10_000,
    store_runs=5,
    deck_prefixes=1_000_000,
    deck_cdrs=100_000,
    deck_runs=3,
    naive_deck_count=20_000,
    latency_loads=((50_000, 20.0), (20_000, 15.0)),
    faust_events=30_000,
    faust_loads_only=True,
    unpinned=True,
    profile=True,
    http_store=True,
)
SECTIONS = ("core", "naive", "sql", "deck", "store", "kafka", "faust")


# --- machine ------------------------------------------------------------------------------------


def machine() -> JSON:
    """What the numbers were measured on."""
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gb = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gb = int(line.split()[1]) / 1024 / 1024
    versions: dict[str, str] = {}
    from importlib import metadata

    for package in ("polars", "pyarrow", "numpy", "chdb", "confluent-kafka", "faust-streaming"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    commit = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "pipeline"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(memory_gb, 1),
        "python": platform.python_version(),
        "versions": versions,
        "commit": (commit or "unknown") + (" + uncommitted changes in pipeline/" if dirty else ""),
        "load_average": os.getloadavg(),
    }


# --- data ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Data:
    """Every input of the run."""

    plans: Path
    mixed: Path  # e2e_cdrs lines, 1% malformed; its first ``batch`` lines are the mixed batch
    clean: Path  # ``batch`` clean lines
    mixed_count: int
    malformed: int
    big_plans: Path
    big_cdrs: Path
    big_prefixes: int
    big_rows: int
    seconds: float


def make_data(plan: Plan, root: Path) -> Data:
    """Write the networks and the big deck under ``root``."""
    from benchmarks.datagen import big_deck_network, network

    started = time.perf_counter()
    count = max(plan.e2e_cdrs, plan.batch)
    mixed = network(root / "mixed", count, 0.01)
    clean = network(root / "clean", plan.batch, 0.0)
    big = big_deck_network(root / "big", plan.deck_prefixes, plan.deck_cdrs)
    return Data(
        plans=mixed.plans,
        mixed=mixed.cdrs,
        clean=clean.cdrs,
        mixed_count=count,
        malformed=mixed.malformed,
        big_plans=big.plans,
        big_cdrs=big.cdrs,
        big_prefixes=big.prefixes,
        big_rows=big.deck_rows,
        seconds=time.perf_counter() - started,
    )


# --- sections -----------------------------------------------------------------------------------


class Harness:
    """Runs the sections, keeps their raw results and errors."""

    def __init__(self, plan: Plan, data: Data, root: Path, sections: set[str]) -> None:
        """Nothing runs until :meth:`run`."""
        self.plan = plan
        self.data = data
        self.root = root
        self.sections = sections
        self.results: JSON = {}
        self.errors: dict[str, str] = {}
        self.timings: dict[str, float] = {}
        self.broker: Any = None

    def section(self, name: str, function: Callable[[], JSON]) -> None:
        """Run one section; a failure is recorded (and fails the run) but does not stop others."""
        if name not in self.sections:
            return
        print(f"[bench] {name} ...", flush=True)
        started = time.perf_counter()
        try:
            self.results[name] = function()
        except Exception as exc:  # recorded and reported; the run then exits 1
            self.errors[name] = f"{type(exc).__name__}: {exc}"
            print(f"[bench] {name} FAILED: {exc}", file=sys.stderr, flush=True)
        self.timings[name] = time.perf_counter() - started
        print(f"[bench] {name} done in {self.timings[name]:.1f} s", flush=True)

    def worker(self, task: str, params: JSON, *, pin: bool = False) -> JSON:
        """A measurement subprocess."""
        return run_worker(task, params, pin=pin, log_dir=self.root / "logs")

    def _core_params(self, runs: int) -> JSON:
        return {
            "plans": str(self.data.plans),
            "mixed_cdrs": str(self.data.mixed),
            "clean_cdrs": str(self.data.clean),
            "batch": self.plan.batch,
            "runs": runs,
            "naive_count": self.plan.naive_in_core,
            "warmup": self.plan.name == "full",
        }

    def run(self) -> None:
        """Every section of the plan, in order."""
        plan, data = self.plan, self.data
        self.section("core", self._core)
        self.section(
            "naive",
            lambda: self.worker(
                "naive",
                {
                    "plans": str(data.plans),
                    "cdrs": str(data.mixed),
                    "count": plan.naive_count,
                    "insert_count": plan.naive_inserts,
                    "store": str(self.root / "naive-store"),
                },
                pin=True,
            ),
        )
        self.section("sql", self._sql)
        self.section("deck", self._deck)
        self.section(
            "store",
            lambda: self.worker(
                "store_writes",
                {
                    "plans": str(data.plans),
                    "cdrs": str(data.mixed),
                    "batch": plan.batch,
                    "runs": plan.store_runs,
                    "store": str(self.root / "store-bench"),
                    "http": plan.http_store,
                },
            ),
        )
        if self.sections & {"kafka", "faust"}:
            self._with_broker()

    def _sql(self) -> JSON:
        from benchmarks.datagen import read_lines

        subset = self.root / "sql-cdrs.jsonl"
        subset.write_bytes(b"\n".join(read_lines(self.data.clean, self.plan.sql_rows)) + b"\n")
        return self.worker(
            "sql_rating",
            {
                "plans": str(self.data.plans),
                "cdrs": str(subset),
                "store": str(self.root / "sql-store"),
                "runs": self.plan.sql_runs,
            },
        )

    def _core(self) -> JSON:
        out: JSON = {
            "stages": self.worker("core_stages", self._core_params(self.plan.stage_runs), pin=True),
            "whole_pinned": self.worker(
                "core_whole", self._core_params(self.plan.whole_runs), pin=True
            ),
        }
        if self.plan.unpinned:
            out["whole_unpinned"] = self.worker(
                "core_whole", self._core_params(self.plan.whole_runs)
            )
        if self.plan.profile:
            out["profile"] = self.worker(
                "core_profile", {**self._core_params(2), "top": 25}, pin=True
            )
        return out

    def _deck(self) -> JSON:
        data = self.data
        out: JSON = {
            "engine": self.worker(
                "deck_build",
                {
                    "plans": str(data.big_plans),
                    "cdrs": str(data.big_cdrs),
                    "runs": self.plan.deck_runs,
                },
                pin=True,
            )
        }
        if self.plan.naive_deck_count:
            out["naive"] = self.worker(
                "naive_deck",
                {
                    "plans": str(data.big_plans),
                    "cdrs": str(data.big_cdrs),
                    "count": self.plan.naive_deck_count,
                },
                pin=True,
            )
        return out

    def _with_broker(self) -> None:
        from benchmarks.kafka_bench import LocalBroker

        broker = LocalBroker(self.root / "kafka-run")
        print("[bench] starting the local Kafka broker ...", flush=True)
        try:
            bootstrap = broker.start()
        except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
            self.errors["kafka"] = f"broker: {exc}"
            with contextlib.suppress(Exception):
                broker.stop()
            return
        self.broker = broker
        try:
            self.section("kafka", lambda: self._kafka(bootstrap))
            self.section("faust", lambda: self._faust(bootstrap))
        finally:
            print("[bench] stopping the local Kafka broker ...", flush=True)
            broker.stop()

    def _kafka(self, bootstrap: str) -> JSON:
        from benchmarks.datagen import read_lines
        from benchmarks.http_store import clickhouse_http
        from benchmarks.kafka_bench import Flow, latency, produce_file, throughput, unique

        plan, data = self.plan, self.data
        topic = unique("cdr")
        root = self.root / "kafka"

        def flow(name: str, url: str | None = None) -> Flow:
            folder = root / name
            folder.mkdir(parents=True, exist_ok=True)
            return Flow(bootstrap, topic, unique(f"dlq_{name}"), unique(name), folder, url)

        out: JSON = {"produce": produce_file(flow("produce"), data.mixed)}
        messages = int(out["produce"]["acknowledged"])
        out["one_embedded"] = throughput(
            flow("one_embedded"), data.plans, messages, 1, store="embedded", broker=self.broker
        )
        if plan.profile:
            out["one_embedded_profiled"] = throughput(
                flow("one_embedded_profiled"),
                data.plans,
                messages,
                1,
                store="embedded",
                profile=True,
                broker=self.broker,
            )
        with clickhouse_http(root / "clickhouse") as server_url:
            out["one_http"] = throughput(
                flow("one_http", f"{server_url}/{unique('one')}"),
                data.plans,
                messages,
                1,
                store="http",
                broker=self.broker,
            )
            out["two_http"] = throughput(
                flow("two_http", f"{server_url}/{unique('two')}"),
                data.plans,
                messages,
                2,
                store="http",
                broker=self.broker,
            )
            out["latency"] = []
            for rate, seconds in plan.latency_loads:
                latency_flow = flow(f"latency_{rate}", f"{server_url}/{unique('lat')}")
                latency_flow.cdr_topic = unique("lat")
                out["latency"].append(
                    latency(
                        latency_flow,
                        data.plans,
                        read_lines(data.clean),
                        rate=rate,
                        seconds=seconds,
                    )
                )
        out["offline"] = self._offline()
        return out

    def _offline(self) -> JSON:
        """``vmgate-rating rate`` on the big file, with the embedded store."""
        data = self.data
        folder = self.root / "offline"
        folder.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "pipeline",
            "rate",
            "--plans",
            str(data.plans),
            "--cdrs",
            str(data.mixed),
            "--out",
            str(folder / "rated.parquet"),
            "--store",
            str(folder / "store"),
            "--json",
        ]
        from benchmarks.common import python_env, wait_child

        log = folder / "rate.log"
        with log.open("wb") as handle:
            process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=python_env(),
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.DEVNULL,
            )
            outcome = wait_child(process, 900.0)
        if outcome.returncode != 0:
            msg = f"vmgate-rating rate failed ({outcome.returncode})"
            raise WorkerError(msg)
        summary: JSON = json.loads(log.read_text().strip().splitlines()[-1])
        lines = int(summary["lines_read"])
        return {
            "lines": lines,
            "seconds": float(summary["seconds"]),
            "cdr_per_s": lines / float(summary["seconds"]),
            "wall_s": outcome.seconds,
            "peak_mb": outcome.peak_mb,
            "summary": summary,
        }

    def _faust(self, bootstrap: str) -> JSON:
        from benchmarks.datagen import read_lines
        from benchmarks.kafka_bench import faust_baseline

        lines = read_lines(self.data.mixed, self.plan.faust_events)
        out: JSON = {"rate": faust_baseline(bootstrap, self.root / "faust", lines, self.data.plans)}
        if self.plan.faust_loads_only:
            out["loads"] = faust_baseline(
                bootstrap, self.root / "faust", lines, self.data.plans, mode="loads"
            )
        return out


# --- the table ----------------------------------------------------------------------------------


def _per_s(count: float, seconds: float | None) -> float:
    return count / seconds if seconds else 0.0


def build_rows(h: Harness) -> list[Row]:
    """The table rows from whatever sections ran."""
    r = h.results
    rows: list[Row] = []
    naive = r.get("naive")
    core = r.get("core")
    naive_rate: dict[str, float] = {}
    if naive:
        n = naive["messages"]
        rated = naive["rated_rows"]
        for stage, seconds in naive["stages_s"].items():
            naive_rate[stage] = _per_s(n, seconds)
        naive_rate["whole"] = _per_s(n, naive["whole_s"])
        naive_rate["rating"] = _per_s(
            n, sum(s for k, s in naive["stages_s"].items() if k != "decode+validate")
        )
        per_cdr = naive["whole_s"] / n + naive["insert_s"] / naive["insert_rows"] * rated / n
        naive_rate["with_inserts"] = 1 / per_cdr
        naive_rate["insert"] = _per_s(naive["insert_rows"], naive["insert_s"])
    if core:
        st = core["stages"]
        whole = core["whole_pinned"]
        rate = whole["median_rate"]
        rows.append(
            Row(
                "JSON decode floor: polars.read_ndjson, clean 100k (1 core)",
                rate["floor"],
                baseline="json.loads per message",
                baseline_value=rate["json_loads"],
                peak_mb=whole["stage_peak_mb"]["floor"],
                paired_ratio=whole["ratios"]["floor/json_loads"],
            )
        )
        for kind, label in (("mixed", "1% malformed"), ("clean", "clean")):
            k = st["kinds"][kind]
            msgs = k["messages"]
            stages = k["stages_s"]
            peaks = k["stages_mb"]
            rows.append(
                Row(
                    f"decode+validate ({label})",
                    _per_s(msgs, stages.get("decode+validate")),
                    baseline="naive json.loads + checks",
                    baseline_value=naive_rate.get("decode+validate"),
                    peak_mb=peaks.get("decode+validate"),
                )
            )
            for sub in ("decode: parse", "decode: validate"):
                if sub in stages:
                    rows.append(
                        Row(f"  {sub} ({label})", _per_s(msgs, stages[sub]), peak_mb=peaks.get(sub))
                    )
            for stage, naive_stage in (
                ("attribution", "attribution"),
                ("plan lookup x3", "plan lookup x3"),
                ("longest-prefix match x3", "longest-prefix match x3"),
                ("cost x3", "cost x3"),
                ("Arrow out", "rows out"),
            ):
                if stage in stages:
                    rows.append(
                        Row(
                            f"  {stage} ({label})",
                            _per_s(msgs, stages[stage]),
                            baseline=f"naive {naive_stage}",
                            baseline_value=naive_rate.get(naive_stage),
                            peak_mb=peaks.get(stage),
                        )
                    )
            rows.append(
                Row(
                    f"rate_batch, all stages ({label})",
                    _per_s(msgs, stages.get("rate_batch (instrumented)")),
                    baseline="naive rating stages",
                    baseline_value=naive_rate.get("rating"),
                    peak_mb=peaks.get("rate_batch (instrumented)"),
                )
            )
        for kind, label in (("mixed", "1% malformed"), ("clean", "clean")):
            rows.append(
                Row(
                    f"WHOLE CORE, 1 core, JSON bytes -> Arrow ({label})",
                    rate[kind],
                    baseline="naive per-message rater (same rounds)",
                    baseline_value=rate["naive"],
                    peak_mb=whole["stage_peak_mb"][kind],
                    paired_ratio=whole["ratios"][f"{kind}/naive"],
                )
            )
        sql = r.get("sql")
        if "whole_unpinned" in core:
            free = core["whole_unpinned"]
            for kind, label in (("mixed", "1% malformed"), ("clean", "clean")):
                rows.append(
                    Row(
                        f"whole core, 2 cores ({label})",
                        free["median_rate"][kind],
                        baseline="ClickHouse SQL rating (chdb, 2 cores)" if sql else "",
                        baseline_value=_per_s(sql["rated_rows"], sql["rate_s"]) if sql else None,
                        peak_mb=free["stage_peak_mb"][kind],
                    )
                )
    sql = r.get("sql")
    if sql:
        rows.append(
            Row(
                f"baseline (c): rating in ClickHouse SQL, clean {sql['rated_rows']:,} (chdb)",
                _per_s(sql["rated_rows"], sql["rate_s"]),
                peak_mb=sql["rate_mb"],
            )
        )
    deck = r.get("deck")
    if deck:
        e = deck["engine"]
        nd = deck.get("naive")
        rows.append(
            Row(
                f"deck index build, {e['prefixes']:,} prefixes (DeckIndex.build, 1 core)",
                e["build_s"],
                unit="s",
                peak_mb=e["build_peak_mb"],
            )
        )
        rows.append(
            Row(
                "plans folder load with the 1M deck (CSV + checks + index)",
                e["load_s"],
                unit="s",
                baseline="naive csv + dict + Decimal" if nd else "",
                baseline_value=nd["load_s"] if nd else None,
                peak_mb=e["load_peak_mb"],
            )
        )
        rows.append(
            Row(
                "longest-prefix match x3 on the 1M deck",
                _per_s(e["messages"], e["lpm_s"]),
                baseline="naive dict lookup" if nd else "",
                baseline_value=_per_s(nd["messages"], nd["lpm_s"]) if nd else None,
            )
        )
        rows.append(
            Row(
                f"rater process with the 1M deck: peak RSS (load + rate {e['messages']:,})",
                e["rater_peak_mb"],
                unit="MB",
                baseline="naive dicts" if nd else "",
                baseline_value=nd["rater_peak_mb"] if nd else None,
                peak_mb=e["rater_peak_mb"],
            )
        )
    store = r.get("store")
    if store:
        rows.append(
            Row(
                "store writes: EmbeddedStore.write_call_history (Arrow, 100k rows)",
                _per_s(store["rows"], store["embedded"]["median_s"]),
                baseline=f"naive INSERT VALUES of {naive['rows_per_insert']} rows" if naive else "",
                baseline_value=naive_rate.get("insert"),
                peak_mb=store["embedded"]["peak_mb"],
            )
        )
        if "http" in store:
            rows.append(
                Row(
                    "store writes: ServerStore over HTTP (chdb HTTP test server)",
                    _per_s(store["rows"], store["http"]["median_s"]),
                    peak_mb=store["http"]["peak_mb"],
                )
            )
    kafka = r.get("kafka")
    faust = r.get("faust")
    faust_rate = None
    if faust and "events_per_s" in faust.get("rate", {}):
        faust_rate = faust["rate"]["events_per_s"]
    if kafka:
        produce = kafka["produce"]
        rows.append(
            Row(
                "produce: vmgate-rating produce (lz4, idempotent)",
                _per_s(produce["acknowledged"], produce["seconds"]),
            )
        )
        for key, label in (
            ("one_embedded", "E2E Kafka -> 1 rater -> embedded chdb"),
            ("one_http", "e2e Kafka -> 1 rater -> ClickHouse HTTP"),
            ("two_http", "e2e Kafka -> 2 raters -> ClickHouse HTTP"),
        ):
            if key in kafka:
                k = kafka[key]
                rows.append(
                    Row(
                        label,
                        k["cdr_per_s"],
                        baseline="faust agent per event" if faust_rate else "",
                        baseline_value=faust_rate,
                        peak_mb=max(k["rater_peak_mb"]),
                    )
                )
        for lat in kafka.get("latency", []):
            if lat["p50_ms"] is None:
                continue
            load = f"{lat['offered_rate']:,} CDR/s offered"
            rows.append(
                Row(
                    f"produce-to-queryable p50 ({load})",
                    lat["p50_ms"],
                    unit="ms",
                    peak_mb=lat["rater_peak_mb"],
                )
            )
            rows.append(Row(f"produce-to-queryable p99 ({load})", lat["p99_ms"], unit="ms"))
        off = kafka.get("offline")
        if off:
            rows.append(
                Row(
                    "offline: vmgate-rating rate --store, big file",
                    off["cdr_per_s"],
                    baseline="naive rater incl. INSERT VALUES",
                    baseline_value=naive_rate.get("with_inserts"),
                    peak_mb=off["peak_mb"],
                )
            )
    if faust:
        for mode, label in (
            ("rate", "baseline (b): faust agent, naive rating + inserts"),
            ("loads", "faust agent, json.loads only"),
        ):
            f = faust.get(mode)
            if f and "events_per_s" in f:
                rows.append(Row(label, f["events_per_s"], peak_mb=f["peak_mb"]))
            elif f:
                rows.append(Row(f"{label}: FAILED", 0.0, note=f.get("error", "")))
    return rows


@dataclass
class Target:
    """One DESIGN.md section 6 target."""

    name: str
    wanted: str
    measured: str
    met: bool | None
    gap: str


def targets(h: Harness) -> list[Target]:
    """The section 6 targets against this run's numbers."""
    out: list[Target] = []
    r = h.results
    core = r.get("core")
    if core:
        whole = core["whole_pinned"]
        floor_rate = whole["median_rate"]["floor"]
        for kind, label in (("mixed", "1% malformed"), ("clean", "clean")):
            rate = whole["median_rate"][kind]
            out.append(
                Target(
                    f"rating core, one core ({label})",
                    ">= 600,000 CDR/s",
                    f"{rate:,.0f} CDR/s",
                    rate >= 600_000,
                    f"{rate / 600_000:.2f}x of the target",
                )
            )
            ratio = whole["ratios"][f"{kind}/floor"]
            out.append(
                Target(
                    f"core / JSON-decode floor ({label})",
                    ">= 0.6x",
                    f"{ratio:.2f}x (floor {floor_rate:,.0f} CDR/s, same rounds)",
                    ratio >= 0.6,
                    f"{ratio / 0.6:.2f}x of the target",
                )
            )
    kafka = r.get("kafka")
    if kafka and "one_embedded" in kafka:
        rate = kafka["one_embedded"]["cdr_per_s"]
        out.append(
            Target(
                "end to end, 1 rater, Kafka -> ClickHouse engine",
                ">= 250,000 CDR/s",
                f"{rate:,.0f} CDR/s",
                rate >= 250_000,
                f"{rate / 250_000:.2f}x of the target",
            )
        )
    for lat in (kafka or {}).get("latency", []):
        if lat["p99_ms"] is None:
            continue
        at_target = lat["offered_rate"] >= 50_000
        out.append(
            Target(
                f"p99 produce-to-queryable at {lat['offered_rate']:,} CDR/s",
                "< 2 s at 50,000 CDR/s",
                f"{lat['p99_ms']:,.0f} ms (p50 {lat['p50_ms']:,.0f} ms, "
                f"{lat['visible']:,}/{lat['messages']:,} seen)",
                lat["p99_ms"] < 2000 if at_target else None,
                f"{lat['p99_ms'] / 2000:.2f}x of the limit"
                + ("" if at_target else " (below the target load: indicative)"),
            )
        )
    deck = r.get("deck")
    if deck:
        e = deck["engine"]
        out.append(
            Target(
                f"deck index build, {e['prefixes']:,} prefixes",
                "< 2 s",
                f"{e['build_s']:.2f} s (whole plans-folder load {e['load_s']:.1f} s)",
                e["build_s"] < 2.0,
                f"{e['build_s'] / 2.0:.2f}x of the limit",
            )
        )
        out.append(
            Target(
                "rater RSS with the 1M-prefix deck",
                "< 500 MB",
                f"peak {e['rater_peak_mb']:,.0f} MB (after load {e['loaded_mb']:,.0f} MB, "
                f"load peak {e['load_peak_mb']:,.0f} MB)",
                e["rater_peak_mb"] < 500,
                f"{e['rater_peak_mb'] / 500:.2f}x of the limit",
            )
        )
    return out


def report(h: Harness, machine_info: JSON, command: str) -> list[str]:
    """The whole report as Markdown lines."""
    m, d = machine_info, h.data
    load = ", ".join(f"{x:.2f}" for x in m["load_average"])
    packages = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    lines = [
        f"## Run: {h.plan.name}",
        "",
        f"- command: `{command}`",
        f"- machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gb']} GB RAM, "
        f"Python {m['python']}, load average at start {load}",
        f"- packages: {packages}",
        f"- commit: {m['commit']}",
        f"- data: {d.mixed_count:,} CDRs with {d.malformed:,} malformed, batches of "
        f"{h.plan.batch:,}; big deck {d.big_prefixes:,} prefixes / {d.big_rows:,} rows "
        f"(generated in {d.seconds:.1f} s)",
        f"- section times: {', '.join(f'{k} {v:.0f} s' for k, v in h.timings.items())}",
        "",
        *table_lines(build_rows(h)),
        "",
        "### DESIGN.md section 6 targets",
        "",
        "| target | wanted | measured | met | by how much |",
        "|---|---|---|---|---|",
    ]
    for t in targets(h):
        met = "yes" if t.met else ("no" if t.met is False else "n/a")
        lines.append(f"| {t.name} | {t.wanted} | {t.measured} | {met} | {t.gap} |")
    lines += details(h)
    if h.errors:
        lines += ["", "### Failures", ""]
        lines += [f"- **{name}**: {error}" for name, error in h.errors.items()]
    return lines


def _profile_lines(profile: JSON, top: int) -> list[str]:
    out = [
        f"cProfile, {profile['total_s']:.2f} s profiled; top functions by own time:",
        "",
        "| function | where | calls | own s | cumulative s |",
        "|---|---|---|---|---|",
    ]
    for f in profile["top_own"][:top]:
        out.append(
            f"| `{f['function']}` | {f['where']} | {f['calls']:,} | {f['own_s']:.3f} | "
            f"{f['cum_s']:.3f} |"
        )
    out += ["", "Project functions by cumulative time:", ""]
    out += [
        f"- `{f['function']}` ({f['where']}): {f['cum_s']:.3f} s cumulative, {f['own_s']:.3f} s own"
        for f in profile["pipeline_cumulative"][:top]
    ]
    return out


def details(h: Harness) -> list[str]:
    """Where the time goes and how each number was obtained."""
    r = h.results
    out: list[str] = ["", "### Details", ""]
    core = r.get("core")
    if core:
        for kind in ("mixed", "clean"):
            stages = core["stages"]["kinds"][kind]["stages_s"]
            parts = {
                k: v
                for k, v in stages.items()
                if k not in {"decode+validate", "rate_batch (instrumented)"}
            }
            total = sum(parts.values())
            if total:
                share = ", ".join(
                    f"{k} {v / total:.0%}" for k, v in sorted(parts.items(), key=lambda kv: -kv[1])
                )
                out.append(
                    f"- core time by stage ({kind}, 1 core, {total:.3f} s per batch): {share}"
                )
            missing = core["stages"]["kinds"][kind].get("missing_wrappers")
            if missing:
                out.append(f"- not wrapped (counted in Arrow out): {', '.join(missing)}")
        out.append(
            f"- whole core: {core['whole_pinned']['runs']} interleaved rounds on CPU 0 "
            f"(polars threads seen by the stage worker: {core['stages'].get('polars_threads')})"
        )
        for kind in ("mixed", "clean"):
            if "profile" in core:
                out += ["", f"#### Profile of the core ({kind} batch, 1 core)", ""]
                out += _profile_lines(core["profile"][kind], 15)
    naive = r.get("naive")
    if naive:
        out.append(
            f"- naive baseline: {naive['messages']:,} messages, "
            f"{naive['checked_against_engine']:,} rated rows and every rejection checked equal "
            f"to the engine; {naive['insert_rows']:,} rows inserted in "
            f"{naive['insert_statements']} INSERT VALUES statements"
        )
    sql = r.get("sql")
    if sql:
        out.append(
            f"- SQL baseline: {sql['rated_rows']:,} rows, all checked equal to the engine; "
            f"JSON load into the raw table {sql['load_s']:.2f} s, reference tables "
            f"{sql['reference_s']:.2f} s "
            f"(not in its CDR/s); rating runs {', '.join(f'{x:.2f}' for x in sql['rate_runs_s'])} s"
        )
    deck = r.get("deck")
    if deck:
        e = deck["engine"]
        out.append(
            f"- 1M deck: {e['deck_rows']:,} rows; RSS after imports {e['imports_mb']:.0f} MB, "
            f"after load {e['loaded_mb']:.0f} MB, load peak {e['load_peak_mb']:.0f} MB, "
            f"peak with a {e['messages']:,}-CDR batch rated {e['rater_peak_mb']:.0f} MB; "
            "index builds "
            f"{', '.join(f'{x:.2f}' for x in e['build_runs_s'])} s; whole core on it "
            f"{e['messages'] / e['core_s']:,.0f} CDR/s"
        )
        nd = deck.get("naive")
        if nd:
            out.append(
                f"- naive dicts for the 1M deck: load {nd['load_s']:.1f} s, RSS after load "
                f"{nd['loaded_mb']:.0f} MB"
            )
    kafka = r.get("kafka")
    if kafka:
        for key in ("one_embedded", "one_embedded_profiled", "one_http", "two_http"):
            k = kafka.get(key)
            if not k:
                continue
            n = k["messages"]
            cpu = sum(k["rater_cpu_s"])
            broker = k.get("broker_cpu_s")
            batches = sum(s.get("batches", 0) for s in k["summaries"])
            steady = k.get("steady_cdr_per_s")
            steady_text = f"{steady:,.0f} CDR/s" if steady else "n/a"
            consumed = ", ".join(f"{s.get('consumed', 0):,}" for s in k["summaries"])
            broker_text = f"{broker:.1f} s ({broker / n * 1e6:.1f} us/CDR)" if broker else "n/a"
            out.append(
                f"- {key}: {n:,} messages in {k['seconds']:.2f} s ({k['cdr_per_s']:,.0f} CDR/s; "
                f"after the first commit {steady_text}); {batches} batches; rater CPU {cpu:.1f} s "
                f"({cpu / n * 1e6:.1f} us/CDR incl. start-up); broker CPU {broker_text}; rater "
                f"wall {', '.join(f'{x:.1f}' for x in k['rater_wall_s'])} s; consumed per rater "
                f"{consumed}"
            )
        for lat in kafka.get("latency", []):
            out.append(
                f"- latency: {lat['messages']:,} CDRs offered at {lat['offered_rate']:,}/s "
                f"(achieved {lat['achieved_rate']:,.0f}/s), {lat['visible']:,} seen; p50 "
                f"{lat['p50_ms']:,.0f} ms, p99 {lat['p99_ms']:,.0f} ms, "
                f"max {lat['max_ms']:,.0f} ms; p50 of the first tenth sent "
                f"{lat.get('first_tenth_p50_ms') or 0:,.0f} ms, of the last tenth "
                f"{lat.get('last_tenth_p50_ms') or 0:,.0f} ms; "
                f"store polled every {lat['poll_interval_ms']:.0f} ms (query median "
                f"{lat['poll_query_median_ms']:.0f} ms, {lat['polls']} polls); rater batches "
                f"{lat['rater_summary'].get('batches')}"
            )
        off = kafka.get("offline")
        if off:
            out.append(
                f"- offline `rate --store`: {off['lines']:,} lines, {off['seconds']:.2f} s by its "
                f"summary, {off['wall_s']:.2f} s wall (start-up and reference load included)"
            )
        profiled = kafka.get("one_embedded_profiled", {}).get("profile")
        if profiled:
            out += ["", "#### Profile of a rater process, Kafka -> embedded chdb", ""]
            out += _profile_lines(profiled, 20)
    faust = r.get("faust")
    if faust:
        for mode, f in faust.items():
            if "events_per_s" in f:
                out.append(
                    f"- faust ({mode}): {f['events']:,} events in {f['seconds']:.2f} s, first to "
                    f"last event (worker start-up and group join not counted)"
                )
            else:
                out.append(f"- faust ({mode}) failed: {f.get('error')}")
        out.append(
            "- faust reads an uncompressed copy of the messages: aiokafka needs `cramjam` to read "
            "lz4 (what `vmgate-rating produce` writes) and neither faust-streaming nor the bench "
            "extra installs it"
        )
    return out


# --- main ---------------------------------------------------------------------------------------


def _report_from(path: Path) -> list[str]:
    """The report of an earlier run, from the JSON that ``--out`` wrote next to it."""
    raw = json.loads(path.read_text())
    fields: dict[str, Any] = {k: Path(v) if k in _DATA_PATHS else v for k, v in raw["data"].items()}
    data = Data(**fields)
    harness = Harness(Plan(**raw["plan"]), data, Path("."), set(SECTIONS))
    harness.results, harness.errors, harness.timings = raw["results"], raw["errors"], raw["timings"]
    return report(harness, raw["machine"], raw["command"])


_DATA_PATHS = {"plans", "mixed", "clean", "big_plans", "big_cdrs"}


def _raise_on_term(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _workdir(path: Path | None, keep: bool) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    folder = Path(tempfile.mkdtemp(prefix="vmgate-bench-"))
    try:
        yield folder
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; exit 1 when a section failed (a baseline disagreeing included)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="under two minutes")
    size.add_argument("--full", action="store_true", help="the full run for RESULTS.md")
    parser.add_argument("--out", type=Path, help="also write the report (Markdown) and FILE.json")
    parser.add_argument("--work", type=Path, help="data folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder")
    parser.add_argument(
        "--only", help=f"comma-separated sections to run (default all: {','.join(SECTIONS)})"
    )
    parser.add_argument(
        "--report-from", type=Path, help="only print the report of an earlier run's FILE.json"
    )
    args = parser.parse_args(argv)
    if args.report_from:
        print("\n".join(_report_from(args.report_from)))
        return 0
    if not (args.quick or args.full):
        parser.error("one of --quick or --full is required")
    plan = FULL if args.full else QUICK
    sections = set(args.only.split(",")) if args.only else set(SECTIONS)
    unknown = sections - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    command = "python -m benchmarks.run " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    signal.signal(signal.SIGTERM, _raise_on_term)
    started = time.perf_counter()
    info = machine()
    with _workdir(args.work, args.keep) as root:
        print(f"[bench] {plan.name} run in {root}; generating data ...", flush=True)
        data = make_data(plan, root)
        harness = Harness(plan, data, root, sections)
        try:
            harness.run()
        except Exception:  # report what ran, then fail
            harness.errors["harness"] = traceback.format_exc()
        raw = {
            "plan": asdict(plan),
            "data": asdict(data),
            "machine": info,
            "command": command,
            "timings": harness.timings,
            "results": harness.results,
            "errors": harness.errors,
        }
        if args.out:  # the raw numbers first: a report bug must not lose a long run
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.with_suffix(args.out.suffix + ".json").write_text(
                json.dumps(raw, indent=1, default=str)
            )
        lines = report(harness, info, command)
        lines.insert(7, f"- total wall time: {time.perf_counter() - started:.0f} s")
    print()
    print("\n".join(lines))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    return 1 if harness.errors else 0


if __name__ == "__main__":
    sys.exit(main())
