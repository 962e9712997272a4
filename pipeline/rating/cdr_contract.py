"""``cdr.v1`` as this pipeline reads it: the fields, their JSON types, and the bounds.

The contract is DESIGN.md section 3; the bounds are this pipeline's (docs/rating-rules.md says
why each one): a message, an id or a duration longer than any real one is refused, with a
reason naming the field.
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

DISPOSITIONS = ("ANSWERED", "NO_ANSWER", "BUSY", "FAILED", "CANCELLED")
REQUIRED_TEXT = (
    "cdr_id",
    "session_id",
    "tenant_id",
    "customer_id",
    "client_id",
    "caller",
    "callee",
    "start_time",
    "end_time",
)
INTEGER_FIELDS = ("duration_ms", "sip_code")
#: Fields whose value must be a JSON string (or null where optional).
STRING_FIELDS = (*REQUIRED_TEXT, "reseller_id", "answer_time", "disposition")
#: Ids and the caller: at most this many characters.
BOUNDED_TEXT = ("cdr_id", "session_id", "tenant_id", "customer_id", "client_id", "reseller_id")

#: A message longer than this many bytes is refused as ``too_large`` without being parsed.
MAX_MESSAGE_BYTES = 64 * 1024
#: Objects and arrays nested deeper than this are refused as ``too_deep``.
MAX_NESTING = 32
#: Ids and the caller longer than this many characters are refused as ``too_long:<field>``.
MAX_TEXT_CHARS = 256
#: ``duration_ms`` above this (7 days) is refused as ``out_of_range:duration_ms``.
MAX_DURATION_MS = 7 * 24 * 3600 * 1000
#: ``duration_ms`` may exceed ``end_time - start_time`` by at most this much (timestamps are often
#: whole seconds while the duration is in milliseconds).
DURATION_SLACK_MS = 1000
#: Timestamps before or at/after these instants are refused as ``out_of_range:<field>``.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
#: A rejection's detail is cut to this many characters.
MAX_DETAIL_CHARS = 500
CDR_SCHEMA: dict[str, pl.DataType] = {
    "cdr_id": pl.String(),
    "session_id": pl.String(),
    "tenant_id": pl.String(),
    "customer_id": pl.String(),
    "client_id": pl.String(),
    "reseller_id": pl.String(),
    "caller": pl.String(),
    "callee": pl.String(),
    "start_time": pl.String(),
    "answer_time": pl.String(),
    "end_time": pl.String(),
    "duration_ms": pl.Int64(),
    "disposition": pl.String(),
    "sip_code": pl.Int64(),
}
#: Columns of a decoded, valid CDR batch (plus ``position``, the message's index in the batch).
DECODED_SCHEMA: dict[str, pl.DataType] = {
    **CDR_SCHEMA,
    "callee": pl.String(),
    "start_time": pl.Datetime("us", "UTC"),
    "answer_time": pl.Datetime("us", "UTC"),
    "end_time": pl.Datetime("us", "UTC"),
    "position": pl.Int64(),
}
#: The largest integer a JSON integer field may hold (Int64).
INT64_MAX = 2**63 - 1
