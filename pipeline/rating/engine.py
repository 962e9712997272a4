"""The rating core: a batch of decoded CDRs and one reference-data version in, call history out.

Pure: no I/O, no clock (the rated-at instant is an argument), no per-row Python. For each CDR
and each leg (customer, client, reseller) it finds the leg's account, the plan associated with
that account at the start time, the deck row by longest effective prefix, and prices the call
exactly by DESIGN.md section 4. Rating the same input twice gives identical output.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa

from pipeline.prefix_trie import encode_digits
from pipeline.rating.columns import CALL_HISTORY_SCHEMA
from pipeline.rating.money import (
    AMOUNT_DECIMALS,
    RATE_DECIMALS,
    RATE_SCALE,
    rounded_division,
    units_to_arrow,
)
from pipeline.rating.reference import LEGS, ReferenceData, Scope

I64 = npt.NDArray[np.int64]
_LEG_ACCOUNT = {
    Scope.CUSTOMER: "customer_id",
    Scope.CLIENT: "client_id",
    Scope.RESELLER: "reseller_id",
}


def billed_seconds(duration_ms: I64, initial: I64, subsequent: I64) -> I64:
    """Billed seconds: 0 for 0 s; ``I`` up to ``I`` s; then ``I`` plus whole ``S`` steps."""
    seconds = duration_ms // 1000 + (duration_ms % 1000 > 0)  # ceil, safe up to 2**63 - 1
    beyond = np.maximum(seconds - initial, 0)
    steps = (beyond + subsequent - 1) // subsequent
    return np.where(seconds == 0, 0, initial + steps * subsequent)


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
    leg_columns: dict[str, pa.Array | pl.Series] = {}
    failures: list[pl.Series] = []
    for scope in LEGS:
        plan = _plan_of(accounts, scope, reference, times)
        row = reference.deck_index.lookup(plan, callee_padded, callee_length, times)
        columns, failure = _price_leg(scope, plan, row, duration, reference)
        leg_columns.update(columns)
        failures.append(failure)

    joined = pl.select(pl.concat_str(failures, separator=";", ignore_nulls=True)).to_series()
    reason = joined.replace("", None)
    base = cdrs.select(
        "cdr_id",
        "session_id",
        "tenant_id",
        "customer_id",
        "client_id",
        "caller",
        "callee",
        "start_time",
        "answer_time",
        "end_time",
        "duration_ms",
        "disposition",
        "sip_code",
    ).with_columns(
        reseller_id=reseller,
        cdr_reseller_id=cdrs["reseller_id"],
        status=pl.when(reason.is_null()).then(pl.lit("rated")).otherwise(pl.lit("unrated")),
        unrated_reason=reason,
        rated_at=pl.lit(rated_at).cast(pl.Datetime("us", "UTC")),
        reference_version=pl.lit(reference.version),
    )
    table = base.to_arrow()
    arrays = {name: table.column(name) for name in table.column_names}
    arrays.update(leg_columns)
    return pa.table(
        [_as_arrow(arrays[field.name], field.type) for field in CALL_HISTORY_SCHEMA],
        schema=CALL_HISTORY_SCHEMA,
    )


def _as_arrow(values: pa.Array | pa.ChunkedArray | pl.Series, kind: pa.DataType) -> pa.Array:
    array = values.to_arrow() if isinstance(values, pl.Series) else values
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array if array.type == kind else array.cast(kind)


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
    if len(values) == 0:
        return pl.Series(values.name, [None] * len(index), dtype=values.dtype)
    picked = values.gather(np.where(index >= 0, index, 0))
    return pl.select(pl.when(pl.Series(index >= 0)).then(picked).otherwise(None)).to_series()


def _price_leg(
    scope: Scope, plan: I64, row: I64, duration: I64, reference: ReferenceData
) -> tuple[dict[str, pa.Array | pl.Series], pl.Series]:
    """Price one leg; return its columns and a Series of failure text (null where none)."""
    leg = scope.value
    rated = row >= 0
    safe_row = np.where(rated, row, 0)
    safe_plan = np.where(rated, plan, 0)
    deck = reference.deck
    plans = reference.plans
    if deck.height == 0:
        rated = np.zeros(len(row), dtype=bool)
        initial = subsequent = rate_units = fee_units = np.ones(len(row), dtype=np.int64)
    else:
        initial = deck["initial_increment"].to_numpy()[safe_row]
        subsequent = deck["subsequent_increment"].to_numpy()[safe_row]
        rate_units = deck["rate_units"].to_numpy()[safe_row]
        fee_units = deck["fee_units"].to_numpy()[safe_row]
    billed = billed_seconds(duration, initial, subsequent)
    decimals = (
        plans["decimals"].to_numpy()[safe_plan] if plans.height else np.zeros(len(row), np.int64)
    )
    mode = (
        plans["rounding_code"].to_numpy()[safe_plan]
        if plans.height
        else np.zeros(len(row), np.int8)
    )

    int128 = pl.Int128
    money = pl.DataFrame(
        {
            "rate": rate_units,
            "fee": fee_units,
            "billed": billed,
            "scale": 10 ** decimals.astype(np.int64),
            "widen": 10 ** (AMOUNT_DECIMALS - decimals.astype(np.int64)),
            "mode": mode,
            "rated": rated,
        }
    ).select(
        pl.when(pl.col("rated") & (pl.col("billed") > 0))
        .then(
            rounded_division(
                (
                    pl.col("fee").cast(int128) * pl.lit(60, int128)
                    + pl.col("rate").cast(int128) * pl.col("billed").cast(int128)
                )
                * pl.col("scale").cast(int128),
                pl.lit(60 * RATE_SCALE, int128),
                pl.col("mode"),
            )
            * pl.col("widen").cast(int128)
        )
        .when(pl.col("rated"))
        .then(pl.lit(0, int128))
        .otherwise(None)
        .alias("amount"),
        pl.when(pl.col("rated")).then(pl.col("rate")).otherwise(None).alias("rate"),
    )
    rated_index = np.where(rated, row, -1)
    plan_index = np.where(rated, plan, -1)
    columns: dict[str, pa.Array | pl.Series] = {
        f"{leg}_plan_id": _gather(plans["plan_id"], plan_index),
        f"{leg}_deck_version": _gather(plans["deck_version"], plan_index),
        f"{leg}_prefix": _gather(deck["prefix"], rated_index),
        f"{leg}_destination": _gather(deck["destination"], rated_index),
        f"{leg}_rate": units_to_arrow(money["rate"], RATE_DECIMALS),
        f"{leg}_billed_seconds": pl.Series(billed).set(pl.Series(~rated), None)
        if (~rated).any()
        else pl.Series(billed),
        f"{leg}_amount": units_to_arrow(money["amount"], AMOUNT_DECIMALS),
        f"{leg}_currency": _gather(plans["currency"], plan_index),
    }
    if scope is Scope.CUSTOMER:
        failure = np.where(plan < 0, "customer:no_plan", np.where(rated, "", "customer:no_prefix"))
    else:
        failure = np.where((plan >= 0) & ~rated, f"{leg}:no_prefix", "")
    failures = pl.Series(failure).replace("", None)
    return columns, failures
