"""Baseline (b): the rating job as a faust-streaming agent, one event at a time.

Run as ``python -m benchmarks.faust_agent --params JSON`` by :mod:`benchmarks.kafka_bench`.
The agent reads raw message bytes from a topic on the local broker and, per event, does what
the naive rater does (:func:`benchmarks.naive.rate_message`: ``json.loads``, validation, dict
longest-prefix match, ``Decimal`` cost), buffering rows and writing them to an embedded chdb
store with ``INSERT ... VALUES`` of 500 rows. In ``loads`` mode it only decodes each event's
JSON: the framework's own ceiling. After ``count`` events it writes the result file (first
and last event times) and ends its own process.

Why the input topic is produced uncompressed: aiokafka (faust's client) decompresses lz4 only
with the ``cramjam`` package, which neither faust-streaming nor the ``bench`` extra installs;
``vmgate-rating produce`` writes lz4, so this agent gets the same messages without it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def main(argv: list[str] | None = None) -> int:
    """Start the faust worker; it exits on its own after ``count`` events."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.faust_agent")
    parser.add_argument("--params", required=True)
    params = json.loads(parser.parse_args(argv).params)

    import faust

    from benchmarks import naive
    from benchmarks.common import RATED_AT
    from pipeline.rating.columns import CALL_HISTORY_SCHEMA
    from pipeline.sinks.embedded import EmbeddedStore

    count = int(params["count"])
    mode = str(params.get("mode", "rate"))
    result_path = Path(params["result"])
    reference = naive.load_reference(Path(params["plans"]))
    names = list(CALL_HISTORY_SCHEMA.names)
    rated_at = RATED_AT.strftime("%Y-%m-%d %H:%M:%S.%f")
    store = EmbeddedStore(Path(params["store"])).open()
    store.migrate()

    app = faust.App(
        params["app_id"],
        broker=f"kafka://{params['bootstrap']}",
        value_serializer="raw",
        web_enabled=False,
        datadir=params["datadir"],
        topic_partitions=int(params["partitions"]),
        consumer_auto_offset_reset="earliest",
    )
    topic = app.topic(params["topic"], value_type=bytes, value_serializer="raw")
    state: dict[str, Any] = {"seen": 0, "rated": 0, "rejected": 0, "first": None}
    buffer: list[dict[str, Any]] = []

    def finish() -> None:
        if buffer:
            naive.insert_values(store, buffer, names)
            buffer.clear()
        last = time.perf_counter()
        result = {
            "mode": mode,
            "events": state["seen"],
            "rated": state["rated"],
            "rejected": state["rejected"],
            "seconds": last - state["first"],
        }
        result_path.write_text(json.dumps(result))
        store.close()
        sys.stdout.flush()
        os._exit(0)  # the benchmark is over: do not wait for faust's shutdown sequence

    async def rate(stream: Any) -> None:
        position = 0
        async for value in stream:
            if state["first"] is None:
                state["first"] = time.perf_counter()
            state["seen"] += 1
            if mode == "loads":
                try:
                    json.loads(value)
                except ValueError:
                    state["rejected"] += 1
            else:
                row = naive.rate_message(reference, position, value, rated_at)
                if isinstance(row, str):
                    state["rejected"] += 1
                else:
                    state["rated"] += 1
                    buffer.append(row)
                    if len(buffer) >= naive.INSERT_ROWS:
                        naive.insert_values(store, buffer, names)
                        buffer.clear()
            position += 1
            if state["seen"] >= count:
                finish()

    app.agent(topic, name="rate")(rate)
    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    worker.execute_from_commandline()
    return 1  # only reached when faust stopped before ``count`` events


if __name__ == "__main__":
    sys.exit(main())
