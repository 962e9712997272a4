-- Billing periods: statements frozen when a period is closed (docs/billing-periods.md).
-- Written by pipeline/storage/periods.py; read by pipeline/storage/statements.py.
--
-- A close of a tenant's period (a month, 'YYYY-MM', in each account's time zone) is identified
-- by close_id (a fresh id per close). It writes, in this order: the items booked in the period
-- (statement_items), the statements computed from them (closed_statements), and last the event
-- that makes the close count (period_events). A crash before the event leaves rows no event
-- names: readers ignore them, and closing again writes a new close_id. Readers use, per tenant
-- and period, the newest event: 'close' (the period is closed, its statements are those of the
-- event's close_id) or 'reopen' (the period is open: its statements are computed live again).

-- The log of closes and reopens, never changed: who did what, when and why.
CREATE TABLE IF NOT EXISTS period_events
(
    tenant_id LowCardinality(String),
    period String,
    action LowCardinality(String),
    close_id String,
    digest String,
    statements UInt64,
    actor String,
    reason String,
    at DateTime64(6, 'UTC')
)
ENGINE = MergeTree
ORDER BY (tenant_id, period, at);

-- What a close froze, one row per item booked in the period: a call's leg (kind 'call', the
-- leg's amount), a payment (kind 'payment', its amount), or an adjustment (kind 'adjustment':
-- the difference between the live amount of an item of an earlier closed period, belongs_to,
-- and what had been booked for it). amount is signed as the balance moves: calls and
-- adjustments as computed, payments negative. instant: start_time, recorded_at, or the instant
-- the adjustment was booked at (the start of the first open period).
CREATE TABLE IF NOT EXISTS statement_items
(
    tenant_id LowCardinality(String),
    period String,
    close_id String,
    kind LowCardinality(String),
    item_kind LowCardinality(String),
    item_id String,
    scope LowCardinality(String),
    account_id String,
    currency LowCardinality(String),
    belongs_to String,
    instant DateTime64(6, 'UTC'),
    destination String,
    billed_seconds Int64,
    amount Decimal(38, 6),
    old_amount Decimal(38, 6),
    new_amount Decimal(38, 6)
)
ENGINE = ReplacingMergeTree
ORDER BY (tenant_id, period, close_id, kind, item_kind, item_id, scope, account_id, currency,
          belongs_to);

-- The statements of a close, one per account and currency: the figures, the whole statement as
-- canonical JSON (document) and its SHA-256 (digest).
CREATE TABLE IF NOT EXISTS closed_statements
(
    tenant_id LowCardinality(String),
    period String,
    close_id String,
    scope LowCardinality(String),
    account_id String,
    currency LowCardinality(String),
    opening Decimal(38, 6),
    amount Decimal(38, 6),
    payments Decimal(38, 6),
    adjustments Decimal(38, 6),
    closing Decimal(38, 6),
    document String,
    digest String
)
ENGINE = ReplacingMergeTree
ORDER BY (tenant_id, period, close_id, scope, account_id, currency);
