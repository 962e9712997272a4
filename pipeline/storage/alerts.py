"""Money alerts, each kind defined exactly in docs/alerts.md.

Prepaid credit low, postpaid over its credit limit, cost spikes, negative margin per
destination and traffic through inactive accounts. The figures come from the views of
``schemas/clickhouse/011_money_alerts.sql`` (``account_money``, ``call_legs_current``) and
``call_history_current``; the comparisons are SQL with bound parameters here, since thresholds,
k, the minimum, the windows and "now" vary. Every figure and threshold is an exact ``Decimal``
(``Decimal(38, 18)`` in the engine); nothing is a float.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pipeline.rating.columns import LEG_NAMES
from pipeline.sinks.contracts import CallHistoryStore
from pipeline.storage.periods import query_instant
from pipeline.storage.roster import render_page

#: The kinds, in the order they are listed.
KINDS = (
    "prepaid_credit_low",
    "postpaid_over_limit",
    "cost_spike",
    "negative_margin",
    "inactive_traffic",
)
COLUMNS = (
    "kind",
    "tenant_id",
    "scope",
    "subject",
    "currency",
    "figure",
    "threshold",
    "window_start",
    "window_end",
)

_D = "Decimal(38, 18)"
_T = "DateTime64(6, 'UTC')"


@dataclass(frozen=True)
class AlertThresholds:
    """What the alerts compare with; the defaults are documented in docs/alerts.md."""

    #: prepaid credit below this (in the account's currency) alerts
    prepaid_threshold: Decimal = Decimal(10)
    #: the last complete hour's cost above k times the trailing median alerts ...
    spike_k: Decimal = Decimal(3)
    #: ... when that hour's cost is at least this much
    spike_minimum: Decimal = Decimal(1)
    #: the trailing window of the median, in hours (hours without cost count as zero)
    spike_hours: int = 168
    #: the window of negative margin and inactive traffic, in hours, ending at "now"
    window_hours: int = 24

    def __post_init__(self) -> None:
        """Refuse values an alert cannot mean."""
        if self.spike_k < 0 or self.spike_minimum < 0:
            msg = "the spike multiplier k and the spike minimum must be 0 or more"
            raise ValueError(msg)
        if self.spike_hours < 1 or self.window_hours < 1:
            msg = "the spike window and the alert window must be at least 1 hour"
            raise ValueError(msg)
        for name in ("prepaid_threshold", "spike_k", "spike_minimum"):
            value: Decimal = getattr(self, name)
            if not value.is_finite() or value.as_tuple().exponent < -9:  # type: ignore[operator]
                msg = f"{name} {value} must be a finite decimal with at most 9 decimal places"
                raise ValueError(msg)


PREPAID_SQL = f"""
SELECT 'prepaid_credit_low' AS kind, tenant_id, scope, account_id AS subject,
       CAST(currency, 'Nullable(String)') AS currency,
       CAST(credit, '{_D}') AS figure, CAST({{threshold:Decimal(38, 9)}}, '{_D}') AS threshold,
       CAST(NULL AS Nullable({_T})) AS window_start, CAST(NULL AS Nullable({_T})) AS window_end
FROM account_money
WHERE billing_type = 'prepaid' AND credit < {{threshold:Decimal(38, 9)}} {{tenant_filter}}
"""

POSTPAID_SQL = f"""
SELECT 'postpaid_over_limit' AS kind, tenant_id, scope, account_id AS subject,
       CAST(currency, 'Nullable(String)') AS currency,
       CAST(owed, '{_D}') AS figure, CAST(assumeNotNull(credit_limit), '{_D}') AS threshold,
       CAST(NULL AS Nullable({_T})) AS window_start, CAST(NULL AS Nullable({_T})) AS window_end
FROM account_money
WHERE billing_type = 'postpaid' AND credit_limit IS NOT NULL
  AND owed > assumeNotNull(credit_limit) {{tenant_filter}}
"""

# The median of the trailing hours counted with zeros (hours without cost): the sorted hourly
# costs padded with zeros in front (costs are never negative); for an even count the two middle
# values added (twice_median), for an odd one the middle one doubled; halved with one decimal
# place more, so it stays exact, and multiplied by k (at most 9 places) with every place kept.
SPIKE_SQL = f"""
SELECT 'cost_spike' AS kind, tenant_id, scope, account_id AS subject,
       CAST(currency, 'Nullable(String)') AS currency,
       CAST(last_cost, '{_D}') AS figure, CAST(limit, '{_D}') AS threshold,
       CAST({{last_start:{_T}}} AS Nullable({_T})) AS window_start,
       CAST({{last_end:{_T}}} AS Nullable({_T})) AS window_end
FROM
(
    SELECT tenant_id, scope, account_id, currency, last_cost,
           arrayConcat(
               arrayResize(CAST([], 'Array(Decimal(38, 6))'),
                           {{hours:UInt32}} - length(trailing)),
               trailing) AS costs,
           if({{hours:UInt32}} % 2 = 0,
              costs[intDiv({{hours:UInt32}}, 2)] + costs[intDiv({{hours:UInt32}}, 2) + 1],
              costs[intDiv({{hours:UInt32}} + 1, 2)] * 2) AS twice_median,
           {{k:Decimal(38, 9)}} * (CAST(twice_median, 'Decimal(38, 7)') / 2) AS limit
    FROM
    (
        SELECT tenant_id, scope, account_id, currency,
               sumIf(cost, hour >= {{last_start:{_T}}}) AS last_cost,
               arraySort(groupArrayIf(cost, hour < {{last_start:{_T}}})) AS trailing
        FROM
        (
            SELECT tenant_id, scope, account_id, assumeNotNull(currency) AS currency,
                   toStartOfHour(start_time) AS hour,
                   CAST(sum(assumeNotNull(amount)), 'Decimal(38, 6)') AS cost
            FROM call_legs_current
            WHERE amount IS NOT NULL
              AND start_time >= {{trailing_start:{_T}}} AND start_time < {{last_end:{_T}}}
              {{tenant_filter}}
            GROUP BY tenant_id, scope, account_id, currency, hour
        )
        GROUP BY tenant_id, scope, account_id, currency
    )
)
WHERE last_cost >= {{minimum:Decimal(38, 9)}} AND last_cost > limit
"""

MARGIN_SQL = f"""
SELECT 'negative_margin' AS kind, tenant_id, 'destination' AS scope, destination AS subject,
       CAST(currency, 'Nullable(String)') AS currency,
       CAST(revenue, '{_D}') AS figure, CAST(cost, '{_D}') AS threshold,
       CAST({{start:{_T}}} AS Nullable({_T})) AS window_start,
       CAST({{end:{_T}}} AS Nullable({_T})) AS window_end
