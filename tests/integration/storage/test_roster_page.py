"""The roster in the store (009_roster.sql) and the Resellers and Join Codes pages, both paths.

A hand-built network: tenant t1 with resellers res-a (postpaid, active, a EUR plan then a USD
plan), res-b (prepaid, inactive, still carrying traffic) and res-c (prepaid, active, no client
yet); join codes tagged with each and one Direct; enrollments with a re-enrollment to another
reseller and one to Direct; a client attributed by memberships.csv to a reseller without an
account, and a CDR naming another unknown reseller; tenant t2 with its own reseller. Client
status events (one overridden by a newer one) and reseller payouts. The pages are checked row
by row against figures derived here from the decks and the events, and the balances against
``balances``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main
from pipeline.reference.loader import load_plans_folder
from pipeline.services.offline import rate_file
from pipeline.sinks.contracts import CallHistoryStore
from pipeline.storage.balances import balances
from pipeline.storage.payments import Payment, record_payment
from pipeline.storage.roster import (
    JOIN_CODE_COLUMNS,
    LOADS_TABLE,
    PAGE_COLUMNS,
    ROSTER_TABLES,
    current_version,
    join_codes_page,
    resellers_page,
    roster_rows,
)
from tests.builders import association, cdr, deck_row, membership, plan, write_plans
from tests.support.stores import PATHS, open_path, unique_database

RATED_AT = datetime(2026, 4, 1, tzinfo=UTC)
SWAPPED_AT = datetime(2026, 4, 2, tzinfo=UTC)
RATE = {"RA-EUR": Decimal("0.60"), "RA-USD": Decimal("0.90"), "RB": Decimal("0.30")}
RATE |= {"RX": Decimal("0.45"), "P1": Decimal("1.20"), "P2": Decimal("1.50")}
PAYOUTS = [("t1", "res-a", "0.25", "EUR"), ("t1", "res-b", "0.10", "EUR")]
PAYOUTS += [("t2", "res-x", "0.05", "EUR")]


def _csv(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)


ACCOUNTS = """\
tenant_id,scope,account_id,name,company,email,billing_type,credit_limit,currency,status,timezone
t1,reseller,res-a,Anna Weber,Weber Telecom GmbH,anna@weber.example,postpaid,5000.00,EUR,active,
t1,reseller,res-b,Bo Lind,,bo@lind.example,prepaid,,,inactive,
t1,reseller,res-c,Cy Moss,Moss Ltd,cy@moss.example,prepaid,,,active,
t2,reseller,res-x,Xu Li,,xu@li.example,postpaid,,,active,
t1,client,gw-1,Gateway 1,,,postpaid,,,active,
t1,client,gw-2,Gateway 2,,,postpaid,,,active,
t1,client,gw-3,Gateway 3,,,postpaid,,,active,
t1,client,gw-4,Gateway 4,,,postpaid,,,active,
t1,client,gw-5,Gateway 5,,,postpaid,,,active,
t2,client,gw-9,Gateway 9,,,postpaid,,,active,
"""
CODES = [
    ["tenant_id", "code", "reseller_id"],
    ["t1", "JOIN-A", "res-a"],
    ["t1", "JOIN-B", "res-b"],
    ["t1", "JOIN-C", "res-c"],
    ["t1", "WALK-IN", ""],
    ["t2", "JOIN-X", "res-x"],
]
ENROLLMENTS = [
    ["client_id", "join_code", "enrolled_at"],
    ["gw-1", "JOIN-A", "2026-03-01T00:00:00Z"],
    ["gw-2", "JOIN-A", "2026-03-01T00:00:00Z"],
    ["gw-2", "JOIN-B", "2026-03-20T00:00:00Z"],  # re-enrolled with another reseller
    ["gw-3", "JOIN-A", "2026-03-01T00:00:00Z"],
    ["gw-3", "WALK-IN", "2026-03-10T00:00:00Z"],  # and one to Direct
    ["gw-4", "JOIN-B", "2026-03-01T00:00:00Z"],
    ["gw-9", "JOIN-X", "2026-03-01T00:00:00Z"],
]
# (cdr, tenant, customer, client, start day, reseller the CDR names) -> expected attribution
CALLS = [
    ("c1", "t1", "cust1", "gw-1", "05", None, "res-a"),
    ("c2", "t1", "cust1", "gw-1", "16", None, "res-a"),
    ("c3", "t1", "cust1", "gw-2", "05", None, "res-a"),
    ("c4", "t1", "cust1", "gw-2", "25", None, "res-b"),
    ("c5", "t1", "cust1", "gw-3", "12", None, None),
    ("c6", "t1", "cust1", "gw-4", "05", None, "res-b"),
    ("c7", "t1", "cust1", "gw-5", "05", None, "res-ghost"),
    ("c8", "t1", "cust1", "gw-1", "06", "res-zzz", "res-zzz"),
    ("c9", "t2", "cust2", "gw-9", "05", None, "res-x"),
]


def write_network(folder: Path, *, second: bool = False) -> Path:
    """The plans folder; ``second``: the next version (res-c inactive, gw-1 moved to res-c)."""
    plans = [
        plan("P1", "customer"),
        plan("P2", "customer", tenant_id="t2"),
        plan("RA-EUR", "reseller"),
        plan("RA-USD", "reseller", currency="USD"),
        plan("RB", "reseller"),
        plan("RX", "reseller", tenant_id="t2"),
    ]
    decks = {name: [deck_row("44", str(rate))] for name, rate in RATE.items()}
    mid = "2026-03-15T00:00:00Z"
    associations = [
        association("customer", "cust1", "P1"),
        association("customer", "cust2", "P2"),
        association("reseller", "res-a", "RA-EUR", effective_until=mid),
        association("reseller", "res-a", "RA-USD", effective_from=mid),
        association("reseller", "res-b", "RB"),
        association("reseller", "res-x", "RX"),
    ]
    write_plans(folder, plans, decks, associations, [membership("gw-5", "res-ghost")])
    accounts = ACCOUNTS
    enrollments = list(ENROLLMENTS)
    if second:
        accounts = accounts.replace(
            "cy@moss.example,prepaid,,,active", "cy@moss.example,prepaid,,,inactive"
        )
        enrollments.append(["gw-1", "JOIN-C", "2026-04-01T00:00:00Z"])
    (folder / "accounts.csv").write_text(accounts, encoding="utf-8")
    _csv(folder / "join_codes.csv", CODES)
    _csv(folder / "enrollments.csv", enrollments)
    return folder


def write_cdrs(path: Path) -> Path:
    lines = [
        json.dumps(
            cdr(
                cdr_id=cdr_id,
                session_id=f"s-{cdr_id}",
                tenant_id=tenant,
                customer_id=customer,
                client_id=client,
                reseller_id=named,
                start_time=f"2026-03-{day}T12:00:00Z",
                answer_time=f"2026-03-{day}T12:00:01Z",
            )
        )
        for cdr_id, tenant, customer, client, day, named, _ in CALLS
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass(frozen=True)
class Network:
    store: CallHistoryStore
    root: Path
    url: str | None  # the HTTP endpoint of the server path
    database: str


@pytest.fixture(scope="module", params=PATHS)
def network(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Network]:
    root = tmp_path_factory.mktemp(f"roster-{request.param}")
    write_network(root / "plans")
    write_network(root / "plans-2", second=True)
    write_cdrs(root / "cdrs.jsonl")
    database = unique_database()
    with open_path(request.param, root, database) as path:
        store = path.store
        store.migrate()
        summary = rate_file(
            load_plans_folder(root / "plans"),
            root / "cdrs.jsonl",
            root / "out.parquet",
            root / "dlq.jsonl",
            RATED_AT,
            store=store,
        )
        assert summary.rated == len(CALLS), summary
        for number, (tenant, reseller, amount, currency) in enumerate(PAYOUTS):
            record_payment(
                store,
                Payment.parse(
                    payment_id=f"pay-{number}",
                    tenant_id=tenant,
                    kind="reseller_payout_out",
                    account_id=reseller,
                    amount=amount,
                    currency=currency,
                ),
            )
        events = [  # (tenant, client, online, at): gw-4 online, then offline (newer)
            ("t1", "gw-1", 1, "2026-11-01 10:00:00"),
            ("t1", "gw-2", 1, "2026-11-01 10:00:00"),
            ("t1", "gw-3", 1, "2026-11-01 10:00:00"),
            ("t1", "gw-4", 0, "2026-11-02 10:00:00"),
            ("t1", "gw-4", 1, "2026-11-01 10:00:00"),  # older, delivered late: overridden
            ("t2", "gw-9", 1, "2026-11-01 10:00:00"),
        ]
        for tenant, client, online, at in events:
            store.execute(
                "INSERT INTO client_status VALUES ({t:String}, {c:String}, {o:Bool}, "
                "{at:DateTime64(6, 'UTC')}, {at:DateTime64(6, 'UTC')})",
                {"t": tenant, "c": client, "o": online, "at": at},
            )
        yield Network(store, root, path.server.url if path.server else None, database)


def _expected_balance(tenant: str, reseller: str) -> dict[str, Decimal]:
    """What is owed to a reseller per currency: its calls at its deck's rate, minus payouts."""
    owed: dict[str, Decimal] = {}
    for _, t, _, _, day, _, attributed in CALLS:
        if t != tenant or attributed != reseller:
            continue
        deck = {"res-a": "RA-EUR" if int(day) < 15 else "RA-USD", "res-b": "RB", "res-x": "RX"}
        if reseller in deck:
            currency = "USD" if deck[reseller] == "RA-USD" else "EUR"
            owed[currency] = owed.get(currency, Decimal(0)) + RATE[deck[reseller]]  # one minute
    for t, account, amount, currency in PAYOUTS:
        if (t, account) == (tenant, reseller):
            owed[currency] = owed.get(currency, Decimal(0)) - Decimal(amount)
    return dict(sorted(owed.items()))


