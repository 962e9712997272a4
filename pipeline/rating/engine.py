"""The rating core: a batch of decoded CDRs and one reference-data version in, call history out.

Pure: no I/O, no clock (the rated-at instant is an argument), no per-row Python. For each CDR
and each leg (customer, client, reseller) it finds the leg's account, the plan associated with
that account at the start time, the deck row by longest effective prefix, and prices the call
exactly by DESIGN.md section 4. Rating the same input twice gives identical output.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa

from pipeline.prefix_trie import encode_digits
from pipeline.prefix_trie.deck_index import MAX_DIGITS
from pipeline.rating.columns import CALL_HISTORY_SCHEMA, CDR_PASS_THROUGH
from pipeline.rating.decode import normalise_callee
from pipeline.rating.money import (
    AMOUNT_DECIMALS,
    RATE_DECIMALS,
    ROUNDING_CODES,
    Rounding,
    int64_units_to_arrow,
    numpy_to_arrow,
    rounded_division,
    strings_to_arrow,
    units_to_arrow,
)
from pipeline.rating.reference import LEGS, OriginsAndBands, PriceShape, ReferenceData, Scope
from pipeline.rating.timeparse import to_micros

I64 = npt.NDArray[np.int64]
_LEG_ACCOUNT = {
    Scope.CUSTOMER: "customer_id",
    Scope.CLIENT: "client_id",
    Scope.RESELLER: "reseller_id",
}


def billable_seconds(duration_ms: I64, rounding: npt.NDArray[np.int8] | None = None) -> I64:
    """Whole seconds of a duration by each row's ``duration_rounding`` code (None: all ``up``).

    ``up`` ceil(ms / 1000), ``down`` floor(ms / 1000), ``nearest`` floor((ms + 500) / 1000);
    written so that no intermediate overflows, up to 2**63 - 1 ms.
    """
    whole, part = np.divmod(duration_ms, 1000)
    up = whole + (part > 0)
    if rounding is None or not rounding.any():
        return up
    return np.where(rounding == 0, up, np.where(rounding == 1, whole, whole + (part >= 500)))


def billed_of(seconds: I64, initial: I64, subsequent: I64) -> I64:
    """Billed seconds: 0 for 0 s; ``I`` up to ``I`` s; then ``I`` plus whole ``S`` steps."""
    beyond = np.maximum(seconds - initial, 0)
    steps = (beyond + subsequent - 1) // subsequent
    return np.where(seconds == 0, 0, initial + steps * subsequent)


def billed_seconds(duration_ms: I64, initial: I64, subsequent: I64) -> I64:
    """Billed seconds of DESIGN.md section 4: the duration rounded up, then the increments."""
    return billed_of(billable_seconds(duration_ms), initial, subsequent)


def rate_batch(cdrs: pl.DataFrame, reference: ReferenceData, rated_at: datetime) -> pa.Table:
    """Rate decoded CDRs (see :func:`pipeline.rating.decode.decode_cdrs`) into call-history rows.

    Returns an Arrow table with the columns of :data:`CALL_HISTORY_SCHEMA`, one row per input row,
    in input order. ``rated_at`` is stamped on every row.
    """
    times = cdrs["start_time"].dt.epoch("us").to_numpy().astype(np.int64)
    callee_padded, callee_length = encode_digits(cdrs["callee"])
    duration = cdrs["duration_ms"].to_numpy().astype(np.int64)

    reseller = _attribute_reseller(cdrs, reference, times)
    accounts = cdrs.select("tenant_id", "customer_id", "client_id").with_columns(
        reseller_id=reseller
    )
    plans = [_plan_of(accounts, scope, reference, times) for scope in LEGS]
    terms = reference.origins_and_bands
    if terms is None:
        # The three legs in one lookup: one pass over the index instead of three.
        assert reference.deck_index is not None, "a v1 folder has a deck index"
        rows = np.split(
            reference.deck_index.lookup(
                np.concatenate(plans),
                np.tile(callee_padded, len(LEGS)),
                np.tile(callee_length, len(LEGS)),
                np.tile(times, len(LEGS)),
            ),
            len(LEGS),
        )
    else:
        group = _caller_group(cdrs, terms)
        rows = _rows_by_variant(plans, group, times, callee_padded, callee_length, reference, terms)
    leg_columns: dict[str, pa.Array] = {}
    failures: list[I64] = []
    for scope, plan, row in zip(LEGS, plans, rows, strict=True):
        columns, failure = _price_leg(scope, plan, row, duration, reference)
        columns.update(_origin_and_band(scope, row, terms))
        leg_columns.update(columns)
        failures.append(failure)

    # One small code per row (customer 0-2, client 0-1, reseller 0-1) picks the reason text.
    code = failures[0] * 4 + failures[1] * 2 + failures[2]
    reason = _texts(tuple(_REASONS)).take(numpy_to_arrow(code))
    status = _texts(("rated", "unrated")).take(numpy_to_arrow((code > 0).astype(np.int8)))
    table = cdrs.select(CDR_PASS_THROUGH).to_arrow()
    arrays: dict[str, pa.Array | pa.ChunkedArray] = {
        name: table.column(name) for name in table.column_names
    }
    count = len(times)
    arrays.update(leg_columns)
    arrays["reseller_id"] = reseller.to_arrow()
    arrays["cdr_reseller_id"] = cdrs["reseller_id"].to_arrow()
    arrays["status"] = status
    arrays["unrated_reason"] = reason
    arrays["rated_at"] = numpy_to_arrow(np.full(count, to_micros(rated_at), dtype=np.int64)).cast(
        pa.timestamp("us", tz="UTC")
    )
    arrays["reference_version"] = _texts((reference.version,)).take(
        numpy_to_arrow(np.zeros(count, dtype=np.int64))
    )
    return pa.table(
        [_as_arrow(arrays[field.name], field.type) for field in CALL_HISTORY_SCHEMA],
        schema=CALL_HISTORY_SCHEMA,
    )


_REASONS: list[str | None] = [
    ";".join(
        name
        for name, failed in (
            ("customer:no_plan", customer == 1),
            ("customer:no_prefix", customer == 2),
            ("client:no_prefix", client == 1),
            ("reseller:no_prefix", reseller == 1),
        )
        if failed
    )
    or None
    for customer in range(3)
    for client in range(2)
    for reseller in range(2)
]


@functools.lru_cache(maxsize=64)
def _texts(values: tuple[str | None, ...]) -> pa.Array:
    return strings_to_arrow(values)


def _as_arrow(values: pa.Array | pa.ChunkedArray | pl.Series, kind: pa.DataType) -> pa.Array:
    array = values.to_arrow() if isinstance(values, pl.Series) else values
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array if array.type == kind else array.cast(kind)


def _caller_group(cdrs: pl.DataFrame, terms: OriginsAndBands) -> I64:
    """The origin group of each CDR's caller in its tenant (0: none, or a caller not a number).

    The caller is normalised like the callee; one that does not normalise to 3-15 digits is in
    no group (and the CDR stays valid: it matches only deck rows without an origin).
    """
    if len(terms.origin_group) == 0:
        return np.zeros(cdrs.height, dtype=np.int64)
    normalised = cdrs.select(normalise_callee(pl.col("caller")).alias("caller"))["caller"]
    valid = normalised.str.contains(rf"^[0-9]{{3,{MAX_DIGITS}}}$").fill_null(value=False)
    tenant = _keys(cdrs.select("tenant_id"), terms.origin_tenants, ["tenant_id"])
    tenant = np.where(valid.to_numpy(), tenant, -1)
    digits = normalised.set(~valid, "000")
    padded, length = encode_digits(digits)
    row = terms.origin_index.lookup(tenant, padded, length, np.zeros(len(tenant), dtype=np.int64))
    return np.where(row >= 0, terms.origin_group[np.maximum(row, 0)], 0).astype(np.int64)


def _bands_at(plans: list[I64], times: I64, terms: OriginsAndBands) -> list[I64]:
    """The band of each row's plan at its start time, on the plan's local clock (0: none), per leg.

    A holiday's band on its local date, else the weekly band of the local weekday and minute;
    the conversion is polars' (the zone's own rules, DST included), one call per zone for all
    the legs (the legs' plans mostly share their tenant's zone).
    """
    zone_names, zone_of_plan = np.unique(np.array(terms.plan_zone), return_inverse=True)
    weeks, banded, zones = [], [], []
    for plan in plans:
        safe = np.maximum(plan, 0)
        week = np.where(plan >= 0, terms.plan_week[safe], -1)
        rows = np.flatnonzero(week >= 0)
        weeks.append(week)
        banded.append(rows)
        zones.append(zone_of_plan[plan[rows]])
    bands = [np.zeros(len(plan), dtype=np.int64) for plan in plans]
    if not any(len(rows) for rows in banded):
        return bands
    for zone in np.unique(np.concatenate(zones)):
        # The rows any leg needs in this zone, converted once.
        wanted = np.zeros(len(times), dtype=np.bool_)
        for rows, z in zip(banded, zones, strict=True):
            wanted[rows[z == zone]] = True
        needed = np.flatnonzero(wanted)
        position = np.zeros(len(times), dtype=np.int64)
        position[needed] = np.arange(len(needed))
        # The local wall clock as microseconds (one conversion per row), then plain arithmetic:
        # the local date (days since 1970-01-01, a Thursday) and the minute of its week.
        local = (
            pl.Series(times[needed], dtype=pl.Int64)
            .cast(pl.Datetime("us", "UTC"))
            .dt.convert_time_zone(str(zone_names[zone]))
            .dt.replace_time_zone(None)
            .dt.epoch("us")
            .to_numpy()
        )
        day_of = local // 86_400_000_000
        minute_of = (day_of + 3) % 7 * 1440 + (local // 60_000_000) % 1440
        for plan, week, rows, z, band in zip(plans, weeks, banded, zones, bands, strict=True):
            these = rows[z == zone]
            if not len(these):
                continue
            at = position[these]
            band[these] = terms.weeks[week[these], minute_of[at]]
            if len(terms.holiday_keys):
                key = plan[these] * 2**32 + day_of[at]
                hit_at = np.minimum(
                    np.searchsorted(terms.holiday_keys, key), len(terms.holiday_keys) - 1
                )
                hit = terms.holiday_keys[hit_at] == key
                band[these] = np.where(hit, terms.holiday_bands[hit_at], band[these])
    return bands


def _rows_by_variant(
    plans: list[I64],
    group: I64,
    times: I64,
    callee_padded: I64,
    callee_length: I64,
    reference: ReferenceData,
    terms: OriginsAndBands,
) -> list[I64]:
    """Each leg's winning deck row when decks name origins and bands (DESIGN.md section 8).

    Candidates are the rows of the variants (plan, caller's group or any, call's band or any);
    among the matches the longest prefix wins, then a row with an origin, then one with a
    band (the later effective_from already won within a variant): one walk per call and leg
    (:class:`~pipeline.prefix_trie.VariantIndex`), all legs in one lookup.
    """
    count = len(times)
    if reference.deck_row_count == 0:
        return [np.full(count, -1, dtype=np.int64) for _ in plans]
    legs = len(plans)
    found = terms.variant_index.lookup(
        np.concatenate(plans),
        np.tile(group, legs),
        np.concatenate(_bands_at(plans, times, terms)),
        np.tile(callee_padded, legs),
        np.tile(callee_length, legs),
        np.tile(times, legs),
    )
    return list(np.split(found, legs))


def _origin_and_band(scope: Scope, row: I64, terms: OriginsAndBands | None) -> dict[str, pa.Array]:
    """A leg's ``L_origin`` and ``L_band``: the winning row's group and band names, or null."""
    leg = scope.value
    if terms is None or len(terms.deck_origin) == 0:
        empty = pa.nulls(len(row), pa.string())
        return {f"{leg}_origin": empty, f"{leg}_band": empty}
    safe = np.maximum(row, 0)
    origin = np.where(row >= 0, terms.deck_origin[safe], 0).astype(np.int64)
    band = np.where(row >= 0, terms.deck_band[safe], 0).astype(np.int64)
    return {
        f"{leg}_origin": _take(terms.group_names, np.where(origin > 0, origin, -1)),
        f"{leg}_band": _take(terms.band_names, np.where(band > 0, band, -1)),
    }


def _attribute_reseller(cdrs: pl.DataFrame, reference: ReferenceData, times: I64) -> pl.Series:
    """The CDR's reseller_id, else the client's membership at the start time, else null (Direct)."""
    keys = _keys(cdrs.select("client_id"), reference.memberships, ["client_id"])
    index = reference.membership_index.lookup(keys, times)
    member = _gather(reference.resellers, index)
    return cdrs["reseller_id"].fill_null(member).alias("reseller_id")


def _keys(left: pl.DataFrame, table: pl.DataFrame, on: list[str]) -> I64:
    """Integer key of each row of ``left`` in ``table`` (columns ``on`` + ``key``), -1 if absent."""
    if table.height == 0:
        return np.full(left.height, -1, dtype=np.int64)
    joined = left.select(on).join(table, on=on, how="left", maintain_order="left")
    return joined["key"].fill_null(-1).to_numpy().astype(np.int64)


def _plan_of(accounts: pl.DataFrame, scope: Scope, reference: ReferenceData, times: I64) -> I64:
    """Index of the plan associated with each row's account for this leg at its start time."""
    plans = reference.associations[scope]
    account = accounts.select("tenant_id", pl.col(_LEG_ACCOUNT[scope]).alias("account_id"))
    keys = _keys(account, plans.accounts, ["tenant_id", "account_id"])
    return plans.plans.lookup(keys, times)


