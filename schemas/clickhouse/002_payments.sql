-- Payments recorded against accounts (payments.v1): money a customer paid in, or money paid out
-- to a VMGateClient or a reseller. Idempotent by payment_id: recording the same payment twice
-- leaves one row (ReplacingMergeTree on (tenant_id, payment_id), read through FINAL).
CREATE TABLE IF NOT EXISTS payments
(
    payment_id String,
    tenant_id LowCardinality(String),
    kind LowCardinality(String),
    account_id String,
    amount Decimal(38, 6),
    currency LowCardinality(String),
    recorded_at DateTime64(6, 'UTC'),
    note String
)
ENGINE = ReplacingMergeTree
ORDER BY (tenant_id, payment_id);
