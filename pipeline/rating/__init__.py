"""The pure rating core: batches of CDRs and reference data in, call history out; no I/O."""
