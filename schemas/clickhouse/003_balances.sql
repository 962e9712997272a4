-- Balances, exact under duplicates and re-rating, and fast as history grows.
--
-- Truth is call_history FINAL (the latest rating of each CDR). Summing it over ten million rows
-- takes seconds, so sums are pre-aggregated per call_history partition (a day of start_time):
-- balance_partitions holds, for a partition, the per-account sums computed from the exact set
-- of data parts the partition had at that time (its fingerprint: a hash of the active part
-- names), and balance_refreshes records which (partition, fingerprint) pairs were computed.
-- Any insert into a partition (a new CDR, a re-delivery, a re-rating) or a merge adds or
-- replaces parts and so changes the fingerprint: the stored sums no longer match and are not
-- used. The views below use the stored sums for partitions whose fingerprint still matches and
-- compute every other partition live from call_history FINAL, so they are always exact;
-- `vmgate-rating balances` (or `refresh_balances`) brings stale partitions up to date first,
-- so most of the history is read pre-aggregated.
CREATE TABLE IF NOT EXISTS balance_partitions
(
    partition_id String,
    fingerprint UInt64,
    tenant_id LowCardinality(String),
    scope LowCardinality(String),
    account_id String,
    currency LowCardinality(String),
    amount Decimal(38, 6),
    calls UInt64,
    computed_at DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(computed_at)
ORDER BY (partition_id, fingerprint, tenant_id, scope, account_id, currency);

CREATE TABLE IF NOT EXISTS balance_refreshes
(
    partition_id String,
    fingerprint UInt64,
    computed_at DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(computed_at)
ORDER BY (partition_id, fingerprint);

-- The active data parts of each call_history partition, as a fingerprint.
CREATE VIEW IF NOT EXISTS call_history_partitions AS
SELECT partition_id, cityHash64(arraySort(groupArray(name))) AS fingerprint, sum(rows) AS raw_rows
FROM system.parts
WHERE database = '{{database}}' AND table = 'call_history' AND active
GROUP BY partition_id;

-- Partitions whose stored sums match their current parts.
CREATE VIEW IF NOT EXISTS balance_fresh_partitions AS
SELECT r.partition_id AS partition_id, r.fingerprint AS fingerprint
FROM (SELECT DISTINCT partition_id, fingerprint FROM balance_refreshes) AS r
INNER JOIN call_history_partitions AS c
    ON r.partition_id = c.partition_id AND r.fingerprint = c.fingerprint;

-- Rated amounts per tenant, scope, account and currency: stored sums of fresh partitions plus
-- live sums of the others.
CREATE VIEW IF NOT EXISTS rated_totals AS
SELECT tenant_id, scope, account_id, currency, sum(amount) AS amount, sum(calls) AS calls
FROM
(
    SELECT tenant_id, scope, account_id, currency, amount, calls
    FROM balance_partitions FINAL
    WHERE (partition_id, fingerprint) IN (SELECT partition_id, fingerprint FROM balance_fresh_partitions)
    UNION ALL
    SELECT
        tenant_id,
        leg.1 AS scope,
        leg.2 AS account_id,
        assumeNotNull(leg.3) AS currency,
        assumeNotNull(leg.4) AS amount,
        toUInt64(1) AS calls
    FROM call_history FINAL
    ARRAY JOIN [
        ('customer', customer_id, customer_currency, customer_amount),
        ('client', client_id, client_currency, client_amount),
        ('reseller', ifNull(reseller_id, ''), reseller_currency, reseller_amount)
    ] AS leg
    WHERE leg.4 IS NOT NULL
      AND _partition_id NOT IN (SELECT partition_id FROM balance_fresh_partitions)
)
GROUP BY tenant_id, scope, account_id, currency;

-- One partition's per-account sums, straight from call_history FINAL (what a refresh stores).
CREATE VIEW IF NOT EXISTS partition_totals AS
SELECT
    tenant_id,
    leg.1 AS scope,
    leg.2 AS account_id,
    assumeNotNull(leg.3) AS currency,
    sum(assumeNotNull(leg.4)) AS amount,
    count() AS calls
FROM call_history FINAL
ARRAY JOIN [
    ('customer', customer_id, customer_currency, customer_amount),
    ('client', client_id, client_currency, client_amount),
    ('reseller', ifNull(reseller_id, ''), reseller_currency, reseller_amount)
] AS leg
WHERE leg.4 IS NOT NULL AND _partition_id = {partition:String}
GROUP BY tenant_id, scope, account_id, currency;

-- Payments per tenant, scope, account and currency (each payment once).
CREATE VIEW IF NOT EXISTS payment_totals AS
SELECT
    tenant_id,
    multiIf(kind = 'customer_payment_in', 'customer', kind = 'client_payout_out', 'client', 'reseller') AS scope,
    account_id,
    currency,
    sum(amount) AS amount,
    count() AS payments
FROM payments FINAL
GROUP BY tenant_id, scope, account_id, currency;

-- Balances: what was rated, what was paid, and what is left (amount - payments). For a customer
-- the balance is what the customer still owes; for a client or reseller, what is still owed to it.
CREATE VIEW IF NOT EXISTS balances AS
SELECT
    tenant_id,
    scope,
    account_id,
    currency,
    sum(rated) AS amount,
    sum(paid) AS payments,
    sum(rated) - sum(paid) AS balance,
    sum(calls) AS calls
FROM
(
    SELECT tenant_id, scope, account_id, currency, CAST(amount, 'Decimal(38, 6)') AS rated,
           CAST(0, 'Decimal(38, 6)') AS paid, calls
    FROM rated_totals
    UNION ALL
    SELECT tenant_id, scope, account_id, currency, CAST(0, 'Decimal(38, 6)') AS rated,
           CAST(amount, 'Decimal(38, 6)') AS paid, toUInt64(0) AS calls
    FROM payment_totals
)
GROUP BY tenant_id, scope, account_id, currency;

-- Finance -> Billing: per tenant and currency, customer totals, VMGateClient totals and what is
-- owed to resellers, with the payments recorded against each.
CREATE VIEW IF NOT EXISTS billing_overview AS
SELECT
    tenant_id,
    currency,
    sumIf(amount, scope = 'customer') AS customer_total,
    sumIf(payments, scope = 'customer') AS customer_payments,
    sumIf(amount, scope = 'client') AS client_total,
    sumIf(payments, scope = 'client') AS client_payouts,
    sumIf(amount, scope = 'reseller') AS reseller_total,
    sumIf(payments, scope = 'reseller') AS reseller_payouts,
    sumIf(balance, scope = 'reseller') AS owed_to_resellers
FROM balances
GROUP BY tenant_id, currency;

-- Call history as operators read it: one current row per CDR, the reseller or Direct, and the
-- reseller cost where a reseller-scoped plan applied.
CREATE VIEW IF NOT EXISTS call_history_current AS
SELECT *, ifNull(reseller_id, 'Direct') AS reseller, reseller_amount AS reseller_cost
FROM call_history FINAL;
