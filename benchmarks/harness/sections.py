"""The sections of a run, in order, each in its own measurement subprocess.

:class:`Harness` runs the sections a run asked for (core, naive, sql, deck, store, then the
broker sections of :mod:`benchmarks.harness.broker_sections`), keeps their raw results, and
records a failing section's error without stopping the others: the report shows what ran,
and the run exits 1.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import JSON
from benchmarks.harness.config import RunConfig
from benchmarks.harness.inputs import RunInputs
from benchmarks.processes import run_worker


class Harness:
    """Runs the sections, keeps their raw results, errors and times."""

    def __init__(
        self, config: RunConfig, inputs: RunInputs, root: Path, sections: set[str]
    ) -> None:
        """Nothing runs until :meth:`run`."""
        self.config = config
        self.inputs = inputs
        self.root = root
        self.sections = sections
        self.results: JSON = {}
        self.errors: dict[str, str] = {}
        self.timings: dict[str, float] = {}

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

    def run(self) -> None:
        """Every section of the run, in order."""
        self.section("core", self._core)
        self.section("command", self._command)
        self.section("naive", self._naive)
        self.section("sql", self._sql)
        self.section("deck", self._deck)
        self.section("store", self._store)
        if self.sections & {"kafka", "faust"}:
            self._with_broker()

    def _core_params(self, runs: int) -> JSON:
        return {
            "plans": str(self.inputs.plans),
            "mixed_cdrs": str(self.inputs.mixed),
            "clean_cdrs": str(self.inputs.clean),
            "batch": self.config.batch,
            "runs": runs,
            "naive_count": self.config.naive_in_core,
            "warmup": self.config.name == "full",
            "plans_v2": str(self.inputs.plans_v2) if self.inputs.plans_v2 else None,
        }

    def _core(self) -> JSON:
        config = self.config
        out: JSON = {
            "stages": self.worker("core_stages", self._core_params(config.stage_runs), pin=True),
            "whole_pinned": self.worker(
                "core_whole", self._core_params(config.whole_runs), pin=True
            ),
        }
        if config.unpinned:
            out["whole_unpinned"] = self.worker("core_whole", self._core_params(config.whole_runs))
        if config.profile:
            out["profile"] = self.worker(
                "core_profile", {**self._core_params(2), "top": 25}, pin=True
            )
        return out

    def _command(self) -> JSON:
        """``rate`` vs the sensible per-row rater vs the command's floor, on a fresh file."""
        from benchmarks.command_bench import command_rounds
        from benchmarks.datagen import network

        count = self.config.command_cdrs
        data = network(self.root / "command-data", count, 0.01)
        out = command_rounds(
            data.plans, data.cdrs, self.root / "command", self.config.command_rounds
        )
        out["lines"] = count
        out["malformed"] = data.malformed
        return out

    def _naive(self) -> JSON:
        return self.worker(
            "naive",
            {
                "plans": str(self.inputs.plans),
                "cdrs": str(self.inputs.mixed),
                "count": self.config.naive_count,
                "insert_count": self.config.naive_inserts,
                "store": str(self.root / "naive-store"),
            },
            pin=True,
        )

    def _sql(self) -> JSON:
        from benchmarks.datagen import read_lines

        subset = self.root / "sql-cdrs.jsonl"
        subset.write_bytes(b"\n".join(read_lines(self.inputs.clean, self.config.sql_rows)) + b"\n")
        return self.worker(
            "sql_rating",
            {
                "plans": str(self.inputs.plans),
                "cdrs": str(subset),
                "store": str(self.root / "sql-store"),
                "runs": self.config.sql_runs,
            },
        )

    def _deck(self) -> JSON:
        inputs = self.inputs
        out: JSON = {
            "engine": self.worker(
                "deck_build",
                {
                    "plans": str(inputs.big_plans),
                    "cdrs": str(inputs.big_cdrs),
                    "runs": self.config.deck_runs,
                },
                pin=True,
            )
        }
        if self.config.naive_deck_count:
            out["naive"] = self.worker(
                "naive_deck",
                {
                    "plans": str(inputs.big_plans),
                    "cdrs": str(inputs.big_cdrs),
                    "count": self.config.naive_deck_count,
                },
                pin=True,
            )
        return out

    def _store(self) -> JSON:
        return self.worker(
            "store_writes",
            {
                "plans": str(self.inputs.plans),
                "cdrs": str(self.inputs.mixed),
                "batch": self.config.batch,
                "runs": self.config.store_runs,
                "store": str(self.root / "store-bench"),
                "http": self.config.http_store,
            },
        )

    def _with_broker(self) -> None:
        """The kafka and faust sections, on a local broker started here and always stopped."""
        from benchmarks.harness.broker_sections import faust_section, kafka_section
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
        try:
            self.section(
                "kafka",
                lambda: kafka_section(self.config, self.inputs, self.root, broker, bootstrap),
            )
            self.section(
                "faust", lambda: faust_section(self.config, self.inputs, self.root, bootstrap)
            )
        finally:
            print("[bench] stopping the local Kafka broker ...", flush=True)
            broker.stop()
