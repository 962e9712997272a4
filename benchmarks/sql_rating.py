"""Baseline (c): rating done in ClickHouse SQL (chdb), over a raw CDR table.

The raw table holds the CDRs as they arrive (typed JSON columns, loaded with ``JSONEachRow``);
plans, deck rows, associations and memberships are tables loaded from the plans folder. One
``INSERT ... SELECT`` rates the batch by the rules of DESIGN.md section 4:

* reseller: the CDR's, else the client's membership at the start (``ASOF LEFT JOIN``);
* each leg's plan: the association effective at the start (``ASOF LEFT JOIN``, then the
  ``effective_until`` check);
* the longest prefix: every prefix of the callee (``ARRAY JOIN range(...)``) joined to the deck
  on (plan, prefix), effective rows only, ``argMax`` by (prefix length, effective_from);
* cost in ``Int128`` units of 10^-9 with the plan's rounding, exactly like the engine.

It runs on the clean batch: the SQL does not reproduce the decoder's validation (a malformed
line is simply skipped by the JSON reader), which favours this baseline. Before its speed is
reported, every row is compared with ``rate_batch``'s output and any difference raises.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.common import JSON, RATED_AT, PeakRss

_RAW_COLUMNS = (
    "cdr_id String, session_id String, tenant_id String, customer_id String, client_id String, "
    "reseller_id Nullable(String), caller String, callee String, start_time String, "
    "answer_time Nullable(String), end_time String, duration_ms Int64, "
    "disposition Nullable(String), sip_code Nullable(Int64)"
)
_DECK_COLUMNS = (
    "prefix String, destination String, rate String, connection_fee String, "
    "initial_increment String, subsequent_increment String, effective_from String, "
    "effective_until String"
)
_TIME = "parseDateTime64BestEffort(upper({0}), 6, 'UTC')"
_OPEN = "toDateTime64('2200-01-01 00:00:00', 6, 'UTC')"


def _until(column: str) -> str:
    return f"if({column} = '', {_OPEN}, {_TIME.format(column)})"


SETUP = [
    f"CREATE TABLE raw_cdr ({_RAW_COLUMNS}) ENGINE = MergeTree ORDER BY tuple()",
    """CREATE TABLE plans ENGINE = Memory AS
    SELECT plan_id, tenant_id, scope, currency,
           if(decimals = '', 6, toUInt8OrZero(decimals)) AS decimals,
           if(rounding = '', 'half_up', rounding) AS rounding
    FROM file({plans_csv:String}, CSVWithNames,
      'plan_id String, tenant_id String, name String, scope String, currency String,
       decimals String, rounding String')""",
    f"""CREATE TABLE deck ENGINE = Memory AS
    SELECT replaceOne(_file, '.csv', '') AS plan_id, prefix, destination,
           toInt64(toDecimal128OrZero(rate, 9) * 1000000000) AS rate_units,
           toInt64(toDecimal128OrZero(if(connection_fee = '', '0', connection_fee), 9)
                   * 1000000000) AS fee_units,
           if(initial_increment = '', 1, toInt64OrZero(initial_increment)) AS inc1,
           if(subsequent_increment = '', 1, toInt64OrZero(subsequent_increment)) AS inc2,
           {_TIME.format("effective_from")} AS eff_from,
           {_until("effective_until")} AS eff_until
    FROM file({{decks_glob:String}}, CSVWithNames, '{_DECK_COLUMNS}')""",
    f"""CREATE TABLE assoc ENGINE = Memory AS
    SELECT a.scope AS scope, p.tenant_id AS tenant_id, a.account_id AS account_id,
           a.plan_id AS plan_id, {_TIME.format("a.effective_from")} AS eff_from,
           {_until("a.effective_until")} AS eff_until
    FROM file({{associations_csv:String}}, CSVWithNames,
      'scope String, account_id String, plan_id String, effective_from String,
       effective_until String') AS a
    INNER JOIN plans AS p ON a.plan_id = p.plan_id""",
    f"""CREATE TABLE memb ENGINE = Memory AS
    SELECT client_id, reseller_id, {_TIME.format("effective_from")} AS eff_from,
           {_until("effective_until")} AS eff_until
    FROM file({{memberships_csv:String}}, CSVWithNames,
      'client_id String, reseller_id String, effective_from String, effective_until String')""",
    """CREATE TABLE rated (
        cdr_id String, reseller_id Nullable(String), status String,
        unrated_reason Nullable(String),
        customer_plan_id String, customer_prefix String, customer_billed Int64,
        customer_amount_units Int128,
        client_plan_id String, client_prefix String, client_billed Int64,
        client_amount_units Int128,
        reseller_plan_id String, reseller_prefix String, reseller_billed Int64,
        reseller_amount_units Int128
    ) ENGINE = MergeTree ORDER BY cdr_id""",
]

