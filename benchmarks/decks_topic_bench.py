"""A 1,000,000-row deck through the reference topics: import, then a rater's load, timed.

``python -m benchmarks.decks_topic_bench [--prefixes 1000000]`` starts its own local broker
(``deploy/local/kafka``, or uses ``$KAFKA_BOOTSTRAP``), writes the big-deck plans folder of
:func:`benchmarks.datagen.big_deck_network`, and measures, each as a whole process:

- ``vmgate-rating decks import`` (validate + publish in one transaction);
- a rater-side load from the topics (read, reassemble, check digests, validate, index) with
  :class:`~pipeline.reference.feed.ReferenceWatcher`, the way ``run`` starts;
- the same folder loaded from disk (``load_plans_folder``), the baseline in the same run;
- and the swap a running rater sees: a second version (one rate changed) published while a
  watcher holds the first, from ``decks import`` returning to the new version being ready.

It prints seconds and peak RSS of each. The tests check memory and correctness of this path
(``tests/integration/reference/test_topics.py``); the time is measured here, not there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks.datagen import big_deck_network
from benchmarks.kafka_bench import LocalBroker
from benchmarks.processes import python_env, run_reporting_child, wait_child

REPO_ROOT = Path(__file__).resolve().parents[1]

_LOAD = """
import json, sys, time
from pathlib import Path
from pipeline.config import load_settings
from pipeline.reference.loader import load_plans_folder
from pipeline.reference.feed import ReferenceFeed, ReferenceWatcher
started = time.perf_counter()
if sys.argv[1] == "topics":
    settings = load_settings()
    watcher = ReferenceWatcher(ReferenceFeed(settings.kafka(), settings.reference_topics()))
    watcher.start()
    reference = watcher.wait_first()
    loaded = time.perf_counter() - started
    if len(sys.argv) > 3:  # then wait for the version published by the parent
        Path(sys.argv[3]).write_text(reference.version)
        while watcher.newer_than(reference.version) is None:
            time.sleep(0.01)
        swapped_at = time.time()
        print(json.dumps({"swapped_at": swapped_at}), flush=True)
    watcher.close()
else:
    reference = load_plans_folder(Path(sys.argv[2]))
    loaded = time.perf_counter() - started
print(json.dumps({"seconds": loaded, "rows": reference.deck_row_count,
                  "version": reference.version}))
"""


def _child(args: list[str], env: dict[str, str], log: Path) -> dict[str, Any]:
    summary, outcome = run_reporting_child(
        [sys.executable, "-c", _LOAD, *args], log, env, timeout_s=900.0
    )
    return {**summary, "peak_mb": outcome.peak_mb, "wall_s": outcome.seconds}


def _import(plans: Path, env: dict[str, str]) -> tuple[float, float]:
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "decks", "import", "--plans", str(plans)],
        cwd=REPO_ROOT,
        env=python_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    outcome = wait_child(process, 900.0)
    if outcome.returncode != 0:
        msg = "decks import failed"
        raise RuntimeError(msg)
    return outcome.seconds, outcome.peak_mb


def main(argv: list[str] | None = None) -> int:
    """Run the measurements and print them."""
    parser = argparse.ArgumentParser(prog="decks_topic_bench", description=__doc__)
    parser.add_argument("--prefixes", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="vmgate-decks-"))
    broker = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "")
    if not bootstrap:
        broker = LocalBroker(root / "kafka")
        bootstrap = broker.start()
    try:
        deck = big_deck_network(root / "data", args.prefixes, 10)
        size_mb = sum(p.stat().st_size for p in deck.plans.rglob("*.csv")) / 2**20
        tag = uuid.uuid4().hex[:8]
        env = {
            "KAFKA_BOOTSTRAP": bootstrap,
            "VMGATE_RATEPLANS_TOPIC": f"rateplans-{tag}",
            "VMGATE_ASSOCIATIONS_TOPIC": f"associations-{tag}",
            "VMGATE_MEMBERSHIPS_TOPIC": f"memberships-{tag}",
        }
        import_s, import_mb = _import(deck.plans, env)
        folder = _child(["folder", str(deck.plans)], env, root / "folder.log")
        topics = _child(["topics", str(deck.plans)], env, root / "topics.log")

        # The swap: a watcher holds v1; v2 (one rate changed) is imported; time to ready.
        marker = root / "v1-ready"
        log = root / "swap.log"
        with log.open("wb") as handle:
            watcher = subprocess.Popen(
                [sys.executable, "-c", _LOAD, "topics", str(deck.plans), str(marker)],
                cwd=REPO_ROOT,
                env=python_env(env),
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.DEVNULL,
            )
            while not marker.exists():
                time.sleep(0.05)
            big = next((deck.plans / "decks").glob("*customer*.csv"))
            frame = pl.read_csv(big, infer_schema=False)
            rates = frame["rate"].to_list()
            rates[0] = "0.123456" if rates[0] != "0.123456" else "0.654321"
            frame.with_columns(pl.Series("rate", rates)).write_csv(big)
            published = time.time()
            second_import_s, _ = _import(deck.plans, env)
            outcome = wait_child(watcher, 900.0)
        if outcome.returncode != 0:
            msg = f"swap watcher failed, see {log}"
            raise RuntimeError(msg)
        swapped_at = json.loads(log.read_text().strip().splitlines()[0])["swapped_at"]
        rows = [
            ("decks import (validate + publish, 1 txn)", import_s, import_mb),
            ("rater load from the topics (+ index)", topics["seconds"], topics["peak_mb"]),
            ("baseline: load the folder from disk", folder["seconds"], folder["peak_mb"]),
            ("import of v2 -> v2 ready in a running rater", swapped_at - published, None),
        ]
        print(f"deck: {deck.deck_rows:,} rows in the big deck, {size_mb:.0f} MB of CSV")
        print(f"{'step':<46} {'seconds':>8} {'peak MB':>8}")
        for name, seconds, peak in rows:
            shown = f"{peak:>8.0f}" if peak is not None else f"{'':>8}"
            print(f"{name:<46} {seconds:>8.2f} {shown}")
        print(f"(the second import itself took {second_import_s:.2f} s of that)")
        assert topics["version"] == folder["version"]
        return 0
    finally:
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    raise SystemExit(main())
