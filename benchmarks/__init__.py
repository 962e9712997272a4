"""Benchmarks of the VMGate rating pipeline (DESIGN.md section 6), with their baselines.

``python -m benchmarks.run --quick|--full`` generates the data, runs every measurement in its
own subprocess (so each reports its own peak RSS and owns its chdb engine), and prints one table
of throughput, ratio to the baseline measured in the same run, and peak RSS. Nothing here is a
test: timings are reported, never asserted. See ``benchmarks/RESULTS.md`` for a recorded run.

Where things are:

- ``run`` (the command) and ``harness/``: run configuration, generated inputs, the sections in
  order, the run record and the report rendered from it (see :mod:`benchmarks.harness`).
- ``worker``: the entry point of a measurement subprocess; its tasks are in ``core_bench``
  (the rating core, stage by stage and whole), ``naive`` (baseline a: the per-message rater),
  ``sql_rating`` (baseline c: rating in ClickHouse SQL), ``deck_bench`` (the 1M-prefix deck)
  and ``store_bench`` (call-history writes).
- ``kafka_bench``: the local broker, the rater processes, latency and the faust baseline
  (baseline b, whose agent is ``faust_agent``).
- ``datagen`` (networks, the big deck, message batches), ``common`` (root, result type, the
  rated-at instant, medians, peak RSS), ``processes`` (child processes and workers),
  ``profiling`` (cProfile as JSON), ``http_store`` (the ClickHouse HTTP endpoint: the one
  module that reaches into ``tests/``).
- Stand-alone commands, each ``python -m benchmarks.NAME``: ``offline_file`` and
  ``per_row_file`` (``make bench-file``), ``decks_topic_bench``, ``moves_write``,
  ``balances_10m``.

Imports run one way and never from ``tests/`` (``benchmarks/ruff.toml`` bans it; the
exception is ``http_store``); nothing in ``pipeline/`` or ``tests/`` imports ``benchmarks``.
"""
