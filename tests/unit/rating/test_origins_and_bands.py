"""Tariff v2 in the engine: caller origins, time bands in the plan's local time, holidays, and
the winner order (DESIGN.md section 8). Each rule by name; amounts worked in the comments.
The property test in test_against_reference.py holds the engine to the reference rater on
random networks too.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pipeline.rating.reference import ReferenceData
from pipeline.reference.loader import load_plans_folder
from tests.builders import association, cdr, deck_row, plan, rate, write_plans

_WEEK = (
    "plan_id,band,weekdays,start,end\n"
    "P,peak,mon-fri,08:00,20:00\n"
    "P,offpeak,mon-fri,00:00,08:00\n"
    "P,offpeak,mon-fri,20:00,24:00\n"
    "P,offpeak,sat-sun,00:00,24:00\n"
)


def _folder(
    root: Path,
    rows: list[dict[str, Any]],
    *,
    zone: str = "Europe/Berlin",
    bands: str = _WEEK,
    origins: str = "",
    holidays: str = "",
) -> ReferenceData:
    write_plans(
        root,
        [plan("P", "customer", timezone=zone)],
        {"P": rows},
        [association("customer", "cust", "P")],
    )
    if bands:
        (root / "time_bands.csv").write_text(bands)
    if origins:
        (root / "origin_groups.csv").write_text("tenant_id,group,prefix\n" + origins)
    if holidays:
        (root / "holidays.csv").write_text("plan_id,date,band\n" + holidays)
    return load_plans_folder(root)


def _call(reference: ReferenceData, start: str, **extra: Any) -> dict[str, Any]:
    record = cdr(callee="4930123456", start_time=start, end_time="2026-12-31T00:00:00Z", **extra)
    [row] = rate(reference, [record])
    return row


@pytest.fixture
def germany(tmp_path: Path) -> ReferenceData:
    """Section 8's worked example: peak and off-peak rows for Germany, Berlin time."""
    return _folder(
        tmp_path,
        [
            deck_row(
                "49",
                "0.0200",
                destination="Germany",
                initial_rate="0.0500",
                band="peak",
                initial_increment="60",
                subsequent_increment="1",
                grace_seconds="3",
                min_cost="0.0100",
            ),
            deck_row("49", "0.0100", destination="Germany", band="offpeak"),
        ],
    )


@pytest.mark.parametrize(
    ("start", "band", "amount"),
    [
        ("2026-03-30T06:30:00Z", "peak", "0.050667"),  # 08:30 CEST, Monday: the worked example
        ("2026-03-27T07:30:00Z", "peak", "0.050667"),  # 08:30 CET, Friday
        ("2026-03-27T06:30:00Z", "offpeak", "0.010333"),  # 07:30 CET: 0.01 * 62/60
        ("2026-03-27T06:59:59Z", "offpeak", "0.010333"),  # 07:59:59 local
        ("2026-03-27T07:00:00Z", "peak", "0.050667"),  # 08:00:00 local
        ("2026-03-28T10:00:00Z", "offpeak", "0.010333"),  # Saturday
    ],
)
def test_the_worked_example_and_its_band_edges(
    germany: ReferenceData, start: str, band: str, amount: str
) -> None:
    row = _call(germany, start, duration_ms=61_200)
    assert row["customer_band"] == band
    assert row["customer_origin"] is None
    assert row["customer_amount"] == Decimal(amount)


def test_the_band_at_the_start_rates_the_whole_call(germany: ReferenceData) -> None:
    # Starts 19:59 CEST on a Monday (peak) and lasts an hour into off-peak: all of it peak.
    row = _call(germany, "2026-03-30T17:59:00Z", duration_ms=3_600_000)
    assert row["customer_band"] == "peak"
    assert row["customer_amount"] == Decimal("1.23")  # 0.05 + 0.02 * 3540/60


@pytest.mark.parametrize(
    ("zone", "start", "band"),
    [
        # Berlin springs forward on 29 March 2026 at 01:00 UTC (02:00 -> 03:00 local), a Sunday;
        # the next day 06:00 UTC is 08:00 CEST: peak, where it was 07:00 CET a week earlier.
        ("Europe/Berlin", "2026-03-30T06:00:00Z", "peak"),
        ("Europe/Berlin", "2026-03-23T06:00:00Z", "offpeak"),
        # Lord Howe falls back by 30 minutes on 5 April 2026 (02:00 +11 -> 01:30 +10:30); a
        # Monday later, 21:15 UTC is 07:45 local (off-peak), a week before it was 08:15 (peak).
        ("Australia/Lord_Howe", "2026-03-29T21:15:00Z", "peak"),
        ("Australia/Lord_Howe", "2026-04-05T21:15:00Z", "offpeak"),
        # New York springs forward on 8 March 2026: 12:30 UTC is 08:30 EDT the next Monday
        # (peak), 07:30 EST the Monday before (off-peak).
        ("America/New_York", "2026-03-09T12:30:00Z", "peak"),
        ("America/New_York", "2026-03-02T12:30:00Z", "offpeak"),
    ],
)
def test_dst_is_the_zone_own(tmp_path: Path, zone: str, start: str, band: str) -> None:
    reference = _folder(
        tmp_path,
        [deck_row("49", "0.06", band="peak"), deck_row("49", "0.03", band="offpeak")],
        zone=zone,
        bands=_WEEK,
    )
    assert _call(reference, start, duration_ms=60_000)["customer_band"] == band