def _calls(tenant: str, reseller: str) -> int:
    return sum(1 for c in CALLS if c[1] == tenant and c[6] == reseller)


# (tenant, reseller) -> name, clients, online, billing type, status, flag
FIRST_PAGE = {
    ("t1", "res-a"): ("Anna Weber", 1, 1, "postpaid", "active", ""),  # gw-2, gw-3 moved away
    ("t1", "res-b"): ("Bo Lind", 2, 1, "prepaid", "inactive", "inactive, has traffic"),
    ("t1", "res-c"): ("Cy Moss", 0, 0, "prepaid", "active", ""),
    ("t1", "res-ghost"): ("", 1, 0, "", "", "no account"),  # memberships.csv only
    ("t1", "res-zzz"): ("", 0, 0, "", "", "no account"),  # traffic only
    ("t2", "res-x"): ("Xu Li", 1, 1, "postpaid", "active", ""),
}


def _check_page(
    rows: list[dict[str, Any]], expected: dict[tuple[str, str], tuple[Any, ...]]
) -> None:
    assert [(r["tenant_id"], r["reseller_id"]) for r in rows] == sorted(expected)
    for row in rows:
        key = (row["tenant_id"], row["reseller_id"])
        name, clients, online, billing, status, flag = expected[key]
        got = (row["name"], row["clients"], row["online"], row["billing_type"], row["status"])
        assert got == (name, clients, online, billing, status), key
        assert row["flag"] == flag, key
        assert row["balance"] == _expected_balance(*key), key
        assert row["calls"] == _calls(*key), key


