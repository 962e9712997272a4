"""The 1,000,000-prefix deck: index build time, rater RSS, matching speed (worker tasks).

``deck_build`` is the rater's view: load the plans folder (CSV, validation, ``DeckIndex``), time
``DeckIndex.build`` again on its own, rate a batch of CDRs against the big deck (stage times from
the same wrappers as :mod:`benchmarks.core_bench`), and report the process's own peak RSS
(``resource.getrusage``): the memory a rater needs with that deck loaded. ``naive_deck`` does the
same with the naive baseline's dict of lists of ``Decimal`` rows.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

from benchmarks.common import JSON, RATED_AT, PeakRss, median


def _ru_maxrss_mb() -> float:
    """This process's peak RSS from ``getrusage`` (honest here: see ``processes._LAUNCHER``)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def deck_build(params: JSON) -> JSON:
    """Load the big plans folder, rebuild its index ``runs`` times, rate a batch, report RSS."""
    import polars as pl

    import pipeline.rating.engine  # noqa: F401 (imports counted in the baseline RSS)
    from benchmarks.core_bench import StageClock, instrumented
    from benchmarks.datagen import read_lines
    from pipeline.prefix_trie import DeckIndex, DeckRows
    from pipeline.rating.decode import decode_cdrs
    from pipeline.rating.engine import rate_batch
    from pipeline.reference.files import FolderPlanFiles
    from pipeline.reference.loader import deck_rows, load_plans_folder

    # No high-water-mark reset before the rater's peak is read: getrusage sees the whole run.
    imports_mb = PeakRss.current_mb()
    started = time.perf_counter()
    reference = load_plans_folder(Path(params["plans"]))
    load_s = time.perf_counter() - started
    assert reference.deck_index is not None, "the large deck is a tariff-v1 folder"
    load_peak_mb = _ru_maxrss_mb()
    loaded_mb = PeakRss.current_mb()

    messages = read_lines(Path(params["cdrs"]))
    clock = StageClock()
    seconds: list[float] = []
    lpm: list[float] = []
    with instrumented(clock) as missing:
        for run in range(int(params["runs"]) + 1):
            started = time.perf_counter()
            table = rate_batch(decode_cdrs(messages).good, reference, RATED_AT)
            elapsed = time.perf_counter() - started
            totals = clock.take()
            if run:
                seconds.append(elapsed)
                lpm.append(totals.get("longest-prefix match x3", 0.0))
    rater_peak_mb = _ru_maxrss_mb()  # before the rebuilds below, which hold two indexes
    rater_hwm_mb = PeakRss().peak_mb()  # the kernel's VmHWM, the same counter: a cross-check
    rss = PeakRss()

    # A loaded ReferenceData keeps no deck frame: read the deck rows again for the rebuilds.
    deck = deck_rows(FolderPlanFiles(Path(params["plans"])))
    plan_index = {plan_id: n for n, plan_id in enumerate(reference.plans["plan_id"].to_list())}
    rows = DeckRows(
        plan=deck["plan_id"].replace_strict(plan_index, return_dtype=pl.Int32).to_numpy(),
        prefix=deck["prefix"],
        effective_from=deck["effective_from_us"].to_numpy(),
        effective_until=deck["effective_until_us"].to_numpy(),
    )
    del deck
    builds: list[float] = []
    rss.reset()
    for _ in range(int(params["runs"])):
        started = time.perf_counter()
        DeckIndex.build(rows, reference.plan_count)
        builds.append(time.perf_counter() - started)
    build_peak_mb = rss.peak_mb()
    del rows

    return {
        "prefixes": reference.deck_index.prefix_count,
        "deck_rows": reference.deck_row_count,
        "imports_mb": imports_mb,
        "load_s": load_s,
        "load_peak_mb": load_peak_mb,
        "loaded_mb": loaded_mb,
        "build_s": median(builds),
        "build_runs_s": builds,
        "build_peak_mb": build_peak_mb,
        "messages": len(messages),
        "rated_rows": table.num_rows,
        "core_s": median(seconds),
        "lpm_s": median(lpm),
        "missing_wrappers": missing,
        "rater_peak_mb": rater_peak_mb,
        "rater_vmhwm_mb": rater_hwm_mb,
    }


def naive_deck(params: JSON) -> JSON:
    """The sensible per-row rater on the big deck: load time, RSS, rating the legs (dicts)."""
    from benchmarks import per_row
    from benchmarks.datagen import read_lines

    imports_mb = PeakRss.current_mb()
    started = time.perf_counter()
    reference = per_row.load_reference(Path(params["plans"]))
    load_s = time.perf_counter() - started
    loaded_mb = PeakRss.current_mb()
    messages = read_lines(Path(params["cdrs"]), int(params["count"]))
    cdrs = [c for c in map(per_row.decode, messages) if isinstance(c, per_row.Cdr)]
    started = time.perf_counter()
    for cdr in cdrs:  # attribution, plans, longest-prefix match and cost of the three legs
        per_row.rate_cdr(reference, cdr, 0)
    lpm_s = time.perf_counter() - started
    return {
        "prefixes": sum(len(plan.deck) for plan in reference.plans.values()),
        "imports_mb": imports_mb,
        "load_s": load_s,
        "loaded_mb": loaded_mb,
        "messages": len(cdrs),
        "lpm_s": lpm_s,
        "rater_peak_mb": _ru_maxrss_mb(),
    }
