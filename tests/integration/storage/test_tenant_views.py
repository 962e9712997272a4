"""Tenant- and reseller-scoped views (005_tenant_views.sql) on both store paths.

A synthetic network of two tenants with resellers and Direct clients is rated into a store (the
embedded engine, then the server path through ``ChdbHttpServer``), payouts are recorded, and one
CDR of a reseller is re-rated to Direct. Every scoped view is then compared with the unscoped
exact views filtered here in Python: a tenant sees exactly its rows (all resellers and Direct),
never a row of another tenant; a reseller sees exactly the current rows attributed to it, and
only its own leg.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from pipeline.reference.loader import load_plans_folder
from pipeline.services.offline import rate_file
from pipeline.sinks.contracts import CallHistoryStore
from pipeline.storage.payments import Payment, record_payment
from pipeline.storage.reports import export_call_history
from pipeline.synthetic import NetworkSpec, NetworkSummary, write_network
from tests.support.stores import PATHS, open_path, unique_database

RATED_AT = datetime(2026, 4, 1, tzinfo=UTC)
LEG_COLUMNS_HIDDEN_FROM_RESELLERS = {
    "caller",
    "customer_id",
    "customer_plan_id",
    "customer_rate",
    "customer_amount",
    "customer_currency",
    "client_plan_id",
    "client_rate",
    "client_amount",
    "client_currency",
    "unrated_reason",
}


@dataclass(frozen=True)
class Rated:
    """A store holding the rated network, and what the test did to it."""

    store: CallHistoryStore
    network: NetworkSummary
    moved_cdr: str  # attributed to moved_from, then re-rated to Direct
    moved_from: str


@pytest.fixture(scope="module", params=PATHS)
def rated(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Rated]:
    root = tmp_path_factory.mktemp(f"tenant-views-{request.param}")
    network = write_network(
        NetworkSpec(seed=11, cdrs=3_000, prefixes_per_plan=80), root / "plans", root / "cdrs"
    )
    with open_path(request.param, root, unique_database()) as path:
        store = path.store
        store.migrate()
        rate_file(
            load_plans_folder(root / "plans"),
            root / "cdrs",
            root / "out.parquet",
            root / "dlq.jsonl",
            RATED_AT,
            store=store,
        )
        tenant, reseller = network.tenant_ids[0], network.paid_reseller_ids[0]
        other_tenant = network.tenant_ids[1]
        other_reseller = next(r for r in network.paid_reseller_ids if r.startswith(other_tenant))
        for number, (who, account, amount) in enumerate(
            [
                (tenant, reseller, "3.5"),
                (tenant, reseller, "0.000001"),
                (other_tenant, other_reseller, "7"),
            ]
        ):
            payout = Payment.parse(
                payment_id=f"pay-{number}",
                tenant_id=who,
                kind="reseller_payout_out",
                account_id=account,
                amount=amount,
                currency="EUR",
            )
            record_payment(store, payout)
        record_payment(
            store,
            Payment.parse(
                payment_id="pay-in",
                tenant_id=tenant,
                kind="customer_payment_in",
                account_id="anyone",
                amount="1",
                currency="EUR",
            ),
        )
        # Re-rate one of the reseller's calls to Direct: a later row for the same CDR.
        current = export_call_history(store)
        rows = current.to_pylist()
        row = next(
            r
            for r in rows
            if r["tenant_id"] == tenant
            and r["reseller_id"] == reseller
            and r["reseller_amount"] is not None
        )
        moved = {**row, "reseller_id": None, "rated_at": RATED_AT + timedelta(hours=1)}
        for column in current.column_names:
            if column.startswith("reseller_") and column != "reseller_id":
                moved[column] = None
        store.write_call_history(pa.Table.from_pylist([moved], schema=current.schema))
        yield Rated(store, network, row["cdr_id"], reseller)


def _rows(store: CallHistoryStore, sql: str, **parameters: object) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = store.query(sql, parameters).to_pylist()
    return rows


def _key(row: dict[str, Any], *names: str) -> tuple[Any, ...]:
    return tuple(row[n] for n in names)


def test_a_tenant_sees_all_its_calls_and_none_of_another_tenant(rated: Rated) -> None:
    everything = _rows(rated.store, "SELECT * FROM call_history_current")
    assert {r["tenant_id"] for r in everything} == set(rated.network.tenant_ids)
    for tenant in rated.network.tenant_ids:
        scoped = _rows(
            rated.store, "SELECT * FROM tenant_call_history(tenant = {t:String})", t=tenant
        )
        assert {r["tenant_id"] for r in scoped} == {tenant}
        expected = [r for r in everything if r["tenant_id"] == tenant]
        assert sorted(scoped, key=lambda r: r["cdr_id"]) == sorted(
            expected, key=lambda r: r["cdr_id"]
        )
        # Every reseller and Direct: the tenant still sees everything of its own.
        resellers = {r["reseller"] for r in scoped}
        assert "Direct" in resellers
        assert {r for r in resellers if r != "Direct"} >= {
            r for r in rated.network.paid_reseller_ids if r.startswith(tenant)
        }


def test_a_tenant_sees_its_balances_and_billing_overview_only(rated: Rated) -> None:
    balances = _rows(rated.store, "SELECT * FROM balances")
    overview = _rows(rated.store, "SELECT * FROM billing_overview")
    balance_key = ("tenant_id", "scope", "account_id", "currency")
    for tenant in rated.network.tenant_ids:
        scoped = _rows(rated.store, "SELECT * FROM tenant_balances(tenant = {t:String})", t=tenant)
        expected = [r for r in balances if r["tenant_id"] == tenant]
        assert expected
        assert sorted(scoped, key=lambda r: _key(r, *balance_key)) == sorted(
            expected, key=lambda r: _key(r, *balance_key)
        )
        billing = _rows(
            rated.store, "SELECT * FROM tenant_billing_overview(tenant = {t:String})", t=tenant
        )
        assert sorted(billing, key=lambda r: r["currency"]) == sorted(
            (r for r in overview if r["tenant_id"] == tenant), key=lambda r: r["currency"]
        )


def test_a_reseller_sees_only_its_current_calls_and_only_its_leg(rated: Rated) -> None:
    everything = _rows(rated.store, "SELECT * FROM call_history_current")
    for reseller in rated.network.paid_reseller_ids:
        tenant = next(t for t in rated.network.tenant_ids if reseller.startswith(t))
        table = rated.store.query(
            "SELECT * FROM reseller_call_history(tenant = {t:String}, reseller = {r:String})",
            {"t": tenant, "r": reseller},
        )
        assert not LEG_COLUMNS_HIDDEN_FROM_RESELLERS & set(table.column_names)
        scoped = table.to_pylist()
        expected = {
            r["cdr_id"]: r
            for r in everything
            if r["tenant_id"] == tenant and r["reseller_id"] == reseller
        }
        assert expected
        assert {r["cdr_id"] for r in scoped} == set(expected)
        assert len(scoped) == len(expected)
        for row in scoped:
            assert (row["tenant_id"], row["reseller_id"]) == (tenant, reseller)
            source = expected[row["cdr_id"]]
            for column in table.column_names:
                if column != "reseller_status":
                    assert row[column] == source[column], column
        assert sum(
            (r["reseller_amount"] for r in scoped if r["reseller_amount"] is not None), Decimal(0)
        ) == sum(
            (r["reseller_amount"] for r in expected.values() if r["reseller_amount"] is not None),
            Decimal(0),
        )
        # Asking under another tenant finds nothing.
        for other in rated.network.tenant_ids:
            if other != tenant:
                assert not _rows(
                    rated.store,
                    "SELECT cdr_id FROM reseller_call_history(tenant = {t:String}, "
                    "reseller = {r:String})",
                    t=other,
                    r=reseller,
                )


def test_a_call_re_rated_away_from_a_reseller_leaves_its_view(rated: Rated) -> None:
    tenant = next(t for t in rated.network.tenant_ids if rated.moved_from.startswith(t))
    scoped = _rows(
        rated.store,
        "SELECT cdr_id FROM reseller_call_history(tenant = {t:String}, reseller = {r:String})",
        t=tenant,
        r=rated.moved_from,
    )
    assert rated.moved_cdr not in {r["cdr_id"] for r in scoped}
    # The raw table still holds the older rating attributed to the reseller.
    raw = _rows(
        rated.store,
        "SELECT count() AS n FROM call_history "
        "WHERE cdr_id = {c:String} AND reseller_id = {r:String}",
        c=rated.moved_cdr,
        r=rated.moved_from,
    )
    assert raw == [{"n": 1}]
    tenant_rows = _rows(
        rated.store,
        "SELECT reseller FROM tenant_call_history(tenant = {t:String}) WHERE cdr_id = {c:String}",
        t=tenant,
        c=rated.moved_cdr,
    )
    assert tenant_rows == [{"reseller": "Direct"}]


def test_a_reseller_sees_its_payouts_and_balance(rated: Rated) -> None:
    payments = _rows(rated.store, "SELECT * FROM payments FINAL")
    balances = _rows(rated.store, "SELECT * FROM balances WHERE scope = 'reseller'")
    for reseller in rated.network.paid_reseller_ids:
        tenant = next(t for t in rated.network.tenant_ids if reseller.startswith(t))
        parameters = {"t": tenant, "r": reseller}
        payouts = _rows(
            rated.store,
            "SELECT * FROM reseller_payouts(tenant = {t:String}, reseller = {r:String})",
            **parameters,
        )
        assert sorted(p["payment_id"] for p in payouts) == sorted(
            p["payment_id"]
            for p in payments
            if p["tenant_id"] == tenant
            and p["kind"] == "reseller_payout_out"
            and p["account_id"] == reseller
        )
        own = _rows(
            rated.store,
            "SELECT * FROM reseller_balance(tenant = {t:String}, reseller = {r:String})",
            **parameters,
        )
        expected = [
            {
                "tenant_id": r["tenant_id"],
                "reseller_id": r["account_id"],
                "currency": r["currency"],
                "amount": r["amount"],
                "payments": r["payments"],
                "balance": r["balance"],
                "calls": r["calls"],
            }
            for r in balances
            if r["tenant_id"] == tenant and r["account_id"] == reseller
        ]
        assert expected
        assert sorted(own, key=lambda r: r["currency"]) == sorted(
            expected, key=lambda r: r["currency"]
        )
    first = rated.network.paid_reseller_ids[0]
    paid: dict[str, Decimal] = defaultdict(Decimal)
    for p in payments:
        if p["account_id"] == first:
            paid[p["currency"]] += p["amount"]
    assert paid == {"EUR": Decimal("3.500001")}


def test_quotes_in_a_parameter_match_nothing(rated: Rated) -> None:
    for evil in ("x' OR 1=1 --", "' OR '1'='1", "tnt-01' OR tenant_id != '"):
        assert not _rows(
            rated.store, "SELECT cdr_id FROM tenant_call_history(tenant = {t:String})", t=evil
        )
