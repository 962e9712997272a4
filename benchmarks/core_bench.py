"""The rating core, stage by stage, JSON bytes in -> Arrow out (worker tasks).

How stages are timed: ``rate_batch`` and ``decode_cdrs`` run whole and unchanged, while the
engine functions they call are wrapped, for the duration of the measurement, by timers that
keep *exclusive* time (a wrapped function called inside another is subtracted from its caller):

=============================  ================================================================
stage                          engine functions (``pipeline.rating.engine`` unless noted)
=============================  ================================================================
decode: parse                  ``decode._parse`` (``polars.read_ndjson``; on a batch with a bad
                               line, ``json.loads`` of every line, then polars again)
decode: validate               ``decode._validate``
attribution                    ``_attribute_reseller`` (membership lookup, reseller column)
plan lookup x3                 ``_plan_of`` (association join and interval lookup per leg)
longest-prefix match x3        ``encode_digits`` and ``DeckIndex.lookup`` (searchsorted + walk)
cost x3                        ``_price_leg`` less the column building below
Arrow out                      ``_gather`` and ``units_to_arrow`` (output columns) plus the rest
                               of ``rate_batch`` (status, reasons, base columns, the Arrow table)
=============================  ================================================================

"Arrow out" is therefore ``rate_batch`` whole minus the other rating stages. A function that a
later version of the engine no longer has is simply not wrapped: its time then shows in the
remainder, and the worker reports which names were missing.
"""

from __future__ import annotations

import cProfile
import io
import json
import pstats
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import JSON, RATED_AT, PeakRss, median
from benchmarks.profiling import summarise_profile

# (module path, attribute, owner class or None, stage)
_WRAPPED: tuple[tuple[str, str, str | None, str], ...] = (
    ("pipeline.rating.decode", "_parse", None, "decode: parse"),
    ("pipeline.rating.decode", "_validate", None, "decode: validate"),
    ("pipeline.rating.engine", "_attribute_reseller", None, "attribution"),
    ("pipeline.rating.engine", "_plan_of", None, "plan lookup x3"),
    ("pipeline.rating.engine", "encode_digits", None, "longest-prefix match x3"),
    ("pipeline.prefix_trie.deck_index", "lookup", "DeckIndex", "longest-prefix match x3"),
    ("pipeline.rating.engine", "_price_leg", None, "cost x3"),
    ("pipeline.rating.engine", "_gather", None, "Arrow out"),
    ("pipeline.rating.engine", "units_to_arrow", None, "Arrow out"),
)
RATING_STAGES = ("attribution", "plan lookup x3", "longest-prefix match x3", "cost x3", "Arrow out")


@dataclass
class _Frame:
    stage: str
    started: float
    children: float = 0.0


