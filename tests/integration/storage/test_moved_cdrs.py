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

from collections import defaultdict
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pytest

from pipeline.rating.columns import LEG_NAMES
from pipeline.rating.reference import ReferenceData
from pipeline.reference.loader import load_plans_folder
from pipeline.services.rerate import rerate_window, rerated_days
from pipeline.sinks.contracts import CallHistoryStore
from pipeline.storage.balances import refresh_balances
from pipeline.storage.migrations import schemas_dir
from pipeline.storage.reports import call_history, export_call_history
from tests.builders import association, cdr, deck_row, membership, plan, write_plans
from tests.support.stores import PATHS, open_path, rated, unique_database

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
    rows: list[dict[str, Any]] = store.query(
        "SELECT * FROM call_history_current ORDER BY tenant_id, cdr_id"
    ).to_pylist()
    ids = [(r["tenant_id"], r["cdr_id"]) for r in rows]
    assert len(ids) == len(set(ids)), "a CDR has two current rows"
    assert all(r["status"] != "superseded" for r in rows)
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


def reseller_totals(store: CallHistoryStore, reseller: str) -> dict[Key, tuple[Decimal, int]]:
    rows = store.query(
        "SELECT * FROM reseller_balance(tenant = 't1', reseller = {r:String})", {"r": reseller}
    ).to_pylist()
    return {
        (r["tenant_id"], "reseller", r["reseller_id"], r["currency"]): (r["amount"], r["calls"])
        for r in rows
    }


def assert_exact(store: CallHistoryStore) -> list[dict[str, Any]]:
    """Balances and billing overview equal sums over the current rows, before and after refresh.

    Also: the export and the scoped views show the same current rows, never a tombstone.
    """
    rows = current_rows(store)
    want = sums(rows)
    exported = export_call_history(store).to_pylist()
    assert [(r["cdr_id"], r["rated_at"]) for r in exported] == [
        (r["cdr_id"], r["rated_at"]) for r in rows
    ]
    tenant = store.query("SELECT cdr_id FROM tenant_call_history(tenant = 't1') ORDER BY cdr_id")
    assert tenant.column("cdr_id").to_pylist() == [r["cdr_id"] for r in rows]
    via_res = [r for r in rows if r["reseller_id"] == "res"]
    shown = store.query(
        "SELECT cdr_id, start_time FROM reseller_call_history(tenant = 't1', reseller = 'res') "
        "ORDER BY cdr_id"
    ).to_pylist()
    assert shown == [{"cdr_id": r["cdr_id"], "start_time": r["start_time"]} for r in via_res]
    for refreshed in (False, True):
        if refreshed:
            refresh_balances(store)
            assert refresh_balances(store).stale == 0
            assert current_rows(store) == rows
        assert stored_balances(store) == want, f"refreshed={refreshed}"
        assert stored_overview(store) == overview_of(want), f"refreshed={refreshed}"
        assert reseller_totals(store, "res") == {k: v for k, v in want.items() if k[2] == "res"}
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


# -- tests ---------------------------------------------------------------------------------------


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def test_a_cdr_moved_to_another_day_moves_the_balance(
    store: CallHistoryStore, reference: ReferenceData
) -> None:
    """The regression of issue 11 item 3: the old day's pre-aggregated sums kept the old version."""
    write(store, reference, base_calls(), T0)
    assert_exact(store)
    write(store, reference, [call("c-03", "2026-03-03T22:00:00Z")], at(1))
    rows = assert_exact(store)
    assert current_day(rows, "c-03") == date(2026, 3, 3)
    assert "c-03" not in shown_on(store, date(2026, 3, 4))
    assert shown_on(store, date(2026, 3, 3)).count("c-03") == 1


