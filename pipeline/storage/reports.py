"""Read-side SQL over call history, shared by the commands (export, demo report).

Every query reads ``call_history FINAL`` so it sees exactly one row, the latest rating, per CDR,
whatever re-deliveries or re-ratings inserted, and skips tombstones (``status = 'superseded'``,
the rows that hide a corrected CDR's older version in its old day; see
:mod:`pipeline.storage.moved_cdrs`). Amounts are summed as Decimal.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from decimal import Decimal

import pyarrow as pa

from pipeline.rating.columns import CALL_HISTORY_SCHEMA, LEG_NAMES
from pipeline.sinks.contracts import CallHistoryStore

_COLUMNS = ", ".join(f"`{name}`" for name in CALL_HISTORY_SCHEMA.names)

EXPORT_SQL = (
    f"SELECT {_COLUMNS} FROM call_history FINAL WHERE status != 'superseded' "
    "ORDER BY tenant_id, cdr_id"
)

SAMPLE_SQL = """
SELECT cdr_id, start_time, customer_id, client_id, ifNull(reseller_id, 'Direct') AS reseller,
       callee, duration_ms, status, customer_amount, customer_currency, reseller_amount,
       reseller_currency
FROM call_history FINAL
WHERE status != 'superseded'
ORDER BY start_time, cdr_id
LIMIT {limit:UInt32}
"""

# Tariff v2 at a glance: customer revenue by the time band, and by the caller origin group,
# of the deck rows that priced it.
CUSTOMER_BY_BAND_SQL = """
SELECT priced_by, name, currency, count() AS calls, sum(amount) AS amount
FROM (
    SELECT 'band' AS priced_by, ifNull(customer_band, '(any time)') AS name,
           customer_currency AS currency, customer_amount AS amount
    FROM call_history FINAL
    WHERE customer_amount IS NOT NULL AND status != 'superseded'
    UNION ALL
    SELECT 'origin', ifNull(customer_origin, '(any caller)'), customer_currency, customer_amount
    FROM call_history FINAL
    WHERE customer_amount IS NOT NULL AND status != 'superseded'
)
GROUP BY priced_by, name, currency
ORDER BY priced_by, currency, name
"""

LEG_TOTALS_SQL = (
    "SELECT * FROM ("
    + " UNION ALL ".join(
        f"""SELECT tenant_id, '{leg}' AS leg, {leg}_currency AS currency, count() AS calls,
       sum({leg}_amount) AS amount
FROM call_history FINAL WHERE {leg}_amount IS NOT NULL AND status != 'superseded'
GROUP BY tenant_id, currency"""
        for leg in LEG_NAMES
    )
    + ") ORDER BY tenant_id, indexOf(['customer', 'client', 'reseller'], leg), currency"
)

OWED_TO_RESELLERS_SQL = """
SELECT tenant_id, reseller_id, reseller_currency AS currency, count() AS calls,
       sum(reseller_amount) AS owed
FROM call_history FINAL
WHERE reseller_amount IS NOT NULL AND status != 'superseded'
GROUP BY tenant_id, reseller_id, currency
ORDER BY tenant_id, reseller_id, currency
"""

UNRATED_SQL = """
SELECT reason, count() AS calls
FROM call_history FINAL
ARRAY JOIN splitByChar(';', ifNull(unrated_reason, '')) AS reason
WHERE status = 'unrated'
GROUP BY reason
ORDER BY reason
"""


def export_call_history(store: CallHistoryStore) -> pa.Table:
    """Every CDR's current call-history row, ordered by tenant and cdr_id."""
    table = store.query(EXPORT_SQL)
    if table.num_columns == 0:
        return CALL_HISTORY_SCHEMA.empty_table()
    return table.cast(CALL_HISTORY_SCHEMA)


def format_table(table: pa.Table, title: str | None = None) -> str:
    """Render an Arrow table as aligned text columns (decimals printed exactly)."""
    headers = table.column_names
    rows = [[_cell(value) for value in row.values()] for row in table.to_pylist()]
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    lines = [title] if title else []
    lines.append("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    if not rows:
        lines.append("(none)")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Decimal):
        return format(value, "f")  # 0E-9 would read as scientific notation
    return str(value)


def render(table: pa.Table, fmt: str) -> str:
    """Render a result as ``table`` (aligned text), ``json`` (an array of objects) or ``csv``.

    In JSON and CSV, decimals are exact strings and instants RFC 3339 in UTC.
    """
    if fmt == "table":
        return format_table(table)
    rows = [{k: _plain(v) for k, v in row.items()} for row in table.to_pylist()]
    if fmt == "json":
        return json.dumps(rows, indent=2)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=table.column_names, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue().rstrip("\n")
    msg = f"unknown format {fmt!r}: use table, json or csv"
    raise ValueError(msg)


def _plain(value: object) -> object:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return _cell(value)
    return value


def call_history(
    store: CallHistoryStore,
    *,
    reseller: str | None = None,
    direct: bool = False,
    tenant: str | None = None,
    customer: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 100,
) -> pa.Table:
    """Current call history, newest first, filtered; with reseller (or Direct) and its cost."""
    conditions: list[str] = []
    parameters: dict[str, object] = {"limit": limit}
    if reseller is not None:
        conditions.append("reseller_id = {reseller:String}")
        parameters["reseller"] = reseller
    if direct:
        conditions.append("reseller_id IS NULL")
    if tenant is not None:
        conditions.append("tenant_id = {tenant:String}")
        parameters["tenant"] = tenant
    if customer is not None:
        conditions.append("customer_id = {customer:String}")
        parameters["customer"] = customer
    if start is not None:
        conditions.append("start_time >= {start:DateTime64(6, 'UTC')}")
        parameters["start"] = start.strftime("%Y-%m-%d %H:%M:%S.%f")
    if end is not None:
        conditions.append("start_time < {end:DateTime64(6, 'UTC')}")
        parameters["end"] = end.strftime("%Y-%m-%d %H:%M:%S.%f")
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    return store.query(
        "SELECT cdr_id, tenant_id, start_time, customer_id, client_id, reseller, callee, "
        "duration_ms, status, unrated_reason, customer_amount, customer_currency, "
        "client_amount, client_currency, reseller_cost, reseller_currency "
        f"FROM call_history_current {where} "
        "ORDER BY start_time DESC, cdr_id LIMIT {limit:UInt32}",
        parameters,
    )
