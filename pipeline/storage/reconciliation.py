"""Our side of a reconciliation: the client leg of a VMGateClient's answered calls in a window.

A carrier bills the calls its gateway carried; ours are the current call-history rows (one per
CDR, ``FINAL``, tombstones skipped after it, as every reader does) whose ``client_id`` is that
client, answered (``duration_ms > 0``: the contract's "0 = not answered"; a carrier does not
list unanswered attempts) and starting in the window asked for. Each row carries its start as
UTC microseconds and its client-leg amount in integer units of 10**-9, exact (NULL where the
client leg did not rate: no client plan, or no prefix of its deck matched).
"""

from __future__ import annotations

import polars as pl

# Our amounts in the unit of the carrier's (reference/carrier_cdrs.AMOUNT_DECIMALS = RATE_DECIMALS).
from pipeline.rating.money import RATE_SCALE
from pipeline.sinks.contracts import CallHistoryStore

CLIENT_CALLS_SQL = f"""
SELECT cdr_id, tenant_id, callee, toUnixTimestamp64Micro(start_time) AS start_us, duration_ms,
       client_billed_seconds AS billed_seconds,
       toInt64(client_amount * {RATE_SCALE}) AS amount_units, client_currency AS currency,
       status
FROM call_history FINAL
WHERE client_id = {{client:String}}
  AND start_time >= fromUnixTimestamp64Micro({{start_us:Int64}}, 'UTC')
  AND start_time < fromUnixTimestamp64Micro({{end_us:Int64}}, 'UTC')
  AND duration_ms > 0
  AND status != 'superseded'
  AND ({{tenant:String}} = '' OR tenant_id = {{tenant:String}})
"""

#: The columns of :func:`client_calls`' frame.
CLIENT_CALLS_SCHEMA = {
    "cdr_id": pl.String,
    "tenant_id": pl.String,
    "callee": pl.String,
    "start_us": pl.Int64,
    "duration_ms": pl.Int64,
    "billed_seconds": pl.Int64,
    "amount_units": pl.Int64,
    "currency": pl.String,
    "status": pl.String,
}


def client_calls(
    store: CallHistoryStore,
    client: str,
    start_us: int,
    end_us: int,
    *,
    tenant: str | None = None,
) -> pl.DataFrame:
    """The answered calls of ``client`` starting in ``[start_us, end_us)`` (UTC microseconds).

    Columns of :data:`CLIENT_CALLS_SCHEMA`; ``tenant`` narrows to one tenant's calls.
    """
    table = store.query(
        CLIENT_CALLS_SQL,
        {"client": client, "start_us": start_us, "end_us": end_us, "tenant": tenant or ""},
    )
    if table.num_columns == 0:
        return pl.DataFrame(schema=CLIENT_CALLS_SCHEMA)
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame.cast(CLIENT_CALLS_SCHEMA)  # type: ignore[arg-type]