def test_the_page_row_by_row(network: Network) -> None:
    rows = resellers_page(network.store)
    _check_page(rows, FIRST_PAGE)
    by_key = {(r["tenant_id"], r["reseller_id"]): r for r in rows}
    assert by_key[("t1", "res-a")]["company"] == "Weber Telecom GmbH"
    assert by_key[("t1", "res-a")]["email"] == "anna@weber.example"
    assert set(by_key[("t1", "res-a")]["balance"]) == {"EUR", "USD"}


def test_the_page_agrees_with_balances_to_the_last_decimal(network: Network) -> None:
    owed: dict[tuple[str, str], dict[str, Decimal]] = {}
    for row in balances(network.store).to_pylist():
        if row["scope"] == "reseller":
            owed.setdefault((row["tenant_id"], row["account_id"]), {})[row["currency"]] = row[
                "balance"
            ]
    page = {(r["tenant_id"], r["reseller_id"]): r["balance"] for r in resellers_page(network.store)}
    assert owed
    for key, figures in owed.items():
        assert page[key] == figures, key
    assert all(not v for k, v in page.items() if k not in owed)


def test_a_tenant_sees_its_resellers_only(network: Network) -> None:
    t1 = resellers_page(network.store, "t1")
    assert {r["reseller_id"] for r in t1} == {r for t, r in FIRST_PAGE if t == "t1"}
    assert [r["reseller_id"] for r in resellers_page(network.store, "t2")] == ["res-x"]
    assert resellers_page(network.store, "t3") == []


