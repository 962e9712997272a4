"""Carrier decks converted into plan decks: the shipped layouts, modes, notice, problems named."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pipeline.cli import main
from pipeline.rating.exceptions import ReferenceDataError
from pipeline.reference.carrier_decks import convert_deck, read_deck_profile, write_conversion
from pipeline.reference.carrier_files import local_instants
from pipeline.reference.files import FolderPlanFiles
from pipeline.reference.loader import load_plans_folder
from tests.builders import association, cdr, deck_row, plan, rate, write_plans

EXAMPLES = Path(__file__).parents[3] / "examples" / "carrier-profiles"
MARCH = "2026-03-01T00:00:00Z"


def _folder(tmp_path: Path, deck: list[dict[str, Any]], currency: str = "EUR") -> Path:
    return write_plans(
        tmp_path / "plans",
        [plan("P", "customer", currency=currency)],
        {"P": deck},
        [association("customer", "cust", "P")],
    )


def _rated(folder: Path, callee: str, start: str, duration_ms: int = 60_000) -> dict[str, Any]:
    [row] = rate(
        load_plans_folder(folder),
        [
            cdr(
                callee=callee,
                start_time=start,
                end_time="2026-12-31T00:00:00Z",
                duration_ms=duration_ms,
            )
        ],
    )
    return row


def _price(folder: Path, callee: str, start: str, duration_ms: int = 60_000) -> Decimal | str:
    row = _rated(folder, callee, start, duration_ms)
    if row["status"] != "rated":
        return str(row["unrated_reason"])
    return Decimal(row["customer_amount"])


def _eu_deck() -> list[dict[str, Any]]:
    return [
        deck_row("4930", "0.0052", destination="Germany - Fixed"),
        deck_row("49151", "0.0550", destination="Germany - Mobile Telekom"),
        deck_row("49152", "0.0600", destination="Germany - Mobile Vodafone"),
        deck_row("331", "0.0065", destination="France - Fixed"),
        deck_row("33", "0.0100", destination="France"),
    ]


def _convert_eu(tmp_path: Path, **options: Any) -> tuple[Path, Any]:
    folder = _folder(tmp_path, _eu_deck())
    profile = read_deck_profile(EXAMPLES / "eu-carrier-csv.toml")
    conversion = convert_deck(
        FolderPlanFiles(folder),
        "P",
        EXAMPLES / "eu-carrier-csv-sample.csv",
        profile,
        **options,
    )
    return folder, conversion


def test_the_csv_layout_utf16_decimal_comma_code_lists_rates_before_and_after(
    tmp_path: Path,
) -> None:
    # 27/03/2026 is local midnight in Berlin (CET): 2026-03-26T23:00:00Z.
    notified = local_instants(pl.Series(["27/03/2026"]), "%d/%m/%Y", "Europe/Berlin").item()
    folder, conversion = _convert_eu(tmp_path, notified_at_us=notified, notice_days=7)
    write_conversion(folder, conversion)
    assert conversion.counts() == {
        "new": 6,  # 4940, 4989, 49162, 431 from 01/04; 49160, 49170 from 10/04
        "increase": 1,
        "decrease": 1,
        "unchanged": 1,
        "closed": 1,
        "changed": 0,
        "notice_violations": 4,  # the new codes of 01/04: 4 days of notice, not 7
    }
    # 01/04/2026 and 10/04/2026 are local midnights in Berlin (CEST).
    assert _price(folder, "4930123", "2026-03-20T10:00:00Z") == Decimal("0.0052")
    assert _price(folder, "4930123", "2026-05-20T10:00:00Z") == Decimal("0.0052")
    assert _price(folder, "49401234", "2026-03-31T21:59:59Z") == "customer:no_prefix"
    assert _price(folder, "49401234", "2026-03-31T22:00:00Z") == Decimal("0.0052")
    assert _price(folder, "491511234", "2026-04-09T21:59:59Z") == Decimal("0.0550")
    assert _price(folder, "491511234", "2026-04-09T22:00:00Z") == Decimal("0.0590")
    assert _price(folder, "491701234", "2026-04-09T22:00:00Z") == Decimal("0.0590")
    assert _price(folder, "491521234", "2026-03-31T21:59:59Z") == Decimal("0.0600")
    assert _price(folder, "491521234", "2026-03-31T22:00:00Z") == Decimal("0.0575")
    assert _price(folder, "4311234", "2026-04-02T10:00:00Z") == Decimal("0.0181")  # fee 0.01
    # 331 closed on 01/04: calls fall back to the shorter 33.
    assert _price(folder, "3311234", "2026-03-31T21:59:59Z") == Decimal("0.0065")
    assert _price(folder, "3311234", "2026-03-31T22:00:00Z") == Decimal("0.0100")
    # 4930 unchanged keeps its one row; history before the new dates stays.
    deck = pl.read_csv(folder / "decks" / "P.csv", infer_schema=False)
    assert deck.filter(pl.col("prefix") == "4930").height == 1
    assert deck.filter(pl.col("prefix") == "49151")["effective_until"].to_list() == [
        "2026-04-09T22:00:00Z",
        None,
    ]
    violations = conversion.notice.select("prefix", "change", "days_of_notice").rows()
    assert sorted(violations) == [
        ("431", "new", 4),
        ("49162", "new", 4),
        ("4940", "new", 4),
        ("4989", "new", 4),
    ]


def test_the_excel_layout_replace_mode_closes_a_dropped_code(tmp_path: Path) -> None:
    folder = _folder(
        tmp_path,
        [
            deck_row(
                "1", "0.0120", destination="USA", initial_increment="6", subsequent_increment="6"
            ),
            deck_row(
                "1212",
                "0.0072",
                destination="USA - New York",
                initial_increment="6",
                subsequent_increment="6",
            ),
            deck_row(
                "44",
                "0.0120",
                destination="United Kingdom",
                initial_increment="60",
                subsequent_increment="60",
            ),
            deck_row(
                "447",
                "0.0400",
                destination="United Kingdom - Mobile",
                initial_increment="60",
                subsequent_increment="60",
            ),
            deck_row("34", "0.0150", destination="Spain"),
        ],
        currency="USD",
    )
    profile = read_deck_profile(EXAMPLES / "az-excel.toml")
    conversion = convert_deck(
        FolderPlanFiles(folder), "P", EXAMPLES / "az-excel-sample.xlsx", profile, mode="replace"
    )
    write_conversion(folder, conversion)
    counts = conversion.counts()
    assert (counts["new"], counts["increase"], counts["decrease"], counts["unchanged"]) == (
        1,
        1,
        1,
        2,
    )
    assert counts["closed"] == 1
    assert conversion.closed_absent.select("prefix", "closed_from").rows() == [
        ("34", "2026-04-01T04:00:00Z")  # 04/01/2026 midnight in New York (EDT)
    ]
    assert _price(folder, "34911", "2026-04-01T03:59:59Z") == Decimal("0.0150")
    assert _price(folder, "34911", "2026-04-01T04:00:00Z") == "customer:no_prefix"
    # 447: 0.0008 per second = 0.048 per minute from 04/15 (New York), 60/60 carried over.
    assert _price(folder, "447911", "2026-04-15T03:59:59Z", 61_000) == Decimal("0.0800")
    assert _price(folder, "447911", "2026-04-15T04:00:00Z", 61_000) == Decimal("0.0960")
    # 33 is new with 60/60 from the file; USA down to 0.009 per minute, 6/6 billing.
    assert _price(folder, "33123", "2026-04-02T00:00:00Z", 61_000) == Decimal("0.0300")
    assert _price(folder, "1305", "2026-04-02T00:00:00Z", 7_000) == Decimal("0.0018")
    assert _price(folder, "1305", "2026-03-31T00:00:00Z", 7_000) == Decimal("0.0024")
    # A code typed as a number in Excel reads as its digits; 1212 unchanged keeps its row.
    deck = pl.read_csv(folder / "decks" / "P.csv", infer_schema=False)
    assert deck.filter(pl.col("prefix") == "1212")["effective_from"].to_list() == [MARCH]


def test_update_mode_leaves_absent_codes_and_replaces_scheduled_rows(tmp_path: Path) -> None:
    folder = _folder(
        tmp_path,
        [
            *_eu_deck(),
            deck_row("49151", "0.0700", destination="x", effective_from="2026-05-01T00:00:00Z"),
        ],
    )
    (folder / "decks" / "P.csv").write_text(
        (folder / "decks" / "P.csv")
        .read_text()
        .replace(
            "0.0550,,,,2026-03-01T00:00:00Z,", "0.0550,,,,2026-03-01T00:00:00Z,2026-05-01T00:00:00Z"
        )
    )
    profile = read_deck_profile(EXAMPLES / "eu-carrier-csv.toml")
    conversion = convert_deck(
        FolderPlanFiles(folder), "P", EXAMPLES / "eu-carrier-csv-sample.csv", profile
    )
    write_conversion(folder, conversion)
    assert conversion.replaced_rows == 1  # 49151 from May: the file's 10/04 row replaces it
    assert conversion.closed_absent.height == 0
    assert _price(folder, "491511234", "2026-05-02T00:00:00Z") == Decimal("0.0590")
    assert _price(folder, "3312", "2026-05-02T00:00:00Z") == Decimal("0.0100")  # 33 stays


def test_converting_the_same_file_again_changes_nothing(tmp_path: Path) -> None:
    folder, conversion = _convert_eu(tmp_path)
    write_conversion(folder, conversion)
    first = (folder / "decks" / "P.csv").read_bytes()
    _, again = _convert_eu(tmp_path)
    assert again.deck == first
    assert again.counts() == conversion.counts()  # judged against the rates before the dates


def _carrier_csv(tmp_path: Path, rows: list[str], change: bool = True) -> tuple[Path, Path]:
    data = tmp_path / "carrier.csv"
    header = "code,name,price,from" + (",change" if change else "")
    data.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    profile = tmp_path / "carrier.toml"
    profile.write_text(
        'date_format = "%d/%m/%Y"\n[columns]\nprefix = "code"\ndestination = "name"\n'
        'rate = "price"\neffective_from = "from"\n' + ('change = "change"\n' if change else "")
    )
    return data, profile


def test_every_problem_is_named_with_row_header_and_value(tmp_path: Path) -> None:
    folder = _folder(tmp_path, _eu_deck())
    before = (folder / "decks" / "P.csv").read_bytes()
    data, profile = _carrier_csv(
        tmp_path,
        [
            "4930,Berlin,0.01x,01/04/2026,new",  # 2
            "4940,Hamburg,0.01,31/02/2026,new",  # 3
            "4989,Munich,0.01,01/04/2026,new",  # 4
            "4989,Munich,0.02,01/04/2026,new",  # 5
            ",Nowhere,0.01,01/04/2026,new",  # 6
            "49-30,Dash,0.01,01/04/2026,new",  # 7
            "4950,Words,0.01,01/04/2026,maybe",  # 8
            "4960,Negative,-0.01,01/04/2026,new",  # 9
        ],
    )
    code = main(
        ["decks", "convert", "--input", str(data), "--profile", str(profile),
         "--plans", str(folder), "--plan", "P"]
    )  # fmt: skip
    assert code == 2
    assert (folder / "decks" / "P.csv").read_bytes() == before
    with pytest.raises(ReferenceDataError) as refused:
        convert_deck(FolderPlanFiles(folder), "P", data, read_deck_profile(profile))
    found = {(p.line, p.column, p.value, p.message.split(" (")[0]) for p in refused.value.problems}
    assert found == {
        (2, "price", "0.01x", "not a decimal number"),
        (3, "from", "31/02/2026", "not a date in the format %d/%m/%Y"),
        (6, "code", None, "empty code"),
        (7, "code", "49-30", "a code must be 1 to 15 digits"),
        (8, "change", "maybe", "not a change word of the profile"),
        (9, "price", "-0.01", "negative"),
    }
    # Duplicates are judged once every value reads: a file with only that problem.
    data, profile = _carrier_csv(
        tmp_path, ["4989,Munich,0.01,01/04/2026,new", "4989,Munich,0.02,01/04/2026,new"]
    )
    with pytest.raises(ReferenceDataError) as refused:
        convert_deck(FolderPlanFiles(folder), "P", data, read_deck_profile(profile))
    [problem] = refused.value.problems
    assert (problem.line, problem.column, problem.value) == (3, "code", "4989")
    assert "first on row 2" in problem.message


def test_a_change_word_the_numbers_contradict_is_reported(tmp_path: Path) -> None:
    folder = _folder(tmp_path, _eu_deck())
    data, profile = _carrier_csv(
        tmp_path,
        [
            "4930,Berlin,0.0060,01/04/2026,decrease",  # it went up
            "49151,Mobile,0.0500,01/04/2026,decrease",  # it did go down
            "999,Nowhere,0.0100,01/04/2026,unchanged",  # it is new
        ],
    )
    conversion = convert_deck(FolderPlanFiles(folder), "P", data, read_deck_profile(profile))
    said = conversion.contradictions.select("_row", "prefix", "says", "numbers_say").rows()
    assert said == [(2, "4930", "decrease", "increase"), (4, "999", "unchanged", "new")]


def test_strict_refuses_short_notice_and_dry_run_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _folder(tmp_path, _eu_deck())
    before = (folder / "decks" / "P.csv").read_bytes()
    argv = [
        "decks", "convert", "--input", str(EXAMPLES / "eu-carrier-csv-sample.csv"),
        "--profile", str(EXAMPLES / "eu-carrier-csv.toml"), "--plans", str(folder),
        "--plan", "P", "--notified-at", "2026-03-27", "--notice-days", "7",
    ]  # fmt: skip
    assert main([*argv, "--strict"]) == 1
    out = capsys.readouterr().out
    assert "refused (--strict): 4 increases or new codes" in out
    assert "431" in out
    assert "49162" in out
    assert (folder / "decks" / "P.csv").read_bytes() == before
    assert main([*argv, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dry run" in out
    assert "6 new, 1 increase, 1 decrease" in out
    assert (folder / "decks" / "P.csv").read_bytes() == before
    assert main(argv) == 0  # without --strict the violations are listed, the deck written
    assert "4 notice violations" in capsys.readouterr().out
    assert (folder / "decks" / "P.csv").read_bytes() != before
    load_plans_folder(folder)


def test_a_converted_deck_the_folder_would_refuse_is_not_written(tmp_path: Path) -> None:
    # The plan's deck uses a band the plan does not define: the loader refuses the result.
    folder = _folder(tmp_path, _eu_deck())
    data, profile = _carrier_csv(tmp_path, ["4930,Berlin,0.0060,01/04/2026,increase,peak"])
    data.write_text(data.read_text().replace("change\n", "change,period\n", 1))
    profile.write_text(profile.read_text() + 'band = "period"\n')
    before = (folder / "decks" / "P.csv").read_bytes()
    conversion = convert_deck(FolderPlanFiles(folder), "P", data, read_deck_profile(profile))
    with pytest.raises(ReferenceDataError, match="band"):
        write_conversion(folder, conversion)
    assert (folder / "decks" / "P.csv").read_bytes() == before
    assert not list((folder / "decks").glob(".*"))


def test_profiles_are_checked_key_by_key(tmp_path: Path) -> None:
    profile = tmp_path / "bad.toml"
    profile.write_text(
        'format = "ods"\ntimezone = "Mars/Olympus"\ndelimiter = ";;"\ncolour = "red"\n'
        'rate_per = "hour"\n[columns]\nprefix = "Code"\nrate = "Code"\nprice = "x"\n'
        '[change_values]\nnew = ["N"]\nclosed = ["n"]\n'
    )
    with pytest.raises(ReferenceDataError) as refused:
        read_deck_profile(profile)
    keys = {p.column for p in refused.value.problems}
    assert keys == {
        "format",
        "timezone",
        "delimiter",
        "colour",
        "rate_per",
        "columns",  # Code mapped twice
        "columns.price",
        "columns.effective_from",
        "change_values.closed",
    }


def test_dates_without_time_are_local_midnight_with_the_zones_own_rules() -> None:
    dates = pl.Series(["05/09/2026", "06/09/2026", "07/09/2026", "30/02/2026"])
    instants = local_instants(dates, "%d/%m/%Y", "America/Santiago")
    # Chile moves its clocks from 00:00 to 01:00 on 6 September 2026: that day starts at
    # 01:00 -03, the instant 04:00Z; the day before at 00:00 -04, the day after at 00:00 -03.
    expected = ["2026-09-05T04:00:00", "2026-09-06T04:00:00", "2026-09-07T03:00:00", None]
    got = instants.cast(pl.Datetime("us")).dt.strftime("%Y-%m-%dT%H:%M:%S").to_list()
    assert got == expected


def test_xlsx_rows_are_named_by_their_sheet_row(tmp_path: Path) -> None:
    import xlsxwriter

    book = xlsxwriter.Workbook(str(tmp_path / "deck.xlsx"))
    sheet = book.add_worksheet("Prices")
    # Nothing on rows 1-2: the sheet's cells start on row 3, the header on row 4.
    sheet.write_row(2, 1, ["Rates valid from April"])
    sheet.write_row(3, 1, ["Code", "Rate", "From"])
    sheet.write_row(4, 1, ["4930", "0.01", "2026-04-01"])
    sheet.write_row(6, 1, ["4940", "abc", "2026-04-01"])  # row 7, after an empty row
    book.close()
    profile = tmp_path / "p.toml"
    profile.write_text(
        'sheet = "Prices"\nheader_row = 4\n[columns]\nprefix = "Code"\nrate = "Rate"\n'
        'effective_from = "From"\n'
    )
    folder = _folder(tmp_path, _eu_deck())
    with pytest.raises(ReferenceDataError) as refused:
        convert_deck(
            FolderPlanFiles(folder), "P", tmp_path / "deck.xlsx", read_deck_profile(profile)
        )
    [problem] = refused.value.problems
    assert (problem.line, problem.column, problem.value) == (7, "Rate", "abc")


def test_the_shipped_samples_are_where_the_docs_say(tmp_path: Path) -> None:
    # cdrs-*: the CDR profiles of reconcile, checked in test_carrier_cdrs.py
    names = sorted(p.name for p in EXAMPLES.iterdir() if not p.name.startswith("cdrs-"))
    assert names == [
        "README.md",
        "az-excel-sample.xlsx",
        "az-excel.toml",
        "eu-carrier-csv-sample.csv",
        "eu-carrier-csv.toml",
    ]
    shutil.copy(EXAMPLES / "eu-carrier-csv-sample.csv", tmp_path / "copy.csv")
    assert (tmp_path / "copy.csv").read_bytes()[:2] == b"\xff\xfe"  # UTF-16 with its mark


def test_a_latin1_tab_file_into_a_plan_without_a_deck_yet(tmp_path: Path) -> None:
    folder = write_plans(
        tmp_path / "plans",
        [plan("P", "customer"), plan("N", "customer")],
        {"P": _eu_deck()},
        [association("customer", "cust", "N")],
    )
    data = tmp_path / "tarifs.txt"
    data.write_bytes(
        "Préfixe\tDestination\tPrix\tDate\n"
        "225\tCôte d'Ivoire\t0.1200\t2026-04-01\n"
        "2250\tCôte d'Ivoire Mobile\t0.1500\t2026-04-01\n".encode("latin-1")
    )
    profile = tmp_path / "fr.toml"
    profile.write_text(
        'format = "csv"\ndelimiter = "\\t"\nencoding = "latin-1"\n'
        '[columns]\nprefix = "Préfixe"\ndestination = "Destination"\nrate = "Prix"\n'
        'effective_from = "Date"\n',
        encoding="utf-8",
    )
    conversion = convert_deck(FolderPlanFiles(folder), "N", data, read_deck_profile(profile))
    write_conversion(folder, conversion)
    assert conversion.counts()["new"] == 2
    assert (folder / "decks" / "N.csv").read_text(encoding="utf-8").splitlines() == [
        "prefix,destination,rate,effective_from",
        "225,Côte d'Ivoire,0.1200,2026-04-01T00:00:00Z",
        "2250,Côte d'Ivoire Mobile,0.1500,2026-04-01T00:00:00Z",
    ]
    assert _price(folder, "22507", "2026-04-01T00:00:00Z") == Decimal("0.1500")
    assert _price(folder, "22507", "2026-03-31T23:59:59Z") == "customer:no_prefix"


def test_a_file_in_the_wrong_encoding_is_named_with_its_line(tmp_path: Path) -> None:
    folder = _folder(tmp_path, _eu_deck())
    data, profile = _carrier_csv(tmp_path, ["4930,Berlin,0.01,01/04/2026,new"], change=True)
    data.write_bytes(data.read_bytes() + "4940,Düsseldorf,0.01,01/04/2026,new\n".encode("latin-1"))
    with pytest.raises(ReferenceDataError) as refused:
        convert_deck(FolderPlanFiles(folder), "P", data, read_deck_profile(profile))
    [problem] = refused.value.problems
    assert problem.line == 3
    assert "not utf-8 text" in problem.message


def test_hostile_files_are_refused_with_a_reason_not_a_crash(tmp_path: Path) -> None:
    folder = _folder(tmp_path, _eu_deck())
    data, profile = _carrier_csv(tmp_path, ["4930,Berlin,0.01,01/04/2026,new"])
    read = read_deck_profile(profile)
    data.write_text(data.read_text() + '4940,"' + "x" * 300_000 + '",0.01,01/04/2026,new\n')
    with pytest.raises(ReferenceDataError, match=r"line 3, column name.*longer than 1,024"):
        convert_deck(FolderPlanFiles(folder), "P", data, read)
    # The same over several lines (a quoted line break: read line by line).
    data.write_text(data.read_text().replace('"xxx', '"x\nxx', 1))
    with pytest.raises(ReferenceDataError, match=r"line 3.*(not valid CSV|longer than 1,024)"):
        convert_deck(FolderPlanFiles(folder), "P", data, read)
    fake = tmp_path / "deck.xlsx"
    fake.write_bytes(b"PK\x03\x04 this is no workbook" * 100)
    with pytest.raises(ReferenceDataError, match="not an Excel workbook"):
        convert_deck(FolderPlanFiles(folder), "P", fake, read)
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(ReferenceDataError, match="no header row there"):
        convert_deck(FolderPlanFiles(folder), "P", empty, read)
    nul = tmp_path / "nul.csv"
    nul.write_bytes(data.read_bytes().split(b"\n")[0] + b"\n49\x0030,Berlin,0.01,01/04/2026,new\n")
    with pytest.raises(ReferenceDataError) as refused:
        convert_deck(FolderPlanFiles(folder), "P", nul, read)
    assert refused.value.problems[0].line == 2


def test_the_whole_file_reader_and_the_line_by_line_reader_agree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.reference import carrier_files
    from pipeline.reference.carrier_files import FileLayout, read_carrier_table

    whole_file: list[bool] = []
    plain_csv = carrier_files._plain_csv

    def spy(*args: Any) -> pl.DataFrame | None:
        result = plain_csv(*args)
        whole_file.append(result is not None)
        return result

    monkeypatch.setattr(carrier_files, "_plain_csv", spy)

    lines = [
        "Banner;;;",
        "Code;Name;Price;Note",
        '4930 ;"Berlin; Mitte";0,01;x',
        '"4940";"Hamburg ""Nord""";0,02;',
        ";;;",  # no cell at all: skipped by both
        "4989;München;  0,03 ;y",
        '49151;"";0,04;z',
    ]
    layout = FileLayout(delimiter=";", header_row=2)
    columns = {"prefix": "Code", "destination": "Name", "rate": "Price"}
    plain = tmp_path / "plain.csv"
    plain.write_bytes("\r\n".join(lines).encode() + b"\r\n")
    spaced = tmp_path / "spaced.csv"  # a blank line: read line by line
    spaced.write_bytes("\r\n".join([*lines[:4], "", *lines[4:]]).encode() + b"\r\n")
    fast = read_carrier_table(plain, layout, columns)
    slow = read_carrier_table(spaced, layout, columns)
    assert (
        fast.drop("_row").rows()
        == slow.drop("_row").rows()
        == [
            ("4930", "Berlin; Mitte", "0,01"),
            ("4940", 'Hamburg "Nord"', "0,02"),
            ("4989", "München", "0,03"),
            ("49151", None, "0,04"),
        ]
    )
    assert whole_file == [True, False]
    assert fast["_row"].to_list() == [3, 4, 6, 7]
    assert slow["_row"].to_list() == [3, 4, 7, 8]
