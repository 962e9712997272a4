"""DESIGN.md section 6 targets, met or missed by this run's numbers, and by how much."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from benchmarks.common import JSON


@dataclass(frozen=True)
class Target:
    """One DESIGN.md section 6 target."""

    name: str
    wanted: str
    measured: str
    met: bool | None
    gap: str


def targets(results: JSON) -> list[Target]:
    """The section 6 targets against this run's numbers (those of the sections that ran)."""
    out: list[Target] = []
    r = results
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
    out += issue17_targets(r)
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
        if lat["p99_ms"] is None or lat.get("label"):  # labelled: issue 17's targets
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


def issue17_targets(r: JSON) -> list[Target]:
    """Issue 17's targets, each a ratio from one run (the sections that ran)."""
    out: list[Target] = []
    command = r.get("command")
    if command:
        ratios = command["ratios"]
        lines = f"{command['lines']:,} lines, 1% malformed, {command['rounds']} round(s)"
        walls = {name: min(run["wall_s"] for run in runs) for name, runs in command["runs"].items()}
        speedup = ratios["per-row/rate"]
        cpu = statistics.median(
            p["cpu_s"] / q["cpu_s"]
            for p, q in zip(command["runs"]["per-row"], command["runs"]["rate"], strict=True)
        )
        out.append(
            Target(
                "whole `rate` process vs the sensible per-row rater",
                ">= 5x",
                f"{speedup:.2f}x (rate {walls['rate']:.2f} s, per-row {walls['per-row']:.2f} s; "
                f"{lines}; CPU seconds {cpu:.2f}x)",
                speedup >= 5.0,
                f"{speedup / 5.0:.2f}x of the target",
            )
        )
        distance = ratios["rate/floor"]
        out.append(
            Target(
                "whole `rate` process vs its floor (read + read_ndjson + Parquet write)",
                "within 3x",
                f"{distance:.2f}x the floor (floor {walls['floor']:.2f} s; {lines})",
                distance <= 3.0,
                f"{distance / 3.0:.2f}x of the limit",
            )
        )
    core = r.get("core")
    if core and "clean_v2/clean" in core["whole_pinned"]["ratios"]:
        cost = 1 / core["whole_pinned"]["ratios"]["clean_v2/clean"] - 1
        out.append(
            Target(
                "tariff v2 features cost (same CDRs, plans with vs without v2, core)",
                "<= 15%",
                f"{cost:+.1%}",
                cost <= 0.15,
                f"{cost / 0.15:.2f}x of the limit" if cost > 0 else "no cost",
            )
        )
    kafka = r.get("kafka") or {}
    if "null_embedded" in kafka and "one_embedded" in kafka:
        real, null = kafka["one_embedded"]["cdr_per_s"], kafka["null_embedded"]["cdr_per_s"]
        ratio = real / null
        out.append(
            Target(
                "streaming rater vs null rater (consume, decode, store, commit; no rating)",
                ">= 0.6x",
                f"{ratio:.2f}x ({real:,.0f} vs {null:,.0f} CDR/s)",
                ratio >= 0.6,
                f"{ratio / 0.6:.2f}x of the target",
            )
        )
    for lat in kafka.get("latency", []):
        if lat["p99_ms"] is None or not lat.get("label"):
            continue
        out.append(
            Target(
                f"p99 produce-to-queryable, {lat['label']}",
                "< 2 s",
                f"{lat['p99_ms']:,.0f} ms at {lat['achieved_rate']:,.0f} CDR/s achieved "
                f"({lat['visible']:,}/{lat['messages']:,} seen)",
                lat["p99_ms"] < 2000 and lat["visible"] == lat["messages"],
                f"{lat['p99_ms'] / 2000:.2f}x of the limit",
            )
        )
    return out
