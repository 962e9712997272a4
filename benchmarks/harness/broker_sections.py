"""The sections that need the local Kafka broker: end to end, latency, offline, faust.

``kafka``: ``vmgate-rating produce`` of the mixed file, then raters on it (one with the
embedded store, one and two through the ClickHouse HTTP endpoint of
:mod:`benchmarks.http_store`), the produce-to-queryable latency at each offered load, and the
offline ``vmgate-rating rate --store`` on the same file (no broker, but measured alongside).
``faust``: the faust-streaming agent baseline. The measurements themselves are in
:mod:`benchmarks.kafka_bench`; the broker is started and stopped by the harness.
"""

from __future__ import annotations

import sys
from pathlib import Path

from benchmarks.common import JSON
from benchmarks.datagen import read_lines
from benchmarks.harness.config import RunConfig
from benchmarks.harness.inputs import RunInputs
from benchmarks.http_store import clickhouse_http
from benchmarks.kafka_bench import (
    Flow,
    LocalBroker,
    faust_baseline,
    latency,
    produce_file,
    throughput,
    unique,
)
from benchmarks.processes import run_reporting_child


def kafka_section(
    config: RunConfig, inputs: RunInputs, root: Path, broker: LocalBroker, bootstrap: str
) -> JSON:
    """Produce, then the raters on one topic, the latency runs, and the offline command."""
    topic = unique("cdr")
    folder = root / "kafka"

    def flow(name: str, url: str | None = None) -> Flow:
        flow_root = folder / name
        flow_root.mkdir(parents=True, exist_ok=True)
        return Flow(bootstrap, topic, unique(f"dlq_{name}"), unique(name), flow_root, url)

    out: JSON = {"produce": produce_file(flow("produce"), inputs.mixed)}
    messages = int(out["produce"]["acknowledged"])
    out["one_embedded"] = throughput(
        flow("one_embedded"), inputs.plans, messages, 1, store="embedded", broker=broker
    )
    # The same command without rating, right after, on the same topic (issue 17).
    out["null_embedded"] = throughput(
        flow("null_embedded"),
        inputs.plans,
        messages,
        1,
        store="embedded",
        broker=broker,
        null_template=inputs.mixed,
    )
    if config.profile:
        out["one_embedded_profiled"] = throughput(
            flow("one_embedded_profiled"),
            inputs.plans,
            messages,
            1,
            store="embedded",
            profile=True,
            broker=broker,
        )
    with clickhouse_http(folder / "clickhouse") as server_url:
        out["one_http"] = throughput(
            flow("one_http", f"{server_url}/{unique('one')}"),
            inputs.plans,
            messages,
            1,
            store="http",
            broker=broker,
        )
        out["two_http"] = throughput(
            flow("two_http", f"{server_url}/{unique('two')}"),
            inputs.plans,
            messages,
            2,
            store="http",
            broker=broker,
        )
        out["latency"] = []
        # Half the capacity measured just now (one rater, HTTP store), then the fixed loads;
        # each bounded in messages.
        half = int(out["one_http"]["cdr_per_s"] / 2)
        loads = [(half, config.latency_seconds, f"at half the measured capacity ({half:,}/s)")]
        loads += [
            (rate, seconds, f"at {rate:,} CDR/s" if rate == 50_000 else "")
            for rate, seconds in config.latency_loads
        ]
        for rate, wanted_s, label in loads:
            seconds = min(wanted_s, config.latency_max_messages / rate)
            latency_flow = flow(f"latency_{rate}", f"{server_url}/{unique('lat')}")
            latency_flow.cdr_topic = unique("lat")
            result = latency(
                latency_flow,
                inputs.plans,
                read_lines(inputs.clean),
                rate=rate,
                seconds=seconds,
            )
            out["latency"].append({**result, "label": label})
    out["offline"] = offline_section(inputs, root)
    return out


def offline_section(inputs: RunInputs, root: Path) -> JSON:
    """``vmgate-rating rate`` on the big file, with the embedded store."""
    folder = root / "offline"
    folder.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pipeline",
        "rate",
        "--plans",
        str(inputs.plans),
        "--cdrs",
        str(inputs.mixed),
        "--out",
        str(folder / "rated.parquet"),
        "--store",
        str(folder / "store"),
        "--json",
    ]
    summary, outcome = run_reporting_child(command, folder / "rate.log", timeout_s=900.0)
    lines = int(summary["lines_read"])
    return {
        "lines": lines,
        "seconds": float(summary["seconds"]),
        "cdr_per_s": lines / float(summary["seconds"]),
        "wall_s": outcome.seconds,
        "peak_mb": outcome.peak_mb,
        "summary": summary,
    }


def faust_section(config: RunConfig, inputs: RunInputs, root: Path, bootstrap: str) -> JSON:
    """The faust agent on the first ``faust_events`` mixed CDRs (full runs: ``json.loads`` too)."""
    lines = read_lines(inputs.mixed, config.faust_events)
    out: JSON = {"rate": faust_baseline(bootstrap, root / "faust", lines, inputs.plans)}
    if config.faust_loads_only:
        out["loads"] = faust_baseline(bootstrap, root / "faust", lines, inputs.plans, mode="loads")
    return out
