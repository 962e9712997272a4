"""The three tariff-v2 files (origin_groups.csv, time_bands.csv, holidays.csv) and the deck
columns naming them: every problem listed with file, line, column and value (DESIGN.md
section 8)."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pipeline.rating.exceptions import ReferenceDataError
from pipeline.reference.files import FolderPlanFiles, PublishedPlanFiles
from pipeline.reference.loader import load_plans, load_plans_folder
from tests.builders import association, cdr, deck_row, plan, write_plans
from tests.builders import rate as rate_records

_WEEK = (
    "plan_id,band,weekdays,start,end\n"
    "P,peak,mon-fri,08:00,20:00\n"
    "P,offpeak,mon-fri,00:00,08:00\n"
    "P,offpeak,mon-fri,20:00,24:00\n"
    'P,offpeak,"sat,sun",00:00,24:00\n'
)


def _write(
    root: Path,
    rows: list[dict[str, Any]] | None = None,
    *,
    bands: str = "",
    origins: str = "",
    holidays: str = "",
) -> None:
    write_plans(
        root,
        [plan("P", "customer", timezone="Europe/Berlin")],
        {"P": rows or [deck_row("49", "0.01")]},
        [association("customer", "cust", "P")],
    )
    for name, text in (
        ("time_bands.csv", bands),
        ("origin_groups.csv", origins),
        ("holidays.csv", holidays),
    ):
        if text:
            (root / name).write_text(text)


def _problems(root: Path) -> list[str]:
    with pytest.raises(ReferenceDataError) as caught:
        load_plans_folder(root)
    return [str(p) for p in caught.value.problems]


def test_a_folder_without_the_files_has_no_origins_or_bands(tmp_path: Path) -> None:
    _write(tmp_path)
    assert load_plans_folder(tmp_path).origins_and_bands is None


def test_good_files_load_and_change_the_version(tmp_path: Path) -> None:
    _write(tmp_path)
    before = load_plans_folder(tmp_path).version
    _write(
        tmp_path,
        [deck_row("49", "0.02", band="peak", origin="EEA"), deck_row("49", "0.01")],
        bands=_WEEK,
        origins="tenant_id,group,prefix\nt1,EEA,49\nt1,EEA,33\nt1,World,1\n",
        holidays="plan_id,date,band\nP,2026-12-25,offpeak\n",
    )
    reference = load_plans_folder(tmp_path)
    shaped = reference.origins_and_bands
    assert shaped is not None
    assert reference.version != before
    assert {"EEA", "World"} <= set(shaped.group_names.to_pylist())
    assert {"peak", "offpeak"} <= set(shaped.band_names.to_pylist())


@pytest.mark.parametrize("weekdays", ["mon-fri", "Mon - Fri", "mon,tue,wed,thu,fri"])
def test_weekdays_may_be_a_range_or_a_list(tmp_path: Path, weekdays: str) -> None:
    bands = (
        "plan_id,band,weekdays,start,end\n"
        f'P,work,"{weekdays}",00:00,24:00\n'
        'P,weekend,"sat, sun",00:00,24:00\n'
    )
    _write(tmp_path, bands=bands)
    assert load_plans_folder(tmp_path).origins_and_bands is not None


def test_time_band_problems_are_named(tmp_path: Path) -> None:
    bands = (
        "plan_id,band,weekdays,start,end\n"
        "P,peak,mon-fri,08:00,20:00\n"  # line 2
        "P,offpeak,fri-mon,00:00,08:00\n"  # line 3: wraps
        "P,offpeak,mon-fri,19:00,24:00\n"  # line 4: overlaps peak at 19:00
        "P,offpeak,sat,00:00,24:00\n"  # line 5
        "X,peak,mon,00:00,24:00\n"  # line 6: no such plan
        "P,night,sun,22:00,06:00\n"  # line 7: crosses midnight
        "P,late,sun,00:00,24:60\n"  # line 8: not a time
        "P,,sun,00:00,01:00\n"  # line 9: no band
    )
    _write(tmp_path, bands=bands)
    assert _problems(tmp_path) == [
        "time_bands.csv, line 3, column weekdays: 'fri-mon': a range like mon-fri (never "
        "wrapping past sun), a list like sat,sun, or one day",
        "time_bands.csv, line 4, column start: '19:00': band offpeak overlaps another band of "
        "plan P at mon 19:00",
        "time_bands.csv, line 6, column plan_id: 'X': no such plan in plans.csv",
        "time_bands.csv, line 7, column end: '06:00': must be after start (a band never crosses "
        "midnight: split it at 24:00)",
        "time_bands.csv, line 8, column end: '24:60': a local time HH:MM, 00:01-24:00",
        "time_bands.csv, line 9, column band: required, empty",
        "time_bands.csv, line 2, column plan_id: 'P': the bands of plan P leave 5,040 minute(s) "
        "of the week uncovered, from mon 00:00: every minute needs one band",
    ]


def test_a_week_with_a_gap_of_one_minute_is_refused(tmp_path: Path) -> None:
    _write(
        tmp_path, bands=_WEEK.replace("P,peak,mon-fri,08:00,20:00", "P,peak,mon-fri,08:01,20:00")
    )
    [problem] = _problems(tmp_path)
    assert "leave 5 minute(s) of the week uncovered, from mon 08:00" in problem


def test_origin_group_problems_are_named(tmp_path: Path) -> None:
    origins = (
        "tenant_id,group,prefix\n"
        "t1,EEA,33\n"  # line 2
        "t1,EEA,49\n"  # line 3: starts with 4 of World
        "t1,World,4\n"  # line 4
        "t1,EEA,33\n"  # line 5: twice
        "t9,X,1\n"  # line 6: no plan of tenant t9
        "t1,Bad,4a\n"  # line 7
        "t1,Other,33\n"  # line 8: 33 is EEA's
    )
    _write(tmp_path, origins=origins)
    assert _problems(tmp_path) == [
        "origin_groups.csv, line 5, column prefix: '33': appears twice in group EEA",
        "origin_groups.csv, line 6, column tenant_id: 't9': no plan of this tenant",
        "origin_groups.csv, line 7, column prefix: '4a': must be 1 to 15 digits",
        "origin_groups.csv, line 8, column prefix: '33': is also in group EEA (line 2): a caller "
        "may be in one group only",
        "origin_groups.csv, line 3, column prefix: '49': starts with 4 of group World (line 4): "
        "a caller may be in one group only",
    ]


def test_holiday_problems_are_named(tmp_path: Path) -> None:
    holidays = (
        "plan_id,date,band\n"
        "P,2026-12-25,offpeak\n"  # line 2
        "P,2026-12-25,peak\n"  # line 3: twice
        "P,2026-02-30,offpeak\n"  # line 4: no such day
        "P,2026-12-26,holiday\n"  # line 5: not a band of P
        "Z,2026-12-26,peak\n"  # line 6: no such plan
    )
    _write(tmp_path, bands=_WEEK, holidays=holidays)
    assert _problems(tmp_path) == [
        "holidays.csv, line 3, column date: '2026-12-25': a holiday of plan P already (line 2)",
        "holidays.csv, line 4, column date: '2026-02-30': a date YYYY-MM-DD",
        "holidays.csv, line 5, column band: 'holiday': not a band of plan P (time_bands.csv)",
        "holidays.csv, line 6, column plan_id: 'Z': no such plan in plans.csv",
    ]


def test_deck_rows_name_known_groups_and_bands_once(tmp_path: Path) -> None:
    rows = [
        deck_row("49", "0.01", band="peek"),  # line 2: a typo
        deck_row("49", "0.02", origin="EEA", band="peak"),  # line 3
        deck_row("49", "0.03", origin="EEA", band="peak"),  # line 4: same as line 3
        deck_row("49", "0.01", origin="Narnia"),  # line 5
        deck_row("49", "0.04", origin="EEA"),  # line 6: fine, differs in band
        deck_row("49", "0.05", band="peak"),  # line 7: fine, differs in origin
    ]
    _write(tmp_path, rows, bands=_WEEK, origins="tenant_id,group,prefix\nt1,EEA,49\n")
    assert _problems(tmp_path) == [
        "decks/P.csv, line 3, column prefix: '49': same prefix twice with the same "
        "effective_from (and the same origin and band)",
        "decks/P.csv, line 4, column prefix: '49': same prefix twice with the same "
        "effective_from (and the same origin and band)",
        "decks/P.csv, line 2, column band: 'peek': not a band of this plan (time_bands.csv)",
        "decks/P.csv, line 5, column origin: 'Narnia': not an origin group of tenant t1 "
        "(origin_groups.csv)",
    ]


def test_a_band_without_time_bands_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, [deck_row("49", "0.01", band="peak")])
    assert _problems(tmp_path) == [
        "decks/P.csv, line 2, column band: 'peak': not a band of this plan (time_bands.csv)"
    ]


def test_another_tenants_group_is_not_this_tenants(tmp_path: Path) -> None:
    write_plans(
        tmp_path,
        [plan("P", "customer"), plan("Q", "customer", tenant_id="t2")],
        {"P": [deck_row("49", "0.01", origin="EEA")], "Q": [deck_row("49", "0.01")]},
        [association("customer", "cust", "P")],
    )
    (tmp_path / "origin_groups.csv").write_text("tenant_id,group,prefix\nt2,EEA,49\n")
    assert _problems(tmp_path) == [
        "decks/P.csv, line 2, column origin: 'EEA': not an origin group of tenant t1 "
        "(origin_groups.csv)"
    ]


def test_a_publication_carries_the_files_and_loads_the_same_version(tmp_path: Path) -> None:
    _write(
        tmp_path,
        [deck_row("49", "0.02", band="peak", origin="EEA"), deck_row("49", "0.01")],
        bands=_WEEK,
        origins="tenant_id,group,prefix\nt1,EEA,49\n",
        holidays="plan_id,date,band\nP,2026-12-25,offpeak\n",
    )
    files = FolderPlanFiles(tmp_path).all_files()
    assert {"origin_groups.csv", "time_bands.csv", "holidays.csv"} <= set(files)
    assert load_plans(PublishedPlanFiles(files)).version == load_plans_folder(tmp_path).version


def _documented_example(root: Path) -> Path:
    """The example folder of docs/reference-data.md, written out file by file."""
    text = (Path(__file__).parents[3] / "docs" / "reference-data.md").read_text()
    block = text.split("# plans.csv\n", 1)[1].split("```", 1)[0]
    files = re.split(r"^# (\S+?):?(?: [^\n]*)?\n", "# plans.csv\n" + block, flags=re.M)[1:]
    (root / "decks").mkdir(parents=True)
    for name, body in zip(files[::2], files[1::2], strict=True):
        (root / name).write_text(body.strip() + "\n")
    (root / "associations.csv").write_text(
        "scope,account_id,plan_id,effective_from,effective_until\n"
        "customer,cust,DE-RETAIL,2026-01-01T00:00:00Z,\n"
    )
    return root


@pytest.mark.parametrize(
    ("caller", "start", "rate", "amount", "origin", "band"),
    [
        ("33123456789", "2026-03-30T06:30:00Z", "0.008", "0.016", "EEA", None),
        ("12125550100", "2026-03-30T06:30:00Z", "0.02", "0.07", None, "peak"),  # 08:30 CEST
        ("12125550100", "2026-03-30T05:30:00Z", "0.01", "0.02", None, "offpeak"),  # 07:30
        ("12125550100", "2026-12-25T08:30:00Z", "0.01", "0.02", None, "offpeak"),  # Christmas
    ],
)
def test_the_documented_example_rates_as_documented(
    tmp_path: Path,
    caller: str,
    start: str,
    rate: str,
    amount: str,
    origin: str | None,
    band: str | None,
) -> None:
    reference = load_plans_folder(_documented_example(tmp_path))
    record = cdr(
        caller=caller,
        callee="4930123456",
        customer_id="cust",
        start_time=start,
        end_time="2026-12-31T00:00:00Z",
        duration_ms=120_000,
    )
    [row] = rate_records(reference, [record])
    assert row["status"] == "rated"
    assert (row["customer_rate"], row["customer_amount"]) == (Decimal(rate), Decimal(amount))
    assert (row["customer_origin"], row["customer_band"]) == (origin, band)
