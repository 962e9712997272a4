"""The billing overview in one currency: every amount converted at the rate of its own instant.

Each rated leg of each call is converted at the exchange rate in effect at the call's
``start_time``, each payment at its ``recorded_at``, with the rates of the current reference
version (``fx_rates.csv``, stored by :mod:`pipeline.storage.roster`; the version loaded last).
The conversion itself is SQL (the ``amounts_in_currency`` view of
``schemas/clickhouse/010_fx_rates.sql``): the pair's own rate (amount * rate), else the inverse
of the reverse pair's (amount / rate), exact in 256-bit integers and rounded once per amount to
6 decimal places, half up; then summed. An amount with no rate in effect is never guessed nor
dropped: it stays in its own currency, on a row marked ``unconverted``.
"""

from __future__ import annotations

import pyarrow as pa

from pipeline.rating.money import ISO_4217
from pipeline.sinks.contracts import CallHistoryStore

#: The columns of :func:`billing_overview_in`, in order.
CONVERTED_OVERVIEW_COLUMNS = (
    "tenant_id",
    "currency",
    "conversion",
    "customer_total",
    "customer_payments",
    "client_total",
    "client_payouts",
    "reseller_total",
    "reseller_payouts",
    "owed_to_resellers",
    "margin",
    "calls",
)

_OVERVIEW_SQL = """
SELECT
    tenant_id,
    if(converted IS NULL, currency, {{currency:String}}) AS row_currency,
    if(converted IS NULL, 'unconverted', 'converted') AS conversion,
    sumIf(value, figure = 'customer') AS customer_total,
    sumIf(value, figure = 'customer_payment') AS customer_payments,
    sumIf(value, figure = 'client') AS client_total,
    sumIf(value, figure = 'client_payout') AS client_payouts,
    sumIf(value, figure = 'reseller') AS reseller_total,
    sumIf(value, figure = 'reseller_payout') AS reseller_payouts,
    reseller_total - reseller_payouts AS owed_to_resellers,
    customer_total - client_total - reseller_total AS margin,
    uniqExactIf(cdr_id, cdr_id != '') AS calls
FROM
(
    SELECT tenant_id, figure, cdr_id, currency, converted,
           CAST(ifNull(converted, amount), 'Decimal(38, 6)') AS value
    FROM amounts_in_currency(currency = {{currency:String}})
    {where}
)
GROUP BY tenant_id, row_currency, conversion
ORDER BY tenant_id, conversion, row_currency
"""

_AMOUNTS_SQL = """
SELECT tenant_id, figure, cdr_id, currency, amount, at, conversion, rate, rate_from, converted
FROM amounts_in_currency(currency = {{currency:String}})
{where}
ORDER BY tenant_id, at, cdr_id, figure
"""


class UnknownCurrencyError(ValueError):
    """The currency asked for is not an ISO 4217 code."""


def billing_overview_in(
    store: CallHistoryStore, currency: str, tenant: str | None = None
) -> pa.Table:
    """The billing overview per tenant converted into ``currency``, and what could not be.

    One row per tenant with ``conversion = 'converted'`` (``currency`` is the one asked for:
    amounts already in it unchanged, the others converted) and one row per tenant and original
    currency with ``conversion = 'unconverted'`` holding the amounts that had no rate in effect,
    in that currency. ``owed_to_resellers`` is the reseller total minus the reseller payouts and
    ``margin`` the customer total minus the client and reseller totals, both of the row's
    converted (or unconverted) amounts. ``calls``: the calls with a leg on that row.
    """
    table = store.query(*_sql(_OVERVIEW_SQL, currency, tenant))
    return table.rename_columns(list(CONVERTED_OVERVIEW_COLUMNS))


def amounts_in(store: CallHistoryStore, currency: str, tenant: str | None = None) -> pa.Table:
    """Every amount of the overview with its rate and converted value (None: no rate)."""
    return store.query(*_sql(_AMOUNTS_SQL, currency, tenant))


def _sql(template: str, currency: str, tenant: str | None) -> tuple[str, dict[str, object]]:
    if currency not in ISO_4217:
        msg = f"currency {currency!r}: not an ISO 4217 currency code (like EUR)"
        raise UnknownCurrencyError(msg)
    parameters: dict[str, object] = {"currency": currency}
    where = ""
    if tenant is not None:
        where = "WHERE tenant_id = {tenant:String}"
        parameters["tenant"] = tenant
    return template.format(where=where), parameters
