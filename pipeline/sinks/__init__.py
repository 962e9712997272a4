"""Where rated batches go: call history stores (embedded chdb, ClickHouse server), files, DLQ."""
