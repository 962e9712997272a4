"""What changed between two versions of the decks, row by row, before anyone publishes.

:func:`diff_decks` compares the deck rows of two plans folders (:func:`diff_rows`, rows already
loaded), row by row (a row is a plan, a prefix, its origin group and time band, and its
``effective_from``): added, removed and changed rows with the old and the new rate. For an
added row whose prefix the old deck already priced, the old rate shown is the one the old deck
had in effect at the new row's ``effective_from`` (a rate change scheduled by a new
effective-dated row); for a removed row, the new rate is what the new deck has in effect then.
The money such a change would move is :mod:`pipeline.services.simulate`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from pipeline.rating.money import RATE_DECIMALS, units_to_arrow
from pipeline.rating.timeparse import OPEN_END_US
from pipeline.reference.files import PlanFiles
from pipeline.reference.loader import deck_rows

_KEY = ["plan_id", "prefix", "origin", "band", "effective_from_us"]
_SAME_ROW = ["plan_id", "prefix", "origin", "band"]  # a row's versions differ in effective_from
_VALUES = [
    "destination",
    "rate_units",
    "fee_units",
    "initial_increment",
    "subsequent_increment",
    "effective_until_us",
    "initial_rate_units",
    "grace_seconds",
    "min_cost_units",
    "max_cost_units",
]


@dataclass(frozen=True)
class DeckDiff:
    """Rows added, removed and changed between two versions, one table."""

    rows: pa.Table  # plan_id, prefix, origin, band, change, effective_from, ..., old_rate, ...

    def counts(self) -> dict[str, int]:
        """How many rows of each kind of change."""
        changes = self.rows.column("change").to_pylist()
        return {kind: changes.count(kind) for kind in ("added", "removed", "changed")}


def diff_decks(old: PlanFiles, new: PlanFiles) -> DeckDiff:
    """Compare the deck rows of two plans folders (validate both first with ``load_plans``)."""
    return diff_rows(deck_rows(old), deck_rows(new))


def diff_rows(before: pl.DataFrame, after: pl.DataFrame) -> DeckDiff:
    """Compare two versions' deck rows (:func:`pipeline.reference.loader.deck_rows` of each)."""
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
            by=_SAME_ROW,
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
        "origin": _any_as_null(rows, "origin"),
        "band": _any_as_null(rows, "band"),
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
        "old_initial_rate": units_to_arrow(rows["initial_rate_units"], RATE_DECIMALS),
        "new_initial_rate": units_to_arrow(rows["initial_rate_units_new"], RATE_DECIMALS),
        "old_grace_seconds": rows["grace_seconds"].to_arrow(),
        "new_grace_seconds": rows["grace_seconds_new"].to_arrow(),
        "old_min_cost": _cost(rows, "min_cost_units"),
        "new_min_cost": _cost(rows, "min_cost_units_new"),
        "old_max_cost": _cost(rows, "max_cost_units"),
        "new_max_cost": _cost(rows, "max_cost_units_new"),
    }
    return pa.table(columns)


def _any_as_null(frame: pl.DataFrame, column: str) -> pa.Array:
    """An origin or band name; null where the row names none (any caller, any time)."""
    return frame.select(pl.col(column).replace("", None)).to_series().to_arrow()


def _cost(frame: pl.DataFrame, column: str) -> pa.Array:
    """A minimum or maximum cost per call; null where the row sets none (-1)."""
    units = frame.select(pl.when(pl.col(column) >= 0).then(pl.col(column))).to_series()
    return units_to_arrow(units, RATE_DECIMALS)


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
