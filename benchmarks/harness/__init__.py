"""The parts of ``python -m benchmarks.run`` (:mod:`benchmarks.run` is its command line).

A run is: a :class:`~benchmarks.harness.config.RunConfig` (``QUICK`` or ``FULL``), the inputs
it generates (:mod:`~benchmarks.harness.inputs`), the sections that measure
(:mod:`~benchmarks.harness.sections`, with :mod:`~benchmarks.harness.broker_sections` for
those on a local Kafka broker), and a :class:`~benchmarks.harness.record.RunRecord` of what
they returned, from which :mod:`~benchmarks.harness.report` renders the table
(:mod:`~benchmarks.harness.rows` and :mod:`~benchmarks.harness.table`), the section 6 targets
(:mod:`~benchmarks.harness.targets`) and the details (:mod:`~benchmarks.harness.details`).

Imports go one way: run -> sections -> the measurement modules of ``benchmarks/``, and
run -> report -> rows, targets, details. The report never runs anything; nothing here is
imported by a measurement subprocess (``benchmarks.worker``).
"""
