"""The money a new reference-data version would move, before anyone publishes it.

:func:`simulate` re-rates a window of call history with the new reference data WITHOUT writing
(the same reading and rating as ``rerate``) and reports, per leg, destination, customer and
reseller, the revenue (customer leg), the cost (client and reseller legs) and the margin
(revenue minus cost) before and after, per currency. Rows are grouped by the new rating's
destination (customer leg) and attribution (reseller or Direct). Re-rating the same window for
real moves balances by exactly the changes reported.

With a ``currency`` every amount, before and after, is converted into it at the rate in effect
at its call's ``start_time`` (:func:`pipeline.storage.fx.convert_amounts`: the SQL of the
billing overview in one currency, in the store). Amounts with no rate in effect stay in their
own currency on rows whose ``conversion`` is ``unconverted``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import polars as pl
import pyarrow as pa

from pipeline.progress import Progress
from pipeline.rating.columns import LEG_NAMES
from pipeline.rating.money import AMOUNT_DECIMALS
from pipeline.rating.reference import ReferenceData
from pipeline.services.rerate import rerated_days
from pipeline.sinks.contracts import CallHistoryStore
from pipeline.storage.fx import convert_amounts

DIMENSIONS = ("leg", "destination", "customer", "reseller")


@dataclass
class Simulation:
    """Money a new reference-data version would move in a window of call history."""

    cdrs: int = 0
    changed_cdrs: int = 0
    parts: list[pl.DataFrame] = field(default_factory=list)
    currency: str | None = None

    def by(self, dimension: str) -> pa.Table:
        """Before, after and change per ``dimension`` (leg, destination, customer, reseller)."""
        if dimension not in DIMENSIONS:
            msg = f"unknown dimension {dimension!r}: use one of {', '.join(DIMENSIONS)}"
            raise ValueError(msg)
        schema = _LONG_SCHEMA if self.currency is None else _CONVERTED_SCHEMA
        long = pl.concat(self.parts, how="vertical") if self.parts else pl.DataFrame(schema=schema)
        # In a currency: "conversion" after "currency", as in billing-overview --currency.
        keys = ["currency"] if self.currency is None else ["currency", "conversion"]
        order = keys if self.currency is None else ["conversion", "currency"]
        money = _MONEY
        if dimension == "leg":
            out = (
                long.group_by("tenant_id", "leg", *keys)
                .agg(before=pl.col("before").sum(), after=pl.col("after").sum())
                .with_columns(change=pl.col("after") - pl.col("before"))
                .sort("tenant_id", pl.col("leg").replace_strict(_LEG_ORDER), *order)
            )
            return out.with_columns(pl.col("before", "after", "change").cast(money)).to_arrow()
        revenue = pl.col("leg") == "customer"
        out = (
            long.group_by("tenant_id", dimension, *keys)
            .agg(
                revenue_before=pl.col("before").filter(revenue).sum(),
                revenue_after=pl.col("after").filter(revenue).sum(),
                cost_before=pl.col("before").filter(~revenue).sum(),
                cost_after=pl.col("after").filter(~revenue).sum(),
            )
            .with_columns(
                margin_before=pl.col("revenue_before") - pl.col("cost_before"),
                margin_after=pl.col("revenue_after") - pl.col("cost_after"),
            )
            .with_columns(
                revenue_change=pl.col("revenue_after") - pl.col("revenue_before"),
                cost_change=pl.col("cost_after") - pl.col("cost_before"),
                margin_change=pl.col("margin_after") - pl.col("margin_before"),
            )
            .sort("tenant_id", dimension, *order)
        )
        amounts = [c for c in out.columns if c not in ("tenant_id", dimension, *keys)]
        return out.with_columns(pl.col(amounts).cast(money)).to_arrow()


_LEG_ORDER = {leg: index for index, leg in enumerate(LEG_NAMES)}


_MONEY = pl.Decimal(38, AMOUNT_DECIMALS)
_LONG_SCHEMA: dict[str, pl.DataType] = {
    "tenant_id": pl.String(),
    "customer": pl.String(),
    "destination": pl.String(),
    "reseller": pl.String(),
    "leg": pl.String(),
    "currency": pl.String(),
    "before": _MONEY,
    "after": _MONEY,
}
_DAY_COLUMNS = [*_LONG_SCHEMA, "at"]
_CONVERTED_SCHEMA: dict[str, pl.DataType] = {
    **{k: v for k, v in _LONG_SCHEMA.items() if k not in ("before", "after")},
    "conversion": pl.String(),
    "before": _MONEY,
    "after": _MONEY,
}


def simulate(
    store: CallHistoryStore,
    reference: ReferenceData,
    start: datetime,
    end: datetime,
    tenant: str | None = None,
    progress: Progress | None = None,
    currency: str | None = None,
) -> Simulation:
    """Rate the window again with ``reference`` without writing; collect the money moved.

    ``currency``: convert every amount into it at its call's own rate (None: per currency).
    """
    result = Simulation(currency=currency)
    for old_table, new_table in rerated_days(store, reference, start, end, tenant, None, progress):
        old = _frame(old_table)
        new = _frame(new_table)
        result.cdrs += old.height
        keys = pl.DataFrame(
            {
                "tenant_id": new["tenant_id"],
                "customer": new["customer_id"],
                "destination": new["customer_destination"].fill_null("(none)"),
                "reseller": new["reseller_id"].fill_null("Direct"),
            }
        )
        day: list[pl.DataFrame] = []
        for leg in LEG_NAMES:
            amount, leg_currency = f"{leg}_amount", f"{leg}_currency"
            for side, frame in (("before", old), ("after", new)):
                other = "after" if side == "before" else "before"
                part = keys.with_columns(
                    leg=pl.lit(leg),
                    currency=frame[leg_currency],
                    at=new["start_time"],
                    **{side: frame[amount].cast(_MONEY)},
                ).with_columns(pl.lit(0).cast(_MONEY).alias(other))
                day.append(part.filter(pl.col("currency").is_not_null()).select(_DAY_COLUMNS))
        if currency is None:
            result.parts.extend(part.select(list(_LONG_SCHEMA)) for part in day)
        elif day:
            result.parts.append(_converted(store, currency, pl.concat(day, how="vertical")))
        differs = pl.DataFrame(
            [
                old[f"{leg}_{c}"].ne_missing(new[f"{leg}_{c}"]).alias(f"{leg}_{c}")
                for leg in LEG_NAMES
                for c in ("amount", "currency")
            ]
        )
        result.changed_cdrs += int(differs.select(pl.any_horizontal(pl.all()).sum()).item())
    return result


def _converted(store: CallHistoryStore, currency: str, long: pl.DataFrame) -> pl.DataFrame:
    """Each amount (one of before and after is 0) in ``currency``, or unconverted."""
    amount = pl.col("before") + pl.col("after")
    items = long.select("currency", "at", amount.alias("amount"))
    found = _frame(convert_amounts(store, currency, items.to_arrow()))
    long = long.with_columns(found["converted"].alias("_converted"))
    none = pl.col("_converted").is_null() & amount.is_not_null()  # a null amount stays null
    value = pl.when(none).then(amount).otherwise(pl.col("_converted")).cast(_MONEY)
    return long.with_columns(
        currency=pl.when(none).then(pl.col("currency")).otherwise(pl.lit(currency)),
        conversion=pl.when(none).then(pl.lit("unconverted")).otherwise(pl.lit("converted")),
        before=pl.when(pl.col("before") != 0).then(value).otherwise(pl.col("before")),
        after=pl.when(pl.col("after") != 0).then(value).otherwise(pl.col("after")),
    ).select(list(_CONVERTED_SCHEMA))


def _frame(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame
