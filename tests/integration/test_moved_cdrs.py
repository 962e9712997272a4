"""Corrected CDRs: a cdr_id published again with another start day, on both store paths.

Call history is partitioned by day of ``start_time`` and ReplacingMergeTree deduplicates only
within a partition, so a corrected CDR that lands in another day leaves its older version in
the old day's partition. These tests check the store keeps every view exact anyway: after each
write, ``balances`` and ``billing_overview`` equal sums over ``call_history_current`` to the last
decimal, before and after ``refresh_balances`` (which pre-aggregates per partition); a window
over the old day never shows or re-rates the old version; and a store written by the old code
path is repaired when the migration runs.

Every scenario runs twice per path: with the engine's defaults (chdb 26.9 defers partition
pruning until after FINAL) and with ``defer_partition_pruning_after_final = 0``, which is how
servers before 26.3 (the compose stack pins 25.3) read a ``start_time`` window over FINAL.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from pipeline.balances import refresh_balances
from pipeline.rating.columns import LEG_NAMES, call_history_batch
from pipeline.rating.reference import ReferenceData, load_plans_folder
from pipeline.reports import call_history
from pipeline.rerate import rerate_window, rerated_days
from pipeline.sinks.clickhouse_server import ServerStore
from pipeline.sinks.contracts import CallHistoryStore
from pipeline.sinks.embedded import EmbeddedStore
from pipeline.sinks.migrations import schemas_dir
from tests.builders import association, cdr, deck_row, membership, plan, write_plans
from tests.integration.test_store_paths import PATHS, StorePath, open_path, rated, unique_database

pytestmark = pytest.mark.integration

T0 = datetime(2026, 4, 1, tzinfo=UTC)
FROM = "2026-01-01T00:00:00Z"
MODES = ("defaults", "pruning-before-final")

Key = tuple[str, str, str, str]


@pytest.fixture(params=[(p, m) for p in PATHS for m in MODES], ids=lambda p: f"{p[0]}-{p[1]}")
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CallHistoryStore]:
    kind, mode = request.param
    with open_path(kind, tmp_path, unique_database()) as opened:
        opened.store.migrate()
        if mode == "pruning-before-final":
            # The session keeps it (the test server runs every request on one engine session).
            opened.store.execute("SET defer_partition_pruning_after_final = 0")
        yield opened.store


@pytest.fixture
def reference(tmp_path: Path) -> ReferenceData:
    return network(tmp_path / "plans")


def network(folder: Path) -> ReferenceData:
    """Two customers in two currencies, a client deck, a reseller deck; gateway gw under res."""
    decks = {
        "PE": [deck_row("44", "0.012345678", effective_from=FROM, connection_fee="0.001")],
        "PG": [deck_row("44", "0.0201", effective_from=FROM, initial_increment="60")],
        "C": [deck_row("44", "0.0071", effective_from=FROM)],
        "R": [deck_row("44", "0.00123", effective_from=FROM)],
    }
    write_plans(
        folder,
        [
            plan("PE", "customer", "EUR"),
            plan("PG", "customer", "GBP"),
            plan("C", "client", "EUR"),
            plan("R", "reseller", "USD"),
        ],
        decks,
        [
            association("customer", "cust-eur", "PE", effective_from=FROM),
            association("customer", "cust-gbp", "PG", effective_from=FROM),
            association("client", "gw", "C", effective_from=FROM),
            association("client", "gw2", "C", effective_from=FROM),
            association("reseller", "res", "R", effective_from=FROM),
        ],
        [membership("gw", "res", effective_from=FROM)],
    )
    return load_plans_folder(folder)


def call(
    cdr_id: str, start: str, customer: str = "cust-eur", client: str = "gw", seconds: int = 61
) -> dict[str, Any]:
    return cdr(
        cdr_id=cdr_id,
        session_id=f"s-{cdr_id}",
        customer_id=customer,
        client_id=client,
        callee="4420794612",
        start_time=start,
        answer_time=None,
        end_time="2026-06-30T00:00:00Z",
        duration_ms=seconds * 1000,
    )


def base_calls() -> list[dict[str, Any]]:
    """Twenty calls on 2026-03-01 .. 2026-03-05, some on the GBP customer or the Direct gateway."""
    out = []
    for i in range(20):
        start = datetime(2026, 3, 1 + i % 5, 8, i, tzinfo=UTC).isoformat().replace("+00:00", "Z")
        customer = "cust-gbp" if i % 7 == 3 else "cust-eur"
        client = "gw2" if i % 4 == 1 else "gw"
        out.append(call(f"c-{i:02d}", start, customer, client, seconds=30 + 7 * i))
    return out


def write(
    store: CallHistoryStore,
    reference: ReferenceData,
    records: list[dict[str, Any]],
    at: datetime,
) -> None:
    store.write_call_history(rated(reference, records, at))


# -- what must hold after every step ----------------------------------------------------------


def current_rows(store: CallHistoryStore) -> list[dict[str, Any]]:
    rows = store.query("SELECT * FROM call_history_current").to_pylist()
    ids = [(r["tenant_id"], r["cdr_id"]) for r in rows]
    assert len(ids) == len(set(ids)), "a CDR has two current rows"
    return rows


def sums(rows: list[dict[str, Any]]) -> dict[Key, tuple[Decimal, int]]:
    amount: dict[Key, Decimal] = defaultdict(Decimal)
    calls: dict[Key, int] = defaultdict(int)
    account = {"customer": "customer_id", "client": "client_id", "reseller": "reseller_id"}
    for row in rows:
        for leg in LEG_NAMES:
            if row[f"{leg}_amount"] is not None:
                key = (row["tenant_id"], leg, row[account[leg]] or "", row[f"{leg}_currency"])
                amount[key] += row[f"{leg}_amount"]
                calls[key] += 1
    return {key: (amount[key], calls[key]) for key in amount}


def overview_of(totals: dict[Key, tuple[Decimal, int]]) -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for (tenant, scope, _, currency), (amount, _) in totals.items():
        row = out.setdefault(
            (tenant, currency),
            {f"{s}_total": Decimal(0) for s in LEG_NAMES},
        )
        row[f"{scope}_total"] += amount
    return out


def stored_balances(store: CallHistoryStore) -> dict[Key, tuple[Decimal, int]]:
    rows = store.query("SELECT * FROM balances").to_pylist()
    return {
        (r["tenant_id"], r["scope"], r["account_id"], r["currency"]): (r["amount"], r["calls"])
        for r in rows
        if r["calls"]
    }


def stored_overview(store: CallHistoryStore) -> dict[tuple[str, str], dict[str, Any]]:
    rows = store.query("SELECT * FROM billing_overview").to_pylist()
    return {
        (r["tenant_id"], r["currency"]): {f"{s}_total": r[f"{s}_total"] for s in LEG_NAMES}
        for r in rows
    }


def assert_exact(store: CallHistoryStore) -> list[dict[str, Any]]:
    """Balances and billing overview equal sums over the current rows, before and after refresh."""
    rows = current_rows(store)
    want = sums(rows)
    assert stored_balances(store) == want
    assert stored_overview(store) == overview_of(want)
    refresh_balances(store)
    assert current_rows(store) == rows or sorted(
        current_rows(store), key=lambda r: r["cdr_id"]
    ) == sorted(rows, key=lambda r: r["cdr_id"])
    assert stored_balances(store) == want
    assert stored_overview(store) == overview_of(want)
    assert refresh_balances(store).stale == 0
    assert stored_balances(store) == want
    return rows


def day_window(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def shown_on(store: CallHistoryStore, day: date) -> list[str]:
    """cdr_ids call history shows for ``day`` (a start_time window, as the CLI and Grafana ask)."""
    start, end = day_window(day)
    table = call_history(store, start=start, end=end, limit=10_000)
    return sorted(table.column("cdr_id").to_pylist()) if table.num_rows else []


def current_day(rows: list[dict[str, Any]], cdr_id: str) -> date:
    found = [r for r in rows if r["cdr_id"] == cdr_id]
    assert len(found) == 1, (cdr_id, found)
    start: datetime = found[0]["start_time"]
    return start.date()


# -- tests -------------------------------------------------------------------------------------


def test_a_cdr_moved_to_another_day_moves_the_balance(
    store: CallHistoryStore, reference: ReferenceData
) -> None:
    write(store, reference, base_calls(), T0)
    assert_exact(store)
    write(store, reference, [call("c-03", "2026-03-03T22:00:00Z")], T0 + timedelta(hours=1))
    rows = assert_exact(store)
    assert current_day(rows, "c-03") == date(2026, 3, 3)
    assert "c-03" not in shown_on(store, date(2026, 3, 4))
    assert shown_on(store, date(2026, 3, 3)).count("c-03") == 1