FROM
(
    SELECT tenant_id, ifNull(customer_destination, '') AS destination,
           assumeNotNull(customer_currency) AS currency,
           sum(assumeNotNull(customer_amount)) AS revenue,
           sum(ifNull(client_amount, 0)) + sum(ifNull(reseller_amount, 0)) AS cost
    FROM call_history_current
    WHERE status = 'rated' AND customer_amount IS NOT NULL
      AND (client_amount IS NULL OR client_currency = customer_currency)
      AND (reseller_amount IS NULL OR reseller_currency = customer_currency)
      AND start_time >= {{start:{_T}}} AND start_time < {{end:{_T}}} {{tenant_filter}}
    GROUP BY tenant_id, destination, currency
)
WHERE revenue < cost
"""

INACTIVE_SQL = f"""
SELECT 'inactive_traffic' AS kind, l.tenant_id AS tenant_id, l.scope AS scope,
       l.account_id AS subject, CAST(NULL, 'Nullable(String)') AS currency,
       CAST(count(), '{_D}') AS figure, CAST(0, '{_D}') AS threshold,
       CAST({{start:{_T}}} AS Nullable({_T})) AS window_start,
       CAST({{end:{_T}}} AS Nullable({_T})) AS window_end
FROM call_legs_current AS l
INNER JOIN
(
    SELECT tenant_id, scope, account_id FROM roster_accounts_current WHERE status = 'inactive'
) AS a ON a.tenant_id = l.tenant_id AND a.scope = l.scope AND a.account_id = l.account_id
WHERE l.start_time >= {{start:{_T}}} AND l.start_time < {{end:{_T}}} {{tenant_filter}}
GROUP BY l.tenant_id, l.scope, l.account_id
"""

_SQL = {
    "prepaid_credit_low": (PREPAID_SQL, "tenant_id"),
    "postpaid_over_limit": (POSTPAID_SQL, "tenant_id"),
    "cost_spike": (SPIKE_SQL, "tenant_id"),
    "negative_margin": (MARGIN_SQL, "tenant_id"),
    "inactive_traffic": (INACTIVE_SQL, "l.tenant_id"),
}
_SCOPES = (*LEG_NAMES, "destination")


def money_alerts(
    store: CallHistoryStore,
    now: datetime,
    thresholds: AlertThresholds | None = None,
    tenant: str | None = None,
    kinds: tuple[str, ...] = KINDS,
) -> list[dict[str, Any]]:
    """Every alert at ``now`` (UTC), one dict per alert with :data:`COLUMNS`, in a stable order."""
    thresholds = thresholds or AlertThresholds()
    last_end = now.replace(minute=0, second=0, microsecond=0)
    last_start = last_end - timedelta(hours=1)  # the last complete hour: [last_start, last_end)
    parameters: dict[str, object] = {
        "threshold": thresholds.prepaid_threshold,
        "k": thresholds.spike_k,
        "minimum": thresholds.spike_minimum,
        "hours": thresholds.spike_hours,
        "last_start": query_instant(last_start),
        "last_end": query_instant(last_end),
        # the spike's trailing window: [trailing_start, last_start)
        "trailing_start": query_instant(last_start - timedelta(hours=thresholds.spike_hours)),
        # the window of margin and inactive traffic: [start, now)
        "start": query_instant(now - timedelta(hours=thresholds.window_hours)),
        "end": query_instant(now),
    }
    if tenant is not None:
        parameters["tenant"] = tenant
    rows: list[dict[str, Any]] = []
    for kind in kinds:
        sql, column = _SQL[kind]
        condition = f"AND {column} = {{tenant:String}}" if tenant is not None else ""
        text = sql.replace("{tenant_filter}", condition)
        used = {k: v for k, v in parameters.items() if "{" + k + ":" in text}
        table = store.query(text, used)
        found = table.to_pylist() if table.num_columns else []
        found.sort(
            key=lambda r: (
                r["tenant_id"],
                _SCOPES.index(r["scope"]),
                r["subject"],
                r["currency"] or "",
            )
        )
        rows += found
    return rows


# -- output -----------------------------------------------------------------------------------


def decimal_text(value: Decimal) -> str:
    """Exact text: six decimal places, more only where the value has them (never rounded)."""
    six = value.quantize(Decimal("0.000001"))
    return format(six if six == value else value.normalize(), "f")


def _cell(value: object) -> str:
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def render_alerts(rows: list[dict[str, Any]], fmt: str) -> str:
    """``table``, ``json`` (decimals as exact strings, instants RFC 3339) or ``csv``."""
    texts = [{c: None if r[c] is None else _cell(r[c]) for c in COLUMNS} for r in rows]
    return render_page(texts, list(COLUMNS), fmt, empty="(no alerts)")