def test_every_kind_of_move_keeps_every_view_exact(
    store: CallHistoryStore, reference: ReferenceData
) -> None:
    write(store, reference, base_calls(), T0)
    assert_exact(store)
    ids = sorted(r["cdr_id"] for r in base_calls())

    def step(records: list[dict[str, Any]], hours: float, moved: dict[str, date]) -> None:
        write(store, reference, records, at(hours))
        rows = assert_exact(store)
        assert [r["cdr_id"] for r in rows] == ids
        for cdr_id, day in moved.items():
            assert current_day(rows, cdr_id) == day, cdr_id
            for shown_day in {day, day - timedelta(days=1), day + timedelta(days=1)}:
                expected = 1 if shown_day == day else 0
                assert shown_on(store, shown_day).count(cdr_id) == expected, (cdr_id, shown_day)

    # Another day, same month (and another customer, so another plan and currency).
    step([call("c-03", "2026-03-03T22:00:00Z")], 1, {"c-03": date(2026, 3, 3)})
    # Another month.
    step([call("c-05", "2026-02-14T09:30:00Z")], 2, {"c-05": date(2026, 2, 14)})
    # Another customer, currency and client: from EUR via the Direct gateway to GBP via the
    # reseller's gateway, and the other way round (the reseller view loses c-02).
    step(
        [
            call("c-06", "2026-03-09T10:00:00Z", customer="cust-gbp", client="gw"),
            call("c-02", "2026-03-08T10:00:00Z", customer="cust-eur", client="gw2"),
        ],
        3,
        {"c-06": date(2026, 3, 9), "c-02": date(2026, 3, 8)},
    )
    # Moved twice, then back to its first day.
    step([call("c-07", "2026-03-20T10:00:00Z")], 4, {"c-07": date(2026, 3, 20)})
    step([call("c-07", "2026-04-02T10:00:00Z", seconds=90)], 5, {"c-07": date(2026, 4, 2)})
    back = [call("c-07", "2026-03-03T08:07:00Z", seconds=95)]
    step(back, 6, {"c-07": date(2026, 3, 3)})
    # The same batch delivered again (same rated_at): nothing changes.
    before = stored_balances(store)
    step(back, 6, {"c-07": date(2026, 3, 3)})
    assert stored_balances(store) == before
    # An older version arriving after a newer one in another day loses (and is not written).
    step([call("c-08", "2026-03-25T10:00:00Z")], 8, {"c-08": date(2026, 3, 25)})
    step([call("c-08", "2026-03-04T10:00:00Z", seconds=500)], 7.5, {"c-08": date(2026, 3, 25)})
    stale = store.query(
        "SELECT count() AS n FROM call_history WHERE cdr_id = 'c-08' AND duration_ms = 500000"
    )
    assert stale.column("n").to_pylist() == [0]
    # Two versions of one CDR in one batch: the last one is the CDR.
    step(
        [call("c-09", "2026-03-11T10:00:00Z"), call("c-09", "2026-03-12T10:00:00Z", seconds=7)],
        9,
        {"c-09": date(2026, 3, 12)},
    )
    # Two batches with the same rated_at (one `rate` run): the later write wins across days too.
    step([call("c-10", "2026-03-13T10:00:00Z")], 10, {"c-10": date(2026, 3, 13)})
    step([call("c-10", "2026-03-14T10:00:00Z", seconds=9)], 10, {"c-10": date(2026, 3, 14)})
    tombstones = store.query(
        "SELECT cdr_id, toDate(start_time) AS day, customer_amount, reseller_id "
        "FROM call_history FINAL WHERE status = 'superseded' ORDER BY cdr_id, day "
        "SETTINGS do_not_merge_across_partitions_select_final = 1"
    ).to_pylist()
    assert {t["cdr_id"] for t in tombstones} == {
        "c-02", "c-03", "c-05", "c-06", "c-07", "c-08", "c-09", "c-10"
    }  # fmt: skip
    # c-09's first version of that batch was never written: no tombstone on 2026-03-11.
    assert date(2026, 3, 11) not in {t["day"] for t in tombstones if t["cdr_id"] == "c-09"}
    assert all(t["customer_amount"] is None and t["reseller_id"] is None for t in tombstones)


def test_windows_and_rerating_never_show_or_resurrect_the_old_version(
    store: CallHistoryStore, reference: ReferenceData, tmp_path: Path
) -> None:
    write(store, reference, base_calls(), T0)
    write(store, reference, [call("c-03", "2026-03-03T22:00:00Z")], at(1))
    assert_exact(store)
    old_day, new_day = day_window(date(2026, 3, 4)), day_window(date(2026, 3, 3))
    simulated = [old for old, _ in rerated_days(store, reference, *old_day)]
    assert "c-03" not in {i for t in simulated for i in t.column("cdr_id").to_pylist()}
    assert simulated  # the other calls of that day are there
    summary = rerate_window(store, reference, "t1", *old_day, rated_at=at(2))
    assert summary.cdrs == sum(t.num_rows for t in simulated)
    rows = assert_exact(store)
    assert current_day(rows, "c-03") == date(2026, 3, 3)
    assert "c-03" not in shown_on(store, date(2026, 3, 4))
    # Re-rating the new day re-rates the CDR there, once.
    cheaper = network(tmp_path / "plans-cheaper")
    rerate_window(store, cheaper, "t1", *new_day, rated_at=at(3))
    rows = assert_exact(store)
    assert current_day(rows, "c-03") == date(2026, 3, 3)
    moved = next(r for r in rows if r["cdr_id"] == "c-03")
    assert moved["rated_at"] == at(3)