def test_join_codes_row_by_row(network: Network) -> None:
    rows = join_codes_page(network.store, clients=True)
    got = [tuple(r[c] for c in (*JOIN_CODE_COLUMNS, "client_ids")) for r in rows]
    assert got == [
        ("t1", "JOIN-A", "res-a", "Anna Weber", 3, 1, ["gw-1", "gw-2", "gw-3"]),
        ("t1", "JOIN-B", "res-b", "Bo Lind", 2, 2, ["gw-2", "gw-4"]),
        ("t1", "JOIN-C", "res-c", "Cy Moss", 0, 0, []),
        ("t1", "WALK-IN", "Direct", "", 1, 1, ["gw-3"]),
        ("t2", "JOIN-X", "res-x", "Xu Li", 1, 1, ["gw-9"]),
    ]
    assert [r["code"] for r in join_codes_page(network.store, "t2")] == ["JOIN-X"]
    assert "client_ids" not in join_codes_page(network.store)[0]


def _raw_counts(store: CallHistoryStore) -> dict[str, int]:
    return {
        table: store.query(f"SELECT count() AS n FROM {table}").column("n")[0].as_py()
        for table in (*ROSTER_TABLES, LOADS_TABLE)
    }


def test_writing_a_version_twice_changes_nothing(network: Network) -> None:
    reference = load_plans_folder(network.root / "plans")
    assert current_version(network.store) == reference.version
    before = _raw_counts(network.store)
    assert before["roster_accounts"] == ACCOUNTS.count("\n") - 1
    assert before["roster_memberships"] > 0
    assert network.store.write_roster(roster_rows(reference), SWAPPED_AT) is False
    assert _raw_counts(network.store) == before
    _check_page(resellers_page(network.store), FIRST_PAGE)


def test_a_swap_to_a_new_version_changes_the_page_and_back(network: Network) -> None:
    first = load_plans_folder(network.root / "plans")
    second = load_plans_folder(network.root / "plans-2")
    assert second.version != first.version
    try:
        assert network.store.write_roster(roster_rows(second), SWAPPED_AT) is True
        assert current_version(network.store) == second.version
        swapped = dict(FIRST_PAGE)
        swapped[("t1", "res-a")] = ("Anna Weber", 0, 0, "postpaid", "active", "")
        swapped[("t1", "res-c")] = ("Cy Moss", 1, 1, "prepaid", "inactive", "")  # no traffic
        _check_page(resellers_page(network.store), swapped)
        codes = {r["code"]: r for r in join_codes_page(network.store)}
        assert (codes["JOIN-C"]["clients"], codes["JOIN-A"]["current_clients"]) == (1, 0)
    finally:  # back to the first version: its rows are kept, only its load is recorded
        counts = _raw_counts(network.store)
        assert network.store.write_roster(roster_rows(first), datetime(2026, 4, 3, tzinfo=UTC))
        assert current_version(network.store) == first.version
        assert {k: v for k, v in _raw_counts(network.store).items() if k != LOADS_TABLE} == {
            k: v for k, v in counts.items() if k != LOADS_TABLE
        }
    _check_page(resellers_page(network.store), FIRST_PAGE)


def test_the_commands_print_the_pages(
    network: Network, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if network.url is None:
        pytest.skip("one embedded engine per process: the commands run on the server path")
    monkeypatch.setenv("CLICKHOUSE_URL", network.url)
    monkeypatch.setenv("VMGATE_DATABASE", network.database)
    assert main(["resellers", "--tenant", "t1", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["reseller_id"] for r in rows] == [r for t, r in sorted(FIRST_PAGE) if t == "t1"]
    assert rows[0]["balance"] == {
        k: f"{v:.6f}" for k, v in _expected_balance("t1", "res-a").items()
    }
    assert rows[1]["flag"] == "inactive, has traffic"
    assert all(isinstance(v, str) for r in rows for v in r["balance"].values())
    assert main(["resellers", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split(",") == list(PAGE_COLUMNS)
    assert len(lines) == 1 + len(FIRST_PAGE)
    assert main(["resellers"]) == 0
    table = capsys.readouterr().out.splitlines()
    res_a = next(line for line in table if "res-a" in line)
    expected = "; ".join(f"{v:.6f} {k}" for k, v in _expected_balance("t1", "res-a").items())
    assert expected in res_a
    assert main(["join-codes", "--clients"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == [*JOIN_CODE_COLUMNS, "client_ids"]
    walk_in = next(line for line in table if "WALK-IN" in line)
    assert walk_in.split() == ["t1", "WALK-IN", "Direct", "1", "1", "gw-3"]
    assert main(["join-codes", "--tenant", "t2", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {
            "tenant_id": "t2",
            "code": "JOIN-X",
            "reseller": "res-x",
            "reseller_name": "Xu Li",
            "clients": 1,
            "current_clients": 1,
        }
    ]
