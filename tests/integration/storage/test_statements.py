"""Statements and closed periods, on both store paths, to the last decimal.

One scenario per store path (a customer in America/New_York, a client and a reseller in UTC;
calls in February to April, payments, a re-rating and corrected CDRs after closing), with
snapshots taken along the way; the tests check the snapshots against figures computed here
from the calls themselves and against ``balances``.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pipeline.rating.reference import ReferenceData
from pipeline.reference.loader import load_plans_folder
from pipeline.services.rerate import rerate_window
from pipeline.services.statements import close_period, reopen_period, statements
from pipeline.sinks.contracts import CallHistoryStore
from pipeline.storage.balances import balances
from pipeline.storage.payments import Payment, record_payment
from pipeline.storage.periods import PeriodError, events
from pipeline.storage.roster import roster_rows
from pipeline.storage.statements import Window, digest
from tests.builders import association, cdr, deck_row, membership, plan, write_plans
from tests.support.stores import PATHS, open_path, rated, unique_database

TENANT = "t1"
LOADED = datetime(2026, 2, 1, tzinfo=UTC)
Snaps = dict[str, Any]  # the snapshots of one store path, by name


def _reference(folder: Path, customer_rate: str) -> ReferenceData:
    """Customer ``cust`` in EUR (New York), gateway ``gw`` in EUR, reseller ``res`` in USD."""
    since = {"effective_from": "2026-01-01T00:00:00Z"}
    write_plans(
        folder,
        [plan("P", "customer"), plan("C", "client"), plan("R", "reseller", currency="USD")],
        {
            "P": [
                deck_row("44", customer_rate, initial_increment="30", **since),
                deck_row("49", "0.0133", **since),
            ],
            "C": [deck_row("44", "0.0071", **since), deck_row("49", "0.0003", **since)],
            "R": [deck_row("44", "0.00123", **since)],
        },
        [
            association("customer", "cust", "P", **since),
            association("client", "gw", "C", **since),
            association("reseller", "res", "R", **since),
        ],
        [membership("gw", "res", **since)],
    )
    (folder / "accounts.csv").write_text(
        "tenant_id,scope,account_id,name,billing_type,timezone\n"
        f"{TENANT},customer,cust,Customer,postpaid,America/New_York\n"
        f"{TENANT},client,gw,Gateway,postpaid,UTC\n"
    )
    return load_plans_folder(folder)


def _calls() -> list[dict[str, Any]]:
    """Calls from February to April; some on the New York month boundaries (and DST)."""
    starts = [
        "2026-02-10T12:00:00Z",
        "2026-02-27T23:30:00Z",
        "2026-03-01T03:00:00Z",  # 28 Feb 22:00 in New York: February for the customer
        "2026-03-08T06:30:00Z",  # 01:30 EST, half an hour before the DST change
        "2026-03-08T07:30:00Z",  # 03:30 EDT
        "2026-03-15T10:00:00Z",
        "2026-03-31T12:00:00Z",
        "2026-04-01T02:00:00Z",  # 31 Mar 22:00 EDT: March for the customer, April for gw
        "2026-04-01T04:00:00Z",  # 1 Apr 00:00 EDT: April for everyone
        "2026-04-12T09:00:00Z",
    ]
    callees = ["442079460000", "4930123456"]
    return [
        cdr(
            cdr_id=f"c-{i:02d}",
            session_id=f"s-{i}",
            client_id="gw",
            callee=callees[i % 2],
            start_time=start,
            duration_ms=61_000 + 13_579 * i,
        )
        for i, start in enumerate(starts)
    ]


def _payment(payment_id: str, kind: str, account: str, amount: str, at: str) -> Payment:
    return Payment.parse(
        payment_id=payment_id,
        tenant_id=TENANT,
        kind=kind,
        account_id=account,
        amount=amount,
        currency="EUR" if kind != "reseller_payout_out" else "USD",
        recorded_at=at,
    )


def _month_of(instant: datetime, zone: str) -> str:
    return instant.astimezone(ZoneInfo(zone)).strftime("%Y-%m")


def _all(store: CallHistoryStore, window: Window) -> list[dict[str, Any]]:
    return statements(store, TENANT, window)


def _balances(store: CallHistoryStore) -> dict[tuple[str, str, str], dict[str, Any]]:
    rows = balances(store, TENANT).to_pylist()
    return {(r["scope"], r["account_id"], r["currency"]): r for r in rows}


def _history(store: CallHistoryStore) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = store.query(
        "SELECT cdr_id, start_time, customer_amount, client_amount, reseller_amount "
        "FROM call_history_current WHERE status != 'superseded' ORDER BY cdr_id"
    ).to_pylist()
    return rows


def _scenario(store: CallHistoryStore, root: Path) -> Snaps:
    snaps: Snaps = {}
    reference = _reference(root / "plans", "0.0123")
    store.write_roster(roster_rows(reference), LOADED)
    at = datetime(2026, 4, 20, tzinfo=UTC)
    store.write_call_history(rated(reference, _calls(), at))
    for payment in (
        _payment("p-1", "customer_payment_in", "cust", "0.05", "2026-03-20T10:00:00Z"),
        _payment("p-2", "reseller_payout_out", "res", "0.001", "2026-03-31T23:00:00Z"),
        _payment("p-3", "customer_payment_in", "cust", "0.01", "2026-02-28T23:30:00Z"),
    ):
        record_payment(store, payment)
    months = ["2026-02", "2026-03", "2026-04"]
    snaps["live"] = {m: _all(store, Window(period=m)) for m in months}
    snaps["wide"] = _all(
        store, Window(start=datetime(2026, 1, 1).date(), end=datetime(2026, 6, 1).date())
    )
    snaps["balances"] = _balances(store)
    snaps["history"] = _history(store)

    snaps["close_feb"] = close_period(store, TENANT, "2026-02", "ops", at)
    snaps["close_mar"] = close_period(store, TENANT, "2026-03", "ops", at)
    counts = (
        "SELECT (SELECT count() FROM statement_items) AS i, "
        "(SELECT count() FROM closed_statements) AS s, (SELECT count() FROM period_events) AS e"
    )
    snaps["rows_after_close"] = store.query(counts).to_pylist()
    snaps["close_mar_again"] = close_period(store, TENANT, "2026-03", "ops", at)
    snaps["rows_after_second_close"] = store.query(counts).to_pylist()
    snaps["mar_closed"] = _all(store, Window(period="2026-03"))
    try:
        close_period(store, TENANT, "2026-05", "ops", at)
    except PeriodError as exc:
        snaps["close_out_of_order"] = str(exc)

    # A corrected deck re-rates March (closed): the March statement stays as frozen.
    corrected = _reference(root / "corrected", "0.0456")
    rerate_window(
        store,
        corrected,
        TENANT,
        datetime(2026, 2, 1, tzinfo=UTC),
        datetime(2026, 4, 1, 4, tzinfo=UTC),
        rated_at=at + timedelta(days=1),
    )
    snaps["history_rerated"] = _history(store)
    snaps["mar_after_rerate"] = _all(store, Window(period="2026-03"))
    snaps["apr_after_rerate"] = _all(store, Window(period="2026-04"))
    snaps["balances_rerated"] = _balances(store)

    # Corrected CDRs: a February call moved into April, an April call moved into March.
    moved = [
        cdr(
            cdr_id="c-00",
            session_id="s-0",
            client_id="gw",
            callee="442079460000",
            start_time="2026-04-15T12:00:00Z",
            duration_ms=61_000,
        ),
        cdr(
            cdr_id="c-09",
            session_id="s-9",
            client_id="gw",
            callee="4930123456",
            start_time="2026-03-20T12:00:00Z",
            duration_ms=61_000 + 13_579 * 9,
        ),
    ]
    store.write_call_history(rated(corrected, moved, at + timedelta(days=2)))
    snaps["history_moved"] = _history(store)
    snaps["mar_after_move"] = _all(store, Window(period="2026-03"))
    snaps["apr_after_move"] = _all(store, Window(period="2026-04"))
    snaps["balances_moved"] = _balances(store)

    # Close April (its adjustments frozen with it), then reopen it: logged, live again.
    snaps["close_apr"] = close_period(store, TENANT, "2026-04", "ops", at)
    snaps["apr_closed"] = _all(store, Window(period="2026-04"))
    snaps["may_live"] = _all(store, Window(period="2026-05"))
    try:
        reopen_period(store, TENANT, "2026-03", "ops", "wrong month", at)
    except PeriodError as exc:
        snaps["reopen_not_last"] = str(exc)
    reopen_period(store, TENANT, "2026-04", "alice", "dispute #42", at + timedelta(hours=1))
    snaps["apr_reopened"] = _all(store, Window(period="2026-04"))
    snaps["events"] = events(store, TENANT)
    snaps["close_apr_again"] = close_period(store, TENANT, "2026-04", "ops", at)
    return snaps


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Snaps]:
    root = tmp_path_factory.mktemp("statements")
    out = {}
    for kind in PATHS:
        with open_path(kind, root / kind, unique_database()) as path:
            path.store.migrate()
            out[kind] = _scenario(path.store, root / kind)
    return out


def _by_key(found: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(s["scope"], s["account_id"], s["currency"]): s for s in found}


def _amounts(history: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[datetime, Any]]:
    """(cdr_id, leg) -> (start_time, amount)."""
    return {
        (row["cdr_id"], leg): (row["start_time"], row[f"{leg}_amount"])
        for row in history
        for leg in ("customer", "client", "reseller")
        if row[f"{leg}_amount"] is not None
    }


_ACCOUNT = {"customer": "cust", "client": "gw", "reseller": "res"}
_ZONE = {"customer": "America/New_York", "client": "UTC", "reseller": "UTC"}


@pytest.mark.parametrize("kind", PATHS)
def test_statements_add_up_to_balances_to_the_last_decimal(
    runs: dict[str, Snaps], kind: str
) -> None:
    snaps = runs[kind]
    live = {m: _by_key(found) for m, found in snaps["live"].items()}
    wide = _by_key(snaps["wide"])
    assert set(wide) == set(snaps["balances"])
    for key, balance in snaps["balances"].items():
        months = [live[m][key] for m in sorted(live) if key in live[m]]
        assert Decimal(months[0]["opening"]) == 0
        for before, after in itertools.pairwise(months):
            assert after["opening"] == before["closing"], key
        assert sum(Decimal(s["amount"]) for s in months) == balance["amount"], key
        assert sum(Decimal(s["payments"]) for s in months) == balance["payments"], key
        assert Decimal(months[-1]["closing"]) == balance["balance"], key
        assert Decimal(wide[key]["closing"]) == balance["balance"], key
        assert Decimal(wide[key]["amount"]) == balance["amount"], key
        assert wide[key]["calls"] == balance["calls"], key
        for s in months:
            opening, amount, payments, adjustments = (
                Decimal(s[c]) for c in ("opening", "amount", "payments", "adjustments")
            )
            assert Decimal(s["closing"]) == opening + amount - payments + adjustments
            assert sum(Decimal(d["amount"]) for d in s["destinations"]) == Decimal(s["amount"])
            assert sum(d["calls"] for d in s["destinations"]) == s["calls"]


@pytest.mark.parametrize("kind", PATHS)
def test_a_month_is_read_in_the_account_time_zone(runs: dict[str, Snaps], kind: str) -> None:
    snaps = runs[kind]
    amounts = _amounts(snaps["history"])
    for month, found in snaps["live"].items():
        for key, statement in _by_key(found).items():
            scope = key[0]
            mine = [
                amount
                for (cdr_id, leg), (start, amount) in amounts.items()
                if leg == scope and _month_of(start, _ZONE[scope]) == month
            ]
            assert statement["calls"] == len(mine), (month, key)
            assert Decimal(statement["amount"]) == sum(mine), (month, key)
    march = _by_key(snaps["live"]["2026-03"])
    customer = march[("customer", "cust", "EUR")]
    # March in New York: EST at its start, EDT (after 8 March) at its end.
    assert (customer["from"], customer["to"]) == ("2026-03-01T05:00:00Z", "2026-04-01T04:00:00Z")
    assert customer["timezone"] == "America/New_York"
    assert customer["calls"] == 5  # c-03 to c-07: not c-02 (28 Feb local), with c-07 (31 Mar)
    assert march[("client", "gw", "EUR")]["calls"] == 5  # c-02 to c-06 in UTC
    assert Decimal(march[("customer", "cust", "EUR")]["payments"]) == Decimal("0.05")
    feb = _by_key(snaps["live"]["2026-02"])
    assert Decimal(feb[("customer", "cust", "EUR")]["payments"]) == Decimal("0.01")  # 18:30 local


@pytest.mark.parametrize("kind", PATHS)
def test_closing_is_idempotent_and_refused_out_of_order(runs: dict[str, Snaps], kind: str) -> None:
    snaps = runs[kind]
    first, again = snaps["close_mar"], snaps["close_mar_again"]
    assert not first.already_closed
    assert again.already_closed
    assert again.digest == first.digest
    assert snaps["rows_after_second_close"] == snaps["rows_after_close"]
    assert "2026-05 cannot be closed before 2026-04" in snaps["close_out_of_order"]
    live = _by_key(snaps["live"]["2026-03"])
    for key, frozen in _by_key(snaps["mar_closed"]).items():
        assert frozen["status"] == "closed"
        figures = {k: v for k, v in frozen.items() if k not in ("status", "digest")}
        assert figures == {k: v for k, v in live[key].items() if k not in ("status", "digest")}
        assert frozen["digest"] == digest(figures)


def _expected_adjustments(
    before: list[dict[str, Any]], after: list[dict[str, Any]]
) -> dict[tuple[str, str, str], tuple[Decimal, Decimal]]:
    """(cdr_id, leg, closed month) -> (old, new) for every leg that changed in a closed month."""
    old, new = _amounts(before), _amounts(after)
    out = {}
    for key in old.keys() | new.keys():
        leg = key[1]
        was = old.get(key)
        now = new.get(key)
        months = {_month_of(v[0], _ZONE[leg]) for v in (was, now) if v is not None}
        closed = sorted(m for m in months if m in ("2026-02", "2026-03"))
        for month in closed:
            o = was[1] if was and _month_of(was[0], _ZONE[leg]) == month else Decimal(0)
            n = now[1] if now and _month_of(now[0], _ZONE[leg]) == month else Decimal(0)
            if o != n:
                out[(key[0], leg, month)] = (o, n)
    return out


def _listed(found: list[dict[str, Any]]) -> dict[tuple[str, str, str], tuple[Decimal, Decimal]]:
    out = {}
    for s in found:
        for a in s["adjustment_items"]:
            assert a["kind"] == "call"
            difference = Decimal(a["new_amount"]) - Decimal(a["old_amount"])
            assert Decimal(a["difference"]) == difference
            out[(a["id"], s["scope"], a["period"])] = (
                Decimal(a["old_amount"]),
                Decimal(a["new_amount"]),
            )
    return out


@pytest.mark.parametrize("kind", PATHS)
def test_a_rerating_after_closing_is_booked_in_the_next_open_month(
    runs: dict[str, Snaps], kind: str
) -> None:
    snaps = runs[kind]
    assert snaps["mar_after_rerate"] == snaps["mar_closed"]  # digests and figures unchanged
    expected = _expected_adjustments(snaps["history"], snaps["history_rerated"])
    assert expected  # the corrected customer deck changed closed calls
    assert {k[1] for k in expected} == {"customer"}
    assert _listed(snaps["apr_after_rerate"]) == expected
    april = _by_key(snaps["apr_after_rerate"])
    before = _by_key(snaps["live"]["2026-04"])
    for key, balance in snaps["balances_rerated"].items():
        statement = april[key]
        assert Decimal(statement["closing"]) == balance["balance"], key
        assert statement["opening"] == before[key]["opening"], key  # closed months are frozen
        adjustments = sum(n - o for (c, leg, m), (o, n) in expected.items() if leg == key[0])
        assert Decimal(statement["adjustments"]) == adjustments, key


@pytest.mark.parametrize("kind", PATHS)
def test_corrected_cdrs_moved_out_of_and_into_a_closed_month(
    runs: dict[str, Snaps], kind: str
) -> None:
    snaps = runs[kind]
    assert snaps["mar_after_move"] == snaps["mar_closed"]
    expected = _expected_adjustments(snaps["history"], snaps["history_moved"])
    listed = _listed(snaps["apr_after_move"])
    assert listed == expected
    assert listed[("c-00", "customer", "2026-02")][1] == 0  # left February
    assert listed[("c-09", "client", "2026-03")][0] == 0  # arrived in March
    april = _by_key(snaps["apr_after_move"])
    for key, balance in snaps["balances_moved"].items():
        assert Decimal(april[key]["closing"]) == balance["balance"], key
    customer = april[("customer", "cust", "EUR")]
    assert customer["calls"] == 2  # c-00 arrived, c-09 left; c-08 stays


@pytest.mark.parametrize("kind", PATHS)
def test_close_then_reopen_is_logged_and_live_again(runs: dict[str, Snaps], kind: str) -> None:
    snaps = runs[kind]
    closed = _by_key(snaps["apr_closed"])
    assert {s["status"] for s in closed.values()} == {"closed"}
    for key, statement in _by_key(snaps["apr_after_move"]).items():
        assert closed[key]["closing"] == statement["closing"], key
        assert closed[key]["adjustment_items"] == statement["adjustment_items"], key
    may = _by_key(snaps["may_live"])
    for key, statement in may.items():
        assert statement["opening"] == closed[key]["closing"]
        assert statement["adjustment_items"] == []  # booked (frozen) in April already
        assert statement["closing"] == statement["opening"]
    assert "reopen 2026-04 first" in snaps["reopen_not_last"]
    reopened = _by_key(snaps["apr_reopened"])
    for key, statement in reopened.items():
        assert statement["status"] == "open"
        assert statement["closing"] == closed[key]["closing"]
        assert statement["adjustment_items"] == closed[key]["adjustment_items"]
    log = [(e.period, e.action, e.actor, e.reason) for e in snaps["events"]]
    assert log == [
        ("2026-02", "close", "ops", ""),
        ("2026-03", "close", "ops", ""),
        ("2026-04", "close", "ops", ""),
        ("2026-04", "reopen", "alice", "dispute #42"),
    ]
    again = snaps["close_apr_again"]
    assert not again.already_closed
    assert again.digest == snaps["close_apr"].digest  # same content, same digest


def test_both_paths_give_the_same_statements(runs: dict[str, Snaps]) -> None:
    embedded, server = (runs[k] for k in PATHS)
    for name in ("live", "wide", "mar_closed", "apr_after_move", "apr_closed", "apr_reopened"):
        assert embedded[name] == server[name], name