class _OldCode:
    """A store as the code before the key index used it: a plain INSERT, no repair."""

    def __init__(self, store: CallHistoryStore) -> None:
        self.store = store

    def query(self, sql: str, parameters: Mapping[str, object] | None = None) -> pa.Table:
        return self.store.query(sql, parameters)

    def execute(self, sql: str, parameters: Mapping[str, object] | None = None) -> None:
        self.store.execute(sql, parameters)

    def write_call_history(self, table: pa.Table) -> None:
        # Exactly what write_call_history did then (both stores' plain insert), of the columns
        # the table had then (later migrations add columns the old code did not write).
        had = set(self.store.query("DESCRIBE TABLE call_history").column("name").to_pylist())
        old_shape = table.select([name for name in table.column_names if name in had])
        self.store._insert("call_history", old_shape)  # type: ignore[attr-defined]

    def repair_moved_cdrs(self) -> int:
        return 0


@pytest.mark.parametrize("kind", PATHS)
def test_migrating_a_store_with_moved_cdrs_repairs_it(
    kind: str, reference: ReferenceData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before_006 = tmp_path / "schemas-005"
    before_006.mkdir()
    for path in schemas_dir().iterdir():
        if path.name.endswith(".sql") and path.name < "006":  # the store as it was before 006
            (before_006 / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    with open_path(kind, tmp_path, unique_database()) as opened:
        store = opened.store
        monkeypatch.setenv("VMGATE_SCHEMAS", str(before_006))
        assert "006_cdr_days.sql" not in store.migrate()
        old = cast(CallHistoryStore, _OldCode(store))
        write(old, reference, base_calls(), T0)
        refresh_balances(old)
        write(old, reference, [call("c-03", "2026-03-03T22:00:00Z")], at(1))
        write(old, reference, [call("c-05", "2026-02-14T09:30:00Z")], at(2))
        write(old, reference, [call("c-05", "2026-02-16T09:30:00Z")], at(3))  # moved twice
        write(old, reference, [call("c-11", "2026-03-06T10:00:00Z")], at(4))  # and a tie:
        write(old, reference, [call("c-11", "2026-03-07T10:00:00Z", seconds=3)], at(4))
        refresh_balances(old)
        # What the defect looked like: the pre-aggregated old days still count old versions.
        assert stored_balances(store) != sums(current_rows(store))

        monkeypatch.delenv("VMGATE_SCHEMAS")
        assert store.migrate() == sorted(
            p.name for p in schemas_dir().iterdir() if p.name.endswith(".sql") and p.name >= "006"
        )
        rows = assert_exact(store)
        assert current_day(rows, "c-03") == date(2026, 3, 3)
        assert current_day(rows, "c-05") == date(2026, 2, 16)
        assert current_day(rows, "c-11") == date(2026, 3, 7)  # a tie: the later day wins
        for day, gone in ((date(2026, 3, 4), "c-03"), (date(2026, 2, 14), "c-05")):
            assert gone not in shown_on(store, day)
        for day in (date(2026, 3, 1), date(2026, 3, 6)):
            assert not {"c-05", "c-11"} & set(shown_on(store, day))
        assert store.repair_moved_cdrs() == 0  # nothing left to repair
        # And the store goes on with the new write path.
        write(store, reference, [call("c-03", "2026-03-29T22:00:00Z")], at(5))
        rows = assert_exact(store)
        assert current_day(rows, "c-03") == date(2026, 3, 29)


def test_the_refresh_writes_tombstones_two_racing_writers_missed(
    store: CallHistoryStore, reference: ReferenceData
) -> None:
    """Two raters write two versions of one CDR at once: neither sees the other's in cdr_days.

    Simulated by writing the second version as if the first were not there yet (its cdr_days
    row is removed, then put back): both days are live until the refresh repairs them.
    """
    write(store, reference, base_calls(), T0)
    write(store, reference, [call("c-03", "2026-03-03T22:00:00Z")], at(1))
    write(store, reference, [call("c-04", "2026-03-02T22:00:00Z")], at(1))
    sneaky = rated(reference, [call("c-03", "2026-03-22T22:00:00Z")], at(2))
    store._insert("call_history", sneaky)  # type: ignore[attr-defined]
    store.execute(
        "INSERT INTO cdr_days SELECT cityHash64(tenant_id, cdr_id), toDate(start_time), "
        "rated_at, false FROM call_history WHERE cdr_id = 'c-03' AND rated_at = {t:DateTime64(6)}",
        {"t": at(2)},
    )
    summary = refresh_balances(store)
    assert summary.tombstones == 1
    rows = assert_exact(store)
    assert current_day(rows, "c-03") == date(2026, 3, 22)
    assert "c-03" not in shown_on(store, date(2026, 3, 3))
    assert refresh_balances(store).tombstones == 0