LOAD = f"""INSERT INTO raw_cdr SELECT * FROM file({{cdrs:String}}, JSONEachRow, '{_RAW_COLUMNS}')"""

RATE = """
INSERT INTO rated
WITH
cdr AS (
    SELECT cdr_id, tenant_id, customer_id, client_id, reseller_id,
           replaceRegexpOne(replaceRegexpAll(callee, '[ \\\\-]', ''), '^(\\\\+|00)', '')
             AS callee_n,
           parseDateTime64BestEffortOrNull(upper(start_time), 6, 'UTC') AS t0,
           assumeNotNull(t0) AS t,
           duration_ms
    FROM raw_cdr
    WHERE match(callee_n, '^[0-9]{3,15}$') AND t0 IS NOT NULL
),
attributed AS (
    SELECT cdr.cdr_id AS cdr_id, cdr.tenant_id AS tenant_id, cdr.customer_id AS customer_id,
           cdr.client_id AS client_id, cdr.callee_n AS callee_n, cdr.t AS t,
           cdr.duration_ms AS duration_ms,
           if(cdr.reseller_id IS NOT NULL, cdr.reseller_id,
              if(m.client_id != '' AND cdr.t < m.eff_until, m.reseller_id, NULL)) AS reseller
    FROM cdr ASOF LEFT JOIN memb AS m ON cdr.client_id = m.client_id AND cdr.t >= m.eff_from
),
legs AS (
    SELECT cdr_id, tenant_id, callee_n, t, duration_ms, reseller, leg, account
    FROM attributed
    ARRAY JOIN ['customer', 'client', 'reseller'] AS leg,
               [customer_id, client_id, ifNull(reseller, '')] AS account
),
planned AS (
    SELECT legs.cdr_id AS cdr_id, legs.leg AS leg, legs.callee_n AS callee_n, legs.t AS t,
           legs.duration_ms AS duration_ms, legs.reseller AS reseller,
           if(a.plan_id != '' AND legs.t < a.eff_until, a.plan_id, '') AS plan_id
    FROM legs ASOF LEFT JOIN assoc AS a
      ON legs.leg = a.scope AND legs.tenant_id = a.tenant_id AND legs.account = a.account_id
     AND legs.t >= a.eff_from
),
candidates AS (
    SELECT cdr_id, leg, plan_id, t, substring(callee_n, 1, n) AS p
    FROM planned ARRAY JOIN range(1, length(callee_n) + 1) AS n
    WHERE plan_id != ''
),
matched AS (
    SELECT c.cdr_id AS cdr_id, c.leg AS leg,
           argMax((d.prefix, d.rate_units, d.fee_units, d.inc1, d.inc2),
                  (length(d.prefix), d.eff_from)) AS best
    FROM candidates AS c INNER JOIN deck AS d ON c.plan_id = d.plan_id AND c.p = d.prefix
    WHERE d.eff_from <= c.t AND c.t < d.eff_until
    GROUP BY c.cdr_id, c.leg
),
priced AS (
    SELECT pl.cdr_id AS cdr_id, pl.leg AS leg, pl.reseller AS reseller, pl.plan_id AS plan_id,
           m.cdr_id != '' AS hit,
           tupleElement(m.best, 1) AS prefix,
           intDiv(pl.duration_ms + 999, 1000) AS b,
           greatest(tupleElement(m.best, 4), 1) AS i1, greatest(tupleElement(m.best, 5), 1) AS i2,
           if(b = 0, 0, if(b <= i1, i1, i1 + intDiv(b - i1 + i2 - 1, i2) * i2)) AS billed,
           (toInt128(tupleElement(m.best, 3)) * 60
              + toInt128(tupleElement(m.best, 2)) * billed)
             * toInt128(intExp10(pp.decimals)) AS num,
           intDiv(num, toInt128(60000000000)) AS q,
           num % toInt128(60000000000) AS r,
           if(billed = 0, toInt128(0),
              (q + multiIf(pp.rounding = 'half_up', toInt128(r * 2 >= 60000000000),
                           pp.rounding = 'up', toInt128(r > 0), toInt128(0)))
              * toInt128(intExp10(6 - pp.decimals))) AS amount_units,
           multiIf(pl.leg = 'customer' AND pl.plan_id = '', 'customer:no_plan',
                   pl.plan_id != '' AND NOT hit, concat(pl.leg, ':no_prefix'), '') AS failure
    FROM planned AS pl
    LEFT JOIN matched AS m ON pl.cdr_id = m.cdr_id AND pl.leg = m.leg
    LEFT JOIN plans AS pp ON pl.plan_id = pp.plan_id
)
SELECT cdr_id,
       any(reseller) AS reseller_id,
       if(reason IS NULL, 'rated', 'unrated') AS status,
       nullIf(arrayStringConcat(arrayFilter(x -> x != '',
           [anyIf(failure, leg = 'customer'), anyIf(failure, leg = 'client'),
            anyIf(failure, leg = 'reseller')]), ';'), '') AS reason,
       anyIf(if(hit, plan_id, ''), leg = 'customer'), anyIf(prefix, leg = 'customer' AND hit),
       anyIf(billed, leg = 'customer' AND hit), anyIf(amount_units, leg = 'customer' AND hit),
       anyIf(if(hit, plan_id, ''), leg = 'client'), anyIf(prefix, leg = 'client' AND hit),
       anyIf(billed, leg = 'client' AND hit), anyIf(amount_units, leg = 'client' AND hit),
       anyIf(if(hit, plan_id, ''), leg = 'reseller'), anyIf(prefix, leg = 'reseller' AND hit),
       anyIf(billed, leg = 'reseller' AND hit), anyIf(amount_units, leg = 'reseller' AND hit)
FROM priced
GROUP BY cdr_id
SETTINGS join_use_nulls = 0
"""


