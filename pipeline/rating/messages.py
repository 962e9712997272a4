"""Raw messages in, call history and rejected messages out: decoding and rating, poison-proof.

:func:`rate_messages` is what the runners (the Kafka rater and offline ``rate``) call. Decoding
never raises for anything a message holds, and rating is pure; if either still fails on a batch
in a way nobody foresaw, the batch is halved until the failing messages stand alone. Each of
them is rejected with the reason ``internal:<exception class>`` (and the exception's text as the
detail), and every other message of the batch is rated as usual. One poison message therefore
costs a few extra passes over its batch, and can never stop a runner or hold back a partition.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import polars as pl
import pyarrow as pa

from pipeline.rating.cdr_contract import MAX_DETAIL_CHARS
from pipeline.rating.columns import CALL_HISTORY_SCHEMA
from pipeline.rating.decode import DecodedBatch, decode_cdrs
from pipeline.rating.engine import rate_batch
from pipeline.rating.reference import ReferenceData

log = logging.getLogger(__name__)

REJECTED_SCHEMA = {"position": pl.Int64(), "reason": pl.String(), "detail": pl.String()}


@dataclass(frozen=True, eq=False)
class RatedMessages:
    """A batch of messages, rated.

    ``table`` has one call-history row per valid CDR (:data:`CALL_HISTORY_SCHEMA`), in message
    order; ``rejected`` one row per refused message: ``position`` (its index in the input),
    ``reason`` and ``detail``, sorted by position. Every message is in exactly one of them.
    """

    table: pa.Table
    rejected: pl.DataFrame


def rate_messages(
    messages: Sequence[bytes], reference: ReferenceData, rated_at: datetime
) -> RatedMessages:
    """Decode and rate ``messages``; a message that makes either fail is rejected on its own."""
    try:
        return _rate(messages, reference, rated_at)
    except Exception as exc:  # isolate the poison, rate the rest
        log.error(
            "rating a batch of %d messages failed (%s: %s): isolating the message(s) at fault",
            len(messages),
            type(exc).__name__,
            exc,
        )
        return _split(messages, reference, rated_at, 0, exc)


def rate_decoded(
    messages: Sequence[bytes],
    decoded: DecodedBatch | Exception,
    reference: ReferenceData,
    rated_at: datetime,
) -> RatedMessages:
    """Rate ``messages`` decoded beforehand: what :func:`rate_messages` gives for them.

    ``decoded`` is ``decode_cdrs(messages)``, or the exception it raised (decoding ran on
    another thread, see :mod:`pipeline.services.read_ahead`). When decoding failed or rating
    fails, the batch goes through :func:`rate_messages`, which isolates the message at fault.
    """
    if not isinstance(decoded, Exception):
        try:
            return RatedMessages(rate_batch(decoded.good, reference, rated_at), decoded.rejected)
        except Exception:  # rate_messages meets it again, logs it and isolates the culprit
            log.debug("rating a decoded batch failed: rating it again, isolating the culprit")
    return rate_messages(messages, reference, rated_at)


def _rate(messages: Sequence[bytes], reference: ReferenceData, rated_at: datetime) -> RatedMessages:
    decoded = decode_cdrs(messages)
    return RatedMessages(rate_batch(decoded.good, reference, rated_at), decoded.rejected)


def _split(
    messages: Sequence[bytes],
    reference: ReferenceData,
    rated_at: datetime,
    offset: int,
    exc: Exception,
) -> RatedMessages:
    """``messages`` failed with ``exc``: reject the message if alone, else retry each half."""
    if len(messages) == 1:
        detail = f"{type(exc).__name__}: {exc}"[:MAX_DETAIL_CHARS]
        log.error("message at position %d of its batch rejected: %s", offset, detail)
        rejected = pl.DataFrame(
            [(offset, f"internal:{type(exc).__name__}", detail)],
            schema=REJECTED_SCHEMA,
            orient="row",
        )
        return RatedMessages(CALL_HISTORY_SCHEMA.empty_table(), rejected)
    half = len(messages) // 2
    parts = [
        _retry(messages[:half], reference, rated_at, offset),
        _retry(messages[half:], reference, rated_at, offset + half),
    ]
    return RatedMessages(
        pa.concat_tables([part.table for part in parts]),
        pl.concat([part.rejected for part in parts]),
    )


def _retry(
    messages: Sequence[bytes], reference: ReferenceData, rated_at: datetime, offset: int
) -> RatedMessages:
    try:
        rated = _rate(messages, reference, rated_at)
    except Exception as exc:
        return _split(messages, reference, rated_at, offset, exc)
    return RatedMessages(rated.table, rated.rejected.with_columns(pl.col("position") + offset))
