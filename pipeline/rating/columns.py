"""The call-history row: one schema for Arrow batches, Parquet files and ClickHouse tables.

Names are those of DESIGN.md section 4 ("Rated row"); per leg ``L`` in customer, client and
reseller there are ``L_plan_id, L_deck_version, L_prefix, L_destination, L_rate,
L_billed_seconds, L_amount, L_currency, L_origin, L_band``, all null where the leg does not
apply or is unrated (origin and band also where the winning deck row names none).
"""

from __future__ import annotations

import pyarrow as pa

from pipeline.rating.cdr_contract import CDR_SCHEMA
from pipeline.rating.money import AMOUNT_TYPE, RATE_TYPE

_TIME = pa.timestamp("us", tz="UTC")
LEG_NAMES = ("customer", "client", "reseller")

#: The decoded CDR's columns that a call-history row carries unchanged (``reseller_id`` is not
#: one: the row has the attributed reseller, the CDR's own is ``cdr_reseller_id``).
CDR_PASS_THROUGH = tuple(name for name in CDR_SCHEMA if name != "reseller_id")


def _leg_fields(leg: str) -> list[pa.Field]:
    return [
        pa.field(f"{leg}_plan_id", pa.string()),
        pa.field(f"{leg}_deck_version", pa.string()),
        pa.field(f"{leg}_prefix", pa.string()),
        pa.field(f"{leg}_destination", pa.string()),
        pa.field(f"{leg}_rate", RATE_TYPE),
        pa.field(f"{leg}_billed_seconds", pa.int64()),
        pa.field(f"{leg}_amount", AMOUNT_TYPE),
        pa.field(f"{leg}_currency", pa.string()),
        # tariff v2: the winning deck row's origin group and time band (DESIGN.md section 8)
        pa.field(f"{leg}_origin", pa.string()),
        pa.field(f"{leg}_band", pa.string()),
    ]


CALL_HISTORY_SCHEMA = pa.schema(
    [
        pa.field("cdr_id", pa.string(), nullable=False),
        pa.field("session_id", pa.string(), nullable=False),
        pa.field("tenant_id", pa.string(), nullable=False),
        pa.field("customer_id", pa.string(), nullable=False),
        pa.field("client_id", pa.string(), nullable=False),
        pa.field("reseller_id", pa.string()),
        pa.field("cdr_reseller_id", pa.string()),
        pa.field("caller", pa.string(), nullable=False),
        pa.field("callee", pa.string(), nullable=False),
        pa.field("start_time", _TIME, nullable=False),
        pa.field("answer_time", _TIME),
        pa.field("end_time", _TIME, nullable=False),
        pa.field("duration_ms", pa.int64(), nullable=False),
        pa.field("disposition", pa.string()),
        pa.field("sip_code", pa.int64()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("unrated_reason", pa.string()),
        pa.field("rated_at", _TIME, nullable=False),
        pa.field("reference_version", pa.string(), nullable=False),
        *[f for leg in LEG_NAMES for f in _leg_fields(leg)],
    ]
)


def call_history_batch(table: pa.Table) -> pa.Table:
    """``table``'s call-history columns in schema order and types, or :class:`ValueError`.

    ClickHouse converts what it is sent into the column's type without a word: a Decimal of a
    larger scale is truncated, a float is taken as money, a number parsed from text, a null in
    a required column stored as ''. So only another layout of strings (large, view, dictionary)
    is converted here; any other type difference, or a null where the schema requires a value,
    is refused with every such column named.
    """
    missing = [name for name in CALL_HISTORY_SCHEMA.names if name not in table.column_names]
    if missing:
        msg = f"not a call-history batch: missing column(s) {', '.join(missing)}"
        raise ValueError(msg)
    problems: list[str] = []
    columns: list[pa.ChunkedArray] = []
    for expected in CALL_HISTORY_SCHEMA:
        column = table.column(expected.name)
        if column.type != expected.type:
            if expected.type == pa.string() and plain_type(column.type) == pa.string():
                column = column.cast(pa.string())
            else:
                problems.append(f"{expected.name} is {column.type}, not {expected.type}")
                continue
        if not expected.nullable and column.null_count:
            problems.append(f"{expected.name} is required but has {column.null_count} null(s)")
        columns.append(column)
    if problems:
        msg = f"not a call-history batch: {'; '.join(problems)}"
        raise ValueError(msg)
    return pa.Table.from_arrays(columns, schema=CALL_HISTORY_SCHEMA)


def plain_type(kind: pa.DataType) -> pa.DataType:
    """The plain Arrow type behind a dictionary, large or view string or binary type."""
    if pa.types.is_dictionary(kind):
        return plain_type(kind.value_type)
    if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return pa.string()
    if pa.types.is_large_binary(kind):
        return pa.binary()
    return kind