@dataclass
class StageClock:
    """Exclusive seconds per stage, from wrapped functions that may call one another."""

    totals: dict[str, float] = field(default_factory=dict)
    stack: list[_Frame] = field(default_factory=list)

    def wrap(self, function: Callable[..., Any], stage: str) -> Callable[..., Any]:
        """``function`` with its exclusive time added to ``stage``."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            frame = _Frame(stage, time.perf_counter())
            self.stack.append(frame)
            try:
                return function(*args, **kwargs)
            finally:
                self.stack.pop()
                elapsed = time.perf_counter() - frame.started
                self.totals[stage] = self.totals.get(stage, 0.0) + elapsed - frame.children
                if self.stack:
                    self.stack[-1].children += elapsed

        return timed

    def take(self) -> dict[str, float]:
        """The totals so far, then start again."""
        totals, self.totals = self.totals, {}
        return totals


@contextmanager
def instrumented(clock: StageClock) -> Iterator[list[str]]:
    """Wrap the engine functions of ``_WRAPPED``; yield the names that could not be wrapped."""
    import importlib

    missing: list[str] = []
    restore: list[tuple[Any, str, Any]] = []
    for module_name, attribute, owner, stage in _WRAPPED:
        module = importlib.import_module(module_name)
        target = getattr(module, owner) if owner else module
        original = target.__dict__.get(attribute) if owner else getattr(module, attribute, None)
        if original is None or not callable(original):
            missing.append(f"{module_name}.{owner + '.' if owner else ''}{attribute}")
            continue
        restore.append((target, attribute, original))
        setattr(target, attribute, clock.wrap(original, stage))
    try:
        yield missing
    finally:
        for target, attribute, original in reversed(restore):
            setattr(target, attribute, original)


def _join(lines: list[bytes]) -> io.BytesIO:
    return io.BytesIO(b"\n".join(lines))


@dataclass
class _Batches:
    mixed: list[bytes]
    clean: list[bytes]


def _load_batches(params: JSON) -> tuple[Any, _Batches]:
    from benchmarks.datagen import read_lines
    from pipeline.reference.loader import load_plans_folder

    reference = load_plans_folder(Path(params["plans"]))
    size = int(params["batch"])
    return reference, _Batches(
        read_lines(Path(params["mixed_cdrs"]), size), read_lines(Path(params["clean_cdrs"]), size)
    )


def core_stages(params: JSON) -> JSON:
    """Decode and rating stages per batch kind (1% malformed, clean).

    Each pass is repeated ``runs`` times after one warm-up; medians are reported with the peak
    RSS seen while the stage ran (decode stages: the decode's peak; rating stages:
    ``rate_batch``'s peak). The whole core, uninstrumented, and the decode floor are
    :func:`core_whole`.
    """
    import polars as pl

    from pipeline.rating.decode import decode_cdrs
    from pipeline.rating.engine import rate_batch

    reference, batches = _load_batches(params)
    runs = int(params["runs"])
    rss = PeakRss()
    result: JSON = {"polars_threads": pl.thread_pool_size(), "runs": runs, "kinds": {}}

    clock = StageClock()
    for kind, messages in (("mixed", batches.mixed), ("clean", batches.clean)):
        decoded = decode_cdrs(messages)
        stage_seconds: dict[str, list[float]] = {}
        stage_peak: dict[str, float] = {}
        with instrumented(clock) as missing:
            for run in range(runs + 1):
                rss.reset()
                started = time.perf_counter()
                decoded = decode_cdrs(messages)
                decode_s = time.perf_counter() - started
                decode_mb = rss.peak_mb()
                rss.reset()
                started = time.perf_counter()
                rate_batch(decoded.good, reference, RATED_AT)
                rate_s = time.perf_counter() - started
                rate_mb = rss.peak_mb()
                totals = clock.take()
                if run == 0:
                    continue  # warm-up
                rating_known = sum(totals.get(s, 0.0) for s in RATING_STAGES)
                totals["Arrow out"] = totals.get("Arrow out", 0.0) + rate_s - rating_known
                totals["decode+validate"] = decode_s
                totals["rate_batch (instrumented)"] = rate_s
                for stage, seconds in totals.items():
                    stage_seconds.setdefault(stage, []).append(seconds)
                for stage in (*RATING_STAGES, "rate_batch (instrumented)"):
                    stage_peak[stage] = max(stage_peak.get(stage, 0.0), rate_mb)
                for stage in ("decode+validate", "decode: parse", "decode: validate"):
                    stage_peak[stage] = max(stage_peak.get(stage, 0.0), decode_mb)
        result["kinds"][kind] = {
            "messages": len(messages),
            "good": decoded.good.height,
            "rejected": decoded.rejected.height,
            "stages_s": {stage: median(values) for stage, values in stage_seconds.items()},
            "stages_mb": stage_peak,
            "missing_wrappers": missing,
        }
    return result


def core_whole(params: JSON) -> JSON:
    """The whole core, messages in -> Arrow table out, interleaved with its references.

    Each of ``runs`` rounds times, back to back: the JSON-decode floor (``polars.read_ndjson``
    of the joined clean batch), ``json.loads`` per message, the core on the 1%-malformed batch,
    the core on the clean batch, the core on the same clean batch against the plans with
    tariff v2 (``plans_v2``: zones, bands, holidays, origins, price shape), and the naive
    per-message rater on ``naive_count`` messages of the malformed batch. Ratios are taken
    within a round and their median reported, so a load change on a shared machine between
    two measurements does not skew them.
    """
    import polars as pl

    from benchmarks import naive
    from pipeline.rating.cdr_contract import CDR_SCHEMA
    from pipeline.rating.decode import decode_cdrs
    from pipeline.rating.engine import rate_batch
    from pipeline.reference.loader import load_plans_folder

    reference, batches = _load_batches(params)
    naive_reference = naive.load_reference(Path(params["plans"]))
    naive_messages = batches.mixed[: int(params.get("naive_count", 10_000))]
    rated_at = RATED_AT.strftime("%Y-%m-%d %H:%M:%S.%f")
    runs = int(params["runs"])
    rss = PeakRss()
    clean = batches.clean

    def floor() -> object:
        return pl.read_ndjson(_join(clean), schema=CDR_SCHEMA)

    def loads() -> object:
        return [json.loads(m) for m in clean]

    def core_mixed() -> object:
        return rate_batch(decode_cdrs(batches.mixed).good, reference, RATED_AT)

    def core_clean() -> object:
        return rate_batch(decode_cdrs(clean).good, reference, RATED_AT)

    reference_v2 = load_plans_folder(Path(params["plans_v2"])) if params.get("plans_v2") else None

    def core_clean_v2() -> object:
        assert reference_v2 is not None
        return rate_batch(decode_cdrs(clean).good, reference_v2, RATED_AT)

    def naive_whole() -> object:
        return [
            naive.rate_message(naive_reference, i, m, rated_at)
            for i, m in enumerate(naive_messages)
        ]

    steps: dict[str, tuple[Callable[[], object], int]] = {
        "floor": (floor, len(clean)),
        "json_loads": (loads, len(clean)),
        "mixed": (core_mixed, len(batches.mixed)),
        "clean": (core_clean, len(clean)),
        "naive": (naive_whole, len(naive_messages)),
    }
    if reference_v2 is not None:  # the same clean CDRs against the plans with tariff v2
        steps["clean_v2"] = (core_clean_v2, len(clean))
    for function, _ in steps.values():
        if params.get("warmup", True):
            function()
    rates: dict[str, list[float]] = {name: [] for name in steps}
    peaks: dict[str, float] = {}
    for _ in range(runs):
        for name, (function, count) in steps.items():
            rss.reset()
            started = time.perf_counter()
            function()
            rates[name].append(count / (time.perf_counter() - started))
            peaks[name] = max(peaks.get(name, 0.0), rss.peak_mb())
    ratios = {
        f"{a}/{b}": median([x / y for x, y in zip(rates[a], rates[b], strict=True)])
        for a, b in (
            ("mixed", "floor"),
            ("clean", "floor"),
            ("mixed", "naive"),
            ("clean", "naive"),
            ("floor", "json_loads"),
            ("clean_v2", "clean"),
        )
        if a in rates and b in rates
    }
    return {
        "messages": {name: count for name, (_, count) in steps.items()},
        "rates": rates,
        "median_rate": {name: median(values) for name, values in rates.items()},
        "stage_peak_mb": peaks,
        "ratios": ratios,
        "runs": runs,
    }


def core_profile(params: JSON) -> JSON:
    """cProfile of decode + rate_batch per batch kind: the top functions by own time."""
    from pipeline.rating.decode import decode_cdrs
    from pipeline.rating.engine import rate_batch

    reference, batches = _load_batches(params)
    top = int(params.get("top", 25))
    out: JSON = {}
    for kind, messages in (("mixed", batches.mixed), ("clean", batches.clean)):
        rate_batch(decode_cdrs(messages).good, reference, RATED_AT)
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(int(params.get("runs", 2))):
            rate_batch(decode_cdrs(messages).good, reference, RATED_AT)
        profiler.disable()
        out[kind] = summarise_profile(pstats.Stats(profiler), top)
    return out
