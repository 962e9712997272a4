"""Re-rating: a tenant's call history in a time window rated again with corrected reference data.

The CDRs are read back from call history (every field rating needs is kept there, including
the reseller the CDR itself carried, so membership is resolved again with the new data), rated
by the same engine and written as new rows with a later ``rated_at``. Call history keeps the
latest rating of each CDR, so every query and balance afterwards reflects only the new rating,
and balances move by exactly the difference. Tombstones (the rows that hide a corrected CDR's
older version in its old day) are never read back, so a window over that old day cannot bring
the older version back. Re-rating twice with the same data changes no
amount the second time.

What wins when live rating and re-rating touch the same CDR at the same time: the later write
(``rated_at``). Publish the corrected deck to the raters before re-rating, so that a CDR a rater
re-delivers afterwards is rated with the corrected deck too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import polars as pl
import pyarrow as pa

from pipeline.progress import Progress
from pipeline.rating.cdr_contract import DECODED_SCHEMA
from pipeline.rating.columns import LEG_NAMES
from pipeline.rating.engine import rate_batch
from pipeline.rating.reference import ReferenceData
from pipeline.sinks.contracts import CallHistoryStore

_READ_SQL = """
SELECT cdr_id, session_id, tenant_id, customer_id, client_id, cdr_reseller_id AS reseller_id,
       caller, callee, start_time, answer_time, end_time, duration_ms, disposition, sip_code,
       customer_amount, customer_currency, client_amount, client_currency,
       reseller_amount, reseller_currency
FROM call_history FINAL
WHERE ({tenant:String} = '' OR tenant_id = {tenant:String})
  AND status != 'superseded'
  AND toDate(start_time) = {day:Date}
  AND start_time >= {start:DateTime64(6, 'UTC')}
  AND start_time < {end:DateTime64(6, 'UTC')}
ORDER BY cdr_id
"""


@dataclass
class RerateSummary:
    """What a re-rating changed, per leg and currency."""

    cdrs: int = 0
    before: dict[tuple[str, str], Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    after: dict[tuple[str, str], Decimal] = field(default_factory=lambda: defaultdict(Decimal))

    def lines(self) -> list[str]:
        """Printable summary: per leg and currency, the total before, after and the change."""
        out = [f"re-rated {self.cdrs:,} CDRs"]
        for key in sorted(set(self.before) | set(self.after)):
            old, new = self.before.get(key, Decimal(0)), self.after.get(key, Decimal(0))
            out.append(f"  {key[0]:<9} {key[1]:<4} {old:>18} -> {new:>18}  change {new - old:+}")
        return out


def rerate_window(
    store: CallHistoryStore,
    reference: ReferenceData,
    tenant: str,
    start: datetime,
    end: datetime,
    rated_at: datetime | None = None,
    progress: Progress | None = None,
) -> RerateSummary:
    """Re-rate ``tenant``'s CDRs with ``start <= start_time < end``, one day at a time."""
    summary = RerateSummary()
    for old, new in rerated_days(store, reference, start, end, tenant, rated_at, progress):
        store.write_call_history(new)
        summary.cdrs += old.num_rows
        _add_totals(summary.before, old)
        _add_totals(summary.after, new)
    return summary


def rerated_days(
    store: CallHistoryStore,
    reference: ReferenceData,
    start: datetime,
    end: datetime,
    tenant: str | None = None,
    rated_at: datetime | None = None,
    progress: Progress | None = None,
) -> Iterator[tuple[pa.Table, pa.Table]]:
    """Per day of the window: the current rows and the same CDRs rated with ``reference``.

    Nothing is written; :func:`rerate_window` writes, ``decks simulate`` only compares.
    ``tenant`` None means every tenant.
    """
    if end <= start:
        msg = "the window is empty: --to must be after --from"
        raise ValueError(msg)
    stamp = rated_at or datetime.now(UTC)
    days = _days(start, end)
    if progress is not None:
        progress.total = len(days)
    for done, day in enumerate(days, start=1):
        old = store.query(
            _READ_SQL,
            {
                "tenant": tenant or "",
                "day": day.isoformat(),
                "start": _param(start),
                "end": _param(end),
            },
        )
        if old.num_rows:
            yield old, rate_batch(_as_decoded(old), reference, stamp)
        if progress is not None:
            progress.update(done)


def _days(start: datetime, end: datetime) -> list[date]:
    first = start.astimezone(UTC).date()
    last = (end.astimezone(UTC) - timedelta(microseconds=1)).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _param(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _as_decoded(old: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(old.select([name for name in DECODED_SCHEMA if name != "position"]))
    assert isinstance(frame, pl.DataFrame)
    return (
        frame.with_columns(
            pl.col(name).cast(kind) for name, kind in DECODED_SCHEMA.items() if name != "position"
        )
        .with_row_index("position")
        .with_columns(pl.col("position").cast(pl.Int64))
    )


def _add_totals(totals: dict[tuple[str, str], Decimal], table: pa.Table) -> None:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    for leg in LEG_NAMES:
        grouped = (
            frame.filter(pl.col(f"{leg}_amount").is_not_null())
            .group_by(f"{leg}_currency")
            .agg(pl.col(f"{leg}_amount").sum())
        )
        for currency, amount in grouped.iter_rows():
            totals[(leg, currency)] += Decimal(amount)
