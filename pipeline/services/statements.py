"""Statements and period closes: what ``vmgate-rating statements`` and ``periods`` run.

A statement of a closed month is read back as frozen (with its digest); any other window is
computed live from the booked items (:mod:`pipeline.storage.statements`). Closing a month
freezes its items, then its statements, then logs the close: the log line is the write that
makes the close count, so a crash part-way leaves the month open and a new close starts over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipeline.sinks.contracts import CallHistoryStore
from pipeline.storage.periods import (
    PeriodEvent,
    chain_of,
    closed_chain,
    events,
    log_event,
    new_close_id,
    refuse_close,
    refuse_reopen,
)
from pipeline.storage.statements import (
    Window,
    account_zones,
    freeze_items,
    frozen_statements,
    live_statements,
    period_digest,
    store_statements,
)


def statements(
    store: CallHistoryStore,
    tenant: str,
    window: Window,
    *,
    scope: str | None = None,
    account: str | None = None,
) -> list[dict[str, Any]]:
    """Each account's statement over ``window``, with ``status`` closed (and digest) or open."""
    chain = closed_chain(store, tenant)
    close_id = chain.close_id(window.period) if window.period else None
    if close_id is not None:
        frozen = frozen_statements(
            store, tenant, window.label, close_id, scope=scope, account=account
        )
        return [{**s, "status": "closed"} for s in frozen]
    live = live_statements(store, tenant, window, chain=chain, scope=scope, account=account)
    return [{**s, "status": "open", "digest": ""} for s in live]


@dataclass(frozen=True)
class CloseResult:
    """What ``periods close`` did."""

    period: str
    digest: str
    statements: int
    already_closed: bool


def close_period(
    store: CallHistoryStore, tenant: str, period: str, actor: str, now: datetime
) -> CloseResult:
    """Close ``period`` (idempotent: a closed period is left as it is, same digest)."""
    log = events(store, tenant)
    chain = chain_of(log)
    if (close_id := chain.close_id(period)) is not None:
        event = next(e for e in log if e.close_id == close_id)
        return CloseResult(period, event.digest, event.statements, already_closed=True)
    refuse_close(chain, period)
    close_id = new_close_id(period)
    zones = account_zones(store, tenant)
    freeze_items(store, tenant, period, close_id, chain, zones=zones)
    closed = live_statements(
        store,
        tenant,
        Window(period=period),
        chain=chain.with_close(period, close_id),
        zones=zones,
    )
    store_statements(store, tenant, period, close_id, closed)
    digest = period_digest(closed)
    log_event(
        store,
        tenant,
        PeriodEvent(period, "close", close_id, digest, len(closed), actor, "", now),
    )
    return CloseResult(period, digest, len(closed), already_closed=False)


def reopen_period(
    store: CallHistoryStore, tenant: str, period: str, actor: str, reason: str, now: datetime
) -> PeriodEvent:
    """Reopen the last closed ``period``, logging who, when and why."""
    chain = closed_chain(store, tenant)
    refuse_reopen(chain, period)
    event = PeriodEvent(period, "reopen", chain.close_id(period) or "", "", 0, actor, reason, now)
    log_event(store, tenant, event)
    return event
