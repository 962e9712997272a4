-- Money alerts: the figures the alerts of pipeline/storage/alerts.py compare with thresholds
-- (docs/alerts.md). Views only: thresholds, the multiplier k, the minimum, the time windows and
-- "now" vary, so the comparisons are SQL with bound parameters in pipeline/storage/alerts.py
-- (and, with their documented defaults, in deploy/grafana/dashboards/money-alerts.json).

-- Each account of the current roster with its money per currency, from `balances` (all time:
-- every rated call and every payment recorded). An account whose accounts.csv row names a
-- currency is read in that currency only (the currency of its credit limit), with zeros when it
-- has no balance in it yet; an account without one has a row per currency of its balances.
-- rated: its leg as rated; paid: payments in (customer) or payouts out (client, reseller);
-- owed = rated - paid (what the customer owes the tenant; what the tenant owes a client or a
-- reseller); credit = paid - rated (money paid ahead and not yet used up by calls).
CREATE VIEW IF NOT EXISTS account_money AS
SELECT
    tenant_id,
    scope,
    account_id,
    billing_type,
    credit_limit,
    status,
    currency,
    rated,
    paid,
    rated - paid AS owed,
    paid - rated AS credit
FROM
(
    SELECT a.tenant_id AS tenant_id, a.scope AS scope, a.account_id AS account_id,
           a.billing_type AS billing_type, a.credit_limit AS credit_limit, a.status AS status,
           assumeNotNull(a.currency) AS currency,
           CAST(ifNull(b.amount, 0), 'Decimal(38, 6)') AS rated,
           CAST(ifNull(b.payments, 0), 'Decimal(38, 6)') AS paid
    FROM (SELECT * FROM roster_accounts_current WHERE currency IS NOT NULL) AS a
    LEFT JOIN balances AS b
        ON b.tenant_id = a.tenant_id AND b.scope = a.scope AND b.account_id = a.account_id
        AND b.currency = assumeNotNull(a.currency)
    UNION ALL
    SELECT a.tenant_id AS tenant_id, a.scope AS scope, a.account_id AS account_id,
           a.billing_type AS billing_type, a.credit_limit AS credit_limit, a.status AS status,
           b.currency AS currency,
           CAST(b.amount, 'Decimal(38, 6)') AS rated,
           CAST(b.payments, 'Decimal(38, 6)') AS paid
    FROM (SELECT * FROM roster_accounts_current WHERE currency IS NULL) AS a
    INNER JOIN balances AS b
        ON b.tenant_id = a.tenant_id AND b.scope = a.scope AND b.account_id = a.account_id
);

-- The current row of each CDR once per leg that names an account: the customer, the client,
-- and the reseller (none for Direct). amount and currency are NULL where the leg does not
-- apply (no plan) or did not rate; the call still went through the account.
CREATE VIEW IF NOT EXISTS call_legs_current AS
SELECT
    tenant_id,
    cdr_id,
    start_time,
    status,
    leg.1 AS scope,
    assumeNotNull(leg.2) AS account_id,
    leg.3 AS currency,
    leg.4 AS amount
FROM call_history_current
ARRAY JOIN [
    ('customer', CAST(customer_id, 'Nullable(String)'), customer_currency, customer_amount),
    ('client', CAST(client_id, 'Nullable(String)'), client_currency, client_amount),
    ('reseller', reseller_id, reseller_currency, reseller_amount)
] AS leg
WHERE leg.2 IS NOT NULL;
