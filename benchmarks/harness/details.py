"""The report's details: where the time goes, how each number was obtained, the profiles."""

from __future__ import annotations

from benchmarks.common import JSON


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


def details(results: JSON) -> list[str]:
    """Where the time goes and how each number was obtained."""
    r = results
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
    command = r.get("command")
    if command:
        runs = command["runs"]
        for number, (rate, row, floor) in enumerate(
            zip(runs["rate"], runs["per-row"], runs["floor"], strict=True), start=1
        ):
            out.append(
                f"- command round {number} ({command['lines']:,} lines, "
                f"{command['malformed']:,} malformed): `rate` {rate['wall_s']:.2f} s wall "
                f"({rate['seconds']:.2f} s by its summary, {rate['cpu_s']:.1f} s CPU); per-row "
                f"{row['wall_s']:.2f} s wall, {row['cpu_s']:.1f} s CPU (plans "
                f"{row['load_s']:.2f}, rating {row['rate_s']:.2f}, Arrow {row['arrow_s']:.2f}, "
                f"Parquet {row['write_s']:.2f}); "
                f"floor {floor['wall_s']:.2f} s (read {floor['read_s']:.2f}, read_ndjson "
                f"{floor['decode_s']:.2f}, Parquet {floor['write_s']:.2f}, the rest start-up)"
            )
        out.append(
            f"- per-row rater checked against `rate`: {command['checked_rows']:,} rated rows "
            "equal column by column, the same rejected line numbers"
        )
    naive = r.get("naive")
    if naive:
        out.append(
            f"- per-message baseline (the sensible per-row rater, one message at a time): "
            f"{naive['messages']:,} messages, "
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
