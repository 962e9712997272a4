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

import functools

import polars as pl
import pyarrow as pa

from pipeline.rating.money import ISO_4217
from pipeline.sinks.contracts import CallHistoryStore
from pipeline.storage.migrations import load_migrations

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


def _refuse_unknown(currency: str) -> None:
    if currency not in ISO_4217:
        msg = f"currency {currency!r}: not an ISO 4217 currency code (like EUR)"
        raise UnknownCurrencyError(msg)


def _sql(template: str, currency: str, tenant: str | None) -> tuple[str, dict[str, object]]:
    _refuse_unknown(currency)
    parameters: dict[str, object] = {"currency": currency}
    where = ""
    if tenant is not None:
        where = "WHERE tenant_id = {tenant:String}"
        parameters["tenant"] = tenant
    return template.format(where=where), parameters


#: How many distinct amounts :func:`convert_amounts` sends per query (bound array parameters).
CONVERT_CHUNK = 1_000

_INPUT_SQL = """
    SELECT '' AS tenant_id, '' AS figure, toString(x.1) AS cdr_id, x.2 AS currency,
           toDecimal128(x.4, 6) AS amount, toDateTime64(x.3, 6, 'UTC') AS at
    FROM system.one
    ARRAY JOIN arrayZip(
        range(length({currencies:Array(String)})), {currencies:Array(String)},
        {instants:Array(String)}, {amounts:Array(String)}
    ) AS x
"""


def convert_amounts(store: CallHistoryStore, currency: str, items: pa.Table) -> pa.Table:
    """Convert any amounts into ``currency`` exactly as ``amounts_in_currency`` does.

    ``items``: columns ``currency`` (string), ``at`` (timestamp, UTC) and ``amount``
    (decimal, at most 6 places). Returns one row per item, in order: ``conversion`` (``same``,
    ``direct``, ``inverse`` or ``none``) and ``converted`` (``Decimal(38, 6)``; None: no rate in
    effect at ``at``; both None for an item with a null). The store converts with the SQL of
    the ``amounts_in_currency`` view itself (see :func:`conversion_sql`), its input replaced by
    the items, bound as array parameters: the same rates, rule and rounding as the overview.
    """
    _refuse_unknown(currency)
    frame = pl.from_arrow(items.select(["currency", "at", "amount"]))
    assert isinstance(frame, pl.DataFrame)
    frame = frame.with_columns(
        pl.col("at").dt.convert_time_zone("UTC").dt.cast_time_unit("us"),
        pl.col("amount").cast(pl.Decimal(38, 6)),
    )
    distinct = frame.drop_nulls().unique(maintain_order=True)  # a null converts to None
    sql = conversion_sql()
    answers: list[pl.DataFrame] = []
    for offset in range(0, distinct.height, CONVERT_CHUNK):
        chunk = distinct.slice(offset, CONVERT_CHUNK)
        parameters: dict[str, object] = {
            "currency": currency,
            "currencies": chunk["currency"].to_list(),
            "instants": chunk["at"].dt.strftime("%Y-%m-%d %H:%M:%S%.6f").to_list(),
            "amounts": [format(a, "f") for a in chunk["amount"].to_list()],
        }
        got = pl.from_arrow(store.query(sql, parameters))
        assert isinstance(got, pl.DataFrame)
        answers.append(
            chunk.with_row_index("n")
            .join(got.with_columns(pl.col("n").cast(pl.UInt32)), on="n", how="left")
            .drop("n")
        )
    schema = {"conversion": pl.String(), "converted": pl.Decimal(38, 6)}
    converted = (
        pl.concat(answers, how="vertical")
        if answers
        else distinct.with_columns(*(pl.lit(None, t).alias(c) for c, t in schema.items()))
    )
    converted = converted.with_columns(
        pl.col("conversion").cast(pl.String), pl.col("converted").cast(pl.Decimal(38, 6))
    )
    out = frame.join(converted, on=["currency", "at", "amount"], how="left", maintain_order="left")
    return out.select("conversion", "converted").to_arrow()


@functools.cache
def conversion_sql() -> str:
    """The SELECT of ``amounts_in_currency`` over bound arrays instead of the stored amounts.

    One definition: the text of the view in ``010_fx_rates.sql`` (the ASOF join on the
    conversions in effect, the direct-else-inverse rule, the exact arithmetic and the rounding),
    with only its input subquery ``i`` replaced by the arrays ``currencies``, ``instants`` and
    ``amounts`` (text); ``cdr_id`` carries each item's index, returned as ``n``. Built once per
    process (an applied migration never changes).
    """
    view = next(
        s
        for m in load_migrations()
        if m.name == "010_fx_rates.sql"
        for s in m.statements
        if s.lstrip().startswith("CREATE VIEW IF NOT EXISTS amounts_in_currency AS")
    )
    body = view.lstrip().removeprefix("CREATE VIEW IF NOT EXISTS amounts_in_currency AS")
    head, found, rest = body.partition("\nFROM\n(\n")
    source, end, join = rest.partition("\n) AS i\n")
    if not (found and end and "call_history_current" in source):
        msg = "amounts_in_currency in 010_fx_rates.sql is not shaped as conversion_sql expects"
        raise RuntimeError(msg)
    return (
        f"SELECT toUInt32(cdr_id) AS n, conversion, converted FROM ({head}\nFROM\n(\n"
        f"{_INPUT_SQL}\n) AS i\n{join.rstrip().rstrip(';')})"
    )
