-- Whether each VMGateClient is online (client-status.v1, key client_id: VMGateServer publishes a
-- client's status whenever it changes). One row per client and event; the newest status instant
-- wins (ReplacingMergeTree on `at`), so an event delivered late never overrides a newer one, and
-- the same event stored twice leaves one row. Read through client_status_current.
CREATE TABLE IF NOT EXISTS client_status
(
    tenant_id LowCardinality(String),
    client_id String,
    online Bool,
    at DateTime64(6, 'UTC'),
    received_at DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(at)
ORDER BY (tenant_id, client_id);

-- The current status of each client: its newest event.
CREATE OR REPLACE VIEW client_status_current
AS SELECT tenant_id, client_id, online, at
FROM client_status FINAL;
