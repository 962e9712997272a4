"""End to end through a real Kafka broker on loopback: raters, latency, and the faust baseline.

The broker is ``deploy/local/kafka`` in its own ``KAFKA_RUN_DIR`` (:class:`LocalBroker`), stopped
on exit, also on failure or interrupt. Raters are the real command, ``python -m pipeline run``,
as subprocesses of this one, each waited for with ``wait4`` (its own peak RSS).

Throughput ("first consume to idle"): the messages are produced first (``vmgate-rating
produce``); the clock starts at the first rater's ``assigned`` log line (consumption starts at
once: the data is waiting) and stops when the group's committed offsets, polled every 50 ms
from here, cover every message. Offsets are committed only after the store acknowledged the
batch, so that is the moment the last CDR was durable.

Latency: a producer in this process sends CDRs at a fixed rate and stamps each one's send time;
a poller thread asks the store, through a ClickHouse HTTP endpoint (the chdb HTTP test server
in this process), for every cdr_id at or above the lowest one not yet seen, every
``poll_interval_s``; a CDR's visibility time is the end of the first poll that returned it.
Latency = visibility - send, per CDR; the error is at most one poll interval plus a query.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from benchmarks.common import JSON, REPO_ROOT, child_hwm_kb
from benchmarks.processes import ChildOutcome, WorkerError, python_env, wait_child

KAFKA_SCRIPT = REPO_ROOT / "deploy" / "local" / "kafka"
_ADDRESS = re.compile(r"^127\.0\.0\.1:\d+$")
_ASSIGNED = re.compile(
    r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}),(\d{3}) INFO pipeline\.sources\.kafka: assigned \S"
)
_SUMMARY = re.compile(
    r"consumed ([\d,]+), rated ([\d,]+), unrated ([\d,]+), rejected ([\d,]+), batches ([\d,]+)"
)


class BrokerError(RuntimeError):
    """The local broker did not start or stop."""


class LocalBroker:
    """``deploy/local/kafka start|stop`` with its own run folder; a context manager."""

    def __init__(self, run_dir: Path, start_timeout_s: float = 300.0) -> None:
        """Remember the run folder; nothing starts until :meth:`start`."""
        self.run_dir = run_dir
        self.start_timeout_s = start_timeout_s
        self.bootstrap: str | None = None

    def _script(self, command: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KAFKA_RUN_DIR": str(self.run_dir)}
        return subprocess.run(
            [str(KAFKA_SCRIPT), command],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def start(self) -> str:
        """Start the broker and return its ``127.0.0.1:PORT``."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        done = self._script("start", self.start_timeout_s)
        lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
        address = lines[-1] if lines else ""
        if done.returncode != 0 or not _ADDRESS.match(address):
            msg = (
                f"local Kafka broker did not start (exit {done.returncode}):\n{done.stderr[-3000:]}"
            )
            raise BrokerError(msg)
        self.bootstrap = address
        return address

    def stop(self) -> None:
        """Stop the broker of this run folder (a no-op when none runs)."""
        done = self._script("stop", 120.0)
        self.bootstrap = None
        if done.returncode != 0:
            msg = f"local Kafka broker did not stop cleanly:\n{done.stderr[-2000:]}"
            raise BrokerError(msg)

    def cpu_seconds(self) -> float:
        """User + system CPU seconds the broker JVM has used so far (0 when unknown)."""
        try:
            pid = int((self.run_dir / "kafka.pid").read_text().strip())
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, ValueError, IndexError):
            return 0.0
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def __enter__(self) -> str:
        """Start; the bootstrap address."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop, whatever happened."""
        self.stop()


def unique(name: str) -> str:
    """A topic, group or database name of this run."""
    return f"{name}_{uuid.uuid4().hex[:8]}"


