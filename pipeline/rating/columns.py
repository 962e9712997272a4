"""The call-history row: one schema for Arrow batches, Parquet files and ClickHouse tables.

Names are those of DESIGN.md section 4 ("Rated row"); per leg ``L`` in customer, client and
reseller there are ``L_plan_id, L_deck_version, L_prefix, L_destination, L_rate,
L_billed_seconds, L_amount, L_currency``, all null where the leg does not apply or is unrated.
"""

from __future__ import annotations

import pyarrow as pa

from pipeline.rating.money import AMOUNT_TYPE, RATE_TYPE

_TIME = pa.timestamp("us", tz="UTC")
LEG_NAMES = ("customer", "client", "reseller")


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
    ]


CALL_HISTORY_SCHEMA = pa.schema(
    [
        pa.field("cdr_id", pa.string(), nullable=False),
        pa.field("session_id", pa.string(), nullable=False),
        pa.field("tenant_id", pa.string(), nullable=False),
        pa.field("customer_id", pa.string(), nullable=False),
        pa.field("client_id", pa.string(), nullable=False),
        pa.field("reseller_id", pa.string()),
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
