"""The billing overview in one currency, to the last decimal, on both store paths and the CLI.

A hand-worked network: customer plan in EUR, client plan in USD, reseller plan in GBP; every
leg's amount is a connection fee (rate 0), so each call's amounts are known exactly. Rates:
USD->EUR 0.9 from 1 March and 0.925 from 15 March (two rates over time, a call on each side of
the change and one at exactly 15 March 00:00); EUR->USD 1.1 (the reverse pair: never used for
USD->EUR, which has rates of its own); only EUR->GBP (0.85, then 0.8 from 18 March), so GBP
converts into EUR by the inverse. A call on 20 February has no USD->EUR rate: its client leg
is unconverted. The expected figures are computed here with Python Decimal, independently of
the SQL, and checked against hand-worked values.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.rating.reference import ReferenceData
from pipeline.reference.loader import load_plans_folder
from pipeline.sinks.contracts import CallHistoryStore
from pipeline.storage.fx import (
    CONVERTED_OVERVIEW_COLUMNS,
    UnknownCurrencyError,
    amounts_in,
    billing_overview_in,
)
from pipeline.storage.payments import Payment, record_payment
from pipeline.storage.roster import roster_rows
from tests.builders import association, cdr, deck_row, membership, plan, write_plans
from tests.support.stores import PATHS, open_path, rated, unique_database

RATED_AT = datetime(2026, 4, 1, tzinfo=UTC)
YEAR = "2026-01-01T00:00:00Z"
CENT = Decimal("0.000001")

# prefix -> (customer EUR, client USD, reseller GBP) amounts of a call to it
AMOUNTS = {
    "4411": (Decimal("1.234567"), Decimal("1.234567"), Decimal("0.100000")),
    "4412": (Decimal("2.000000"), Decimal("0.000020"), Decimal("0.000001")),
    "4413": (Decimal("0.500000"), Decimal("3.000000"), Decimal("1.000000")),
}
# (pair, rate, effective_from)
RATES = [
    (("USD", "EUR"), Decimal("0.9"), datetime(2026, 3, 1, tzinfo=UTC)),
    (("USD", "EUR"), Decimal("0.925"), datetime(2026, 3, 15, tzinfo=UTC)),
    (("EUR", "USD"), Decimal("1.1"), datetime(2026, 1, 1, tzinfo=UTC)),
    (("EUR", "GBP"), Decimal("0.85"), datetime(2026, 1, 1, tzinfo=UTC)),
    (("EUR", "GBP"), Decimal("0.8"), datetime(2026, 3, 18, tzinfo=UTC)),
]
CALLS = [  # cdr_id, start_time, prefix
    ("c-before", datetime(2026, 2, 20, 10, 0, tzinfo=UTC), "4411"),
    ("c-old", datetime(2026, 3, 14, 23, 59, 59, tzinfo=UTC), "4411"),
    ("c-at", datetime(2026, 3, 15, tzinfo=UTC), "4412"),
    ("c-new", datetime(2026, 3, 20, 8, 0, tzinfo=UTC), "4411"),
    ("c-big", datetime(2026, 3, 21, 9, 30, tzinfo=UTC), "4413"),
]
PAYMENTS = [  # id, kind, account, amount, currency, recorded_at
    ("p-in", "customer_payment_in", "cust", "1.000000", "EUR", datetime(2026, 3, 16, tzinfo=UTC)),
    ("p-gw", "client_payout_out", "gw", "0.500000", "USD", datetime(2026, 2, 25, tzinfo=UTC)),
    ("p-res", "reseller_payout_out", "res", "0.050000", "GBP", datetime(2026, 3, 16, tzinfo=UTC)),
]
FIGURES = ("customer", "client", "reseller")
PAID = {"customer_payment_in": "customer_payment", "client_payout_out": "client_payout"}
FIGURES_PAID = ("customer_payment", "client_payout", "reseller_payout")


def _deck(leg: int) -> list[dict[str, object]]:
    return [
        deck_row(p, "0", connection_fee=str(a[leg]), effective_from=YEAR)
        for p, a in AMOUNTS.items()
    ]


def _folder(root: Path) -> Path:
    folder = write_plans(
        root,
        [plan("P", "customer"), plan("C", "client", "USD"), plan("R", "reseller", "GBP")],
        {"P": _deck(0), "C": _deck(1), "R": _deck(2)},
        [
            association("customer", "cust", "P", effective_from=YEAR),
            association("client", "gw", "C", effective_from=YEAR),
            association("reseller", "res", "R", effective_from=YEAR),
        ],
        [membership("gw", "res", effective_from=YEAR)],
    )
    lines = [f"{a},{b},{r},{f.isoformat().replace('+00:00', 'Z')}" for (a, b), r, f in RATES]
    (folder / "fx_rates.csv").write_text("currency,quote,rate,effective_from\n" + "\n".join(lines))
    return folder


def _rate(currency: str, target: str, at: datetime) -> tuple[str, Decimal] | None:
    """The conversion the docs promise, in Python: direct pair, else inverse, else none."""
    if currency == target:
        return "same", Decimal(1)
    for pair, direction in (((currency, target), "direct"), ((target, currency), "inverse")):
        rows = [(f, r) for p, r, f in RATES if p == pair]
        if rows:
            in_effect = [r for f, r in sorted(rows) if f <= at]
            return (direction, in_effect[-1]) if in_effect else None
    return None


def _converted(amount: Decimal, currency: str, target: str, at: datetime) -> Decimal | None:
    found = _rate(currency, target, at)
    if found is None:
        return None
    direction, rate = found
    exact = amount / rate if direction == "inverse" else amount * rate
    return exact.quantize(CENT, rounding=ROUND_HALF_UP)


def _items() -> list[tuple[str, str, str, Decimal, datetime]]:
    """Every amount: (figure, cdr_id, currency, amount, instant)."""
    out = []
    for cdr_id, start, prefix in CALLS:
        for figure, currency, amount in zip(
            FIGURES, ("EUR", "USD", "GBP"), AMOUNTS[prefix], strict=True
        ):
            out.append((figure, cdr_id, currency, amount, start))
    for _, kind, _, paid, currency, at in PAYMENTS:
        out.append((PAID.get(kind, "reseller_payout"), "", currency, Decimal(paid), at))
    return out


def _expected_overview(target: str) -> list[dict[str, object]]:
    sums: dict[tuple[str, str], dict[str, Decimal]] = {}
    calls: dict[tuple[str, str], set[str]] = {}
    for figure, cdr_id, currency, amount, at in _items():
        value = _converted(amount, currency, target, at)
        key = ("converted", target) if value is not None else ("unconverted", currency)
        row = sums.setdefault(key, {})
        row[figure] = row.get(figure, Decimal(0)) + (amount if value is None else value)
        calls.setdefault(key, set()).update([cdr_id] if cdr_id else [])
    out: list[dict[str, object]] = []
    for key in sorted(sums):
        got = {f: sums[key].get(f, Decimal(0)).quantize(CENT) for f in (*FIGURES, *FIGURES_PAID)}
        out.append(
            {
                "tenant_id": "t1",
                "currency": key[1],
                "conversion": key[0],
                "customer_total": got["customer"],
                "customer_payments": got["customer_payment"],
                "client_total": got["client"],
                "client_payouts": got["client_payout"],
                "reseller_total": got["reseller"],
                "reseller_payouts": got["reseller_payout"],
                "owed_to_resellers": got["reseller"] - got["reseller_payout"],
                "margin": got["customer"] - got["client"] - got["reseller"],
                "calls": len(calls[key]),
            }
        )
    return out


@dataclass(frozen=True)
class Results:
    """What each path answered."""

    overview: dict[str, dict[str, list[dict[str, object]]]]  # path -> target -> rows
    amounts: dict[str, list[dict[str, object]]]  # path -> every amount in EUR
    tenant_t2: dict[str, int]


def _fill(store: CallHistoryStore, reference: ReferenceData) -> None:
    store.migrate()
    store.write_roster(roster_rows(reference), RATED_AT)
    records = [
        cdr(cdr_id=c, session_id=c, callee=f"{p}5550000", start_time=_text(s)) for c, s, p in CALLS
    ]
    store.write_call_history(rated(reference, records, RATED_AT))
    for pid, kind, account, amount, currency, at in PAYMENTS:
        payment = Payment.parse(
            payment_id=pid,
            tenant_id="t1",
            kind=kind,
            account_id=account,
            amount=amount,
            currency=currency,
            recorded_at=_text(at),
            note="",
        )
        assert record_payment(store, payment)


def _text(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Results:
    root = tmp_path_factory.mktemp("fx")
    reference = load_plans_folder(_folder(root / "plans"))
    overview: dict[str, dict[str, list[dict[str, object]]]] = {}
    amounts: dict[str, list[dict[str, object]]] = {}
    tenant_t2: dict[str, int] = {}
    for kind in PATHS:
        with open_path(kind, root / kind, unique_database()) as path:
            _fill(path.store, reference)
            overview[kind] = {
                t: billing_overview_in(path.store, t).to_pylist() for t in ("EUR", "USD", "GBP")
            }
            assert billing_overview_in(path.store, "EUR", "t1").to_pylist() == overview[kind]["EUR"]
            tenant_t2[kind] = billing_overview_in(path.store, "EUR", "t2").num_rows
            amounts[kind] = amounts_in(path.store, "EUR").to_pylist()
    return Results(overview, amounts, tenant_t2)


@pytest.mark.parametrize("kind", PATHS)
def test_each_amount_converts_at_the_rate_of_its_instant(results: Results, kind: str) -> None:
    got = {(r["cdr_id"], r["figure"]): r for r in results.amounts[kind]}
    assert len(got) == len(_items())
    for figure, cdr_id, currency, amount, at in _items():
        row = got[(cdr_id, figure)]
        assert (row["currency"], row["amount"], row["at"]) == (currency, amount, at)
        assert row["converted"] == _converted(amount, currency, "EUR", at), (cdr_id, figure)
        found = _rate(currency, "EUR", at)
        assert row["conversion"] == (found[0] if found else "none")
        if found and found[0] != "same":
            assert row["rate"] == found[1]
        else:
            assert row["rate"] is None
    # Hand-worked, to the last decimal:
    by = {k: v["converted"] for k, v in got.items()}
    assert by[("c-before", "client")] is None  # before the first USD->EUR rate: never guessed
    assert by[("c-before", "customer")] == Decimal("1.234567")  # EUR->EUR unchanged
    assert by[("c-old", "client")] == Decimal("1.111110")  # 1.234567 * 0.9 = 1.1111103
    assert by[("c-new", "client")] == Decimal("1.141974")  # 1.234567 * 0.925 = 1.141974475
    assert by[("c-at", "client")] == Decimal("0.000019")  # 0.000020 * 0.925 = 0.0000185: half up
    assert by[("c-old", "reseller")] == Decimal("0.117647")  # 0.1 / 0.85 = 0.1176470588...
    assert by[("c-big", "reseller")] == Decimal("1.250000")  # 1 / 0.8 (the rate of 18 March)
    assert by[("c-at", "reseller")] == Decimal("0.000001")  # 0.000001 / 0.85 = 0.00000117...
    assert by[("", "reseller_payout")] == Decimal("0.058824")  # 0.05 / 0.85 = 0.0588235...
    assert by[("", "client_payout")] is None  # recorded 25 February: no rate yet


@pytest.mark.parametrize("kind", PATHS)
def test_the_overview_in_eur_to_the_last_decimal(results: Results, kind: str) -> None:
    rows = results.overview[kind]["EUR"]
    assert rows == _expected_overview("EUR")
    converted, unconverted = rows
    # Hand-worked: the EUR row and the USD that had no rate.
    assert (converted["currency"], converted["conversion"]) == ("EUR", "converted")
    assert converted["customer_total"] == Decimal("6.203701")
    assert converted["client_total"] == Decimal("5.028103")  # 1.111110+0.000019+1.141974+2.775
    assert converted["reseller_total"] == Decimal("1.610295")
    assert converted["reseller_payouts"] == Decimal("0.058824")
    assert converted["owed_to_resellers"] == Decimal("1.551471")
    assert converted["margin"] == Decimal("-0.434697")
    assert (converted["customer_payments"], converted["client_payouts"]) == (Decimal(1), 0)
    assert converted["calls"] == len(CALLS)
    assert unconverted == {
        "tenant_id": "t1",
        "currency": "USD",
        "conversion": "unconverted",
        "customer_total": Decimal(0),
        "customer_payments": Decimal(0),
        "client_total": Decimal("1.234567"),
        "client_payouts": Decimal("0.500000"),
        "reseller_total": Decimal(0),
        "reseller_payouts": Decimal(0),
        "owed_to_resellers": Decimal(0),
        "margin": Decimal("-1.234567"),
        "calls": 1,
    }
    assert list(converted) == list(CONVERTED_OVERVIEW_COLUMNS)
    assert results.tenant_t2[kind] == 0


@pytest.mark.parametrize("kind", PATHS)
def test_the_overview_in_usd_and_gbp(results: Results, kind: str) -> None:
    # USD: EUR->USD is direct (1.1, every call); GBP->USD has no rate either way: unconverted.
    assert results.overview[kind]["USD"] == _expected_overview("USD")
    assert [(r["conversion"], r["currency"]) for r in results.overview[kind]["USD"]] == [
        ("converted", "USD"),
        ("unconverted", "GBP"),
    ]
    # GBP: EUR->GBP direct; USD->GBP has no rate either way.
    assert results.overview[kind]["GBP"] == _expected_overview("GBP")


def test_both_paths_answer_alike(results: Results) -> None:
    embedded, server = (results.overview[k] for k in PATHS)
    assert embedded == server
    assert results.amounts["embedded"] == results.amounts["server"]


def test_an_unknown_currency_is_refused(tmp_path: Path) -> None:
    refused = pytest.raises(UnknownCurrencyError, match="'EURO': not an ISO 4217 currency code")
    with open_path("embedded", tmp_path, unique_database()) as path, refused:
        billing_overview_in(path.store, "EURO")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str]]:
    database = unique_database()
    reference = load_plans_folder(_folder(tmp_path / "plans"))
    with open_path("server", tmp_path, database) as path:
        _fill(path.store, reference)
        assert path.server is not None
        yield path.server.url, database


def test_the_command_prints_the_overview_in_a_currency(
    served: tuple[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, database = served
    monkeypatch.setenv("CLICKHOUSE_URL", url)
    monkeypatch.setenv("VMGATE_DATABASE", database)
    assert main(["billing-overview", "--currency", "EUR", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    expected = _expected_overview("EUR")
    assert rows == [{k: _json(v) for k, v in row.items()} for row in expected]
    assert rows[0]["margin"] == "-0.434697"
    assert main(["billing-overview", "--currency", "EUR"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == list(CONVERTED_OVERVIEW_COLUMNS)
    assert table[2].split() == [
        "t1", "EUR", "converted", "6.203701", "1.000000", "5.028103", "0.000000", "1.610295",
        "0.058824", "1.551471", "-0.434697", "5",
    ]  # fmt: skip
    assert table[3].split() == [
        "t1", "USD", "unconverted", "0.000000", "0.000000", "1.234567", "0.500000", "0.000000",
        "0.000000", "0.000000", "-1.234567", "1",
    ]  # fmt: skip
    # Without --currency: per currency as before, no conversion and no margin column.
    assert main(["billing-overview", "--format", "json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert [r["currency"] for r in plain] == ["EUR", "GBP", "USD"]
    assert "margin" not in plain[0]
    assert plain[2]["client_total"] == "6.703721"  # 1.234567 * 3 + 0.000020 + 3


def test_the_command_refuses_an_unknown_currency(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["billing-overview", "--currency", "euro"])
    assert exited.value.code == 2
    assert "'euro' is not an ISO 4217 currency code (like EUR)" in capsys.readouterr().err


def _json(value: object) -> object:
    return format(value, "f") if isinstance(value, Decimal) else value


def test_the_rates_are_those_of_the_version_loaded_last(tmp_path: Path) -> None:
    first = load_plans_folder(_folder(tmp_path / "plans"))
    folder = _folder(tmp_path / "plans-2")
    (folder / "fx_rates.csv").write_text(
        "currency,quote,rate,effective_from\nUSD,EUR,0.5,2026-01-01T00:00:00Z\n"
    )
    second = load_plans_folder(folder)
    with open_path("embedded", tmp_path, unique_database()) as path:
        store = path.store
        _fill(store, first)
        assert store.query("SELECT count() AS n FROM fx_rates").column("n")[0].as_py() == 5
        assert store.write_roster(roster_rows(first), RATED_AT) is False  # written once

        def client_in_eur() -> dict[str, object]:
            rows = amounts_in(store, "EUR").to_pylist()
            return {r["cdr_id"]: r["converted"] for r in rows if r["figure"] == "client"}

        assert client_in_eur()["c-before"] is None
        assert store.write_roster(roster_rows(second), datetime(2026, 4, 2, tzinfo=UTC))
        # 1.234567 * 0.5 = 0.6172835 -> 0.617284 (half up); GBP has no rate in this version.
        assert client_in_eur()["c-before"] == Decimal("0.617284")
        overview = billing_overview_in(store, "EUR").to_pylist()
        assert [(r["conversion"], r["currency"]) for r in overview] == [
            ("converted", "EUR"),
            ("unconverted", "GBP"),
        ]
        assert overview[1]["reseller_total"] == sum(a[2] for _, _, p in CALLS for a in [AMOUNTS[p]])
        assert store.write_roster(roster_rows(first), datetime(2026, 4, 3, tzinfo=UTC))
        assert client_in_eur()["c-before"] is None