@dataclass
class Flow:
    """One pipeline's names and environment: topics, group, store."""

    bootstrap: str
    cdr_topic: str
    dlq_topic: str
    group: str
    root: Path
    clickhouse_url: str | None = None

    def env(self) -> dict[str, str]:
        """Environment for ``python -m pipeline``."""
        extra = {
            "KAFKA_BOOTSTRAP": self.bootstrap,
            "VMGATE_CDR_TOPIC": self.cdr_topic,
            "VMGATE_DLQ_TOPIC": self.dlq_topic,
            "VMGATE_GROUP": self.group,
        }
        env = python_env(extra)
        if self.clickhouse_url:
            env["CLICKHOUSE_URL"] = self.clickhouse_url
        else:
            env.pop("CLICKHOUSE_URL", None)
        return env

    def cli(self, *args: str, timeout_s: float = 600.0) -> subprocess.CompletedProcess[str]:
        """Run a ``vmgate-rating`` command to completion; raise on failure."""
        done = subprocess.run(
            [sys.executable, "-m", "pipeline", *args],
            cwd=REPO_ROOT,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if done.returncode != 0:
            msg = (
                f"vmgate-rating {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}"
            )
            raise WorkerError(msg)
        return done

    def start_rater(
        self,
        log: Path,
        *args: str,
        profile: Path | None = None,
        null_template: tuple[Path, Path] | None = None,
    ) -> subprocess.Popen[bytes]:
        """``vmgate-rating run ...`` in the background, output to ``log`` (under cProfile).

        ``null_template`` (CDR file, plans folder): run the null rater of
        :mod:`benchmarks.null_rater` instead (no rating), its leg columns rated from those.
        """
        profiler = ["-m", "cProfile", "-o", str(profile)] if profile else []
        module = "pipeline"
        env = self.env()
        if null_template is not None:
            module = "benchmarks.null_rater"
            env["VMGATE_NULL_TEMPLATE"] = str(null_template[0])
            env["VMGATE_NULL_PLANS"] = str(null_template[1])
        with log.open("wb") as handle:  # the child keeps its own descriptor
            return subprocess.Popen(
                [sys.executable, *profiler, "-m", module, "run", *args],
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )


def _partitions(bootstrap: str, topic: str) -> list[Any]:
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    metadata = admin.list_topics(topic=topic, timeout=10)
    return [TopicPartition(topic, p) for p in sorted(metadata.topics[topic].partitions)]


def _assigned_at(log: Path) -> float | None:
    """Wall-clock time of the rater's first non-empty assignment (its log's timestamp)."""
    if not log.exists():
        return None
    for line in log.read_text(errors="replace").splitlines():
        found = _ASSIGNED.match(line)
        if found:
            stamp = datetime.strptime(
                found.group(1), "%Y-%m-%d %H:%M:%S"
            )  # local time, like the log
            return stamp.timestamp() + int(found.group(2)) / 1000
    return None


def _summary(log: Path) -> dict[str, int]:
    found = _SUMMARY.findall(log.read_text(errors="replace"))
    if not found:
        return {}
    names = ("consumed", "rated", "unrated", "rejected", "batches")
    return {n: int(v.replace(",", "")) for n, v in zip(names, found[-1], strict=True)}


@dataclass
class _Supervision:
    first_commit_wall: float | None = None
    first_commit_count: int = 0
    done_wall: float | None = None
    outcomes: dict[int, ChildOutcome] = field(default_factory=dict)
    exited_wall: dict[int, float] = field(default_factory=dict)
    peak_kb: dict[int, int] = field(default_factory=dict)


def _supervise(
    raters: Sequence[subprocess.Popen[bytes]],
    bootstrap: str,
    group: str,
    topic: str,
    target: int,
    timeout_s: float,
) -> _Supervision:
    """Poll the group's committed offsets and wait for every rater to exit by itself."""
    from confluent_kafka import Consumer, KafkaException

    seen = _Supervision()
    partitions = _partitions(bootstrap, topic)
    watcher = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    deadline = time.monotonic() + timeout_s
    try:
        while len(seen.outcomes) < len(raters):
            if seen.done_wall is None:
                try:
                    committed = watcher.committed(partitions, timeout=5)
                except KafkaException:  # the group's coordinator is not ready yet
                    committed = []
                total = sum(max(tp.offset, 0) for tp in committed)
                now = time.time()
                if total and seen.first_commit_wall is None:
                    seen.first_commit_wall, seen.first_commit_count = now, total
                if total >= target:
                    seen.done_wall = now
            for rater in raters:
                if rater.pid not in seen.outcomes:
                    seen.peak_kb[rater.pid] = max(
                        seen.peak_kb.get(rater.pid, 0), child_hwm_kb(rater.pid)
                    )
                    outcome = wait_child(rater, 0.0) if _exited(rater) else None
                    if outcome is not None:
                        outcome.peak_mb = max(outcome.peak_mb, seen.peak_kb[rater.pid] / 1024)
                        seen.outcomes[rater.pid] = outcome
                        seen.exited_wall[rater.pid] = time.time()
            if time.monotonic() > deadline:
                for rater in raters:
                    if rater.pid not in seen.outcomes:
                        rater.kill()
                        seen.outcomes[rater.pid] = wait_child(rater, 30.0)
                msg = f"raters did not finish within {timeout_s:.0f} s"
                raise WorkerError(msg)
            time.sleep(0.05)
    finally:
        watcher.close()
    return seen


def _end(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    """Kill (by pid) any of our raters still running after a failure or an interrupt."""
    for process in processes:
        if process.returncode is None and not _exited(process):
            process.kill()
            wait_child(process, 30.0)


def _exited(process: subprocess.Popen[bytes]) -> bool:
    """True when our child has exited (checked without reaping it)."""
    try:
        info = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def produce_file(flow: Flow, cdrs: Path) -> JSON:
    """``vmgate-rating setup`` then ``produce``: the topic and its messages, timed."""
    flow.cli("setup", "--store", str(flow.root / "setup-store"))
    started = time.perf_counter()
    done = flow.cli("produce", "--cdrs", str(cdrs))
    seconds = time.perf_counter() - started
    found = re.search(r"acknowledged ([\d,]+)", done.stdout)
    acknowledged = int(found.group(1).replace(",", "")) if found else 0
    return {"acknowledged": acknowledged, "seconds": seconds, "stdout": done.stdout.strip()}


def throughput(
    flow: Flow,
    plans: Path,
    messages: int,
    raters: int,
    *,
    store: str,
    idle_s: float = 2.0,
    timeout_s: float = 900.0,
    profile: bool = False,
    broker: LocalBroker | None = None,
    null_template: Path | None = None,
) -> JSON:
    """``raters`` rater processes on an already produced topic; CDR/s first consume to idle.

    ``store`` is ``embedded`` (one rater, chdb in the rater) or ``http`` (``flow`` carries the
    ClickHouse URL). Each run has its own group, dead-letter topic and store. With
    ``null_template`` (a CDR file) the raters are null raters (:mod:`benchmarks.null_rater`).
    """
    setup_args = ["--store", str(flow.root / "store")] if store == "embedded" else []
    flow.cli("setup", *setup_args)
    logs = [flow.root / f"rater-{k}.log" for k in range(raters)]
    run_args = ["--plans", str(plans), "--exit-when-idle", str(idle_s)]
    if store == "embedded":
        run_args += ["--store", str(flow.root / "store")]
    broker_cpu_before = broker.cpu_seconds() if broker else 0.0
    started_wall = time.time()
    profiles = [flow.root / f"rater-{k}.prof" for k in range(raters)]
    processes = [
        flow.start_rater(
            log,
            *run_args,
            profile=prof if profile else None,
            null_template=(null_template, plans) if null_template else None,
        )
        for log, prof in zip(logs, profiles, strict=True)
    ]
    try:
        seen = _supervise(
            processes, flow.bootstrap, flow.group, flow.cdr_topic, messages, timeout_s
        )
    finally:
        _end(processes)
    broker_cpu = (broker.cpu_seconds() - broker_cpu_before) if broker else None
    failed = [p for p in processes if seen.outcomes[p.pid].returncode != 0]
    if failed:
        tail = logs[processes.index(failed[0])].read_text(errors="replace")[-3000:]
        msg = f"a rater failed:\n{tail}"
        raise WorkerError(msg)
    assigned = [t for t in (_assigned_at(log) for log in logs) if t is not None]
    start = min(assigned) if assigned else started_wall
    if seen.done_wall is None:
        msg = "the raters exited before the group committed every message"
        raise WorkerError(msg)
    seconds = seen.done_wall - start
    summaries = [_summary(log) for log in logs]
    steady = None
    if seen.first_commit_wall is not None and seen.done_wall > seen.first_commit_wall:
        steady = (messages - seen.first_commit_count) / (seen.done_wall - seen.first_commit_wall)
    summary_of_profile: JSON | None = None
    if profile and profiles[0].exists():
        import pstats

        from benchmarks.profiling import summarise_profile

        summary_of_profile = summarise_profile(pstats.Stats(str(profiles[0])), 30)
    return {
        "profile": summary_of_profile,
        "raters": raters,
        "store": store,
        "messages": messages,
        "seconds": seconds,
        "cdr_per_s": messages / seconds,
        "steady_cdr_per_s": steady,
        "start_after_launch_s": start - started_wall,
        "summaries": summaries,
        "rater_peak_mb": [seen.outcomes[p.pid].peak_mb for p in processes],
        "rater_wall_s": [seen.exited_wall[p.pid] - started_wall for p in processes],
        "rater_cpu_s": [seen.outcomes[p.pid].cpu_s for p in processes],
        "broker_cpu_s": broker_cpu,
    }


@dataclass
class _Renumberer:
    """Messages from template lines with cdr_id ``<tag><9-digit seq>`` (sorted = send order)."""

    heads: list[tuple[bytes, bytes]]
    tag: bytes

    @classmethod
    def of(cls, lines: Sequence[bytes], tag: str) -> _Renumberer:
        marker = b'"cdr_id": "'
        heads: list[tuple[bytes, bytes]] = []
        for line in lines:
            start = line.index(marker) + len(marker)
            end = line.index(b'"', start)
            heads.append((line[:start], line[end:]))
        return cls(heads, tag.encode())

    def message(self, seq: int) -> tuple[bytes, bytes]:
        key = self.tag + b"%09d" % seq
        before, after = self.heads[seq % len(self.heads)]
        return key, before + key + after


def latency(
    flow: Flow,
    plans: Path,
    lines: Sequence[bytes],
    *,
    rate: int,
    seconds: float,
    poll_interval_s: float = 0.1,
    drain_timeout_s: float = 60.0,
) -> JSON:
    """Produce ``rate`` CDR/s for ``seconds`` into a fresh topic; per-CDR time to visible."""
    import clickhouse_connect
    import numpy as np
    from confluent_kafka import Producer

    from pipeline.sinks.cdr_producer import PRODUCER_DEFAULTS

    assert flow.clickhouse_url is not None
    flow.cli("setup")
    log = flow.root / "rater-latency.log"
    rater = flow.start_rater(log, "--plans", str(plans))
    try:
        deadline = time.monotonic() + 120
        while _assigned_at(log) is None:
            if _exited(rater) or time.monotonic() > deadline:
                msg = f"latency rater never got its partitions:\n{log.read_text()[-3000:]}"
                raise WorkerError(msg)
            time.sleep(0.05)
        total = int(rate * seconds)
        tag = f"L{uuid.uuid4().hex[:6]}-"
        numbers = _Renumberer.of(lines, tag)
        url, _, database = flow.clickhouse_url.rpartition("/")
        host, port = url.removeprefix("http://").split(":")
        client = clickhouse_connect.get_client(host=host, port=int(port), database=database)
        send = np.full(total, np.nan)
        visible = np.full(total, np.inf)
        polls: list[float] = []
        stop = threading.Event()
        sql = (
            "SELECT toUInt32(substring(cdr_id, {start:UInt32})) AS seq FROM call_history "
            "WHERE cdr_id >= {low:String} AND cdr_id < {high:String}"
        )

        def poll() -> None:
            low = 0
            while not stop.is_set() and low < total:
                began = time.monotonic()
                try:
                    table = client.query_arrow(
                        sql,
                        parameters={
                            "start": len(tag) + 1,
                            "low": numbers.message(low)[0].decode(),
                            "high": tag + "~",
                        },
                    )
                except Exception:  # the table appears with the first insert
                    time.sleep(poll_interval_s)
                    continue
                ended = time.monotonic()
                polls.append(ended - began)
                seqs = table.column("seq").to_numpy() if table.num_rows else np.zeros(0, np.int64)
                seqs = seqs[seqs < total].astype(np.int64)
                fresh = seqs[np.isinf(visible[seqs])]
                visible[fresh] = ended
                pending = np.flatnonzero(np.isinf(visible[low:]))
                low = low + int(pending[0]) if len(pending) else total
                stop.wait(max(0.0, poll_interval_s - (time.monotonic() - began)))

        poller = threading.Thread(target=poll, name="latency-poller", daemon=True)
        poller.start()
        producer = Producer({"bootstrap.servers": flow.bootstrap, **PRODUCER_DEFAULTS})
        began = time.monotonic()
        seq = 0
        while seq < total:
            due = min(total, int((time.monotonic() - began) * rate) + 1)
            while seq < due:
                key, value = numbers.message(seq)
                try:
                    producer.produce(flow.cdr_topic, value=value, key=key)
                except BufferError:
                    producer.poll(0.01)
                    continue
                send[seq] = time.monotonic()
                seq += 1
            producer.poll(0)
            time.sleep(0.002)
        produced_s = time.monotonic() - began
        producer.flush(60)
        poller.join(timeout=seconds + drain_timeout_s)
        stop.set()
        poller.join(timeout=10)
        client.close()
    finally:
        peak_kb = child_hwm_kb(rater.pid)
        if not _exited(rater):
            rater.send_signal(signal.SIGTERM)
        outcome = wait_child(rater, 120.0)
        outcome.peak_mb = max(outcome.peak_mb, peak_kb / 1024)
    seen = np.isfinite(visible)
    latencies = (visible[seen] - send[seen]) * 1000.0
    tenth = max(1, len(latencies) // 10)  # in send order: does latency grow during the run?
    return {
        "offered_rate": rate,
        "messages": total,
        "achieved_rate": total / produced_s,
        "produce_seconds": produced_s,
        "visible": int(seen.sum()),
        "p50_ms": float(np.percentile(latencies, 50)) if len(latencies) else None,
        "p99_ms": float(np.percentile(latencies, 99)) if len(latencies) else None,
        "max_ms": float(latencies.max()) if len(latencies) else None,
        "first_tenth_p50_ms": float(np.median(latencies[:tenth])) if len(latencies) else None,
        "last_tenth_p50_ms": float(np.median(latencies[-tenth:])) if len(latencies) else None,
        "poll_interval_ms": poll_interval_s * 1000,
        "poll_query_median_ms": float(np.median(polls)) * 1000 if polls else None,
        "polls": len(polls),
        "rater_peak_mb": outcome.peak_mb,
        "rater_summary": _summary(log),
    }


def faust_baseline(
    bootstrap: str,
    root: Path,
    lines: Sequence[bytes],
    plans: Path,
    *,
    mode: str = "rate",
    timeout_s: float = 300.0,
) -> JSON:
    """The faust agent on a topic holding ``lines``; events per second, or why it failed."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic  # where confluent_kafka.admin imports it from

    from pipeline.sinks.cdr_producer import cdr_key

    topic = unique(f"faust_{mode}")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)])[topic].result(60)
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "none", "acks": "all"}
    )
    for line in lines:
        while True:
            try:
                producer.produce(topic, value=line, key=cdr_key(line))
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    producer.flush(60)
    folder = root / f"faust-{mode}"
    folder.mkdir(parents=True, exist_ok=True)
    result_path = folder / "result.json"
    params = {
        "bootstrap": bootstrap,
        "topic": topic,
        "partitions": 6,
        "app_id": unique(f"faust_{mode}"),
        "datadir": str(folder / "data"),
        "store": str(folder / "store"),
        "plans": str(plans),
        "count": len(lines),
        "mode": mode,
        "result": str(result_path),
    }
    import json

    log = folder / "faust.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.faust_agent", "--params", json.dumps(params)],
            cwd=REPO_ROOT,
            env=python_env(),
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    try:
        outcome = wait_child(process, timeout_s)
    except WorkerError:
        return {"mode": mode, "error": f"no result within {timeout_s:.0f} s", "log": _tail(log)}
    if not result_path.exists():
        return {
            "mode": mode,
            "error": f"exit {outcome.returncode} without a result",
            "log": _tail(log),
        }
    result: JSON = json.loads(result_path.read_text())
    result["events_per_s"] = result["events"] / result["seconds"]
    result["peak_mb"] = outcome.peak_mb
    return result


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:] if path.exists() else ""
