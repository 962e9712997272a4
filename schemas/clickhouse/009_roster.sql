-- The roster of each reference-data version the pipeline rated with: accounts (accounts.csv),
-- join codes (join_codes.csv), enrollments (enrollments.csv) and each client's memberships as the
-- loader resolved them (memberships.csv and the enrollments combined: the reseller a client has
-- over time, the same intervals rating attributes calls with). Keyed by reference_version and
-- written idempotently (ReplacingMergeTree on the whole key, read through FINAL): the same
-- version written twice keeps one row per key. roster_loads records when each version was
-- loaded (a rater starting or swapping to it, an offline `rate --store`); the current roster is
-- the version loaded last. Written by pipeline/storage/roster.py; rating never reads it.
CREATE TABLE IF NOT EXISTS roster_accounts
(
    reference_version String,
    tenant_id LowCardinality(String),
    scope LowCardinality(String),
    account_id String,
    name String,
    company String,
    email String,
    billing_type LowCardinality(String),
    credit_limit Nullable(Decimal(38, 9)),
    currency Nullable(String),
    status LowCardinality(String),
    timezone String
)
ENGINE = ReplacingMergeTree
ORDER BY (reference_version, tenant_id, scope, account_id);

-- reseller_id NULL: a Direct (tenant-managed) code.
CREATE TABLE IF NOT EXISTS roster_join_codes
(
    reference_version String,
    tenant_id LowCardinality(String),
    code String,
    reseller_id Nullable(String)
)
ENGINE = ReplacingMergeTree
ORDER BY (reference_version, tenant_id, code);