def _gather(values: pl.Series, index: I64) -> pl.Series:
    """``values[index]`` with null where the index is -1."""
    return pl.Series(values.name, _take(values.to_arrow(), index))


def _take(values: pa.Array | pa.ChunkedArray, index: I64) -> pa.Array:
    """``values[index]`` as Arrow, null where the index is -1 (no per-row Python)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if len(values) == 0:
        return pa.nulls(len(index), values.type)
    return values.take(numpy_to_arrow(index, index >= 0))


def _price_leg(
    scope: Scope, plan: I64, row: I64, duration: I64, reference: ReferenceData
) -> tuple[dict[str, pa.Array], I64]:
    """Price one leg; return its columns and a failure code per row (0 = no failure).

    Failure codes: customer leg 1 = no plan, 2 = no prefix; client and reseller legs 1 = no
    prefix (no plan there means the leg does not apply).
    """
    leg = scope.value
    rated = row >= 0
    if reference.deck_row_count == 0:
        rated = np.zeros(len(row), dtype=bool)
    deck = reference.deck_arrays
    plans = reference.plan_arrays
    safe_row = np.where(rated, row, 0)
    safe_plan = np.where(rated, plan, 0)
    rate_units = deck.rate_units[safe_row] if len(deck.rate_units) else np.zeros_like(row)
    fee_units = deck.fee_units[safe_row] if len(deck.fee_units) else np.zeros_like(row)
    initial = deck.initial[safe_row].astype(np.int64) if len(deck.initial) else np.ones_like(row)
    subsequent = (
        deck.subsequent[safe_row].astype(np.int64) if len(deck.subsequent) else np.ones_like(row)
    )
    decimals = plans.decimals[safe_plan] if len(plans.decimals) else np.zeros_like(row)
    mode = plans.rounding[safe_plan] if len(plans.rounding) else np.zeros_like(row)
    by_plan = plans.duration_rounding
    seconds = billable_seconds(duration, by_plan[safe_plan] if by_plan.any() else None)
    shape = _ShapeTerms.of(deck.shape, safe_row, initial) if deck.shape is not None else None
    if shape is not None:
        seconds = np.where(seconds > shape.grace, seconds, 0)  # within the grace: nothing
    billed = billed_of(seconds, initial, subsequent)
    amount = _amount_units(rate_units, fee_units, billed, decimals, mode, rated, shape)
    rated_index = np.where(rated, row, -1)
    plan_index = np.where(rated, plan, -1)
    columns: dict[str, pa.Array] = {
        f"{leg}_plan_id": _take(plans.plan_id, plan_index),
        f"{leg}_deck_version": _take(plans.deck_version, plan_index),
        f"{leg}_prefix": _take(deck.prefix, rated_index),
        f"{leg}_destination": _take(deck.destination, rated_index),
        f"{leg}_rate": int64_units_to_arrow(rate_units, RATE_DECIMALS, rated),
        f"{leg}_billed_seconds": numpy_to_arrow(billed, rated),
        f"{leg}_amount": amount,
        f"{leg}_currency": _take(plans.currency, plan_index),
    }
    if scope is Scope.CUSTOMER:
        failure = np.where(plan < 0, 1, np.where(rated, 0, 2))
    else:
        failure = ((plan >= 0) & ~rated).astype(np.int64)
    return columns, failure.astype(np.int64)


_INT64_SAFE = 2**62


@dataclass(frozen=True)
class _ShapeTerms:
    """The price shape of the rows one leg matched (tariff v2), row by row."""

    initial_rate: I64
    initial: I64  # the first interval, seconds (the row's initial increment)
    grace: I64
    min_cost: I64  # -1: none
    max_cost: I64  # -1: none

    @classmethod
    def of(cls, shape: PriceShape, rows: I64, initial: I64) -> _ShapeTerms:
        return cls(
            initial_rate=shape.initial_rate_units[rows],
            initial=initial,
            grace=shape.grace[rows].astype(np.int64),
            min_cost=shape.min_cost_units[rows],
            max_cost=shape.max_cost_units[rows],
        )

    def subset(self, rows: npt.NDArray[np.bool_]) -> _ShapeTerms:
        return _ShapeTerms(
            self.initial_rate[rows],
            self.initial[rows],
            self.grace[rows],
            self.min_cost[rows],
            self.max_cost[rows],
        )


def _amount_units(
    rate: I64,
    fee: I64,
    billed: I64,
    decimals: I64,
    mode: npt.NDArray[np.integer[Any]],
    rated: npt.NDArray[np.bool_],
    shape: _ShapeTerms | None = None,
) -> pa.Array:
    """Exact amounts as ``decimal128(38, 6)``: ``fee + rate * billed / 60`` rounded per plan.

    With rates in units of 10**-9 the exact cost is ``n / (60 * 10**9)`` for the integer
    ``n = fee * 60 + rate * billed``; bringing it to ``decimals`` places is one integer division
    by ``60 * 10**(9 - decimals)`` with the plan's rounding. With a price shape (tariff v2) the
    first interval ``I`` is priced at the initial rate, ``n = fee * 60 + initial_rate * I +
    rate * (billed - I)``, and ``n`` is clamped to ``[min_cost * 60, max_cost * 60]`` where set,
    before the rounding. int64 when it cannot overflow (the usual case), 128-bit integers
    otherwise.
    """
    charged = rated & (billed > 0)
    denominator = 60 * 10 ** (RATE_DECIMALS - decimals.astype(np.int64))
    widen = 10 ** (AMOUNT_DECIMALS - decimals.astype(np.int64))
    if not charged.any():
        return int64_units_to_arrow(np.zeros(len(rate), dtype=np.int64), AMOUNT_DECIMALS, rated)
    r, b, f = rate[charged], billed[charged], fee[charged]
    terms = shape.subset(charged) if shape is not None else None
    largest = float(r.max()) * float(b.max()) + float(f.max()) * 60.0
    if terms is not None:
        largest += float(terms.initial_rate.max()) * float(terms.initial.max()) + 60.0 * float(
            max(terms.min_cost.max(), terms.max_cost.max())
        )
    if largest < _INT64_SAFE:
        if terms is None:
            numerator = f * 60 + r * b
        else:
            numerator = f * 60 + terms.initial_rate * terms.initial + r * (b - terms.initial)
            least, most = terms.min_cost * 60, terms.max_cost * 60
            numerator = np.where(terms.min_cost >= 0, np.maximum(numerator, least), numerator)
            numerator = np.where(terms.max_cost >= 0, np.minimum(numerator, most), numerator)
        quotient, remainder = np.divmod(numerator, denominator[charged])
        bump = np.where(
            mode[charged] == ROUNDING_CODES[Rounding.HALF_UP],
            2 * remainder >= denominator[charged],
            np.where(mode[charged] == ROUNDING_CODES[Rounding.UP], remainder > 0, False),
        )
        units = np.zeros(len(rate), dtype=np.int64)
        units[charged] = (quotient + bump) * widen[charged]
        return int64_units_to_arrow(units, AMOUNT_DECIMALS, rated)
    int128 = pl.Int128
    zeros = np.zeros(len(rate), dtype=np.int64)
    frame = pl.DataFrame(
        {
            "rate": rate,
            "fee": fee,
            "billed": billed,
            "den": denominator,
            "widen": widen,
            "mode": mode,
            "charged": charged,
            "rated": rated,
            "initial_rate": shape.initial_rate if shape is not None else rate,
            "initial": shape.initial if shape is not None else zeros,
            "min_cost": shape.min_cost if shape is not None else zeros - 1,
            "max_cost": shape.max_cost if shape is not None else zeros - 1,
        }
    )
    exact = (
        pl.col("fee").cast(int128) * pl.lit(60, int128)
        + pl.col("initial_rate").cast(int128) * pl.col("initial").cast(int128)
        + pl.col("rate").cast(int128) * (pl.col("billed") - pl.col("initial")).cast(int128)
    )
    floor = pl.col("min_cost").cast(int128) * pl.lit(60, int128)
    ceiling = pl.col("max_cost").cast(int128) * pl.lit(60, int128)
    raised = pl.when(pl.col("min_cost") >= 0).then(pl.max_horizontal(exact, floor)).otherwise(exact)
    clamped = (
        pl.when(pl.col("max_cost") >= 0).then(pl.min_horizontal(raised, ceiling)).otherwise(raised)
    )
    units128 = frame.select(
        pl.when(~pl.col("rated"))
        .then(None)
        .when(pl.col("charged"))
        .then(
            rounded_division(clamped, pl.col("den").cast(int128), pl.col("mode"))
            * pl.col("widen").cast(int128)
        )
        .otherwise(pl.lit(0, int128))
    ).to_series()
    return units_to_arrow(units128, AMOUNT_DECIMALS)
