"""DESIGN.md section 6 targets, met or missed by this run's numbers, and by how much."""

from __future__ import annotations

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
