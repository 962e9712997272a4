-- Tenant- and reseller-scoped views for analysts, dashboards and reseller portals.
--
-- Parameterized views (ClickHouse's `{name:Type}` view parameters): query them as table
-- functions, e.g. `SELECT * FROM tenant_call_history(tenant = 'tnt-01')`. They are built on the
-- exact views of 003_balances.sql (one row, the latest rating, per CDR), so they return exactly
-- the rows of those views for the tenant (or reseller) asked for.
--
-- A parameter is what the caller asks for, not what the caller is allowed to see: on a server,
-- the row policies rendered by `vmgate-rating schema --access` restrict what each user can read
-- (views run as the invoker, so the policies on call_history, payments and balance_partitions
-- apply through every view). See docs/access.md.

-- Call history of one tenant: every column, every reseller and Direct.
CREATE VIEW IF NOT EXISTS tenant_call_history AS
SELECT *
FROM call_history_current
WHERE tenant_id = {tenant:String};

-- Balances of one tenant (customers, VMGateClients, resellers), exact and pre-aggregated.
CREATE VIEW IF NOT EXISTS tenant_balances AS
SELECT *
FROM balances
WHERE tenant_id = {tenant:String};

-- Finance -> Billing of one tenant, per currency.
CREATE VIEW IF NOT EXISTS tenant_billing_overview AS
SELECT *
FROM billing_overview
WHERE tenant_id = {tenant:String};

-- What a reseller sees of the calls attributed to it (the latest rating of each CDR, so a call
-- re-rated away from the reseller disappears from it): the session, the dialled number, its
-- VMGateClient, and its own leg only. Not the tenant's customer, caller, customer price or
-- client cost. Reads call_history FINAL (the same read as call_history_current) and names only
-- these columns, so a server can grant a reseller exactly them.
-- reseller_status: rated; unrated (the reseller deck has no matching prefix); no_plan (no
-- reseller-scoped plan applied at the call's start).
CREATE VIEW IF NOT EXISTS reseller_call_history AS
SELECT
    cdr_id,
    session_id,
    tenant_id,
    reseller_id,
    client_id,
    callee,
    start_time,
    answer_time,
    end_time,
    duration_ms,
    disposition,
    sip_code,
    rated_at,
    multiIf(reseller_plan_id IS NULL, 'no_plan', reseller_amount IS NULL, 'unrated', 'rated')
        AS reseller_status,
    reseller_plan_id,
    reseller_deck_version,
    reseller_prefix,
    reseller_destination,
    reseller_rate,
    reseller_billed_seconds,
    reseller_amount,
    reseller_currency
FROM call_history FINAL
WHERE tenant_id = {tenant:String} AND reseller_id = {reseller:String};

-- Payouts recorded to one reseller (payments of kind reseller_payout_out), each payment once.
CREATE VIEW IF NOT EXISTS reseller_payouts AS
SELECT payment_id, tenant_id, account_id AS reseller_id, amount, currency, recorded_at, note
FROM payments FINAL
WHERE tenant_id = {tenant:String}
  AND kind = 'reseller_payout_out'
  AND account_id = {reseller:String};

-- What is owed to one reseller, per currency: rated on its leg, paid out, and the balance.
-- Summed from the reseller's own rows and payouts (the two views above), so a reseller needs no
-- access to the tenant's customer or client legs; equals the reseller's rows of `balances`.
CREATE VIEW IF NOT EXISTS reseller_balance AS
SELECT
    tenant_id,
    reseller_id,
    currency,
    sum(rated) AS amount,
    sum(paid) AS payments,
    sum(rated) - sum(paid) AS balance,
    sum(calls) AS calls
FROM
(
    SELECT tenant_id, assumeNotNull(reseller_id) AS reseller_id,
           assumeNotNull(reseller_currency) AS currency,
           CAST(assumeNotNull(reseller_amount), 'Decimal(38, 6)') AS rated,
           CAST(0, 'Decimal(38, 6)') AS paid, toUInt64(1) AS calls
    FROM reseller_call_history(tenant = {tenant:String}, reseller = {reseller:String})
    WHERE reseller_amount IS NOT NULL
    UNION ALL
    SELECT tenant_id, reseller_id, currency, CAST(0, 'Decimal(38, 6)') AS rated,
           CAST(amount, 'Decimal(38, 6)') AS paid, toUInt64(0) AS calls
    FROM reseller_payouts(tenant = {tenant:String}, reseller = {reseller:String})
)
GROUP BY tenant_id, reseller_id, currency;
