"""Balances and the billing overview, exact to the last decimal and fast as history grows.

The views in ``schemas/clickhouse/003_balances.sql`` are always exact: they add stored
per-partition sums for partitions that did not change since the sums were computed, and sum
every other partition live from ``call_history FINAL``. :func:`refresh_balances` stores sums for
the partitions that changed, so queries read almost everything pre-aggregated. Refreshing is
safe at any time and from several processes at once: sums are stored under the fingerprint of
the data parts they were computed from, and marked usable only if the partition did not change
while they were computed.

Before storing sums, :func:`refresh_balances` writes the tombstones missing for CDRs live in two
days (:meth:`~pipeline.sinks.contracts.CallHistoryStore.repair_moved_cdrs`): two raters writing
two versions of one CDR at the same moment can both miss the other's, and a day's stored sums
must not keep a version that another day replaced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa

from pipeline.progress import Progress
from pipeline.rating.reference import Scope
from pipeline.sinks.contracts import CallHistoryStore

STALE_PARTITIONS_SQL = """
SELECT c.partition_id AS partition_id, c.fingerprint AS fingerprint
FROM call_history_partitions AS c
LEFT ANTI JOIN balance_fresh_partitions AS f ON c.partition_id = f.partition_id
ORDER BY c.partition_id
"""
_FINGERPRINT_SQL = (
    "SELECT fingerprint FROM call_history_partitions WHERE partition_id = {partition:String}"
)
_STORE_SUMS_SQL = """
INSERT INTO balance_partitions
    (partition_id, fingerprint, tenant_id, scope, account_id, currency, amount, calls, computed_at)
SELECT {partition:String}, {fingerprint:UInt64}, tenant_id, scope, account_id, currency, amount,
       calls, {at:DateTime64(6, 'UTC')}
FROM partition_totals(partition = {partition:String})
"""
_MARK_SQL = """
INSERT INTO balance_refreshes (partition_id, fingerprint, computed_at)
VALUES ({partition:String}, {fingerprint:UInt64}, {at:DateTime64(6, 'UTC')})
"""

BALANCE_COLUMNS = ("tenant_id", "scope", "account_id", "currency", "amount", "payments", "balance")


@dataclass(frozen=True)
class RefreshSummary:
    """What a refresh did."""

    stale: int  # partitions found changed
    stored: int  # partitions whose sums are now stored and usable
    raced: int  # partitions that changed again while being summed (left to the next refresh)
    tombstones: int = 0  # missing tombstones written first (CDRs found live in two days)


def refresh_balances(
    store: CallHistoryStore, now: datetime | None = None, progress: Progress | None = None
) -> RefreshSummary:
    """Store per-partition sums for every call-history partition that changed since last time."""
    at = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S.%f")
    tombstones = store.repair_moved_cdrs()
    stale = store.query(STALE_PARTITIONS_SQL).to_pylist()
    if progress is not None:
        progress.total = len(stale)
    stored = raced = 0
    for done, row in enumerate(stale, start=1):
        parameters = {"partition": row["partition_id"], "fingerprint": row["fingerprint"], "at": at}
        store.execute(_STORE_SUMS_SQL, parameters)
        after = store.query(_FINGERPRINT_SQL, {"partition": row["partition_id"]}).to_pylist()
        if after and after[0]["fingerprint"] == row["fingerprint"]:
            store.execute(_MARK_SQL, parameters)
            stored += 1
        else:
            raced += 1
        if progress is not None:
            progress.update(done)
    return RefreshSummary(stale=len(stale), stored=stored, raced=raced, tombstones=tombstones)


def balances(
    store: CallHistoryStore,
    tenant: str | None = None,
    scope: Scope | None = None,
    account: str | None = None,
) -> pa.Table:
    """Balances per tenant, scope, account and currency (refresh first for speed)."""
    conditions = []
    parameters: dict[str, object] = {}
    for column, value in (("tenant_id", tenant), ("scope", scope), ("account_id", account)):
        if value is not None:
            conditions.append(f"{column} = {{{column}:String}}")
            parameters[column] = str(value)
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    sql = (
        f"SELECT {', '.join(BALANCE_COLUMNS)}, calls FROM balances {where} "
        "ORDER BY tenant_id, indexOf(['customer', 'client', 'reseller'], scope), "
        "account_id, currency"
    )
    return store.query(sql, parameters)


def billing_overview(store: CallHistoryStore, tenant: str | None = None) -> pa.Table:
    """Per tenant and currency: customer and VMGateClient totals, owed to resellers."""
    parameters: Mapping[str, object] = {"tenant_id": tenant} if tenant else {}
    where = "WHERE tenant_id = {tenant_id:String}" if tenant else ""
    return store.query(
        f"SELECT * FROM billing_overview {where} ORDER BY tenant_id, currency", parameters
    )
