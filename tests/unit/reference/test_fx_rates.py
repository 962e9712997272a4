"""fx_rates.csv: rates loaded exactly, every rule refused with file, line, column and value."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from pipeline.rating.exceptions import ReferenceDataError
from pipeline.reference.files import TOP_FILES, FolderPlanFiles
from pipeline.reference.loader import load_plans_folder
from tests.builders import association, deck_row, plan, write_plans

HEADER = "currency,quote,rate,effective_from\n"


def _folder(root: Path) -> Path:
    return write_plans(
        root,
        [plan("P", "customer")],
        {"P": [deck_row("44", "0.01")]},
        [association("customer", "cust", "P")],
    )


def _problems(folder: Path) -> list[str]:
    with pytest.raises(ReferenceDataError) as caught:
        load_plans_folder(folder)
    return [str(p) for p in caught.value.problems]


def test_rates_load_exactly_sorted_by_pair_and_instant(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "fx_rates.csv").write_text(
        HEADER
        + "USD,EUR,0.925,2026-03-15T00:00:00Z\n"
        + " USD , EUR ,0.900000000001,2026-03-01T01:00:00+01:00\n"
        + "VND,USD,0.000039370079,2026-01-01T00:00:00Z\n"
        + "USD,VND,999999.999999999999,2026-01-01T00:00:00Z\n"
    )
    rates = load_plans_folder(folder).fx_rates
    assert rates.rows() == [
        ("USD", "EUR", Decimal("0.900000000001"), datetime(2026, 3, 1, tzinfo=UTC)),
        ("USD", "EUR", Decimal("0.925"), datetime(2026, 3, 15, tzinfo=UTC)),
        ("USD", "VND", Decimal("999999.999999999999"), datetime(2026, 1, 1, tzinfo=UTC)),
        ("VND", "USD", Decimal("0.000039370079"), datetime(2026, 1, 1, tzinfo=UTC)),
    ]
    assert str(rates.schema["rate"]) == "Decimal(precision=38, scale=12)"


def test_a_folder_without_the_file_loads_and_versions_as_before(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    before = load_plans_folder(folder)
    assert before.fx_rates.is_empty()
    (folder / "fx_rates.csv").write_text(HEADER)
    with_header = load_plans_folder(folder)
    assert with_header.fx_rates.is_empty()
    assert with_header.version != before.version  # a present file is content
    (folder / "fx_rates.csv").unlink()
    assert load_plans_folder(folder).version == before.version


def test_the_file_is_published_with_the_folder() -> None:
    assert "fx_rates.csv" in TOP_FILES


def test_the_file_is_published_by_decks_import(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "fx_rates.csv").write_text(HEADER + "USD,EUR,0.9,2026-03-01T00:00:00Z\n")
    files = FolderPlanFiles(folder).all_files()
    assert files["fx_rates.csv"] == (folder / "fx_rates.csv").read_bytes()


def test_every_rule_is_refused_with_file_line_column_and_value(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "fx_rates.csv").write_text(
        HEADER
        + "USD,EUR,0.9,2026-03-01T00:00:00Z\n"  # 2: good
        + ",EUR,0.9,2026-03-01T00:00:00Z\n"  # 3: currency empty
        + "usd,EURO,0.9,2026-03-01T00:00:00Z\n"  # 4: neither is ISO 4217
        + "EUR,EUR,1,2026-03-01T00:00:00Z\n"  # 5: same currency
        + "GBP,EUR,-0.85,2026-03-01T00:00:00Z\n"  # 6: negative
        + "GBP,EUR,0,2026-03-02T00:00:00Z\n"  # 7: zero
        + "GBP,EUR,0.0000000000001,2026-03-03T00:00:00Z\n"  # 8: 13 places
        + "GBP,EUR,1000000,2026-03-04T00:00:00Z\n"  # 9: 7 integer digits
        + "GBP,EUR,1e3,2026-03-05T00:00:00Z\n"  # 10: not a decimal
        + "GBP,EUR,,2026-03-06T00:00:00Z\n"  # 11: rate empty
        + "GBP,EUR,0.85,2026-03-32T00:00:00Z\n"  # 12: no such day
        + "GBP,EUR,0.85,\n"  # 13: effective_from empty
        + "USD,EUR,0.91,2026-03-01T01:00:00+01:00\n"  # 14: the instant of line 2 again
        + "EUR,USD,1.1,2026-03-01T00:00:00Z\n"  # 15: the reverse pair is another pair: fine
    )
    assert _problems(folder) == [
        "fx_rates.csv, line 3, column currency: required, empty",
        "fx_rates.csv, line 11, column rate: required, empty",
        "fx_rates.csv, line 13, column effective_from: required, empty",
        "fx_rates.csv, line 4, column currency: 'usd': not an ISO 4217 currency code",
        "fx_rates.csv, line 4, column quote: 'EURO': not an ISO 4217 currency code",
        "fx_rates.csv, line 5, column quote: 'EUR': same as currency (a rate converts one "
        "currency into another)",
        "fx_rates.csv, line 6, column rate: '-0.85': negative",
        "fx_rates.csv, line 8, column rate: '0.0000000000001': more than 12 decimal places",
        "fx_rates.csv, line 9, column rate: '1000000': more than 6 integer digits",
        "fx_rates.csv, line 10, column rate: '1e3': not a decimal number",
        "fx_rates.csv, line 7, column rate: '0': must be positive (more than 0)",
        "fx_rates.csv, line 12, column effective_from: '2026-03-32T00:00:00Z': not an RFC 3339 "
        "timestamp (like 2026-03-01T00:00:00Z)",
        "fx_rates.csv, line 14, column effective_from: '2026-03-01T01:00:00+01:00': rate of this "
        "currency and quote at this instant appears more than once (first on line 2)",
    ]


def test_a_zero_rate_is_refused(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "fx_rates.csv").write_text(
        HEADER + "GBP,EUR,0.000000000000,2026-03-02T00:00:00Z\nGBP,EUR,0,2026-03-03T00:00:00Z\n"
    )
    assert _problems(folder) == [
        "fx_rates.csv, line 2, column rate: '0.000000000000': must be positive (more than 0)",
        "fx_rates.csv, line 3, column rate: '0': must be positive (more than 0)",
    ]


def test_a_missing_or_unknown_column_is_refused(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "fx_rates.csv").write_text("currency,quote,rates\nUSD,EUR,0.9\n")
    assert _problems(folder) == [
        "fx_rates.csv, line 1, column rates: unknown column; expected currency, quote, rate, "
        "effective_from",
        "fx_rates.csv, line 1, column rate: required column missing",
        "fx_rates.csv, line 1, column effective_from: required column missing",
    ]
