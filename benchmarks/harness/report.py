"""The report of a run as Markdown lines: header, result table, section 6 targets, details.

Rendered from a :class:`~benchmarks.harness.record.RunRecord` alone (no measurement runs
here), so a finished run and ``--report-from FILE.json`` print the same thing.
"""

from __future__ import annotations

from benchmarks.harness.details import details
from benchmarks.harness.record import RunRecord
from benchmarks.harness.rows import table_rows
from benchmarks.harness.table import table_lines
from benchmarks.harness.targets import targets


def report_lines(record: RunRecord, total_s: float | None = None) -> list[str]:
    """The whole report; ``total_s``, the run's wall time, when it was just measured."""
    m, d = record.machine, record.inputs
    load = ", ".join(f"{x:.2f}" for x in m["load_average"])
    packages = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    lines = [
        f"## Run: {record.config.name}",
        "",
        f"- command: `{record.command}`",
        f"- machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gb']} GB RAM, "
        f"Python {m['python']}, load average at start {load}",
        f"- packages: {packages}",
        f"- commit: {m['commit']}",
        f"- data: {d.mixed_count:,} CDRs with {d.malformed:,} malformed, batches of "
        f"{record.config.batch:,}; big deck {d.big_prefixes:,} prefixes / {d.big_rows:,} rows "
        f"(generated in {d.seconds:.1f} s)",
        *([f"- total wall time: {total_s:.0f} s"] if total_s is not None else []),
        f"- section times: {', '.join(f'{k} {v:.0f} s' for k, v in record.timings.items())}",
        "",
        *table_lines(table_rows(record.results)),
        "",
        "### DESIGN.md section 6 targets",
        "",
        "| target | wanted | measured | met | by how much |",
        "|---|---|---|---|---|",
    ]
    for t in targets(record.results):
        met = "yes" if t.met else ("no" if t.met is False else "n/a")
        lines.append(f"| {t.name} | {t.wanted} | {t.measured} | {met} | {t.gap} |")
    lines += details(record.results)
    if record.errors:
        lines += ["", "### Failures", ""]
        lines += [f"- **{name}**: {error}" for name, error in record.errors.items()]
    return lines
