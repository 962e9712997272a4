"""The customer's rate notification, checked line by line in CSV and in Excel."""

from __future__ import annotations

import csv
import shutil
from decimal import Decimal
from pathlib import Path

import fastexcel
import polars as pl
import pytest

from pipeline.cli import main
from pipeline.reference.carrier_decks import convert_deck, read_deck_profile, write_conversion
from pipeline.reference.files import FolderPlanFiles
from tests.builders import association, deck_row, plan, write_plans

EXAMPLES = Path(__file__).parents[3] / "examples" / "carrier-profiles"
APRIL, APRIL_10 = "2026-03-31T22:00:00Z", "2026-04-09T22:00:00Z"  # local midnights, Berlin
EXPECTED = [
    ["431", "Austria - Fixed", "", "0.0081", "new", APRIL],
    ["331", "France - Fixed", "0.0065", "", "closed", APRIL],
    ["4940", "Germany - Fixed", "", "0.0052", "new", APRIL],
    ["4989", "Germany - Fixed", "", "0.0052", "new", APRIL],
    ["49151", "Germany - Mobile Telekom", "0.0550", "0.0590", "increase", APRIL_10],
    ["49160", "Germany - Mobile Telekom", "", "0.0590", "new", APRIL_10],
    ["49170", "Germany - Mobile Telekom", "", "0.0590", "new", APRIL_10],
    ["49152", "Germany - Mobile Vodafone", "0.0600", "0.0575", "decrease", APRIL],
    ["49162", "Germany - Mobile Vodafone", "", "0.0575", "new", APRIL],
    ["4420", "United Kingdom", "0.0300", "0.0300", "changed", "2026-05-01T00:00:00Z"],
]
HEADER = ["code", "destination", "old_rate", "new_rate", "change", "effective_from"]


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    old = write_plans(
        tmp_path / "old",
        [plan("P", "customer")],
        {
            "P": [
                deck_row("4930", "0.0052", destination="Germany - Fixed"),
                deck_row("49151", "0.0550", destination="Germany - Mobile Telekom"),
                deck_row("49152", "0.06", destination="Germany - Mobile Vodafone"),
                deck_row("331", "0.0065", destination="France - Fixed"),
                deck_row("4420", "0.03", destination="United Kingdom"),
            ]
        },
        [association("customer", "cust", "P")],
    )
    new = tmp_path / "new"
    shutil.copytree(old, new)
    profile = read_deck_profile(EXAMPLES / "eu-carrier-csv.toml")
    sample = EXAMPLES / "eu-carrier-csv-sample.csv"
    write_conversion(new, convert_deck(FolderPlanFiles(new), "P", sample, profile))
    # A change of terms only (60/60 billing from May), made by hand: "changed".
    deck = new / "decks" / "P.csv"
    text = deck.read_text().replace(
        "4420,United Kingdom,0.03,,,,2026-03-01T00:00:00Z,",
        "4420,United Kingdom,0.03,,,,2026-03-01T00:00:00Z,2026-05-01T00:00:00Z\n"
        "4420,United Kingdom,0.03,,60,60,2026-05-01T00:00:00Z,",
    )
    assert text != deck.read_text()
    deck.write_text(text)
    return old, new


def test_csv_notification_line_by_line(
    folders: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = folders
    out = tmp_path / "notice.csv"
    argv = ["decks", "notify", "--old", str(old), "--new", str(new), "--plan", "P"]
    assert main([*argv, "--out", str(out)]) == 0
    assert "10 lines for plan P" in capsys.readouterr().out
    with out.open(newline="") as handle:
        lines = list(csv.reader(handle))
    assert lines == [HEADER, *EXPECTED]


def test_excel_notification_line_by_line(folders: tuple[Path, Path], tmp_path: Path) -> None:
    old, new = folders
    out = tmp_path / "notice.xlsx"
    argv = ["decks", "notify", "--old", str(old), "--new", str(new), "--plan", "P"]
    assert main([*argv, "--out", str(out)]) == 0
    sheet = fastexcel.read_excel(str(out)).load_sheet("Rate notice", dtypes="string")
    frame = pl.DataFrame(sheet.to_arrow())
    assert frame.columns == HEADER
    got = [[cell or "" for cell in row] for row in frame.iter_rows()]
    assert len(got) == len(EXPECTED)
    for row, expected in zip(got, EXPECTED, strict=True):
        assert row[:2] + row[4:] == expected[:2] + expected[4:]
        for cell, value in zip(row[2:4], expected[2:4], strict=True):  # numbers in Excel
            assert (Decimal(cell) if cell else None) == (Decimal(value) if value else None)


def test_no_change_gives_an_empty_notification(
    folders: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, _ = folders
    out = tmp_path / "none.csv"
    argv = ["decks", "notify", "--old", str(old), "--new", str(old), "--plan", "P"]
    assert main([*argv, "--out", str(out)]) == 0
    assert out.read_text() == ",".join(HEADER) + "\n"
    assert "no changes" in capsys.readouterr().out


def test_an_end_moved_later_is_no_closure_and_one_moved_earlier_is(tmp_path: Path) -> None:
    def folder(name: str, uk_until: str, fr_until: str) -> Path:
        return write_plans(
            tmp_path / name,
            [plan("P", "customer")],
            {
                "P": [
                    deck_row("44", "0.03", destination="UK", effective_until=uk_until),
                    deck_row("33", "0.02", destination="France", effective_until=fr_until),
                ]
            },
        )

    old = folder("old", "2026-05-01T00:00:00Z", "")
    new = folder("new", "", "2026-06-01T00:00:00Z")
    out = tmp_path / "notice.csv"
    argv = ["decks", "notify", "--old", str(old), "--new", str(new), "--plan", "P"]
    assert main([*argv, "--out", str(out)]) == 0
    with out.open(newline="") as handle:
        assert list(csv.reader(handle)) == [
            HEADER,
            ["33", "France", "0.0200", "", "closed", "2026-06-01T00:00:00Z"],
        ]
