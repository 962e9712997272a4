"""Benchmarks of the VMGate rating pipeline (DESIGN.md section 6), with their baselines.

``python -m benchmarks.run --quick|--full`` generates the data, runs every measurement in its
own subprocess (so each reports its own peak RSS and owns its chdb engine), and prints one table
of throughput, ratio to the baseline measured in the same run, and peak RSS. Nothing here is a
test: timings are reported, never asserted. See ``benchmarks/RESULTS.md`` for a recorded run.
"""
