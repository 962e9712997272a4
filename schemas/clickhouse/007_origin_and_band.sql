-- Tariff v2 (DESIGN.md section 8): each leg records the origin group and the time band of the
-- deck row that priced it (NULL where that row names none, or where the leg did not rate).
ALTER TABLE call_history ADD COLUMN IF NOT EXISTS customer_origin LowCardinality(Nullable(String)) AFTER customer_currency;
ALTER TABLE call_history ADD COLUMN IF NOT EXISTS customer_band LowCardinality(Nullable(String)) AFTER customer_origin;
ALTER TABLE call_history ADD COLUMN IF NOT EXISTS client_origin LowCardinality(Nullable(String)) AFTER client_currency;
ALTER TABLE call_history ADD COLUMN IF NOT EXISTS client_band LowCardinality(Nullable(String)) AFTER client_origin;
ALTER TABLE call_history ADD COLUMN IF NOT EXISTS reseller_origin LowCardinality(Nullable(String)) AFTER reseller_currency;
ALTER TABLE call_history ADD COLUMN IF NOT EXISTS reseller_band LowCardinality(Nullable(String)) AFTER reseller_origin;

-- A view of every call-history column takes its columns when it is created: made again, it
-- has the new ones.
CREATE OR REPLACE VIEW call_history_current AS
SELECT *, ifNull(reseller_id, 'Direct') AS reseller, reseller_amount AS reseller_cost
FROM call_history FINAL
WHERE status != 'superseded';

CREATE OR REPLACE VIEW tenant_call_history AS
SELECT *
FROM call_history_current
WHERE tenant_id = {tenant:String};

-- A reseller sees the origin group and time band that priced its leg.
CREATE OR REPLACE VIEW reseller_call_history AS
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
    reseller_currency,
    reseller_origin,
    reseller_band
FROM call_history FINAL
WHERE tenant_id = {tenant:String} AND reseller_id = {reseller:String};
