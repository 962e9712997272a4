"""Billing periods of a tenant: months in each account's time zone, closed and reopened.

A period is a calendar month, ``YYYY-MM``, read in the time zone of each account (the
``timezone`` of its ``accounts.csv`` row in the current roster, else UTC), with the zone's own
DST rules: March 2026 of a Pacific/Auckland account is [2026-02-28T11:00Z, 2026-03-31T11:00Z).

Closing is sequential: a tenant's first close may be any month (it also freezes everything
before it, the opening balance), then only the month after the last closed one; only the last
closed month may be reopened. So the closed months always form one unbroken chain from the
beginning of the history, and "the first open period" is the month after the chain. The
close/reopen log (``period_events``) is never changed: who, when, why, and the digest of what
was frozen. What a close freezes and how statements use it: :mod:`pipeline.storage.statements`.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from pipeline.sinks.contracts import CallHistoryStore

_PERIOD = re.compile(r"^(?P<year>[0-9]{4})-(?P<month>0[1-9]|1[0-2])$")
# The start of time for the first closed period, which absorbs everything before it.
BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)

_EVENTS_SQL = """
SELECT period, action, close_id, digest, statements, actor, reason, at
FROM period_events
WHERE tenant_id = {tenant:String}
ORDER BY period, at
"""
_EVENT_SQL = """
INSERT INTO period_events
    (tenant_id, period, action, close_id, digest, statements, actor, reason, at)
VALUES ({tenant:String}, {period:String}, {action:String}, {close_id:String}, {digest:String},
        {statements:UInt64}, {actor:String}, {reason:String}, {at:DateTime64(6, 'UTC')})
"""


class PeriodError(ValueError):
    """A close or reopen that is refused; the message says why and what to do."""


def parse_period(text: str) -> str:
    """``YYYY-MM`` (a month), or ValueError naming the text."""
    if not _PERIOD.match(text):
        msg = f"{text[:64]!r} is not a period YYYY-MM (like 2026-03)"
        raise ValueError(msg)
    return text


def _month(label: str) -> date:
    return date(int(label[:4]), int(label[5:7]), 1)


def next_period(label: str) -> str:
    """The month after ``label``."""
    first = _month(label)
    return f"{first.year + first.month // 12:04d}-{first.month % 12 + 1:02d}"


def query_instant(instant: datetime) -> str:
    """An instant as a query parameter's text: UTC, ``YYYY-MM-DD hh:mm:ss.ffffff``."""
    return instant.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def local_midnight(day: date, zone: str) -> datetime:
    """The UTC instant at which ``day`` starts in ``zone`` (its own DST rules)."""
    local = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone))
    return local.astimezone(UTC)


def month_bounds(label: str, zone: str) -> tuple[datetime, datetime]:
    """[start, end) of the month ``label`` in ``zone``, as UTC instants."""
    return local_midnight(_month(label), zone), local_midnight(_month(next_period(label)), zone)


@dataclass(frozen=True)
class PeriodEvent:
    """One line of the close/reopen log."""

    period: str
    action: str  # close | reopen
    close_id: str
    digest: str
    statements: int
    actor: str
    reason: str
    at: datetime


@dataclass(frozen=True)
class ClosedChain:
    """The tenant's closed months, oldest first, each with the close in effect."""

    periods: tuple[str, ...] = ()
    close_ids: tuple[str, ...] = ()

    @property
    def last(self) -> str | None:
        """The last closed month (None: nothing closed)."""
        return self.periods[-1] if self.periods else None

    def close_id(self, period: str) -> str | None:
        """The close in effect for ``period`` (None: open)."""
        if period in self.periods:
            return self.close_ids[self.periods.index(period)]
        return None

    def with_close(self, period: str, close_id: str) -> ClosedChain:
        """The chain with ``period`` closed by ``close_id`` at its end."""
        return ClosedChain((*self.periods, period), (*self.close_ids, close_id))


def events(store: CallHistoryStore, tenant: str) -> list[PeriodEvent]:
    """The tenant's close/reopen log, by period then time."""
    table = store.query(_EVENTS_SQL, {"tenant": tenant})
    rows = table.to_pylist() if table.num_columns else []
    return [PeriodEvent(**row) for row in rows]


def chain_of(log: list[PeriodEvent]) -> ClosedChain:
    """The months of a close/reopen log (by period then time) whose newest event is a close."""
    newest: dict[str, PeriodEvent] = {}
    for event in log:
        newest[event.period] = event
    closed = sorted((p, e.close_id) for p, e in newest.items() if e.action == "close")
    return ClosedChain(tuple(p for p, _ in closed), tuple(c for _, c in closed))


def closed_chain(store: CallHistoryStore, tenant: str) -> ClosedChain:
    """The months whose newest event is a close, oldest first."""
    return chain_of(events(store, tenant))


def refuse_close(chain: ClosedChain, period: str) -> None:
    """Refuse closing ``period`` unless it is the first close or the month after the chain."""
    last = chain.last
    if last is not None and period != next_period(last):
        if period < last:
            msg = f"period {period} is before the last closed period {last}: reopen {last} first"
        else:
            msg = (
                f"period {period} cannot be closed before {next_period(last)}: periods close in "
                f"order (the last closed is {last})"
            )
        raise PeriodError(msg)


def refuse_reopen(chain: ClosedChain, period: str) -> None:
    """Refuse reopening ``period`` unless it is the last closed month."""
    if period not in chain.periods:
        msg = f"period {period} is not closed"
        raise PeriodError(msg)
    if period != chain.last:
        msg = f"period {period} is not the last closed period: reopen {chain.last} first"
        raise PeriodError(msg)


def new_close_id(period: str) -> str:
    """A fresh id for a close of ``period`` (a crashed close leaves rows no event names)."""
    return f"{period}:{uuid.uuid4().hex}"


def log_event(store: CallHistoryStore, tenant: str, event: PeriodEvent) -> None:
    """Append ``event`` to the tenant's log (the write that makes a close or reopen count)."""
    store.execute(
        _EVENT_SQL,
        {
            "tenant": tenant,
            "period": event.period,
            "action": event.action,
            "close_id": event.close_id,
            "digest": event.digest,
            "statements": event.statements,
            "actor": event.actor,
            "reason": event.reason,
            "at": query_instant(event.at),
        },
    )
