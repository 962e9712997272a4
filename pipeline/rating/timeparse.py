"""RFC 3339 timestamps as polars expressions, shared by CDR decoding and reference data.

Accepted: ``YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)``; ``T`` and ``Z`` may be lower case. The
fraction may have any number of digits and is truncated to microseconds. Every instant is
converted to UTC and held as integer microseconds since the epoch (``Datetime("us", "UTC")``).
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

RFC3339_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"

#: Sentinel for an open-ended ``effective_until``: later than any instant we rate.
OPEN_END_US = 2**62


def parse_rfc3339(text: pl.Expr) -> pl.Expr:
    """Parse RFC 3339 text to ``Datetime("us", "UTC")``; null where the text is not valid.

    Null input stays null. Impossible dates (February 30) and malformed text both give null, so
    callers compare ``is_null()`` of input and output to tell missing from malformed.
    """
    # chrono's ISO 8601 reader ("%+") takes T or t, Z or z or an offset, and any fraction
    # (truncated to the microseconds we hold). It also takes forms RFC 3339 does not (a space
    # for T, +0200), so the strict pattern decides what is valid.
    parsed = text.str.to_datetime("%+", strict=False, time_unit="us", time_zone="UTC")
    return pl.when(text.str.contains(RFC3339_PATTERN)).then(parsed).otherwise(None)


def to_micros(value: datetime) -> int:
    """Return microseconds since the epoch for an aware datetime."""
    if value.tzinfo is None:
        msg = f"naive datetime {value!r}: pass a timezone-aware UTC instant"
        raise ValueError(msg)
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
