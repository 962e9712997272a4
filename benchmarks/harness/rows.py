"""The result table's rows: each measurement next to the baseline measured in the same run.

Which number is compared with which is decided here (the engine's stage with the naive
rater's stage of the same name, the whole core with the naive per-message rater timed in the
same rounds, the end-to-end raters with the faust agent...); how a row prints is
:mod:`benchmarks.harness.table`.
"""

from __future__ import annotations

from benchmarks.common import JSON, median
from benchmarks.harness.table import Row


def _per_s(count: float, seconds: float | None) -> float:
    return count / seconds if seconds else 0.0


def table_rows(results: JSON) -> list[Row]:
    """The table rows from whatever sections ran (``results``: raw results per section)."""
    r = results
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
                    baseline="sensible per-row rater (same rounds)",
                    baseline_value=rate["naive"],
                    peak_mb=whole["stage_peak_mb"][kind],
                    paired_ratio=whole["ratios"][f"{kind}/naive"],
                )
            )
        if "clean_v2" in rate:
            rows.append(
                Row(
                    "whole core, 1 core, clean, plans with tariff v2 (zones, bands, origins)",
                    rate["clean_v2"],
                    baseline="the same CDRs, plans without v2 (same rounds)",
                    baseline_value=rate["clean"],
                    peak_mb=whole["stage_peak_mb"]["clean_v2"],
                    paired_ratio=whole["ratios"]["clean_v2/clean"],
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
    command = r.get("command")
    if command:
        med = {
            name: median([run["wall_s"] for run in runs]) for name, runs in command["runs"].items()
        }
        lines = command["lines"]
        for name, label in (
            ("rate", f"WHOLE `rate` process, {lines:,} lines, 1% malformed (2 cores)"),
            ("floor", "  its floor: read + read_ndjson + Parquet write (same writer)"),
            ("per-row", "  sensible per-row rater (json.loads, dict, bisect, Decimal)"),
        ):
            rows.append(
                Row(
                    label,
                    lines / med[name],
                    baseline="sensible per-row rater (same rounds)" if name == "rate" else "",
                    baseline_value=lines / med["per-row"] if name == "rate" else None,
                    peak_mb=max(run["peak_mb"] for run in command["runs"][name]),
                    paired_ratio=command["ratios"]["per-row/rate"] if name == "rate" else None,
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
            ("null_embedded", "  null rater (no rating), same topic, embedded chdb"),
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