-- Each enrollment with the tenant and reseller of its code (NULL: Direct) and its end (the
-- client's next enrollment; NULL: still current).
CREATE TABLE IF NOT EXISTS roster_enrollments
(
    reference_version String,
    tenant_id LowCardinality(String),
    client_id String,
    join_code String,
    reseller_id Nullable(String),
    enrolled_at DateTime64(6, 'UTC'),
    until Nullable(DateTime64(6, 'UTC'))
)
ENGINE = ReplacingMergeTree
ORDER BY (reference_version, tenant_id, client_id, enrolled_at);

-- The reseller of a client over [effective_from, effective_until) (NULL until: open-ended).
-- tenant_id is resolved when written (see docs/resellers.md): memberships.csv names no tenant.
CREATE TABLE IF NOT EXISTS roster_memberships
(
    reference_version String,
    tenant_id LowCardinality(String),
    client_id String,
    reseller_id String,
    effective_from DateTime64(6, 'UTC'),
    effective_until Nullable(DateTime64(6, 'UTC'))
)
ENGINE = ReplacingMergeTree
ORDER BY (reference_version, tenant_id, client_id, effective_from);

-- When each version was loaded: one row per version, its latest load.
CREATE TABLE IF NOT EXISTS roster_loads
(
    reference_version String,
    loaded_at DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(loaded_at)
ORDER BY reference_version;

-- The version loaded last (no row before any roster was written).
CREATE VIEW IF NOT EXISTS roster_current_version AS
SELECT argMax(reference_version, loaded_at) AS reference_version, max(loaded_at) AS last_loaded_at
FROM roster_loads FINAL
HAVING count() > 0;

CREATE VIEW IF NOT EXISTS roster_accounts_current AS
SELECT * EXCEPT reference_version
FROM roster_accounts FINAL
WHERE reference_version IN (SELECT reference_version FROM roster_current_version);

CREATE VIEW IF NOT EXISTS roster_join_codes_current AS
SELECT * EXCEPT reference_version
FROM roster_join_codes FINAL
WHERE reference_version IN (SELECT reference_version FROM roster_current_version);

CREATE VIEW IF NOT EXISTS roster_enrollments_current AS
SELECT * EXCEPT reference_version
FROM roster_enrollments FINAL
WHERE reference_version IN (SELECT reference_version FROM roster_current_version);

CREATE VIEW IF NOT EXISTS roster_memberships_current AS
SELECT * EXCEPT reference_version
FROM roster_memberships FINAL
WHERE reference_version IN (SELECT reference_version FROM roster_current_version);

-- Management -> Resellers: one row per reseller of a tenant. Listed: every reseller account of
-- the current roster, and every reseller id with traffic, memberships, a join code or money but
-- no account row (name empty, flag 'no account'): never dropped. clients: clients whose
-- membership now is this reseller; online: of those, how many client_status_current says are
-- online; balance: per currency, what is owed to it, the `balance` of its rows of `balances`
-- (reseller leg rated minus reseller payouts), so the page and `balances` agree exactly; calls:
-- calls attributed to it in call history (current rows); flag 'inactive, has traffic' for an
-- inactive reseller with attributed calls (attribution is a fact: they are rated all the same).
CREATE VIEW IF NOT EXISTS resellers_page AS
SELECT
    k.tenant_id AS tenant_id,
    k.reseller_id AS reseller_id,
    a.name AS name,
    a.company AS company,
    a.email AS email,
    m.clients AS clients,
    m.online AS online,
    b.balance AS balance,
    t.calls AS calls,
    a.billing_type AS billing_type,
    a.status AS status,
    multiIf(a.known = 0, 'no account', a.status = 'inactive' AND t.calls > 0,
            'inactive, has traffic', '') AS flag
FROM
(
    SELECT DISTINCT tenant_id, reseller_id
    FROM
    (
        SELECT tenant_id, account_id AS reseller_id
        FROM roster_accounts_current WHERE scope = 'reseller'
        UNION ALL
        SELECT tenant_id, reseller_id FROM roster_memberships_current
        UNION ALL
        SELECT tenant_id, assumeNotNull(reseller_id) FROM roster_join_codes_current
        WHERE reseller_id IS NOT NULL
        UNION ALL
        SELECT tenant_id, assumeNotNull(reseller_id) FROM call_history_current
        WHERE reseller_id IS NOT NULL
        UNION ALL
        SELECT tenant_id, account_id FROM balances WHERE scope = 'reseller'
    )
) AS k
LEFT JOIN
(
    SELECT tenant_id, account_id AS reseller_id, name, company, email, billing_type, status,
           toUInt8(1) AS known
    FROM roster_accounts_current WHERE scope = 'reseller'
) AS a ON a.tenant_id = k.tenant_id AND a.reseller_id = k.reseller_id
LEFT JOIN
(
    SELECT n.tenant_id AS tenant_id, n.reseller_id AS reseller_id,
           uniqExact(n.client_id) AS clients,
           uniqExactIf(n.client_id, s.online) AS online
    FROM
    (
        SELECT tenant_id, reseller_id, client_id FROM roster_memberships_current
        WHERE effective_from <= now64(6)
          AND (effective_until IS NULL OR now64(6) < effective_until)
    ) AS n
    LEFT JOIN client_status_current AS s ON s.tenant_id = n.tenant_id AND s.client_id = n.client_id
    GROUP BY n.tenant_id, n.reseller_id
) AS m ON m.tenant_id = k.tenant_id AND m.reseller_id = k.reseller_id
LEFT JOIN
(
    SELECT tenant_id, account_id AS reseller_id,
           CAST((groupArray(currency), groupArray(balance)), 'Map(String, Decimal(38, 6))')
               AS balance
    FROM balances WHERE scope = 'reseller'
    GROUP BY tenant_id, account_id
) AS b ON b.tenant_id = k.tenant_id AND b.reseller_id = k.reseller_id
LEFT JOIN
(
    SELECT tenant_id, assumeNotNull(reseller_id) AS reseller_id, count() AS calls
    FROM call_history_current WHERE reseller_id IS NOT NULL
    GROUP BY tenant_id, reseller_id
) AS t ON t.tenant_id = k.tenant_id AND t.reseller_id = k.reseller_id;

-- The Resellers page of one tenant.
CREATE VIEW IF NOT EXISTS tenant_resellers_page AS
SELECT *
FROM resellers_page
WHERE tenant_id = {tenant:String};

-- Join Codes: each code of the current roster, its reseller or Direct, and the clients enrolled
-- through it: clients (every client that ever enrolled with it), current_clients (those whose
-- enrollment through it is in effect now), client_ids (sorted).
CREATE VIEW IF NOT EXISTS join_codes_page AS
SELECT
    c.tenant_id AS tenant_id,
    c.code AS code,
    ifNull(c.reseller_id, 'Direct') AS reseller,
    a.name AS reseller_name,
    e.clients AS clients,
    e.current_clients AS current_clients,
    e.client_ids AS client_ids
FROM roster_join_codes_current AS c
LEFT JOIN
(
    SELECT tenant_id, account_id AS reseller_id, name
    FROM roster_accounts_current WHERE scope = 'reseller'
) AS a ON a.tenant_id = c.tenant_id AND a.reseller_id = ifNull(c.reseller_id, '')
LEFT JOIN
(
    SELECT tenant_id, join_code,
           uniqExact(client_id) AS clients,
           uniqExactIf(client_id, enrolled_at <= now64(6) AND (until IS NULL OR now64(6) < until))
               AS current_clients,
           arraySort(groupUniqArray(client_id)) AS client_ids
    FROM roster_enrollments_current
    GROUP BY tenant_id, join_code
) AS e ON e.tenant_id = c.tenant_id AND e.join_code = c.code;

-- The Join Codes of one tenant.
CREATE VIEW IF NOT EXISTS tenant_join_codes_page AS
SELECT *
FROM join_codes_page
WHERE tenant_id = {tenant:String};