class SqlMismatchError(AssertionError):
    """The SQL rating and the engine disagree."""


def _engine_rows(params: JSON) -> dict[str, dict[str, Any]]:
    from benchmarks.datagen import read_lines
    from pipeline.rating.decode import decode_cdrs
    from pipeline.rating.engine import rate_batch
    from pipeline.reference.loader import load_plans_folder

    lines = read_lines(Path(params["cdrs"]))
    table = rate_batch(decode_cdrs(lines).good, load_plans_folder(Path(params["plans"])), RATED_AT)
    wanted = ["cdr_id", "reseller_id", "status", "unrated_reason"] + [
        f"{leg}_{c}"
        for leg in ("customer", "client", "reseller")
        for c in ("plan_id", "prefix", "billed_seconds", "amount")
    ]
    return {row["cdr_id"]: row for row in table.select(wanted).to_pylist()}


def _int(value: object) -> int:
    """An Int128 from chdb's Arrow output (16 little-endian bytes) or an int."""
    if isinstance(value, bytes):
        return int.from_bytes(value, "little", signed=True)
    return int(str(value))


def _compare(sql_rows: list[dict[str, Any]], engine: dict[str, dict[str, Any]]) -> int:
    problems: list[str] = []
    if len(sql_rows) != len(engine):
        problems.append(f"{len(sql_rows)} rows rated in SQL, {len(engine)} by the engine")
    for row in sql_rows:
        other = engine.get(row["cdr_id"])
        if other is None:
            problems.append(f"{row['cdr_id']}: not rated by the engine")
            continue
        pairs: list[tuple[str, object, object]] = [
            ("reseller_id", row["reseller_id"], other["reseller_id"]),
            ("status", row["status"], other["status"]),
            ("unrated_reason", row["unrated_reason"], other["unrated_reason"]),
        ]
        for leg in ("customer", "client", "reseller"):
            amount = other[f"{leg}_amount"]
            units = int(amount.scaleb(6)) if amount is not None else None
            rated = other[f"{leg}_prefix"] is not None
            pairs += [
                (f"{leg}_plan_id", row[f"{leg}_plan_id"] or None, other[f"{leg}_plan_id"]),
                (f"{leg}_prefix", row[f"{leg}_prefix"] if rated else None, other[f"{leg}_prefix"]),
                (
                    f"{leg}_billed",
                    row[f"{leg}_billed"] if rated else None,
                    other[f"{leg}_billed_seconds"],
                ),
                (f"{leg}_amount", _int(row[f"{leg}_amount_units"]) if rated else None, units),
            ]
        problems += [
            f"{row['cdr_id']}: {name} sql={a!r} engine={b!r}" for name, a, b in pairs if a != b
        ]
        if len(problems) > 10:
            break
    if problems:
        msg = "SQL rating disagrees with the engine:\n  " + "\n  ".join(problems[:10])
        raise SqlMismatchError(msg)
    return len(sql_rows)


