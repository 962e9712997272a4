"""What an operator checks before publishing a deck: the diff, and the money it would move.

:func:`diff_decks` compares the deck rows of two plans folders, row by row (a row is a plan, a
prefix and its ``effective_from``): added, removed and changed rows with the old and the new
rate. For an added row whose prefix the old deck already priced, the old rate shown is the one
the old deck had in effect at the new row's ``effective_from`` (a rate change scheduled by a
new effective-dated row); for a removed row, the new rate is what the new deck has in effect
then.

:func:`simulate` re-rates a window of call history with the new reference data WITHOUT writing
(the same reading and rating as ``rerate``) and reports, per leg, destination, customer and
reseller, the revenue (customer leg), the cost (client and reseller legs) and the margin
(revenue minus cost) before and after, per currency. Rows are grouped by the new rating's
destination (customer leg) and attribution (reseller or Direct). Re-rating the same window for
real moves balances by exactly the changes reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import polars as pl
import pyarrow as pa

from pipeline.progress import Progress
from pipeline.rating.columns import LEG_NAMES
from pipeline.rating.money import AMOUNT_DECIMALS, RATE_DECIMALS, units_to_arrow
from pipeline.rating.reference import ReferenceData, deck_rows
from pipeline.rating.timeparse import OPEN_END_US
from pipeline.reference.files import PlanFiles
from pipeline.services.rerate import rerated_days
from pipeline.sinks.contracts import CallHistoryStore

_KEY = ["plan_id", "prefix", "effective_from_us"]
_VALUES = [
    "destination",
    "rate_units",
    "fee_units",
    "initial_increment",
    "subsequent_increment",
    "effective_until_us",
]
DIMENSIONS = ("leg", "destination", "customer", "reseller")


@dataclass(frozen=True)
class DeckDiff:
    """Rows added, removed and changed between two versions, one table."""

    rows: pa.Table  # plan_id, prefix, change, effective_from, ..., old_rate, new_rate, ...

    def counts(self) -> dict[str, int]:
        """How many rows of each kind of change."""
        changes = self.rows.column("change").to_pylist()
        return {kind: changes.count(kind) for kind in ("added", "removed", "changed")}


def diff_decks(old: PlanFiles, new: PlanFiles) -> DeckDiff:
    """Compare the deck rows of two plans folders (validate both first with ``load_plans``)."""
    before = deck_rows(old)
    after = deck_rows(new)
    joined = before.join(after, on=_KEY, how="full", coalesce=True, suffix="_new")
    in_old = pl.col("rate_units").is_not_null()
    in_new = pl.col("rate_units_new").is_not_null()
    differs = pl.any_horizontal([pl.col(c).ne_missing(pl.col(f"{c}_new")) for c in _VALUES])
    rows = joined.with_columns(
        change=pl.when(in_old & ~in_new)
        .then(pl.lit("removed"))
        .when(~in_old & in_new)
        .then(pl.lit("added"))
        .when(differs)
        .then(pl.lit("changed"))
    ).filter(pl.col("change").is_not_null())
    rows = _in_effect_elsewhere(rows, before, after)
    rows = rows.sort(_KEY)
    return DeckDiff(_diff_table(rows))


def _in_effect_elsewhere(
    rows: pl.DataFrame, before: pl.DataFrame, after: pl.DataFrame
) -> pl.DataFrame:
    """Fill an added row's old side (and a removed row's new side) from the rate then in effect."""
    for side, deck, kind in (("", before, "added"), ("_new", after, "removed")):
        lookup = deck.rename({c: f"{c}{side}_then" for c in _VALUES}).sort("effective_from_us")
        probe = rows.filter(pl.col("change") == kind).sort("effective_from_us")
        found = probe.join_asof(
            lookup.rename({"effective_from_us": "then_from"}),
            left_on="effective_from_us",
            right_on="then_from",
            by=["plan_id", "prefix"],
            strategy="backward",
            check_sortedness=False,  # sorted by effective_from above, within every group too
        )
        in_effect = pl.col(f"effective_until_us{side}_then") > pl.col("effective_from_us")
        found = found.with_columns(
            [
                pl.when(in_effect).then(pl.col(f"{c}{side}_then")).alias(f"{c}{side}")
                for c in _VALUES
                if c != "effective_until_us"
            ]
        ).select(rows.columns)
        rows = pl.concat([rows.filter(pl.col("change") != kind), found], how="vertical")
    return rows


def _diff_table(rows: pl.DataFrame) -> pa.Table:
    def increments(side: str) -> pa.Array:
        return (
            rows.select(
                pl.format("{}/{}", f"initial_increment{side}", f"subsequent_increment{side}")
            )
            .to_series()
            .to_arrow()
        )

    until = rows.select(
        pl.when(pl.col("change") == "removed")
        .then(pl.col("effective_until_us"))
        .otherwise(pl.col("effective_until_us_new"))
        .alias("until")
    )
    columns: dict[str, pa.Array] = {
        "plan_id": rows["plan_id"].to_arrow(),
        "prefix": rows["prefix"].to_arrow(),
        "change": rows["change"].to_arrow(),
        "effective_from": _instants(rows, "effective_from_us"),
        "effective_until": _instants(until, "until"),
        "old_destination": rows["destination"].to_arrow(),
        "new_destination": rows["destination_new"].to_arrow(),
        "old_rate": units_to_arrow(rows["rate_units"], RATE_DECIMALS),
        "new_rate": units_to_arrow(rows["rate_units_new"], RATE_DECIMALS),
        "old_connection_fee": units_to_arrow(rows["fee_units"], RATE_DECIMALS),
        "new_connection_fee": units_to_arrow(rows["fee_units_new"], RATE_DECIMALS),
        "old_increments": increments(""),
        "new_increments": increments("_new"),
    }
    return pa.table(columns)


def _instants(frame: pl.DataFrame, column: str) -> pa.Array:
    """Microsecond instants as UTC timestamps; the open end becomes null."""
    return (
        frame.select(
            pl.when(pl.col(column) < OPEN_END_US)
            .then(pl.col(column))
            .cast(pl.Datetime("us", "UTC"))
        )
        .to_series()
        .to_arrow()
    )


@dataclass
class Simulation:
    """Money a new reference-data version would move in a window of call history."""

    cdrs: int = 0
    changed_cdrs: int = 0
    parts: list[pl.DataFrame] = field(default_factory=list)

    def by(self, dimension: str) -> pa.Table:
        """Before, after and change per ``dimension`` (leg, destination, customer, reseller)."""
        if dimension not in DIMENSIONS:
            msg = f"unknown dimension {dimension!r}: use one of {', '.join(DIMENSIONS)}"
            raise ValueError(msg)
        long = (
            pl.concat(self.parts, how="vertical")
            if self.parts
            else pl.DataFrame(schema=_LONG_SCHEMA)
        )
        money = _MONEY
        if dimension == "leg":
            out = (
                long.group_by("tenant_id", "leg", "currency")
                .agg(before=pl.col("before").sum(), after=pl.col("after").sum())
                .with_columns(change=pl.col("after") - pl.col("before"))
                .sort("tenant_id", pl.col("leg").replace_strict(_LEG_ORDER), "currency")
            )
            return out.with_columns(pl.col("before", "after", "change").cast(money)).to_arrow()
        revenue = pl.col("leg") == "customer"
        out = (
            long.group_by("tenant_id", dimension, "currency")
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
            .sort("tenant_id", dimension, "currency")
        )
        amounts = [c for c in out.columns if c not in ("tenant_id", dimension, "currency")]
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


def simulate(
    store: CallHistoryStore,
    reference: ReferenceData,
    start: datetime,
    end: datetime,
    tenant: str | None = None,
    progress: Progress | None = None,
) -> Simulation:
    """Rate the window again with ``reference`` without writing; collect the money moved."""
    result = Simulation()
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
        for leg in LEG_NAMES:
            amount, currency = f"{leg}_amount", f"{leg}_currency"
            for side, frame in (("before", old), ("after", new)):
                other = "after" if side == "before" else "before"
                part = keys.with_columns(
                    leg=pl.lit(leg),
                    currency=frame[currency],
                    **{side: frame[amount].cast(_MONEY)},
                ).with_columns(pl.lit(0).cast(_MONEY).alias(other))
                result.parts.append(
                    part.filter(pl.col("currency").is_not_null()).select(list(_LONG_SCHEMA))
                )
        differs = pl.DataFrame(
            [
                old[f"{leg}_{c}"].ne_missing(new[f"{leg}_{c}"]).alias(f"{leg}_{c}")
                for leg in LEG_NAMES
                for c in ("amount", "currency")
            ]
        )
        result.changed_cdrs += int(differs.select(pl.any_horizontal(pl.all()).sum()).item())
    return result


def _frame(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame
