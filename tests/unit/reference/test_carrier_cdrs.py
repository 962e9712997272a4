"""A carrier's CDR file read through a CDR profile: layouts, duration units, and refusals."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from pipeline.rating.exceptions import ReferenceDataError
from pipeline.rating.timeparse import to_micros
from pipeline.reference.carrier_cdrs import read_carrier_cdrs, read_cdr_profile
from tests.support.carrier_cdrs import CarrierCall, Layout, write_carrier_file, write_profile

START = datetime(2026, 3, 10, 8, 30, 15, tzinfo=UTC)
CALLS = [
    CarrierCall("+44 20 7946-0001", START, "61.5", Decimal("0.0615"), call_id="a", caller="+491"),
    CarrierCall("0049301234", START.replace(hour=23), "0", Decimal("0"), call_id="b"),
    CarrierCall("4420794600", START.replace(minute=0, second=0), "3600", None, call_id="c"),
]


def read(tmp_path: Path, layout: Layout, calls: list[CarrierCall] = CALLS, **extra: object):  # type: ignore[no-untyped-def]
    suffix = ".xlsx" if layout.excel else ".csv"
    file = write_carrier_file(tmp_path / f"cdrs{suffix}", calls, layout)
    profile = read_cdr_profile(write_profile(tmp_path / "profile.toml", layout, **extra))
    return read_carrier_cdrs(file, profile)


@pytest.mark.parametrize(
    "layout",
    [
        Layout(),
        Layout(delimiter="\t", encoding="utf-16", timezone="America/New_York"),
        Layout(
            delimiter=";",
            decimal_separator=",",
            timezone="Europe/Berlin",
            date_format="%d/%m/%Y %H:%M:%S",
            encoding="latin-1",
        ),
        Layout(excel=True, banner=("Carrier X", ""), timezone="Asia/Kolkata"),
    ],
    ids=["plain", "utf16-tab-newyork", "semicolon-comma-berlin", "excel-banner"],
)
def test_every_layout_reads_the_same_calls(tmp_path: Path, layout: Layout) -> None:
    frame = read(tmp_path, layout)

    assert frame.select("callee", "start_us", "duration_ms", "amount_units").rows() == [
        ("442079460001", to_micros(START), 61_500, 61_500_000),
        ("49301234", to_micros(START.replace(hour=23)), 0, 0),
        ("4420794600", to_micros(START.replace(minute=0, second=0)), 3_600_000, None),
    ]
    assert frame["currency"].to_list() == ["EUR", "EUR", None]
    assert frame["call_id"].to_list() == ["a", "b", "c"]
    header = len(layout.banner) + 1
    assert frame["_row"].to_list() == [header + 1, header + 2, header + 3]


@pytest.mark.parametrize(
    ("unit", "texts", "millis"),
    [
        ("milliseconds", ["61500", "0"], [61_500, 0]),
        ("mm:ss", ["1:01.5", "75:00"], [61_500, 4_500_000]),
        ("hh:mm:ss", ["0:01:01.5", "10:00:00"], [61_500, 36_000_000]),
    ],
)
def test_duration_units(tmp_path: Path, unit: str, texts: list[str], millis: list[int]) -> None:
    calls = [CarrierCall("4420794600", START, text) for text in texts]

    frame = read(tmp_path, Layout(duration_unit=unit), calls)

    assert frame["duration_ms"].to_list() == millis


def test_a_local_time_the_clock_skips_or_repeats_reads_as_the_rest_of_the_pipeline(
    tmp_path: Path,
) -> None:
    # 29 March 2026 02:30 does not exist in Berlin; 25 October 02:30 happens twice.
    file = tmp_path / "cdrs.csv"
    file.write_text(
        "Called Number,Call Start,Duration\n"
        "4420794600,29/03/2026 02:30:00,1\n"
        "4420794600,25/10/2026 02:30:00,1\n"
        "4420794600,25/10/2026 04:30:00,1\n"
    )
    profile = tmp_path / "profile.toml"
    profile.write_text(
        'timezone = "Europe/Berlin"\ndate_format = "%d/%m/%Y %H:%M:%S"\n[columns]\n'
        'callee = "Called Number"\nstart_time = "Call Start"\nduration = "Duration"\n'
    )

    frame = read_carrier_cdrs(file, read_cdr_profile(profile))

    assert frame["start_us"].to_list() == [
        to_micros(datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),  # with the offset before the gap
        to_micros(datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),  # the first 02:30
        to_micros(datetime(2026, 10, 25, 3, 30, tzinfo=UTC)),
    ]


def test_bad_rows_are_named_with_row_header_and_value(tmp_path: Path) -> None:
    file = tmp_path / "cdrs.csv"
    file.write_text(
        "Call ID,CLI,Called Number,Call Start,Duration,Charge,Currency\n"
        "a,,+44 20 7946 0001,2026-03-10 08:30:15,61,0.06,EUR\n"
        "b,,44-abc,2026-03-10 08:30:15,61,0.06,EUR\n"
        "c,,4420794600,10/03/2026 08:30,61,0.06,EUR\n"
        "d,,4420794600,2026-03-10 08:30:15,1:01,0.06,EUR\n"
        "e,,4420794600,2026-03-10 08:30:15,61,-0.06,EUR\n"
        "f,,4420794600,2026-03-10 08:30:15,61,0.06,EURO\n"
        "g,,,2026-03-10 08:30:15,61,0.06,EUR\n"
    )
    profile = write_profile(tmp_path / "profile.toml", Layout())

    with pytest.raises(ReferenceDataError) as refused:
        read_carrier_cdrs(file, read_cdr_profile(profile))

    shown = {(p.line, p.column, p.value, p.message) for p in refused.value.problems}
    assert shown == {
        (3, "Called Number", "44-abc", "not 3 to 15 digits after normalisation"),
        (
            4,
            "Call Start",
            "10/03/2026 08:30",
            "not a time in the format %Y-%m-%d %H:%M:%S (like 2026-03-31 08:30:15)",
        ),
        (5, "Duration", "1:01", "not a number of seconds (not a decimal number)"),
        (6, "Charge", "-0.06", "negative"),
        (7, "Currency", "EURO", "not an ISO 4217 code (like EUR)"),
        (8, "Called Number", None, "empty"),
    }
    assert str(refused.value.problems[0]).startswith(f"{file}, line ")


def test_a_bad_profile_is_refused_naming_each_key(tmp_path: Path) -> None:
    profile = tmp_path / "profile.toml"
    profile.write_text(
        'date_format = "%d/%m/%Y"\nduration_unit = "minutes"\nrate_per = "minute"\n'
        '[columns]\ncallee = "B"\nstart_time = "Start"\namount = "Charge"\n'
    )

    with pytest.raises(ReferenceDataError) as refused:
        read_cdr_profile(profile)

    assert {(p.column, p.value) for p in refused.value.problems} == {
        ("rate_per", None),  # a deck profile's key
        ("date_format", "%d/%m/%Y"),  # no time of day
        ("duration_unit", "minutes"),
        ("columns.duration", None),  # required
        ("currency", None),  # an amount without a currency
    }


def test_the_example_profile_reads_its_sample() -> None:
    examples = Path(__file__).resolve().parents[3] / "examples" / "carrier-profiles"
    profile = read_cdr_profile(examples / "cdrs-acme.toml")

    frame = read_carrier_cdrs(examples / "cdrs-acme-sample.csv", profile)

    assert frame.height == 7
    assert frame.row(0, named=True) == {
        "_row": 4,
        "callee": "442079460101",
        "start_us": to_micros(datetime(2026, 3, 2, 8, 15, 4, tzinfo=UTC)),
        "start_text": "02/03/2026 09:15:04",
        "duration_ms": 62_000,
        "amount_units": 12_400_000,
        "amount_text": "0.012400",
        "currency": "EUR",
        "call_id": "AC-9001",
        "caller": "+4930111222",
    }
