"""``decks simulate --currency``: the margin view converted at each call's own rate, exactly.

The hand-worked network of ``tests/integration/storage/test_fx_conversion.py`` (customer plan
in EUR, client plan in USD, reseller plan in GBP, every amount a connection fee; USD -> EUR 0.9
then 0.925 from 15 March, GBP -> EUR only by the inverse of EUR -> GBP 0.85 then 0.8 from 18
March; a call on 20 February before the first USD -> EUR rate), simulated with new fees. Each
converted figure is computed here with Python Decimal and checked against hand-worked values;
then re-rating the window for real moves ``billing-overview --currency EUR`` by exactly the
converted changes.
"""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from pipeline.cli import main
from pipeline.reference.loader import load_plans_folder
from pipeline.services.simulate import simulate
from pipeline.sinks.embedded import EmbeddedStore
from pipeline.storage.fx import amounts_in, billing_overview_in, convert_amounts
from tests.builders import DECK_HEADER, _header, _write, deck_row
from tests.integration.storage.test_fx_conversion import (
    AMOUNTS,
    CALLS,
    YEAR,
    _converted,
    _fill,
    _folder,
)
from tests.support.stores import PATHS, open_path, unique_database

START, END = datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)
WINDOW = ["--from", "2026-02-01T00:00:00Z", "--to", "2026-04-01T00:00:00Z"]
LEGS = ("customer", "client", "reseller")
CURRENCIES = ("EUR", "USD", "GBP")
# prefix -> (customer EUR, client USD, reseller GBP) with the new plans
NEW_AMOUNTS = {
    "4411": (Decimal("1.500000"), Decimal("2.000000"), Decimal("0.200000")),
    "4412": (Decimal("2.000000"), Decimal("0.000060"), Decimal("0.000003")),
    "4413": (Decimal("0.500000"), Decimal("3.000000"), Decimal("1.000000")),
}


def _new_folder(root: Path) -> Path:
    old = _folder(root / "old")
    new = root / "new"
    shutil.copytree(old, new)
    for leg, plan_id in enumerate(("P", "C", "R")):
        rows = [
            deck_row(p, "0", connection_fee=str(a[leg]), effective_from=YEAR)
            for p, a in NEW_AMOUNTS.items()
        ]
        _write(new / "decks" / f"{plan_id}.csv", _header(DECK_HEADER, rows), rows)
    return new


def _expected_by_leg() -> dict[tuple[str, str, str], tuple[Decimal, Decimal]]:
    """(leg, currency, conversion) -> (before, after), each amount converted on its own."""
    out: dict[tuple[str, str, str], list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 2)
    for _, start, prefix in CALLS:
        for side, amounts in enumerate((AMOUNTS[prefix], NEW_AMOUNTS[prefix])):
            for leg, currency, amount in zip(LEGS, CURRENCIES, amounts, strict=True):
                value = _converted(amount, currency, "EUR", start)
                key = (
                    (leg, "EUR", "converted")
                    if value is not None
                    else (leg, currency, "unconverted")
                )
                out[key][side] += amount if value is None else value
    return {k: (v[0], v[1]) for k, v in out.items()}


