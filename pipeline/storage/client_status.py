"""Client online status (``client-status.v1``): whether each VMGateClient is online, and since when.

A status event says client C of tenant T went online (or offline) at instant ``at``. Events are
stored as they come, one row each, in ``client_status`` (``schemas/clickhouse/008``); the
table keeps the newest ``at`` per client (``ReplacingMergeTree(at)``), so an event delivered late
never overrides a newer one and the same event stored twice is read once. Read the current
status through ``client_status_current``, as the Resellers page's "online" count does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa

from pipeline.sinks.contracts import CallHistoryStore

#: Events per INSERT: each bound array stays well under ClickHouse's query-size limits.
_CHUNK = 1_000
_TIME = "%Y-%m-%d %H:%M:%S.%f"


@dataclass(frozen=True)
class ClientStatus:
    """One valid status event: ``online`` (True) or offline (False) since ``at`` (UTC)."""

    tenant_id: str
    client_id: str
    online: bool
    at: datetime

    def to_json(self) -> bytes:
        """The ``client-status.v1`` message value (``at`` as RFC 3339 UTC, microseconds)."""
        at = self.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        data = {
            "client_id": self.client_id,
            "tenant_id": self.tenant_id,
            "online": self.online,
            "at": at,
        }
        return json.dumps(data).encode()


_INSERT_SQL = """
INSERT INTO client_status (tenant_id, client_id, online, at, received_at)
SELECT e.1, e.2, e.3 = 1, e.4, {received_at:DateTime64(6, 'UTC')}
FROM (
    SELECT arrayJoin(arrayZip(
        {tenant_ids:Array(String)},
        {client_ids:Array(String)},
        {online:Array(UInt8)},
        {at:Array(DateTime64(6, 'UTC'))}
    )) AS e
)
"""

_CURRENT_SQL = """
SELECT tenant_id, client_id, online, at
FROM client_status_current
WHERE {tenant_id:String} = '' OR tenant_id = {tenant_id:String}
ORDER BY tenant_id, client_id
"""


def record_client_statuses(
    store: CallHistoryStore, statuses: Sequence[ClientStatus], received_at: datetime
) -> int:
    """Store the events (``received_at`` = when this pipeline got them); return how many.

    Returns only once the store acknowledged every INSERT; raises otherwise. Storing an event
    again is harmless: the current status stays what it was.
    """
    for start in range(0, len(statuses), _CHUNK):
        chunk = statuses[start : start + _CHUNK]
        store.execute(
            _INSERT_SQL,
            {
                "tenant_ids": [s.tenant_id for s in chunk],
                "client_ids": [s.client_id for s in chunk],
                "online": [1 if s.online else 0 for s in chunk],
                "at": [s.at.astimezone(UTC).strftime(_TIME) for s in chunk],
                "received_at": received_at.astimezone(UTC).strftime(_TIME),
            },
        )
    return len(statuses)


def current_client_status(store: CallHistoryStore, tenant_id: str | None = None) -> pa.Table:
    """The current status of every client (of one tenant if given): its newest event."""
    return store.query(_CURRENT_SQL, {"tenant_id": tenant_id or ""})
