"""Hand-worked examples for the reference rater, so that the reference itself can be trusted.

Every expected amount below was worked out by hand from DESIGN.md sections 4 and 8; none is
computed with the code under test.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.reference_rater import (
    LEG_COLUMNS,
    LEGS,
    V2_LEG_COLUMNS,
    ReferenceResult,
    billable_seconds,
    billed_seconds,
    normalise_callee,
    parse_minute,
    parse_timestamp,
    parse_weekdays,
    rate_reference,
)

FROM = "2026-01-01T00:00:00Z"
PLAN_HEADER = ["plan_id", "tenant_id", "name", "scope", "currency", "decimals", "rounding"]
DECK_HEADER = [
    "prefix",
    "destination",
    "rate",
    "connection_fee",
    "initial_increment",
    "subsequent_increment",
    "effective_from",
    "effective_until",
]
ASSOCIATION_HEADER = ["scope", "account_id", "plan_id", "effective_from", "effective_until"]
MEMBERSHIP_HEADER = ["client_id", "reseller_id", "effective_from", "effective_until"]


def _write(path: Path, header: list[str], rows: Sequence[Sequence[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def deck(
    prefix: str,
    rate: str,
    *,
    fee: str = "",
    inc: tuple[str, str] = ("1", "1"),
    frm: str = FROM,
    until: str = "",
    name: str | None = None,
) -> list[str]:
    return [prefix, name or f"dest {prefix}", rate, fee, inc[0], inc[1], frm, until]


def folder(
    root: Path,
    plans: Sequence[Sequence[str]],
    decks: dict[str, list[list[str]]],
    associations: Sequence[Sequence[str]],
    memberships: Sequence[Sequence[str]] = (),
) -> Path:
    _write(root / "plans.csv", PLAN_HEADER, plans)
    for plan_id, rows in decks.items():
        _write(root / "decks" / f"{plan_id}.csv", DECK_HEADER, rows)
    _write(root / "associations.csv", ASSOCIATION_HEADER, associations)
    _write(root / "memberships.csv", MEMBERSHIP_HEADER, memberships)
    return root


def cdr(**fields: Any) -> str:
    record: dict[str, Any] = {
        "cdr_id": "c1",
        "session_id": "s1",
        "tenant_id": "t1",
        "customer_id": "cust",
        "client_id": "gw",
        "caller": "+4930123456",
        "callee": "+447700900123",
        "start_time": "2026-03-10T12:00:00Z",
        "answer_time": "2026-03-10T12:00:02Z",
        "end_time": "2026-03-31T23:59:59Z",  # after every start_time used below
        "duration_ms": 61_000,
        "disposition": "ANSWERED",
        "sip_code": 200,
    }
    for key, value in fields.items():
        if value is _ABSENT:
            record.pop(key, None)
        else:
            record[key] = value
    return json.dumps(record)


_ABSENT = object()


def one_plan(
    tmp_path: Path,
    rows: list[list[str]],
    *,
    decimals: str = "4",
    rounding: str = "half_up",
) -> Path:
    """A customer plan P on account ``cust`` of tenant t1 with the given deck rows."""
    return folder(
        tmp_path / "plans",
        [["P", "t1", "Plan P", "customer", "EUR", decimals, rounding]],
        {"P": rows},
        [["customer", "cust", "P", FROM, ""]],
    )


def only_row(result: ReferenceResult) -> dict[str, object]:
    assert not result.rejected
    assert len(result.rows) == 1
    return next(iter(result.rows.values()))


# --- billing and cost ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration_ms", "initial", "subsequent", "billed"),
    [
        (0, 60, 60, 0),
        (1, 60, 60, 60),
        (60_000, 60, 60, 60),
        (60_001, 60, 60, 120),
        (61_000, 60, 60, 120),
        (31_000, 30, 6, 36),
        (30_000, 30, 6, 30),
        (30_001, 30, 6, 36),
        (36_001, 30, 6, 42),
        (1, 30, 6, 30),
        (999, 1, 1, 1),
        (1000, 1, 1, 1),
        (1001, 1, 1, 2),
        (61_000, 60, 1, 61),
        (59_999, 6, 6, 60),
        (60_001, 6, 6, 66),
    ],
)
def test_billed_seconds(duration_ms: int, initial: int, subsequent: int, billed: int) -> None:
    assert billed_seconds(duration_ms, initial, subsequent) == billed


def test_rate_per_minute_with_60_60_increments(tmp_path: Path) -> None:
    # 61 s at 60/60 -> 120 s; 0.0123 * 120 / 60 = 0.0246
    plans = one_plan(tmp_path, [deck("44", "0.0123", inc=("60", "60"))])
    row = only_row(rate_reference(plans, [cdr(duration_ms=61_000)]))
    assert row["status"] == "rated"
    assert row["unrated_reason"] is None
    assert row["customer_plan_id"] == "P"
    assert row["customer_prefix"] == "44"
    assert row["customer_destination"] == "dest 44"
    assert row["customer_rate"] == Decimal("0.0123")
    assert row["customer_billed_seconds"] == 120
    assert row["customer_amount"] == Decimal("0.0246")
    assert str(row["customer_amount"]) == "0.0246"
    assert row["customer_currency"] == "EUR"


def test_30_6_increments_and_connection_fee(tmp_path: Path) -> None:
    # 31 s at 30/6 -> 36 s; 0.05 + 0.1 * 36 / 60 = 0.05 + 0.06 = 0.11
    plans = one_plan(tmp_path, [deck("44", "0.1", fee="0.05", inc=("30", "6"))])
    row = only_row(rate_reference(plans, [cdr(duration_ms=30_001)]))
    assert row["customer_billed_seconds"] == 36
    assert str(row["customer_amount"]) == "0.1100"


def test_unanswered_call_costs_zero_even_with_a_fee(tmp_path: Path) -> None:
    plans = one_plan(tmp_path, [deck("44", "0.1", fee="0.05", inc=("60", "60"))], decimals="6")
    row = only_row(
        rate_reference(plans, [cdr(duration_ms=0, answer_time=None, disposition="NO_ANSWER")])
    )
    assert row["status"] == "rated"
    assert row["customer_billed_seconds"] == 0
    assert str(row["customer_amount"]) == "0.000000"


@pytest.mark.parametrize(
    ("rate", "seconds", "decimals", "rounding", "expected"),
    [
        # 2.5 / min for 60 s = 2.5 exactly: a tie at 0 decimals
        ("2.5", 60, "0", "half_up", "3"),
        ("2.5", 60, "0", "up", "3"),
        ("2.5", 60, "0", "down", "2"),
        # 0.00003 / min for 1 s = 0.0000005 exactly: a tie at 6 decimals
        ("0.00003", 1, "6", "half_up", "0.000001"),
        ("0.00003", 1, "6", "up", "0.000001"),
        ("0.00003", 1, "6", "down", "0.000000"),
        # 0.0123 / min for 61 s = 0.012505 exactly
        ("0.0123", 61, "4", "half_up", "0.0125"),
        ("0.0123", 61, "4", "up", "0.0126"),
        ("0.0123", 61, "4", "down", "0.0125"),
        # 0.01 / min for 1 s = 0.000166666... (never a tie)
        ("0.01", 1, "6", "half_up", "0.000167"),
        ("0.01", 1, "6", "up", "0.000167"),
        ("0.01", 1, "6", "down", "0.000166"),
        # 0.125 / min for 60 s = 0.125: a tie at 2 decimals
        ("0.125", 60, "2", "half_up", "0.13"),
        ("0.125", 60, "2", "up", "0.13"),
        ("0.125", 60, "2", "down", "0.12"),
        # 0.9 / min for 1 s = 0.015 -> 0 decimals: 0, 1, 0
        ("0.9", 1, "0", "half_up", "0"),
        ("0.9", 1, "0", "up", "1"),
        ("0.9", 1, "0", "down", "0"),
        # a free destination
        ("0", 600, "4", "up", "0.0000"),
    ],
)
def test_rounding_modes(
    tmp_path: Path, rate: str, seconds: int, decimals: str, rounding: str, expected: str
) -> None:
    plans = one_plan(tmp_path, [deck("44", rate)], decimals=decimals, rounding=rounding)
    row = only_row(rate_reference(plans, [cdr(duration_ms=seconds * 1000)]))
    assert row["customer_billed_seconds"] == seconds
    assert str(row["customer_amount"]) == expected


def test_defaults_for_empty_cells(tmp_path: Path) -> None:
    # empty decimals -> 6, empty rounding -> half_up, empty fee -> 0, empty increments -> 1/1.
    # 0.01 / min for 2 s (1001 ms) = 0.000333... -> 0.000333
    rows = [["44", "UK", "0.01", "", "", "", FROM, ""]]
    plans = one_plan(tmp_path, rows, decimals="", rounding="")
    row = only_row(rate_reference(plans, [cdr(duration_ms=1001)]))
    assert row["customer_billed_seconds"] == 2
    assert str(row["customer_amount"]) == "0.000333"


def test_longest_duration_is_exact(tmp_path: Path) -> None:
    # The longest valid call, 7 days = 604,800,000 ms -> 604,800 s; at 0.123456789 / min:
    # 604800 / 60 = 10080 minutes; 10080 * 0.123456789 = 1244.444433120 -> half_up 6 dp
    plans = one_plan(tmp_path, [deck("44", "0.123456789")], decimals="6")
    row = only_row(rate_reference(plans, [cdr(duration_ms=604_800_000)]))
    assert row["customer_billed_seconds"] == 604_800
    assert str(row["customer_amount"]) == "1244.444433"


# --- prefix matching and effective dating ----------------------------------------------------

NESTED = [
    deck("4", "0.5"),
    deck("44", "0.01"),
    deck("447", "0.02"),
    deck("4477", "0.03", until="2026-03-15T00:00:00Z"),
    deck("44770", "0.04"),
]


@pytest.mark.parametrize(
    ("callee", "start", "prefix"),
    [
        ("+447700900123", "2026-03-10T12:00:00Z", "44770"),
        ("+447712345678", "2026-03-10T12:00:00Z", "4477"),
        # 4477 expires at 03-15 00:00 (exclusive): the call falls back to 447
        ("+447712345678", "2026-03-14T23:59:59.999999Z", "4477"),
        ("+447712345678", "2026-03-15T00:00:00Z", "447"),
        ("+447712345678", "2026-03-15T01:00:00+01:00", "447"),
        ("+447712345678", "2026-03-15T00:59:59.999999+01:00", "4477"),
        # fraction digits beyond microseconds are truncated, never rounded up
        ("+447712345678", "2026-03-14T23:59:59.9999999Z", "4477"),
        ("+447612345678", "2026-03-10T12:00:00Z", "447"),
        ("+442071234567", "2026-03-10T12:00:00Z", "44"),
        ("+4930123456", "2026-03-10T12:00:00Z", "4"),
    ],
)
def test_longest_effective_prefix_wins(
    tmp_path: Path, callee: str, start: str, prefix: str
) -> None:
    plans = one_plan(tmp_path, NESTED)
    row = only_row(rate_reference(plans, [cdr(callee=callee, start_time=start)]))
    assert row["customer_prefix"] == prefix


def test_no_prefix_matches(tmp_path: Path) -> None:
    plans = one_plan(tmp_path, NESTED)
    row = only_row(rate_reference(plans, [cdr(callee="+33123456789")]))
    assert row["status"] == "unrated"
    assert row["unrated_reason"] == "customer:no_prefix"
    assert all(row[f"customer_{c}"] is None for c in LEG_COLUMNS)


def test_row_not_yet_effective_is_ignored(tmp_path: Path) -> None:
    plans = one_plan(tmp_path, [deck("44", "0.01", frm="2026-03-20T00:00:00Z")])
    row = only_row(rate_reference(plans, [cdr()]))
    assert row["unrated_reason"] == "customer:no_prefix"


@pytest.mark.parametrize(
    ("start", "rate"),
    [
        ("2026-03-09T23:59:59.999999Z", "0.01"),
        ("2026-03-10T00:00:00Z", "0.02"),  # effective_from is inclusive
        ("2026-03-10T00:00:00.000001Z", "0.02"),
        ("2026-03-20T00:00:00Z", "0.01"),  # the later row ended; the earlier one is still on
    ],
)
def test_same_prefix_twice_later_effective_from_wins(tmp_path: Path, start: str, rate: str) -> None:
    rows = [
        deck("44", "0.01"),
        deck("44", "0.02", frm="2026-03-10T00:00:00Z", until="2026-03-20T00:00:00Z"),
    ]
    plans = one_plan(tmp_path, rows)
    row = only_row(rate_reference(plans, [cdr(start_time=start)]))
    assert row["customer_rate"] == Decimal(rate)


def test_rate_change_at_an_instant(tmp_path: Path) -> None:
    rows = [
        deck("44", "0.01", until="2026-03-10T00:00:00Z"),
        deck("44", "0.03", frm="2026-03-10T00:00:00Z"),
    ]
    plans = one_plan(tmp_path, rows)
    lines = [
        cdr(cdr_id="before", start_time="2026-03-09T23:59:59.999Z"),
        cdr(cdr_id="at", start_time="2026-03-10T00:00:00.000Z"),
        cdr(cdr_id="local", start_time="2026-03-09T19:00:00-05:00"),
    ]
    result = rate_reference(plans, lines)
    assert result.rows["before"]["customer_rate"] == Decimal("0.01")
    assert result.rows["at"]["customer_rate"] == Decimal("0.03")
    assert result.rows["local"]["customer_rate"] == Decimal("0.03")


# --- callee normalisation --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "normalised"),
    [
        ("+447700900123", "447700900123"),
        ("00447700900123", "447700900123"),
        ("447700900123", "447700900123"),
        ("+44 7700 900123", "447700900123"),
        ("0044 7700-900-123", "447700900123"),
        ("44-77-00-900123", "447700900123"),
        ("00 44 7700 900123", "447700900123"),
        ("+0044123", "0044123"),  # one + removed, then the 00 stays
        ("0301234567", "0301234567"),  # a single leading 0 is kept
        ("123", "123"),
        ("123456789012345", "123456789012345"),
    ],
)
def test_callee_normalisation(written: str, normalised: str) -> None:
    assert normalise_callee(written) == normalised


@pytest.mark.parametrize(
    "written",
    [
        "12",
        "+12",
        "0012",
        "1234567890123456",
        "+44ABC7700",
        "tel:+447700900123",
        "++447700900123",
        "(0)447700900123",
        "+44770090012\u0661",
        "44.7700.900123",
        "44\t7700900123",
        "",
        "+",
    ],
)
def test_callee_malformed(written: str) -> None:
    assert normalise_callee(written) is None


def test_normalised_callee_is_matched_and_reported(tmp_path: Path) -> None:
    plans = one_plan(tmp_path, NESTED)
    row = only_row(rate_reference(plans, [cdr(callee="0044 7700-900 123")]))
    assert row["callee"] == "447700900123"
    assert row["customer_prefix"] == "44770"


# --- timestamps ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-10T12:00:00Z", datetime(2026, 3, 10, 12, tzinfo=UTC)),
        ("2026-03-10t12:00:00z", datetime(2026, 3, 10, 12, tzinfo=UTC)),
        ("2026-03-10T14:00:00+02:00", datetime(2026, 3, 10, 12, tzinfo=UTC)),
        ("2026-03-10T06:30:00-05:30", datetime(2026, 3, 10, 12, tzinfo=UTC)),
        ("2026-03-10T12:00:00.5Z", datetime(2026, 3, 10, 12, 0, 0, 500_000, tzinfo=UTC)),
        ("2026-03-10T12:00:00.123456789Z", datetime(2026, 3, 10, 12, 0, 0, 123_456, tzinfo=UTC)),
        ("2026-03-10T12:00:00.9999999Z", datetime(2026, 3, 10, 12, 0, 0, 999_999, tzinfo=UTC)),
        ("2026-03-01T00:30:00+01:00", datetime(2026, 2, 28, 23, 30, tzinfo=UTC)),
        ("2024-02-29T00:00:00Z", datetime(2024, 2, 29, tzinfo=UTC)),
    ],
)
def test_timestamps_accepted(text: str, expected: datetime) -> None:
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-02-30T00:00:00Z",
        "2025-02-29T00:00:00Z",
        "2026-03-32T00:00:00Z",
        "2026-03-10T24:00:00Z",
        "2026-03-10T12:60:00Z",
        "2026-03-10T12:00:60Z",
        "2026-03-10T12:00:00",
        "2026-03-10 12:00:00Z",
        "2026/03/10T12:00:00Z",
        "2026-03-10T12:00:00.Z",
        "2026-03-10T12:00:00+2:00",
        "2026-03-10T12:00:00+0200",
        "2026-03-10T12:00:00+24:00",
        "2026-03-10T12:00Z",
        "2026-3-10T12:00:00Z",
        "1772712000",
        "yesterday",
        "",
    ],
)
def test_timestamps_rejected(text: str) -> None:
    assert parse_timestamp(text) is None


# --- validation ------------------------------------------------------------------------------

REQUIRED = (
    "cdr_id",
    "session_id",
    "tenant_id",
    "customer_id",
    "client_id",
    "caller",
    "callee",
    "start_time",
    "end_time",
)


def _rejected_cases() -> list[tuple[str, str]]:
    cases: list[tuple[str, str]] = [
        ("this is not json", "not_json"),
        ('{"cdr_id": "c1"', "not_json"),
        ('{"cdr_id": "c1",}', "not_json"),
        ("{cdr_id: 'c1'}", "not_json"),
        (cdr(duration_ms=float("nan")), "not_json"),  # json.dumps writes NaN: not JSON
        ("[1, 2]", "not_object"),
        ("null", "not_object"),
        ('"c1"', "not_object"),
        (cdr(duration_ms=_ABSENT), "missing:duration_ms"),
        (cdr(reseller_id=""), "invalid:reseller_id"),
        (cdr(duration_ms=-1), "invalid:duration_ms"),
        (cdr(duration_ms=12.5), "invalid:duration_ms"),
        (cdr(duration_ms=1000.0), "invalid:duration_ms"),
        (cdr(duration_ms="1000"), "invalid:duration_ms"),
        (cdr(duration_ms="abc"), "invalid:duration_ms"),
        (cdr(duration_ms=True), "invalid:duration_ms"),
        (cdr(duration_ms=None), "invalid:duration_ms"),
        (cdr(duration_ms=2**63), "invalid:duration_ms"),  # not in 64 bits
        (cdr(disposition="answered"), "invalid:disposition"),
        (cdr(disposition=""), "invalid:disposition"),
        (cdr(disposition="UNKNOWN"), "invalid:disposition"),
        (cdr(sip_code=99), "invalid:sip_code"),
        (cdr(sip_code=700), "invalid:sip_code"),
        (cdr(sip_code="200"), "invalid:sip_code"),
        (cdr(sip_code=200.0), "invalid:sip_code"),
        (cdr(sip_code=True), "invalid:sip_code"),
        (cdr(start_time="2026-02-30T00:00:00Z"), "invalid:start_time"),
        (cdr(end_time="2026-03-10 12:00:00Z"), "invalid:end_time"),
        (cdr(answer_time="soon"), "invalid:answer_time"),
        (cdr(callee="12"), "invalid:callee"),
        (cdr(callee="+4477009001234567"), "invalid:callee"),
        (cdr(callee="+44 ABC"), "invalid:callee"),
        (cdr(end_time="2026-03-10T11:59:59.999999Z"), "end_before_start"),
        (cdr(end_time="2026-03-10T13:59:59+02:00"), "end_before_start"),
    ]
    for name in REQUIRED:
        cases.append((cdr(**{name: _ABSENT}), f"missing:{name}"))
        cases.append((cdr(**{name: None}), f"invalid:{name}"))
        cases.append((cdr(**{name: ""}), f"invalid:{name}"))
    return cases


@pytest.mark.parametrize(("line", "reason"), _rejected_cases())
def test_rejected_lines(tmp_path: Path, line: str, reason: str) -> None:
    plans = one_plan(tmp_path, NESTED)
    result = rate_reference(plans, [line])
    assert result.rows == {}
    assert result.rejected == {1: reason}


@pytest.mark.parametrize(
    "line",
    [
        cdr(reseller_id=None),
        cdr(reseller_id=_ABSENT),
        cdr(disposition=None, sip_code=None),
        cdr(disposition=_ABSENT, sip_code=_ABSENT, answer_time=_ABSENT),
        cdr(answer_time=None),
        cdr(answer_time="2026-03-10T11:00:00Z"),  # no ordering rule for answer_time
        cdr(sip_code=100),
        cdr(sip_code=699),
        cdr(duration_ms=0),
        cdr(end_time="2026-03-10T12:00:00Z", duration_ms=0),  # end == start
        # end == start, written in another zone; 1,000 ms is within the one-second slack
        cdr(end_time="2026-03-10T14:00:00+02:00", duration_ms=1_000),
        cdr(codec="PCMA", trunk={"id": 7}, tags=["a"], x=None),  # unknown fields are ignored
        *(cdr(disposition=d) for d in ("ANSWERED", "NO_ANSWER", "BUSY", "FAILED", "CANCELLED")),
    ],
)
def test_accepted_lines(tmp_path: Path, line: str) -> None:
    plans = one_plan(tmp_path, NESTED)
    result = rate_reference(plans, [line])
    assert result.rejected == {}
    assert list(result.rows) == ["c1"]


def test_line_numbers_blank_lines_and_duplicates(tmp_path: Path) -> None:
    plans = one_plan(tmp_path, NESTED)
    lines = [
        cdr(cdr_id="a"),
        "",
        "   \t",
        "not json",
        cdr(cdr_id="b"),
        cdr(cdr_id="a", duration_ms=1),
        "",
    ]
    result = rate_reference(plans, lines)
    assert list(result.rows) == ["a", "b"]
    assert result.rejected == {4: "not_json"}
    assert result.duplicates == {6: "a"}
    assert result.rows["a"]["customer_billed_seconds"] == 61  # the first one is kept


# --- issue 11: bounds on a CDR (docs/rating-rules.md section 1) -------------------------------

BOUNDED = ("cdr_id", "session_id", "tenant_id", "customer_id", "client_id", "reseller_id", "caller")


def nested(levels: int) -> list[Any]:
    """Arrays nested ``levels`` deep: nested(1) == [], nested(2) == [[]]."""
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


def padded(total_bytes: int, filler: str) -> str:
    """A valid CDR line of exactly ``total_bytes`` UTF-8 bytes, padded in an unknown field."""
    head, tail = cdr(pad="")[:-2], '"}'
    room = total_bytes - len((head + tail).encode())
    width = len(filler.encode())
    line = head + filler * (room // width) + "x" * (room % width) + tail
    assert len(line.encode()) == total_bytes
    return line


def _bound_rejections() -> list[tuple[str, str]]:
    window = {"start_time": "2026-03-10T12:00:00Z", "end_time": "2026-03-10T12:01:00Z"}
    return [
        # size: bytes, not characters ("é" is 2 bytes; the line has fewer than 65,536 chars)
        (padded(65_537, "x"), "too_large"),
        (padded(65_537, "é"), "too_large"),
        # depth: the top-level object is level 1, so 32 arrays inside it make 33 levels
        (cdr(x=nested(32)), "too_deep"),
        (cdr(x={"a": {"b": nested(30)}}), "too_deep"),
        # far deeper than Python's json recursion limit: rejected, never a RecursionError
        (cdr()[:-1] + ', "x": ' + "[" * 5_000 + "]" * 5_000 + "}", "too_deep"),
        ("[" * 5_000, "too_deep"),  # not JSON either; any reason will do
        # a contract field named twice at the top level, also when spelled with an escape
        ('{"cdr_id": "other", ' + cdr()[1:], "duplicate:cdr_id"),
        ('{"duration_ms": 1, ' + cdr()[1:], "duplicate:duration_ms"),
        ('{"call\\u0065e": "+447700900123", ' + cdr()[1:], "duplicate:callee"),
        ('{"sip_code": null, ' + cdr()[1:], "duplicate:sip_code"),
        # contract text fields must be JSON strings
        (cdr(callee=447700900123), "invalid:callee"),
        (cdr(customer_id=42), "invalid:customer_id"),
        (cdr(caller={"number": "+4930123456"}), "invalid:caller"),
        (cdr(reseller_id=7), "invalid:reseller_id"),
        (cdr(reseller_id=["r"]), "invalid:reseller_id"),
        (cdr(answer_time=1_772_712_000), "invalid:answer_time"),
        (cdr(start_time=1_772_712_000), "invalid:start_time"),
        (cdr(disposition=1), "invalid:disposition"),
        (cdr(disposition=["ANSWERED"]), "invalid:disposition"),
        (cdr(disposition=True), "invalid:disposition"),
        # over 256 UTF-8 bytes
        *((cdr(**{name: "a" * 257}), f"too_long:{name}") for name in BOUNDED),
        (cdr(cdr_id="é" * 128 + "a"), "too_long:cdr_id"),  # 129 characters, 257 bytes
        # duration: 7 days at most, and at most 1 s longer than end - start
        (cdr(duration_ms=604_800_001), "out_of_range:duration_ms"),
        (cdr(**window, duration_ms=61_001), "invalid:duration_ms"),
        # end - start = 59.999999 s; + 1 s = 60,999.999 ms < 61,000
        (
            cdr(start_time="2026-03-10T12:00:00Z", end_time="2026-03-10T12:00:59.999999Z"),
            "invalid:duration_ms",
        ),
        # end before start is its own reason, whatever the duration
        (cdr(end_time="2026-03-10T11:00:00Z", duration_ms=1), "end_before_start"),
        # timestamps within [2000-01-01T00:00:00Z, 2100-01-01T00:00:00Z), judged in UTC
        (cdr(start_time="1999-12-31T23:59:59.999999Z"), "out_of_range:start_time"),
        (cdr(start_time="2000-01-01T00:30:00+01:00"), "out_of_range:start_time"),
        (cdr(start_time="1970-01-01T00:00:00Z"), "out_of_range:start_time"),
        (cdr(end_time="2100-01-01T00:00:00Z"), "out_of_range:end_time"),
        (cdr(end_time="2099-12-31T23:30:00-01:00"), "out_of_range:end_time"),
        (cdr(end_time="9999-12-31T23:59:59Z"), "out_of_range:end_time"),
        (cdr(answer_time="1999-12-31T23:59:59Z"), "out_of_range:answer_time"),
        (cdr(answer_time="2100-01-01T00:00:00Z"), "out_of_range:answer_time"),
    ]


@pytest.mark.parametrize(("line", "reason"), _bound_rejections())
def test_bounds_rejected(tmp_path: Path, line: str, reason: str) -> None:
    plans = one_plan(tmp_path, NESTED)
    result = rate_reference(plans, [line])
    assert result.rows == {}
    assert result.rejected == {1: reason}


def _bound_acceptances() -> list[str]:
    window = {"start_time": "2026-03-10T12:00:00Z", "end_time": "2026-03-10T12:01:00Z"}
    return [
        padded(65_536, "x"),
        padded(65_536, "é"),
        cdr(x=nested(31)),  # 32 levels with the top-level object
        cdr(x={"a": {"b": nested(29)}}),
        # a repeated unknown field, and a repeated contract name inside a nested object
        '{"codec": "PCMA", "codec": "G722", ' + cdr()[1:],
        cdr()[:-1] + ', "trunk": {"cdr_id": 1, "cdr_id": 2}}',
        *(cdr(**{name: "a" * 256}) for name in BOUNDED),
        cdr(cdr_id="é" * 128),  # 256 bytes
        cdr(caller="anonymous"),  # a caller that does not normalise leaves the CDR valid
        cdr(duration_ms=604_800_000),
        cdr(**window, duration_ms=61_000),  # exactly end - start + 1 s
        cdr(
            start_time="2026-03-10T12:00:00Z",
            end_time="2026-03-10T12:00:59.999999Z",
            duration_ms=60_999,
        ),
        cdr(
            start_time="2000-01-01T00:00:00Z",
            answer_time="2000-01-01T00:00:00Z",
            end_time="2000-01-01T01:00:00+01:00",  # == start
            duration_ms=0,
        ),
        cdr(
            start_time="2099-12-31T23:00:00Z",
            answer_time="2100-01-01T00:30:00+01:00",
            end_time="2099-12-31T23:59:59.999999Z",
        ),
    ]


@pytest.mark.parametrize("line", _bound_acceptances())
def test_bounds_accepted(tmp_path: Path, line: str) -> None:
    plans = one_plan(tmp_path, NESTED)
    result = rate_reference(plans, [line])
    assert result.rejected == {}
    assert len(result.rows) == 1


# --- legs, plans, resellers -------------------------------------------------------------------


def network(tmp_path: Path) -> Path:
    """Tenant t1: customer plan CP, client plan GP, reseller plan RP; tenant t2: plan X."""
    switch = "2026-03-15T00:00:00Z"
    return folder(
        tmp_path / "plans",
        [
            ["CP", "t1", "Customers", "customer", "EUR", "4", "half_up"],
            ["GP", "t1", "Gateways", "client", "USD", "6", "down"],
            ["RP", "t1", "Reseller A", "reseller", "EUR", "2", "up"],
            ["RP2", "t1", "Reseller B", "reseller", "EUR", "6", ""],
            ["X", "t2", "Other tenant", "customer", "EUR", "4", ""],
        ],
        {
            "CP": [deck("44", "0.06"), deck("33", "0.06")],
            "GP": [deck("44", "0.03"), deck("49", "0.03")],
            "RP": [deck("44", "0.006", inc=("60", "60")), deck("33", "0.006")],
            "RP2": [deck("4", "0.001")],
            "X": [deck("44", "1")],
        },
        [
            ["customer", "cust", "CP", FROM, ""],
            ["customer", "gap", "CP", FROM, "2026-03-05T00:00:00Z"],
            ["customer", "gap", "CP", "2026-03-20T00:00:00Z", ""],
            ["customer", "shared", "X", FROM, ""],  # another tenant's plan never applies to t1
            ["client", "gw", "GP", FROM, ""],
            ["reseller", "resA", "RP", FROM, ""],
            ["reseller", "resB", "RP2", switch, ""],
        ],
        [
            ["gw", "resA", FROM, switch],
            ["gw", "resB", switch, ""],
            ["gw-direct-later", "resA", FROM, switch],
        ],
    )


def test_three_legs_rated(tmp_path: Path) -> None:
    # 90 s: customer 1/1 -> 90 s * 0.06 / 60 = 0.09; client 0.045 -> 6 dp;
    # reseller 60/60 -> 120 s * 0.006 / 60 = 0.012 -> up at 2 dp = 0.02
    result = rate_reference(network(tmp_path), [cdr(duration_ms=90_000)])
    row = only_row(result)
    assert row["status"] == "rated"
    assert row["reseller_id"] == "resA"
    assert (row["customer_amount"], row["customer_currency"]) == (Decimal("0.0900"), "EUR")
    assert str(row["customer_amount"]) == "0.0900"
    assert str(row["client_amount"]) == "0.045000"
    assert row["client_currency"] == "USD"
    assert row["reseller_billed_seconds"] == 120
    assert str(row["reseller_amount"]) == "0.02"
    assert row["reseller_plan_id"] == "RP"


def test_membership_changes_at_an_instant(tmp_path: Path) -> None:
    lines = [
        cdr(cdr_id="before", start_time="2026-03-14T23:59:59.999999Z"),
        cdr(cdr_id="at", start_time="2026-03-15T00:00:00Z"),
    ]
    result = rate_reference(network(tmp_path), lines)
    assert result.rows["before"]["reseller_id"] == "resA"
    assert result.rows["before"]["reseller_plan_id"] == "RP"
    assert result.rows["at"]["reseller_id"] == "resB"
    assert result.rows["at"]["reseller_plan_id"] == "RP2"
    assert result.rows["at"]["reseller_prefix"] == "4"


def test_explicit_reseller_overrides_membership(tmp_path: Path) -> None:
    row = only_row(rate_reference(network(tmp_path), [cdr(reseller_id="resB")]))
    # resB's association starts at 03-15: before that it has no plan -> leg not applicable
    assert row["reseller_id"] == "resB"
    assert row["status"] == "rated"
    assert all(row[f"reseller_{c}"] is None for c in LEG_COLUMNS)


def test_reseller_without_plan_is_not_a_failure(tmp_path: Path) -> None:
    row = only_row(rate_reference(network(tmp_path), [cdr(reseller_id="nobody")]))
    assert row["reseller_id"] == "nobody"
    assert row["status"] == "rated"
    assert row["reseller_amount"] is None


def test_direct_client_has_no_reseller_leg(tmp_path: Path) -> None:
    lines = [
        cdr(cdr_id="never", client_id="gw-unknown"),
        cdr(cdr_id="left", client_id="gw-direct-later", start_time="2026-03-16T00:00:00Z"),
    ]
    result = rate_reference(network(tmp_path), lines)
    for row in result.rows.values():
        assert row["reseller_id"] is None
        assert row["status"] == "rated"
        assert all(row[f"reseller_{c}"] is None for c in LEG_COLUMNS)
        # no client plan for these gateways either: the client leg does not apply
        assert all(row[f"client_{c}"] is None for c in LEG_COLUMNS)
        assert row["customer_amount"] is not None


def test_customer_without_plan(tmp_path: Path) -> None:
    lines = [
        cdr(cdr_id="unknown", customer_id="nobody"),
        cdr(cdr_id="gap", customer_id="gap", start_time="2026-03-10T00:00:00Z"),
        cdr(cdr_id="after", customer_id="gap", start_time="2026-03-20T00:00:00Z"),
        cdr(cdr_id="other-tenant", customer_id="shared"),
    ]
    result = rate_reference(network(tmp_path), lines)
    for cdr_id in ("unknown", "gap", "other-tenant"):
        row = result.rows[cdr_id]
        assert row["status"] == "unrated"
        assert row["unrated_reason"] == "customer:no_plan"
        assert all(row[f"customer_{c}"] is None for c in LEG_COLUMNS)
        # the legs that could rate keep their values
        assert str(row["client_amount"]) == "0.030500"
        assert row["reseller_plan_id"] == "RP"
    assert result.rows["after"]["status"] == "rated"


def test_other_tenant_plan_applies_to_its_own_tenant(tmp_path: Path) -> None:
    row = only_row(rate_reference(network(tmp_path), [cdr(tenant_id="t2", customer_id="shared")]))
    assert row["customer_plan_id"] == "X"
    assert row["customer_amount"] == Decimal("1.0167")  # 61 s * 1 / 60 = 1.01666...
    # the client and reseller plans belong to t1: not applicable to a t2 call
    assert row["client_plan_id"] is None
    assert row["reseller_id"] == "resA"
    assert row["reseller_plan_id"] is None
    assert row["status"] == "rated"


@pytest.mark.parametrize(
    ("callee", "reason"),
    [
        ("+33123456789", "client:no_prefix"),
        ("+4930123456", "customer:no_prefix;reseller:no_prefix"),
        ("+1212555000", "customer:no_prefix;client:no_prefix;reseller:no_prefix"),
    ],
)
def test_failures_in_leg_order(tmp_path: Path, callee: str, reason: str) -> None:
    row = only_row(rate_reference(network(tmp_path), [cdr(callee=callee)]))
    assert row["status"] == "unrated"
    assert row["unrated_reason"] == reason
    failed = {part.split(":")[0] for part in reason.split(";")}
    for leg in LEGS:
        values = [row[f"{leg}_{c}"] for c in LEG_COLUMNS]
        if leg in failed:
            assert values == [None] * len(LEG_COLUMNS)
        else:
            assert None not in values


def test_no_plan_and_no_prefix_together(tmp_path: Path) -> None:
    line = cdr(customer_id="nobody", callee="+4930123456")
    row = only_row(rate_reference(network(tmp_path), [line]))
    assert row["unrated_reason"] == "customer:no_plan;reseller:no_prefix"
    assert row["client_prefix"] == "49"


# --- tariff model v2 (DESIGN.md section 8) ---------------------------------------------------
#
# Every expected amount below is worked by hand in its comment; the local times of every instant
# were read off the zone's rules (Europe/Berlin: CET +01:00, CEST +02:00 from 2026-03-29 01:00Z
# to 2026-10-25 01:00Z; Australia/Lord_Howe: +10:30, +11:00 from 2026-10-03 15:30Z, back at
# 2026-04-04 15:00Z; Pacific/Auckland: NZDT +13:00 over the 2025/26 summer).

V2_FROM = "2025-01-01T00:00:00Z"
V2_PLAN_HEADER = [*PLAN_HEADER, "timezone", "duration_rounding"]
V2_DECK_HEADER = [
    *DECK_HEADER,
    "initial_rate",
    "grace_seconds",
    "min_cost",
    "max_cost",
    "origin",
    "band",
]
# peak mon-fri 08:00-20:00, offpeak the rest of the week (the worked example's bands)
PEAK_OFFPEAK = [
    ("peak", "mon-fri", "08:00", "20:00"),
    ("offpeak", "mon-fri", "00:00", "08:00"),
    ("offpeak", "mon-fri", "20:00", "24:00"),
    ("offpeak", "sat,sun", "00:00", "24:00"),
]
# tenant t1: EEA (Germany, France) and UK; tenant t2 has its own group on 1
GROUPS = [("t1", "EEA", "49"), ("t1", "EEA", "33"), ("t1", "UK", "44"), ("t2", "NANP", "1")]
CALLER_EEA = "+4930123456"
CALLER_UK = "+442071234567"
CALLER_NO_GROUP = "+61212345678"  # normalises, but no group of t1 starts with 61
TUESDAY_PEAK = "2026-03-10T12:00:00Z"  # UTC plan: Tuesday 12:00
TUESDAY_OFFPEAK = "2026-03-10T22:00:00Z"  # UTC plan: Tuesday 22:00


def v2row(
    prefix: str,
    rate: str,
    *,
    name: str | None = None,
    fee: str = "",
    inc: tuple[str, str] = ("1", "1"),
    frm: str = V2_FROM,
    until: str = "",
    initial_rate: str = "",
    grace: str = "",
    min_cost: str = "",
    max_cost: str = "",
    origin: str = "",
    band: str = "",
) -> list[str]:
    return [
        *deck(prefix, rate, fee=fee, inc=inc, frm=frm, until=until, name=name),
        initial_rate,
        grace,
        min_cost,
        max_cost,
        origin,
        band,
    ]


def v2_plan(
    tmp_path: Path,
    rows: list[list[str]],
    *,
    timezone: str = "",
    duration_rounding: str = "",
    decimals: str = "6",
    rounding: str = "half_up",
    bands: Sequence[tuple[str, str, str, str]] = (),
    holidays: Sequence[tuple[str, str]] = (),
    groups: Sequence[tuple[str, str, str]] = (),
    other_holidays: Sequence[tuple[str, str, str]] = (),
) -> Path:
    """Customer plan P of tenant t1 on account ``cust``, with the v2 columns and files."""
    root = tmp_path / "plans"
    plan = ["P", "t1", "Plan P", "customer", "EUR", decimals, rounding, timezone, duration_rounding]
    _write(root / "plans.csv", V2_PLAN_HEADER, [plan])
    _write(root / "decks" / "P.csv", V2_DECK_HEADER, rows)
    _write(root / "associations.csv", ASSOCIATION_HEADER, [["customer", "cust", "P", V2_FROM, ""]])
    _write(root / "memberships.csv", MEMBERSHIP_HEADER, [])
    if groups:
        _write(root / "origin_groups.csv", ["tenant_id", "group", "prefix"], groups)
    if bands:
        band_rows = [["P", *band] for band in bands]
        _write(root / "time_bands.csv", ["plan_id", "band", "weekdays", "start", "end"], band_rows)
    if holidays or other_holidays:
        holiday_rows = [["P", *h] for h in holidays] + [list(h) for h in other_holidays]
        _write(root / "holidays.csv", ["plan_id", "date", "band"], holiday_rows)
    return root


def call(start: str, duration_ms: int = 61_000, **fields: Any) -> str:
    """A CDR starting at ``start``; its end leaves room for any duration up to 7 days."""
    begin = parse_timestamp(start)
    assert begin is not None
    end = (begin + timedelta(days=8)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return cdr(start_time=start, answer_time=start, end_time=end, duration_ms=duration_ms, **fields)


def rate_one(plans: Path, line: str) -> dict[str, object]:
    return only_row(rate_reference(plans, [line]))


# --- the worked example of section 8 ---------------------------------------------------------

WORKED_ROW = v2row(
    "49",
    "0.0200",
    name="Germany",
    initial_rate="0.0500",
    band="peak",
    inc=("60", "1"),
    grace="3",
    min_cost="0.0100",
)


@pytest.mark.parametrize(
    "start",
    [
        "2026-03-30T06:30:00Z",  # 08:30 CEST, Monday: peak
        "2026-03-27T07:30:00Z",  # 08:30 CET, Friday (before the DST change): peak
    ],
)
def test_worked_example_peak(tmp_path: Path, start: str) -> None:
    plans = v2_plan(tmp_path, [WORKED_ROW], timezone="Europe/Berlin", bands=PEAK_OFFPEAK)
    row = rate_one(plans, call(start, 61_200, callee="+4930123456"))
    # b = ceil(61.2) = 62 > grace 3; 62 > I = 60, so billed = 60 + ceil(2 / 1) * 1 = 62;
    # cost = 0.05 * 60 / 60 + 0.02 * (62 - 60) / 60 = 0.05 + 0.000666... = 0.050666...
    # > min_cost 0.01; 6 decimals half_up -> 0.050667
    assert row["status"] == "rated"
    assert row["customer_prefix"] == "49"
    assert row["customer_destination"] == "Germany"
    assert row["customer_rate"] == Decimal("0.0200")  # L_rate is the row's rate, not initial_rate
    assert row["customer_billed_seconds"] == 62
    assert row["customer_amount"] == Decimal("0.050667")
    assert str(row["customer_amount"]) == "0.050667"
    assert row["customer_band"] == "peak"
    assert row["customer_origin"] is None


def test_worked_example_offpeak_has_no_row(tmp_path: Path) -> None:
    # 2026-03-27T06:30Z = 07:30 CET Friday: offpeak; the deck has only the peak row
    plans = v2_plan(tmp_path, [WORKED_ROW], timezone="Europe/Berlin", bands=PEAK_OFFPEAK)
    row = rate_one(plans, call("2026-03-27T06:30:00Z", 61_200, callee="+4930123456"))
    assert row["status"] == "unrated"
    assert row["unrated_reason"] == "customer:no_prefix"
    assert all(row[f"customer_{c}"] is None for c in (*LEG_COLUMNS, *V2_LEG_COLUMNS))


def test_worked_example_offpeak_row(tmp_path: Path) -> None:
    offpeak = v2row("49", "0.0100", name="Germany", band="offpeak")
    plans = v2_plan(tmp_path, [WORKED_ROW, offpeak], timezone="Europe/Berlin", bands=PEAK_OFFPEAK)
    row = rate_one(plans, call("2026-03-27T06:30:00Z", 61_200, callee="+4930123456"))
    # offpeak row: I = S = 1, initial_rate = rate; b = 62 -> billed 62;
    # 0.01 * 62 / 60 = 0.0103333... -> 0.010333
    assert row["customer_band"] == "offpeak"
    assert row["customer_billed_seconds"] == 62
    assert str(row["customer_amount"]) == "0.010333"


@pytest.mark.parametrize(
    ("start", "band"),
    [
        ("2026-03-30T05:59:59Z", "offpeak"),  # 07:59:59 CEST Monday
        ("2026-03-30T06:00:00Z", "peak"),  # 08:00:00 CEST: start is inclusive
        ("2026-03-30T17:59:59Z", "peak"),  # 19:59:59 CEST
        ("2026-03-30T18:00:00Z", "offpeak"),  # 20:00:00 CEST: end is exclusive
        ("2026-03-30T21:59:59Z", "offpeak"),  # 23:59:59 CEST: the 20:00-24:00 band
        ("2026-03-30T22:00:00Z", "offpeak"),  # 00:00 CEST Tuesday
        ("2026-03-28T10:00:00Z", "offpeak"),  # 11:00 CET Saturday (sat,sun)
        ("2026-03-27T18:59:59Z", "peak"),  # 19:59:59 CET Friday
        ("2026-03-27T19:00:00Z", "offpeak"),  # 20:00 CET Friday
    ],
)
def test_band_edges_on_the_local_wall_clock(tmp_path: Path, start: str, band: str) -> None:
    rows = [v2row("49", "0.6", band="peak"), v2row("49", "0.3", band="offpeak")]
    plans = v2_plan(tmp_path, rows, timezone="Europe/Berlin", bands=PEAK_OFFPEAK)
    row = rate_one(plans, call(start, callee="+4930123456"))
    assert row["customer_band"] == band


def test_weekday_is_the_local_one(tmp_path: Path) -> None:
    # 2026-03-29T20:00Z is Sunday in UTC but Monday 09:00 NZDT in Auckland: peak
    rows = [v2row("49", "0.6", band="peak"), v2row("49", "0.3", band="offpeak")]
    plans = v2_plan(tmp_path, rows, timezone="Pacific/Auckland", bands=PEAK_OFFPEAK)
    row = rate_one(plans, call("2026-03-29T20:00:00Z", callee="+4930123456"))
    assert row["customer_band"] == "peak"


# --- DST gap and overlap ---------------------------------------------------------------------

# Europe/Berlin: night 00:00-03:00, day 03:00-24:00, every day
NIGHT_DAY = [("night", "mon-sun", "00:00", "03:00"), ("day", "mon-sun", "03:00", "24:00")]
# Australia/Lord_Howe shifts by 30 minutes: early 00:00-01:30, mid 01:30-02:30, late 02:30-24:00
LORD_HOWE_BANDS = [
    ("early", "mon-sun", "00:00", "01:30"),
    ("mid", "mon-sun", "01:30", "02:30"),
    ("late", "mon-sun", "02:30", "24:00"),
]


@pytest.mark.parametrize(
    ("start", "band"),
    [
        # gap, Sunday 2026-03-29: 02:00 CET jumps to 03:00 CEST at 01:00Z
        ("2026-03-29T00:59:59Z", "night"),  # 01:59:59 CET
        ("2026-03-29T01:00:00Z", "day"),  # 03:00:00 CEST (a fixed +01:00 would say 02:00)
        # overlap, Sunday 2026-10-25: 03:00 CEST goes back to 02:00 CET at 01:00Z
        ("2026-10-25T00:30:00Z", "night"),  # 02:30 CEST, the first 02:30
        ("2026-10-25T00:59:59Z", "night"),  # 02:59:59 CEST
        ("2026-10-25T01:00:00Z", "night"),  # 02:00 CET (a fixed +02:00 would say 03:00)
        ("2026-10-25T01:30:00Z", "night"),  # 02:30 CET, the second 02:30
        ("2026-10-25T01:59:59Z", "night"),  # 02:59:59 CET
        ("2026-10-25T02:00:00Z", "day"),  # 03:00 CET
    ],
)
def test_dst_gap_and_overlap_berlin(tmp_path: Path, start: str, band: str) -> None:
    rows = [v2row("49", "0.6", band="night"), v2row("49", "1.2", band="day")]
    plans = v2_plan(tmp_path, rows, timezone="Europe/Berlin", bands=NIGHT_DAY)
    row = rate_one(plans, call(start, 60_000, callee="+4930123456"))
    assert row["customer_band"] == band
    # 60 s: night 0.6 * 60 / 60 = 0.6; day 1.2 * 60 / 60 = 1.2
    assert row["customer_amount"] == {"night": Decimal("0.6"), "day": Decimal("1.2")}[band]


@pytest.mark.parametrize(
    ("start", "band"),
    [
        # gap, Sunday 2026-10-04: 02:00 +10:30 jumps to 02:30 +11:00 at 2026-10-03T15:30Z
        ("2026-10-03T14:59:59Z", "early"),  # 01:29:59 +10:30
        ("2026-10-03T15:00:00Z", "mid"),  # 01:30:00 +10:30
        ("2026-10-03T15:29:59Z", "mid"),  # 01:59:59 +10:30
        ("2026-10-03T15:30:00Z", "late"),  # 02:30:00 +11:00 (a fixed +10:30 would say 02:00)
        # overlap, Sunday 2026-04-05: 02:00 +11:00 goes back to 01:30 +10:30 at 15:00Z
        ("2026-04-04T14:29:59Z", "early"),  # 01:29:59 +11:00
        ("2026-04-04T14:30:00Z", "mid"),  # 01:30:00 +11:00, the first 01:30
        ("2026-04-04T15:00:00Z", "mid"),  # 01:30:00 +10:30, the second 01:30
        ("2026-04-04T15:30:00Z", "mid"),  # 02:00:00 +10:30 (a fixed +11:00 would say 02:30)
        ("2026-04-04T15:59:59Z", "mid"),  # 02:29:59 +10:30
        ("2026-04-04T16:00:00Z", "late"),  # 02:30:00 +10:30
    ],
)
def test_dst_gap_and_overlap_lord_howe(tmp_path: Path, start: str, band: str) -> None:
    rows = [
        v2row("61", "0.06", band="early"),
        v2row("61", "0.12", band="mid"),
        v2row("61", "0.18", band="late"),
    ]
    plans = v2_plan(tmp_path, rows, timezone="Australia/Lord_Howe", bands=LORD_HOWE_BANDS)
    row = rate_one(plans, call(start, 60_000, callee="+61212345678"))
    assert row["customer_band"] == band
    # 60 s at 0.06 / 0.12 / 0.18 per minute
    amounts = {"early": Decimal("0.06"), "mid": Decimal("0.12"), "late": Decimal("0.18")}
    assert row["customer_amount"] == amounts[band]


# --- holidays --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "band"),
    [
        # UTC date 2025-12-31, local Thursday 2026-01-01 11:00 NZDT: the holiday (offpeak),
        # where the week's bands would say peak
        ("2025-12-31T22:00:00Z", "offpeak"),
        # UTC date 2026-01-01 (the holiday's date), local Friday 2026-01-02 11:00: peak
        ("2026-01-01T22:00:00Z", "peak"),
        # local Friday 2026-01-02 23:59:59 and Saturday 2026-01-03 00:00:00: a peak holiday on
        # a Saturday starts at local midnight and ends at the next local midnight
        ("2026-01-02T10:59:59Z", "offpeak"),
        ("2026-01-02T11:00:00Z", "peak"),
        ("2026-01-03T10:59:59Z", "peak"),  # Saturday 23:59:59
        ("2026-01-03T11:00:00Z", "offpeak"),  # Sunday 00:00
        # local Monday 2026-01-05 11:00: another plan's holiday does not apply to P
        ("2026-01-04T22:00:00Z", "peak"),
    ],
)
def test_holiday_on_its_local_date(tmp_path: Path, start: str, band: str) -> None:
    rows = [v2row("49", "0.6", band="peak"), v2row("49", "0.3", band="offpeak")]
    plans = v2_plan(
        tmp_path,
        rows,
        timezone="Pacific/Auckland",
        bands=PEAK_OFFPEAK,
        holidays=[("2026-01-01", "offpeak"), ("2026-01-03", "peak")],
        other_holidays=[("Q", "2026-01-05", "offpeak")],
    )
    row = rate_one(plans, call(start, 60_000, callee="+4930123456"))
    assert row["customer_band"] == band


# --- origin groups and the tie-breaks --------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "caller", "start", "winner"),
    [
        pytest.param(
            [v2row("4", "0.9", origin="EEA", band="peak"), v2row("44", "0.1")],
            CALLER_EEA,
            TUESDAY_PEAK,
            ("44", None, None, "0.1"),
            id="longest-prefix-over-origin-and-band",
        ),
        pytest.param(
            [v2row("44", "0.1"), v2row("44", "0.2", origin="EEA")],
            CALLER_EEA,
            TUESDAY_PEAK,
            ("44", "EEA", None, "0.2"),
            id="origin-over-none",
        ),
        pytest.param(
            [v2row("44", "0.1"), v2row("44", "0.2", origin="EEA")],
            CALLER_UK,
            TUESDAY_PEAK,
            ("44", None, None, "0.1"),
            id="other-group-falls-back-to-no-origin",
        ),
        pytest.param(
            [v2row("44", "0.3", band="peak"), v2row("44", "0.2", origin="EEA")],
            CALLER_EEA,
            TUESDAY_PEAK,
            ("44", "EEA", None, "0.2"),
            id="origin-over-band",
        ),
        pytest.param(
            [v2row("44", "0.1"), v2row("44", "0.3", band="peak")],
            CALLER_NO_GROUP,
            TUESDAY_PEAK,
            ("44", None, "peak", "0.3"),
            id="band-over-none",
        ),
        pytest.param(
            [v2row("44", "0.1"), v2row("44", "0.3", band="peak")],
            CALLER_NO_GROUP,
            TUESDAY_OFFPEAK,
            ("44", None, None, "0.1"),
            id="other-band-falls-back-to-no-band",
        ),
        pytest.param(
            [v2row("44", "0.2", origin="EEA"), v2row("44", "0.4", origin="EEA", band="peak")],
            CALLER_EEA,
            TUESDAY_PEAK,
            ("44", "EEA", "peak", "0.4"),
            id="origin-and-band-over-origin",
        ),
        pytest.param(
            [v2row("44", "0.1"), v2row("44", "0.15", frm="2026-03-01T00:00:00Z")],
            CALLER_EEA,
            TUESDAY_PEAK,
            ("44", None, None, "0.15"),
            id="later-effective-from",
        ),
        pytest.param(
            [
                v2row("44", "0.2", origin="EEA", band="peak"),
                v2row("44", "0.25", origin="EEA", band="peak", frm="2026-03-01T00:00:00Z"),
                v2row("44", "0.35", origin="EEA", band="peak", frm="2026-03-11T00:00:00Z"),
            ],
            CALLER_EEA,
            TUESDAY_PEAK,  # 2026-03-10: the 03-11 row is not effective yet
            ("44", "EEA", "peak", "0.25"),
            id="later-effective-from-among-origin-and-band",
        ),
        pytest.param(
            [v2row("44", "0.2", origin="EEA"), v2row("44", "0.1", frm="2026-03-05T00:00:00Z")],
            CALLER_EEA,
            TUESDAY_PEAK,
            ("44", "EEA", None, "0.2"),
            id="origin-over-later-effective-from",
        ),
        pytest.param(
            [v2row("44", "0.3", band="peak"), v2row("44", "0.1", frm="2026-03-05T00:00:00Z")],
            CALLER_EEA,
            TUESDAY_PEAK,
            ("44", None, "peak", "0.3"),
            id="band-over-later-effective-from",
        ),
        pytest.param(
            [
                v2row("44", "0.2", origin="EEA", until="2026-03-10T00:00:00Z"),
                v2row("44", "0.1"),
            ],
            CALLER_EEA,
            TUESDAY_PEAK,
            ("44", None, None, "0.1"),
            id="expired-origin-row-falls-back",
        ),
        pytest.param(
            [v2row("4", "0.5"), v2row("44", "0.2", origin="EEA")],
            CALLER_NO_GROUP,
            TUESDAY_PEAK,
            ("4", None, None, "0.5"),
            id="no-group-skips-a-longer-origin-row",
        ),
        pytest.param(
            [v2row("44", "0.1"), v2row("44", "0.2", origin="EEA")],
            "0049 30-123456",  # normalises to 4930123456, in EEA
            TUESDAY_PEAK,
            ("44", "EEA", None, "0.2"),
            id="caller-normalised-like-the-callee",
        ),
        pytest.param(
            [v2row("44", "0.1"), v2row("44", "0.2", origin="NANP")],
            "+12125550123",  # in t2's NANP group, but the call is t1's
            TUESDAY_PEAK,
            ("44", None, None, "0.1"),
            id="another-tenants-group-never-applies",
        ),
    ],
)
def test_candidates_and_tie_breaks(
    tmp_path: Path,
    rows: list[list[str]],
    caller: str,
    start: str,
    winner: tuple[str, str | None, str | None, str],
) -> None:
    plans = v2_plan(tmp_path, rows, bands=PEAK_OFFPEAK, groups=GROUPS)
    row = rate_one(plans, call(start, callee="+447700900123", caller=caller))
    got = (row["customer_prefix"], row["customer_origin"], row["customer_band"])
    assert (*got, row["customer_rate"]) == (*winner[:3], Decimal(winner[3]))


@pytest.mark.parametrize(
    "caller",
    [
        "anonymous",
        "12",  # too short
        "+4930123456789012",  # 16 digits: too long
        "+49 30 ABC",
        "tel:+4930123456",
        CALLER_NO_GROUP,  # normalises, but no group
        CALLER_UK,  # in t1's group UK, which has no row
    ],
)
def test_caller_outside_the_origin_matches_only_rows_without_origin(
    tmp_path: Path, caller: str
) -> None:
    rows = [v2row("44", "0.1"), v2row("44", "0.2", origin="EEA"), v2row("447", "0.3", origin="EEA")]
    plans = v2_plan(tmp_path, rows, groups=GROUPS)
    result = rate_reference(plans, [call(TUESDAY_PEAK, 60_000, caller=caller)])
    assert result.rejected == {}  # a caller that does not normalise leaves the CDR valid
    row = only_row(result)
    # the no-origin row "44": 60 s * 0.1 / 60 = 0.1
    assert (row["customer_prefix"], row["customer_origin"]) == ("44", None)
    assert row["customer_amount"] == Decimal("0.1")


@pytest.mark.parametrize("caller", ["anonymous", CALLER_NO_GROUP])
def test_caller_outside_the_origin_with_only_origin_rows(tmp_path: Path, caller: str) -> None:
    plans = v2_plan(tmp_path, [v2row("44", "0.2", origin="EEA")], groups=GROUPS)
    row = rate_one(plans, call(TUESDAY_PEAK, caller=caller))
    assert row["status"] == "unrated"
    assert row["unrated_reason"] == "customer:no_prefix"


# --- grace, initial rate, clamps -------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration_ms", "duration_rounding", "billed", "amount"),
    [
        # grace 3, fee 0.05, min_cost 0.07, rate 0.6 (0.01 / s), I = S = 1
        (0, "", 0, "0.000000"),
        (2_001, "", 0, "0.000000"),  # b = 3 == grace: nothing billed, no fee, no min_cost
        (3_000, "", 0, "0.000000"),  # b = 3 == grace
        (3_001, "", 4, "0.090000"),  # b = 4: 0.05 + 0.6 * 4 / 60 = 0.09 (not 1 s: no deduction)
        (3_999, "down", 0, "0.000000"),  # b = floor(3.999) = 3 == grace
        (4_000, "down", 4, "0.090000"),
        (3_499, "nearest", 0, "0.000000"),  # b = floor(3.999) = 3
        (3_500, "nearest", 4, "0.090000"),  # b = floor(4.0) = 4
        (1_000, "", 0, "0.000000"),  # b = 1 <= 3: min_cost does not apply either
    ],
)
def test_grace(
    tmp_path: Path, duration_ms: int, duration_rounding: str, billed: int, amount: str
) -> None:
    rows = [v2row("44", "0.6", fee="0.05", grace="3", min_cost="0.07")]
    plans = v2_plan(tmp_path, rows, duration_rounding=duration_rounding)
    row = rate_one(plans, call(TUESDAY_PEAK, duration_ms))
    assert row["status"] == "rated"
    assert row["customer_billed_seconds"] == billed
    assert str(row["customer_amount"]) == amount


def test_grace_then_initial_increment(tmp_path: Path) -> None:
    # grace 5, I = 60, S = 6: b = 6 > 5 -> billed = I = 60; 0.6 * 60 / 60 = 0.6
    rows = [v2row("44", "0.6", grace="5", inc=("60", "6"))]
    plans = v2_plan(tmp_path, rows)
    row = rate_one(plans, call(TUESDAY_PEAK, 6_000))
    assert row["customer_billed_seconds"] == 60
    assert str(row["customer_amount"]) == "0.600000"


@pytest.mark.parametrize(
    ("initial_rate", "duration_ms", "billed", "amount"),
    [
        # I = 30, S = 6, rate 0.6
        # initial_rate 0: a free first 30 s; 31 s -> billed 36; 0 * 30/60 + 0.6 * 6/60 = 0.06
        ("0", 31_000, 36, "0.060000"),
        # 10 s <= I: billed 30, all at the initial rate: 0.12 * 30 / 60 = 0.06
        ("0.12", 10_000, 30, "0.060000"),
        # 31 s: 0.12 * 30/60 + 0.6 * 6/60 = 0.06 + 0.06 = 0.12
        ("0.12", 31_000, 36, "0.120000"),
        # empty initial_rate = rate: 0.6 * 36 / 60 = 0.36
        ("", 31_000, 36, "0.360000"),
        # 0.07 / min for the first 30 s + 0.6 / min for 6 s: 0.035 + 0.06 = 0.095
        ("0.07", 31_000, 36, "0.095000"),
    ],
)
def test_initial_rate(
    tmp_path: Path, initial_rate: str, duration_ms: int, billed: int, amount: str
) -> None:
    rows = [v2row("44", "0.6", inc=("30", "6"), initial_rate=initial_rate)]
    plans = v2_plan(tmp_path, rows)
    row = rate_one(plans, call(TUESDAY_PEAK, duration_ms))
    assert row["customer_billed_seconds"] == billed
    assert str(row["customer_amount"]) == amount
    assert row["customer_rate"] == Decimal("0.6")


@pytest.mark.parametrize(
    ("row_cells", "duration_ms", "decimals", "rounding", "amount"),
    [
        # rate 0.6 = 0.01 / s, I = S = 1 unless said
        # min_cost raises: 2 s = 0.02 -> 0.05
        ({"min_cost": "0.05"}, 2_000, "6", "half_up", "0.050000"),
        # at min_cost: 5 s = 0.05 -> 0.05
        ({"min_cost": "0.05"}, 5_000, "6", "half_up", "0.050000"),
        # above min_cost: 10 s = 0.1
        ({"min_cost": "0.05"}, 10_000, "6", "half_up", "0.100000"),
        # the fee counts towards min_cost: 0.03 + 1 s 0.01 = 0.04 -> 0.05
        ({"min_cost": "0.05", "fee": "0.03"}, 1_000, "6", "half_up", "0.050000"),
        # max_cost lowers: 60 s = 0.6 -> 0.5
        ({"max_cost": "0.5"}, 60_000, "6", "half_up", "0.500000"),
        # at max_cost: 50 s = 0.5
        ({"max_cost": "0.5"}, 50_000, "6", "half_up", "0.500000"),
        # below max_cost: 40 s = 0.4
        ({"max_cost": "0.5"}, 40_000, "6", "half_up", "0.400000"),
        # both: 1 s -> 0.05; 30 s = 0.3; 600 s = 6 -> 0.5
        ({"min_cost": "0.05", "max_cost": "0.5"}, 1_000, "6", "half_up", "0.050000"),
        ({"min_cost": "0.05", "max_cost": "0.5"}, 30_000, "6", "half_up", "0.300000"),
        ({"min_cost": "0.05", "max_cost": "0.5"}, 600_000, "6", "half_up", "0.500000"),
        # min_cost == max_cost: every billed call costs exactly that
        ({"min_cost": "0.25", "max_cost": "0.25"}, 1_000, "6", "half_up", "0.250000"),
        ({"min_cost": "0.25", "max_cost": "0.25"}, 600_000, "6", "half_up", "0.250000"),
        # the clamp applies to the exact cost, then it is rounded by the plan:
        # max_cost 0.01235 at 4 decimals: half_up 0.0124, down 0.0123, up 0.0124
        ({"max_cost": "0.01235"}, 60_000, "4", "half_up", "0.0124"),
        ({"max_cost": "0.01235"}, 60_000, "4", "down", "0.0123"),
        ({"max_cost": "0.01235"}, 60_000, "4", "up", "0.0124"),
        # min_cost 0.00005 at 4 decimals, cost 1 s at 0.0006 / min = 0.00001:
        # clamped to 0.00005, a tie: half_up 0.0001, down 0.0000
        ({"min_cost": "0.00005", "rate": "0.0006"}, 1_000, "4", "half_up", "0.0001"),
        ({"min_cost": "0.00005", "rate": "0.0006"}, 1_000, "4", "down", "0.0000"),
        # max_cost applies to the initial-rate part too: I = 60 at 1.2 / min -> 1.2 -> 1
        ({"max_cost": "1", "initial_rate": "1.2", "inc": ("60", "1")}, 1_000, "2", "up", "1.00"),
        # the clamp compares the exact cost: 0.6 * 1 / 60 = 0.01 vs min_cost 0.0100000001
        ({"min_cost": "0.0100000001"}, 1_000, "6", "up", "0.010001"),
    ],
)
def test_min_and_max_cost(
    tmp_path: Path,
    row_cells: dict[str, Any],
    duration_ms: int,
    decimals: str,
    rounding: str,
    amount: str,
) -> None:
    cells = dict(row_cells)
    rate = cells.pop("rate", "0.6")
    rows = [v2row("44", rate, **cells)]
    plans = v2_plan(tmp_path, rows, decimals=decimals, rounding=rounding)
    row = rate_one(plans, call(TUESDAY_PEAK, duration_ms))
    assert str(row["customer_amount"]) == amount


# --- duration rounding -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration_ms", "up", "down", "nearest"),
    [
        (0, 0, 0, 0),
        (1, 1, 0, 0),
        (499, 1, 0, 0),
        (500, 1, 0, 1),
        (999, 1, 0, 1),
        (1_000, 1, 1, 1),
        (1_001, 2, 1, 1),
        (1_499, 2, 1, 1),  # x.499 s: nearest rounds down
        (1_500, 2, 1, 2),  # x.500 s: nearest rounds up
        (61_499, 62, 61, 61),
        (61_500, 62, 61, 62),
    ],
)
def test_billable_seconds_by_duration_rounding(
    duration_ms: int, up: int, down: int, nearest: int
) -> None:
    assert billable_seconds(duration_ms) == up  # the default
    assert billable_seconds(duration_ms, "up") == up
    assert billable_seconds(duration_ms, "down") == down
    assert billable_seconds(duration_ms, "nearest") == nearest


@pytest.mark.parametrize(
    ("duration_rounding", "duration_ms", "billed", "amount"),
    [
        # rate 0.6 = 0.01 / s, I = S = 1, fee 0.05 (charged only when something is billed)
        ("", 1_499, 2, "0.07"),  # default up: 2 s -> 0.05 + 0.02
        ("up", 1_499, 2, "0.07"),
        ("up", 1_500, 2, "0.07"),
        ("down", 1_499, 1, "0.06"),
        ("down", 1_500, 1, "0.06"),
        ("nearest", 1_499, 1, "0.06"),
        ("nearest", 1_500, 2, "0.07"),
        ("down", 999, 0, "0.00"),  # b = 0: nothing billed, no fee
        ("nearest", 499, 0, "0.00"),
        ("nearest", 500, 1, "0.06"),
    ],
)
def test_duration_rounding_in_rating(
    tmp_path: Path, duration_rounding: str, duration_ms: int, billed: int, amount: str
) -> None:
    plans = v2_plan(
        tmp_path,
        [v2row("44", "0.6", fee="0.05")],
        duration_rounding=duration_rounding,
        decimals="2",
    )
    row = rate_one(plans, call(TUESDAY_PEAK, duration_ms))
    assert row["customer_billed_seconds"] == billed
    assert str(row["customer_amount"]) == amount


# --- defaults and parsing --------------------------------------------------------------------


def test_v2_columns_left_empty_rate_as_section_4(tmp_path: Path) -> None:
    # every new cell empty: UTC, up, initial_rate = rate, no grace, no clamps, any origin/band.
    # Same call as test_rate_per_minute_with_60_60_increments: 61 s at 60/60 -> 120 s;
    # 0.0123 * 120 / 60 = 0.0246
    plans = v2_plan(tmp_path, [v2row("44", "0.0123", inc=("60", "60"))], decimals="4")
    row = rate_one(plans, call(TUESDAY_PEAK, 61_000))
    assert row["customer_billed_seconds"] == 120
    assert str(row["customer_amount"]) == "0.0246"
    assert (row["customer_origin"], row["customer_band"]) == (None, None)


def test_section_4_folder_has_empty_origin_and_band(tmp_path: Path) -> None:
    plans = one_plan(tmp_path, [deck("44", "0.0123", inc=("60", "60"))])
    row = only_row(rate_reference(plans, [cdr()]))
    assert str(row["customer_amount"]) == "0.0246"
    for leg in LEGS:
        assert row[f"{leg}_origin"] is None
        assert row[f"{leg}_band"] is None


def test_plan_without_bands_matches_only_rows_without_band(tmp_path: Path) -> None:
    # no time_bands.csv: the call has no band, so the peak row is never a candidate
    rows = [v2row("44", "0.3", band="peak"), v2row("4", "0.1")]
    plans = v2_plan(tmp_path, rows)
    row = rate_one(plans, call(TUESDAY_PEAK))
    assert (row["customer_prefix"], row["customer_band"]) == ("4", None)


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("sat,sun", {5, 6}),
        ("wed", {2}),
        ("mon-sun", set(range(7))),
        ("Sat, Sun", {5, 6}),
        ("fri-fri", {4}),
    ],
)
def test_parse_weekdays(text: str, days: set[int]) -> None:
    assert parse_weekdays(text) == frozenset(days)


def test_weekday_range_never_wraps() -> None:
    with pytest.raises(ValueError, match="wraps"):
        parse_weekdays("fri-mon")


@pytest.mark.parametrize(
    ("text", "minute"), [("00:00", 0), ("08:00", 480), ("19:59", 1199), ("24:00", 1440)]
)
def test_parse_minute(text: str, minute: int) -> None:
    assert parse_minute(text) == minute