@pytest.mark.parametrize("kind", PATHS)
def test_convert_amounts_is_the_overview_conversion(tmp_path: Path, kind: str) -> None:
    """Any amounts, converted by the store with the view's own SQL, as the view converts them."""
    reference = load_plans_folder(_folder(tmp_path / "plans"))
    with open_path(kind, tmp_path / kind, unique_database()) as path:
        _fill(path.store, reference)
        rows = amounts_in(path.store, "EUR").to_pylist()
        items = pa.table(
            {
                "currency": [r["currency"] for r in rows],
                "at": pa.array([r["at"] for r in rows], pa.timestamp("us", tz="UTC")),
                "amount": pa.array([r["amount"] for r in rows], pa.decimal128(38, 6)),
            }
        )
        got = convert_amounts(path.store, "EUR", items).to_pylist()
        assert [(g["conversion"], g["converted"]) for g in got] == [
            (r["conversion"], r["converted"]) for r in rows
        ]
        # Hand-worked: rounding at a half, before the first rate, the inverse pair, a change.
        at_change = datetime(2026, 3, 15, tzinfo=UTC)
        feb_1, march_18 = datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 18, tzinfo=UTC)
        extra = pa.table(
            {
                "currency": ["USD", "USD", "GBP", "USD", "EUR", "GBP"],
                "at": pa.array(
                    [at_change, feb_1, at_change, at_change, at_change, march_18],
                    pa.timestamp("us", tz="UTC"),
                ),
                "amount": pa.array(
                    [Decimal(x) for x in ("0.000060", "5", "0.000003", "0.000060", "7.5", "1")],
                    pa.decimal128(38, 6),
                ),
            }
        )
        assert convert_amounts(path.store, "EUR", extra).to_pylist() == [
            {"conversion": "direct", "converted": Decimal("0.000056")},  # 0.0000555: half up
            {"conversion": "none", "converted": None},  # before the first USD->EUR rate
            {"conversion": "inverse", "converted": Decimal("0.000004")},  # 0.000003/0.85
            {"conversion": "direct", "converted": Decimal("0.000056")},  # a repeat: same answer
            {"conversion": "same", "converted": Decimal("7.500000")},
            {"conversion": "inverse", "converted": Decimal("1.250000")},  # 1 / 0.8 from 18 March
        ]
        with_null = pa.table(
            {
                "currency": ["USD", None],
                "at": pa.array([at_change, at_change], pa.timestamp("us", tz="UTC")),
                "amount": pa.array([None, Decimal(1)], pa.decimal128(38, 6)),
            }
        )
        assert (
            convert_amounts(path.store, "EUR", with_null).to_pylist()
            == [{"conversion": None, "converted": None}] * 2
        )
        empty = extra.slice(0, 0)
        assert convert_amounts(path.store, "EUR", empty).num_rows == 0


@pytest.mark.parametrize("kind", PATHS)
def test_simulate_in_a_currency_to_the_last_decimal(tmp_path: Path, kind: str) -> None:
    old = load_plans_folder(_folder(tmp_path / "plans"))
    new = load_plans_folder(_new_folder(tmp_path / "folders"))
    with open_path(kind, tmp_path / kind, unique_database()) as path:
        _fill(path.store, old)
        result = simulate(path.store, new, START, END, currency="EUR")
        plain = simulate(path.store, new, START, END)
    by_leg = {
        (r["leg"], r["currency"], r["conversion"]): (r["before"], r["after"], r["change"])
        for r in result.by("leg").to_pylist()
    }
    expected = _expected_by_leg()
    assert by_leg == {k: (b, a, a - b) for k, (b, a) in expected.items()}
    # Hand-worked, to the last decimal:
    assert by_leg[("client", "USD", "unconverted")] == (
        Decimal("1.234567"),  # c-before, 20 February: no USD->EUR rate yet, never guessed
        Decimal("2.000000"),
        Decimal("0.765433"),
    )
    # c-old 1.234567*0.9 = 1.1111103 -> 1.111110; c-at 0.000020*0.925 -> 0.000019 (half up);
    # c-new 1.234567*0.925 -> 1.141974; c-big 3*0.925 = 2.775.
    # After: 2*0.9 = 1.8; 0.000060*0.925 = 0.0000555 -> 0.000056 (half up); 1.85; 2.775.
    assert by_leg[("client", "EUR", "converted")] == (
        Decimal("5.028103"),
        Decimal("6.425056"),
        Decimal("1.396953"),
    )
    # Reseller GBP by the inverse of EUR->GBP: 0.1/0.85 -> 0.117647 (twice, 20 Feb and 14
    # March), 0.000001/0.85 -> 0.000001, 0.1/0.8 = 0.125 (20 March), 1/0.8 = 1.25. After:
    # 0.2/0.85 -> 0.235294 (twice), 0.000003/0.85 -> 0.000004, 0.2/0.8 = 0.25, 1.25.
    assert by_leg[("reseller", "EUR", "converted")] == (
        Decimal("1.610295"),
        Decimal("1.970592"),
        Decimal("0.360297"),
    )
    # The margin by customer: revenue minus cost, converted and unconverted on their own rows.
    rows = {(r["currency"], r["conversion"]): r for r in result.by("customer").to_pylist()}
    assert list(result.by("customer").column_names[:4]) == [
        "tenant_id",
        "customer",
        "currency",
        "conversion",
    ]
    eur = rows[("EUR", "converted")]
    # Revenue in EUR already: 6.203701 -> 1.5 * 3 + 2 + 0.5 = 7.
    assert (eur["revenue_before"], eur["revenue_after"]) == (Decimal("6.203701"), Decimal(7))
    assert eur["revenue_change"] == Decimal("0.796299")
    assert eur["cost_change"] == Decimal("1.757250")  # 1.396953 + 0.360297
    assert eur["margin_change"] == Decimal("-0.960951")
    assert rows[("USD", "unconverted")]["cost_change"] == Decimal("0.765433")
    # Without a currency: per currency as before, no conversion column.
    assert "conversion" not in plain.by("leg").column_names
    assert {r["currency"] for r in plain.by("leg").to_pylist()} == set(CURRENCIES)


