"""The ClickHouse DDL (clickhouse/*.sql), shipped with the package as data."""
