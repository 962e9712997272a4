"""Where CDRs come from: JSONL files (offline rating, the embedded default) and Kafka."""