def test_a_holiday_is_its_local_date(tmp_path: Path) -> None:
    # Auckland is UTC+13 in March: 2026-03-09T12:00Z is 10 March 01:00 local (a Tuesday).
    # The holiday of 10 March (local) applies, though the UTC date is the 9th; at 10:30Z on
    # the 10th it is already the 11th in Auckland: a plain weekday again.
    reference = _folder(
        tmp_path,
        [deck_row("49", "0.06", band="peak"), deck_row("49", "0.03", band="offpeak")],
        zone="Pacific/Auckland",
        holidays="P,2026-03-10,offpeak\n",
    )
    assert _call(reference, "2026-03-09T12:00:00Z", duration_ms=60_000)["customer_band"] == (
        "offpeak"
    )
    # 2026-03-10T20:00Z is 11 March 09:00 local: peak.
    assert _call(reference, "2026-03-10T20:00:00Z", duration_ms=60_000)["customer_band"] == "peak"
    # 2026-03-09T20:00Z is 10 March 09:00 local, a holiday: off-peak though it is 09:00.
    assert _call(reference, "2026-03-09T20:00:00Z", duration_ms=60_000)["customer_band"] == (
        "offpeak"
    )


_ORIGINS = "t1,EEA,49\nt1,EEA,33\nt1,NANP,1\n"


@pytest.mark.parametrize(
    ("caller", "origin", "amount"),
    [
        ("+4930111222", "EEA", "0.02"),  # an EEA caller: the EEA row
        ("0033 1 23", "EEA", "0.02"),  # 00 and spaces normalised like the callee
        ("+12125550100", None, "0.1"),  # NANP is a group, but no row names it: the generic row
        ("anonymous", None, "0.1"),  # not a number: in no group, still rated
        ("+86", None, "0.1"),  # too short to normalise: in no group
    ],
)
def test_caller_origin(tmp_path: Path, caller: str, origin: str | None, amount: str) -> None:
    reference = _folder(
        tmp_path,
        [deck_row("49", "0.1"), deck_row("49", "0.02", origin="EEA")],
        bands="",
        origins=_ORIGINS,
    )
    row = _call(reference, "2026-03-10T10:00:00Z", duration_ms=60_000, caller=caller)
    assert row["customer_origin"] == origin
    assert row["customer_amount"] == Decimal(amount)


def test_the_winner_order(tmp_path: Path) -> None:
    """Longest prefix first; then a row with an origin; then one with a band; then the later
    effective_from."""
    rows = [
        deck_row("49", "0.01", origin="EEA", band="peak"),
        deck_row("493", "0.02"),  # longer: wins over everything on 49
        deck_row("494", "0.03", band="peak"),
        deck_row("494", "0.04", origin="EEA"),  # origin beats band on the same prefix
        deck_row("495", "0.05"),
        deck_row("495", "0.06", band="peak"),  # band beats none
        deck_row("496", "0.07", band="peak"),
        deck_row("496", "0.08", band="peak", effective_from="2026-03-05T00:00:00Z"),  # later
    ]
    reference = _folder(tmp_path, rows, origins=_ORIGINS)
    peak = "2026-03-10T10:00:00Z"  # 11:00 CET, a Tuesday

    def rate_of(callee: str) -> Decimal:
        record = cdr(
            callee=callee,
            caller="+4930111",
            start_time=peak,
            end_time="2026-12-31T00:00:00Z",
            duration_ms=60_000,
        )
        [row] = rate(reference, [record])
        return Decimal(row["customer_rate"])

    assert rate_of("4930000") == Decimal("0.02")
    assert rate_of("4940000") == Decimal("0.04")
    assert rate_of("4950000") == Decimal("0.06")
    assert rate_of("4960000") == Decimal("0.08")
    assert rate_of("4900000") == Decimal("0.01")  # only the 49 row: EEA and peak both fit