def sql_task(params: JSON) -> JSON:
    """Load the reference tables and the raw CDRs, rate in SQL ``runs`` times, check, report."""
    from chdb import session

    plans = Path(params["plans"]).resolve()
    runs = int(params["runs"])
    rss = PeakRss()
    sess: Any = session.Session(str(Path(params["store"])))  # type: ignore[no-untyped-call]
    try:
        sess.query("CREATE DATABASE IF NOT EXISTS bench_sql")
        sess.query("USE bench_sql")
        files = {
            "plans_csv": str(plans / "plans.csv"),
            "decks_glob": str(plans / "decks" / "*.csv"),
            "associations_csv": str(plans / "associations.csv"),
            "memberships_csv": str(plans / "memberships.csv"),
        }
        started = time.perf_counter()
        for statement in SETUP:
            sess.query(statement, "CSV", params=files)
        reference_s = time.perf_counter() - started
        rss.reset()
        started = time.perf_counter()
        sess.query(LOAD, "CSV", params={"cdrs": str(Path(params["cdrs"]).resolve())})
        load_s = time.perf_counter() - started
        load_mb = rss.peak_mb()
        raw = int(sess.query("SELECT count() FROM raw_cdr", "CSV").bytes().decode().strip())
        seconds: list[float] = []
        peak = 0.0
        for _ in range(runs + 1):
            sess.query("TRUNCATE TABLE rated")
            rss.reset()
            started = time.perf_counter()
            sess.query(RATE)
            seconds.append(time.perf_counter() - started)
            peak = max(peak, rss.peak_mb())
        seconds = seconds[1:]  # the first run is a warm-up
        result = sess.query("SELECT * FROM rated", "Arrow").bytes()
    finally:
        sess.close()
    import pyarrow as pa

    table = pa.ipc.open_file(pa.py_buffer(result)).read_all()
    names = ["cdr_id", "reseller_id", "status", "unrated_reason"] + [
        f"{leg}_{c}"
        for leg in ("customer", "client", "reseller")
        for c in ("plan_id", "prefix", "billed", "amount_units")
    ]
    sql_rows = table.rename_columns(names).to_pylist()
    checked = _compare(sql_rows, _engine_rows(params))
    from benchmarks.common import median

    return {
        "raw_rows": raw,
        "rated_rows": len(sql_rows),
        "checked_against_engine": checked,
        "reference_s": reference_s,
        "load_s": load_s,
        "load_mb": load_mb,
        "rate_s": median(seconds),
        "rate_runs_s": seconds,
        "rate_mb": peak,
    }
