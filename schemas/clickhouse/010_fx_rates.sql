-- Exchange rates for reporting (fx_rates.csv) of each reference-data version the pipeline rated
-- with, written with the roster (pipeline/storage/roster.py): from effective_from, one unit of
-- currency buys rate units of quote, until the pair's next rate. Keyed by reference_version and
-- written idempotently like the roster; the current rates are those of the version loaded last
-- (roster_current_version). No tenant column: rates are the same for every tenant, so no row
-- policy applies. Rating never reads them: they convert finished amounts for reports.
CREATE TABLE IF NOT EXISTS fx_rates
(
    reference_version String,
    currency LowCardinality(String),
    quote LowCardinality(String),
    rate Decimal(38, 12),
    effective_from DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (reference_version, currency, quote, effective_from);

CREATE VIEW IF NOT EXISTS fx_rates_current AS
SELECT * EXCEPT reference_version
FROM fx_rates FINAL
WHERE reference_version IN (SELECT reference_version FROM roster_current_version);

-- How an amount in from_currency becomes to_currency from effective_from on: 'direct' (a rate
-- of that pair: amount * rate) or 'inverse' (only the reverse pair has rates: amount / rate).
-- A pair with any rate of its own never uses the reverse pair's. No chaining through a third
-- currency.
CREATE VIEW IF NOT EXISTS fx_conversions_current AS
SELECT currency AS from_currency, quote AS to_currency, rate, effective_from,
       'direct' AS direction
FROM fx_rates_current
UNION ALL
SELECT quote AS from_currency, currency AS to_currency, rate, effective_from,
       'inverse' AS direction
FROM fx_rates_current
WHERE (quote, currency) NOT IN (SELECT currency, quote FROM fx_rates_current);

-- Every amount of the billing overview, one row each, converted into {currency}: each rated leg
-- of each call (current rating, at its start_time) and each payment (at its recorded_at), with
-- the rate in effect at that instant (the pair's latest effective_from at or before it).
-- conversion: 'same' (already in {currency}, unchanged), 'direct', 'inverse', or 'none' (no
-- rate in effect: converted is NULL, never guessed). converted is exact: the amount (10^-6
-- units) times the rate (10^-12 units), or divided by it, in 256-bit integers, rounded once to
-- 6 decimal places half away from zero (half up: amounts are never negative).
CREATE VIEW IF NOT EXISTS amounts_in_currency AS
SELECT
    i.tenant_id AS tenant_id,
    i.figure AS figure,
    i.cdr_id AS cdr_id,
    i.currency AS currency,
    i.amount AS amount,
    i.at AS at,
    multiIf(i.currency = {currency:String}, 'same', r.direction = '', 'none', r.direction)
        AS conversion,
    if(conversion IN ('direct', 'inverse'), r.rate, NULL) AS rate,
    if(conversion IN ('direct', 'inverse'), r.effective_from, NULL) AS rate_from,
    toInt256(i.amount * 1000000) AS _units,
    toInt256(r.rate * 1000000000000) AS _rate_units,
    if(conversion = 'inverse', _units * toInt256(1000000000000), _units * _rate_units) AS _num,
    if(conversion = 'inverse', _rate_units, toInt256(1000000000000)) AS _den,
    multiIf(
        conversion = 'same', i.amount,
        conversion = 'none', NULL,
        toDecimal128(sign(_num) * intDiv(2 * abs(_num) + _den, 2 * _den), 6) / 1000000
    ) AS converted
FROM
(
    SELECT tenant_id, leg.1 AS figure, cdr_id, assumeNotNull(leg.2) AS currency,
           assumeNotNull(leg.3) AS amount, start_time AS at
    FROM call_history_current
    ARRAY JOIN [
        ('customer', customer_currency, customer_amount),
        ('client', client_currency, client_amount),
        ('reseller', reseller_currency, reseller_amount)
    ] AS leg
    WHERE leg.3 IS NOT NULL AND status != 'superseded'
    UNION ALL
    SELECT tenant_id,
           multiIf(kind = 'customer_payment_in', 'customer_payment',
                   kind = 'client_payout_out', 'client_payout', 'reseller_payout') AS figure,
           '' AS cdr_id, currency, amount, recorded_at AS at
    FROM payments FINAL
) AS i
ASOF LEFT JOIN
(
    SELECT from_currency, rate, effective_from, direction
    FROM fx_conversions_current
    WHERE to_currency = {currency:String}
) AS r ON i.currency = r.from_currency AND i.at >= r.effective_from;