def _overview(store_dir: Path) -> dict[tuple[str, str], dict[str, Decimal]]:
    with EmbeddedStore(store_dir).open() as store:
        rows = billing_overview_in(store, "EUR").to_pylist()
    return {(r["currency"], r["conversion"]): r for r in rows}


def test_the_converted_change_is_what_rerating_moves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_dir = tmp_path / "store"
    old = load_plans_folder(_folder(tmp_path / "plans"))
    new_folder = _new_folder(tmp_path / "folders")
    with EmbeddedStore(store_dir).open() as store:
        _fill(store, old)
    before = _overview(store_dir)

    simulate_cmd = ["decks", "simulate", "--plans", str(new_folder), "--store", str(store_dir)]
    assert main([*simulate_cmd, *WINDOW, "--currency", "EUR", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["cdrs"], report["changed_cdrs"]) == (5, 4)  # calls to 4413: unchanged
    assert main([*simulate_cmd, *WINDOW, "--currency", "EUR", "--by", "leg"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].split() == ["tenant_id", "leg", "currency", "conversion", "before", "after",
                                "change"]  # fmt: skip
    with pytest.raises(SystemExit) as exited:
        main([*simulate_cmd, *WINDOW, "--currency", "euro"])
    assert exited.value.code == 2
    assert "'euro' is not an ISO 4217 currency code (like EUR)" in capsys.readouterr().err

    rerate = ["rerate", "--store", str(store_dir), "--plans", str(new_folder), "--tenant", "t1"]
    assert main([*rerate, *WINDOW]) == 0
    capsys.readouterr()
    after = _overview(store_dir)

    figures = {"customer": "customer_total", "client": "client_total", "reseller": "reseller_total"}
    simulated = {
        (r["leg"], r["currency"], r["conversion"]): Decimal(r["change"]) for r in report["leg"]
    }
    for currency, conversion in set(before) | set(after):
        for leg, figure in figures.items():
            moved = after.get((currency, conversion), {}).get(figure, Decimal(0)) - before.get(
                (currency, conversion), {}
            ).get(figure, Decimal(0))
            assert moved == simulated.get((leg, currency, conversion), Decimal(0)), (
                leg,
                currency,
                conversion,
            )
    margins: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for row in report["customer"]:
        margins[(row["currency"], row["conversion"])] += Decimal(row["margin_change"])
    for key, margin in margins.items():
        assert margin == after[key]["margin"] - before[key]["margin"], key
    assert margins[("EUR", "converted")] != 0
