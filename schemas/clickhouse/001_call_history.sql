-- Call history: one row per rating of a CDR. Re-deliveries and re-ratings insert more rows
-- for the same (tenant_id, cdr_id); ReplacingMergeTree keeps the one with the latest rated_at
-- when parts merge, and every query reads through FINAL (or the views built on it) so it sees
-- exactly one row per CDR at any moment. Money is Decimal, never Float.
-- reseller_id is the attribution used (the CDR's own, else the client's membership, NULL for
-- Direct); cdr_reseller_id is what the CDR itself carried, so a re-rating can resolve again.
-- Daily partitions: a CDR's start_time never changes, so all its versions share a partition,
-- and balances are pre-aggregated per partition (see 003_balances.sql).
CREATE TABLE IF NOT EXISTS call_history
(
    cdr_id String,
    session_id String,
    tenant_id LowCardinality(String),
    customer_id String,
    client_id String,
    reseller_id Nullable(String),
    cdr_reseller_id Nullable(String),
    caller String,
    callee String,
    start_time DateTime64(6, 'UTC'),
    answer_time Nullable(DateTime64(6, 'UTC')),
    end_time DateTime64(6, 'UTC'),
    duration_ms Int64,
    disposition LowCardinality(Nullable(String)),
    sip_code Nullable(Int64),
    status LowCardinality(String),
    unrated_reason Nullable(String),
    rated_at DateTime64(6, 'UTC'),
    reference_version String,
    customer_plan_id Nullable(String),
    customer_deck_version Nullable(String),
    customer_prefix Nullable(String),
    customer_destination Nullable(String),
    customer_rate Nullable(Decimal(38, 9)),
    customer_billed_seconds Nullable(Int64),
    customer_amount Nullable(Decimal(38, 6)),
    customer_currency LowCardinality(Nullable(String)),
    client_plan_id Nullable(String),
    client_deck_version Nullable(String),
    client_prefix Nullable(String),
    client_destination Nullable(String),
    client_rate Nullable(Decimal(38, 9)),
    client_billed_seconds Nullable(Int64),
    client_amount Nullable(Decimal(38, 6)),
    client_currency LowCardinality(Nullable(String)),
    reseller_plan_id Nullable(String),
    reseller_deck_version Nullable(String),
    reseller_prefix Nullable(String),
    reseller_destination Nullable(String),
    reseller_rate Nullable(Decimal(38, 9)),
    reseller_billed_seconds Nullable(Int64),
    reseller_amount Nullable(Decimal(38, 6)),
    reseller_currency LowCardinality(Nullable(String))
)
ENGINE = ReplacingMergeTree(rated_at)
PARTITION BY toDate(start_time)
ORDER BY (tenant_id, cdr_id);
