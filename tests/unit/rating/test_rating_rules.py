"""Every rating rule of DESIGN.md section 4, with its edges named."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pipeline.rating.cdr_contract import MAX_DURATION_MS
from pipeline.rating.decode import decode_cdrs
from pipeline.rating.engine import billed_seconds, rate_batch
from pipeline.reference.loader import load_plans_folder
from tests.builders import (
    RATED_AT,
    association,
    cdr,
    deck_row,
    encode,
    membership,
    plan,
    rate,
    simple_reference,
    write_plans,
)


def _billed(duration_ms: int, initial: int, subsequent: int) -> int:
    return int(
        billed_seconds(
            np.array([duration_ms], dtype=np.int64),
            np.array([initial], dtype=np.int64),
            np.array([subsequent], dtype=np.int64),
        )[0]
    )


@pytest.mark.parametrize(
    ("duration_ms", "initial", "subsequent", "billed"),
    [
        (0, 1, 1, 0),  # 0 ms: nothing billed
        (1, 1, 1, 1),  # 1 ms: one second, the initial increment
        (1000, 1, 1, 1),
        (1001, 1, 1, 2),
        (0, 60, 60, 0),
        (1, 60, 60, 60),
        (60_000, 60, 60, 60),  # exactly I seconds
        (60_001, 60, 60, 120),  # I seconds + 1 ms
        (61_000, 60, 60, 120),
        (1, 30, 6, 30),
        (30_000, 30, 6, 30),  # exactly I
        (30_001, 30, 6, 36),  # I + 1 ms: one subsequent step
        (36_000, 30, 6, 36),
        (36_001, 30, 6, 42),
        (1, 60, 1, 60),
        (60_000, 60, 1, 60),  # exactly I
        (60_001, 60, 1, 61),  # I + 1 ms
        (125_500, 60, 1, 126),
    ],
)
def test_billed_seconds(duration_ms: int, initial: int, subsequent: int, billed: int) -> None:
    assert _billed(duration_ms, initial, subsequent) == billed


@pytest.mark.parametrize(
    ("duration_ms", "increments", "billed", "amount"),
    [
        (0, ("1", "1"), 0, "0.000000"),  # no connection fee on an unanswered call
        (1, ("1", "1"), 1, "0.050200"),  # 0.05 + 0.012 * 1/60
        (60_000, ("60", "60"), 60, "0.062000"),
        (60_001, ("60", "60"), 120, "0.074000"),
        (30_001, ("30", "6"), 36, "0.057200"),
        (60_001, ("60", "1"), 61, "0.062200"),
    ],
)
def test_cost_with_connection_fee(
    tmp_path: Path, duration_ms: int, increments: tuple[str, str], billed: int, amount: str
) -> None:
    reference = simple_reference(
        tmp_path,
        [
            deck_row(
                "44",
                "0.012",
                connection_fee="0.05",
                initial_increment=increments[0],
                subsequent_increment=increments[1],
            )
        ],
    )
    [row] = rate(reference, [cdr(duration_ms=duration_ms)])
    assert row["status"] == "rated"
    assert row["customer_billed_seconds"] == billed
    assert row["customer_amount"] == Decimal(amount)
    assert row["customer_rate"] == Decimal("0.012")
    assert row["customer_currency"] == "EUR"
    assert row["customer_prefix"] == "44"
    assert row["customer_plan_id"] == "P"


@pytest.mark.parametrize(
    ("decimals", "rounding", "rate_text", "duration_ms", "expected"),
    [
        # 0 decimals, exact tie: 1.5
        ("0", "half_up", "1.5", 60_000, "2"),
        ("0", "up", "1.5", 60_000, "2"),
        ("0", "down", "1.5", 60_000, "1"),
        # 0 decimals, not a tie: 1.2
        ("0", "half_up", "1.2", 60_000, "1"),
        ("0", "up", "1.2", 60_000, "2"),
        ("0", "down", "1.2", 60_000, "1"),
        # 0 decimals, just above the tie: 1.500001
        ("0", "half_up", "1.500001", 60_000, "2"),
        ("0", "down", "1.999999", 60_000, "1"),
        # 6 decimals, exact tie: 0.00003 per minute for 1 s = 0.0000005
        ("6", "half_up", "0.00003", 1_000, "0.000001"),
        ("6", "up", "0.00003", 1_000, "0.000001"),
        ("6", "down", "0.00003", 1_000, "0.000000"),
        # 6 decimals, below the tie: 0.00001 per minute for 1 s = 0.000000166...
        ("6", "half_up", "0.00001", 1_000, "0.000000"),
        ("6", "up", "0.00001", 1_000, "0.000001"),
        ("6", "down", "0.00001", 1_000, "0.000000"),
        # 6 decimals, exact, no rounding needed
        ("6", "up", "0.06", 1_000, "0.001000"),
        # default decimals (6) and rounding (half_up): 0.0123 * 7/60 = 0.001435
        ("", "", "0.0123", 7_000, "0.001435"),
        # 2 decimals half_up tie: 0.3 per minute for 1 s = 0.005
        ("2", "half_up", "0.3", 1_000, "0.01"),
        ("2", "down", "0.3", 1_000, "0.00"),
        # 4 decimals with nine-decimal rate: 0.123456789 * 61 / 60 = 0.12551440215
        ("4", "half_up", "0.123456789", 61_000, "0.1255"),
        ("4", "up", "0.123456789", 61_000, "0.1256"),
    ],
)
def test_rounding(
    tmp_path: Path, decimals: str, rounding: str, rate_text: str, duration_ms: int, expected: str
) -> None:
    reference = simple_reference(
        tmp_path, [deck_row("44", rate_text)], decimals=decimals, rounding=rounding
    )
    [row] = rate(reference, [cdr(duration_ms=duration_ms)])
    assert row["customer_amount"] == Decimal(expected)


def test_effective_until_is_exclusive_and_expired_longer_prefix_falls_back(tmp_path: Path) -> None:
    until = "2026-03-15T00:00:00Z"
    reference = simple_reference(
        tmp_path,
        [
            deck_row("44", "0.01"),
            deck_row("4420", "0.02", effective_until=until),
        ],
    )
    rows = rate(
        reference,
        [
            cdr(cdr_id="before", start_time="2026-03-14T23:59:59.999999Z"),
            cdr(cdr_id="at", start_time=until, end_time="2026-03-15T00:05:00Z"),
            cdr(cdr_id="offset", start_time="2026-03-15T01:00:00+01:00"),  # the same instant
        ],
    )
    by_id = {r["cdr_id"]: r for r in rows}
    assert by_id["before"]["customer_prefix"] == "4420"
    assert by_id["before"]["customer_rate"] == Decimal("0.02")
    assert by_id["at"]["customer_prefix"] == "44"
    assert by_id["offset"]["customer_prefix"] == "44"


def test_effective_from_is_inclusive(tmp_path: Path) -> None:
    reference = simple_reference(
        tmp_path, [deck_row("44", "0.01", effective_from="2026-03-10T12:00:00Z")]
    )
    rows = rate(
        reference,
        [
            cdr(cdr_id="at", start_time="2026-03-10T12:00:00Z"),
            cdr(cdr_id="before", start_time="2026-03-10T11:59:59.999999Z"),
        ],
    )
    by_id = {r["cdr_id"]: r for r in rows}
    assert by_id["at"]["status"] == "rated"
    assert by_id["before"]["unrated_reason"] == "customer:no_prefix"


def test_same_prefix_twice_later_effective_from_wins(tmp_path: Path) -> None:
    reference = simple_reference(
        tmp_path,
        [
            deck_row("44", "0.01"),  # from the 1st, open-ended
            deck_row(
                "44",
                "0.03",
                effective_from="2026-03-10T00:00:00Z",
                effective_until="2026-03-20T00:00:00Z",
            ),
        ],
    )
    rows = rate(
        reference,
        [
            cdr(cdr_id="early", start_time="2026-03-05T00:00:00Z"),
            cdr(cdr_id="promo", start_time="2026-03-12T00:00:00Z"),
            cdr(cdr_id="after", start_time="2026-03-25T00:00:00Z", end_time="2026-03-25T00:01:00Z"),
        ],
    )
    rates = {r["cdr_id"]: r["customer_rate"] for r in rows}
    assert rates == {"early": Decimal("0.01"), "promo": Decimal("0.03"), "after": Decimal("0.01")}


def test_longest_prefix_wins(tmp_path: Path) -> None:
    reference = simple_reference(
        tmp_path,
        [
            deck_row("4", "0.5"),
            deck_row("44", "0.01"),
            deck_row("4420", "0.02"),
            deck_row("442", "0.03"),
        ],
    )
    rows = rate(
        reference,
        [
            cdr(cdr_id="a", callee="4420794612"),
            cdr(cdr_id="b", callee="4430000000"),
            cdr(cdr_id="c", callee="4912345"),
            cdr(cdr_id="d", callee="4421000"),
        ],
    )
    assert {r["cdr_id"]: r["customer_prefix"] for r in rows} == {
        "a": "4420",
        "b": "44",
        "c": "4",
        "d": "442",
    }


@pytest.mark.parametrize(
    "callee",
    [
        "+4420794612",
        "004420794612",
        "44 20 7946 12",
        "44-20-7946-12",
        "+44 20-7946 12",
        "00 44 20 7946 12",
    ],
)
def test_callee_notations_normalise_to_digits(tmp_path: Path, callee: str) -> None:
    reference = simple_reference(tmp_path, [deck_row("4420", "0.01")])
    [row] = rate(reference, [cdr(callee=callee)])
    assert row["callee"] == "4420794612"
    assert row["customer_prefix"] == "4420"


def test_membership_change_at_an_instant(tmp_path: Path) -> None:
    switch = "2026-03-15T00:00:00Z"
    write_plans(
        tmp_path,
        [plan("P", "customer"), plan("RA", "reseller"), plan("RB", "reseller", currency="USD")],
        {
            "P": [deck_row("44", "0.01")],
            "RA": [deck_row("44", "0.001")],
            "RB": [deck_row("44", "0.002")],
        },
        [
            association("customer", "cust", "P"),
            association("reseller", "ra", "RA"),
            association("reseller", "rb", "RB"),
        ],
        [
            membership("gw", "ra", effective_until=switch),
            membership("gw", "rb", effective_from=switch),
        ],
    )
    reference = load_plans_folder(tmp_path)
    rows = rate(
        reference,
        [
            cdr(cdr_id="before", start_time="2026-03-14T23:59:59.999999Z"),
            cdr(cdr_id="at", start_time=switch, end_time="2026-03-15T00:01:00Z"),
            cdr(cdr_id="direct", client_id="gw2"),
        ],
    )
    by_id = {r["cdr_id"]: r for r in rows}
    assert by_id["before"]["reseller_id"] == "ra"
    assert by_id["before"]["reseller_plan_id"] == "RA"
    assert by_id["before"]["reseller_currency"] == "EUR"
    assert by_id["at"]["reseller_id"] == "rb"
    assert by_id["at"]["reseller_amount"] == Decimal("0.002000")
    assert by_id["at"]["reseller_currency"] == "USD"
    assert by_id["direct"]["reseller_id"] is None  # Direct: no reseller leg
    assert by_id["direct"]["reseller_amount"] is None
    assert by_id["direct"]["status"] == "rated"


def test_explicit_reseller_overrides_membership_and_without_plan_is_not_a_failure(
    tmp_path: Path,
) -> None:
    reference = simple_reference(
        tmp_path,
        [deck_row("44", "0.01")],
        reseller_deck=[deck_row("44", "0.001")],
        memberships=[membership("gw", "res")],
    )
    rows = rate(
        reference,
        [
            cdr(cdr_id="explicit-unpaid", reseller_id="other"),
            cdr(cdr_id="membership"),
        ],
    )
    by_id = {r["cdr_id"]: r for r in rows}
    unpaid = by_id["explicit-unpaid"]
    assert unpaid["reseller_id"] == "other"
    assert unpaid["status"] == "rated"
    assert unpaid["reseller_plan_id"] is None
    assert unpaid["reseller_amount"] is None
    assert by_id["membership"]["reseller_id"] == "res"
    assert by_id["membership"]["reseller_amount"] == Decimal("0.001000")


def test_customer_without_plan_is_unrated_and_other_legs_keep_amounts(tmp_path: Path) -> None:
    reference = simple_reference(
        tmp_path, [deck_row("44", "0.01")], client_deck=[deck_row("44", "0.004")]
    )
    [row] = rate(reference, [cdr(customer_id="nobody")])
    assert row["status"] == "unrated"
    assert row["unrated_reason"] == "customer:no_plan"
    assert row["customer_amount"] is None
    assert row["customer_plan_id"] is None
    assert row["client_amount"] == Decimal("0.004000")


def test_no_prefix_reasons_in_leg_order(tmp_path: Path) -> None:
    reference = simple_reference(
        tmp_path,
        [deck_row("49", "0.01")],
        client_deck=[deck_row("33", "0.004")],
        reseller_deck=[deck_row("44", "0.001")],
        memberships=[membership("gw", "res")],
    )
    [row] = rate(reference, [cdr(callee="3312345")])
    assert row["status"] == "unrated"
    assert row["unrated_reason"] == "customer:no_prefix;reseller:no_prefix"
    assert row["client_amount"] == Decimal("0.004000")
    assert row["customer_amount"] is None
    assert row["reseller_amount"] is None
    [all_fail] = rate(reference, [cdr(callee="3912345")])
    assert all_fail["unrated_reason"] == "customer:no_prefix;client:no_prefix;reseller:no_prefix"


def test_association_switch_and_other_tenants_plan(tmp_path: Path) -> None:
    switch = "2026-03-20T00:00:00Z"
    write_plans(
        tmp_path,
        [plan("P1", "customer"), plan("P2", "customer"), plan("X", "customer", tenant_id="t2")],
        {
            "P1": [deck_row("44", "0.01")],
            "P2": [deck_row("44", "0.02")],
            "X": [deck_row("44", "9")],
        },
        [
            association("customer", "cust", "P1", effective_until=switch),
            association("customer", "cust", "P2", effective_from=switch),
            association("customer", "shared", "X"),
        ],
    )
    reference = load_plans_folder(tmp_path)
    rows = rate(
        reference,
        [
            cdr(cdr_id="p1", start_time="2026-03-19T23:59:59Z"),
            cdr(cdr_id="p2", start_time=switch, end_time="2026-03-20T00:01:00Z"),
            cdr(cdr_id="t1-shared", customer_id="shared"),
            cdr(cdr_id="t2-shared", customer_id="shared", tenant_id="t2"),
        ],
    )
    by_id = {r["cdr_id"]: r for r in rows}
    assert by_id["p1"]["customer_plan_id"] == "P1"
    assert by_id["p2"]["customer_plan_id"] == "P2"
    assert by_id["t1-shared"]["unrated_reason"] == "customer:no_plan"  # X belongs to t2
    assert by_id["t2-shared"]["customer_plan_id"] == "X"


def test_rated_row_carries_versions_and_rated_at(tmp_path: Path) -> None:
    reference = simple_reference(tmp_path, [deck_row("44", "0.01")])
    [row] = rate(reference, [cdr()])
    assert row["reference_version"] == reference.version
    assert row["customer_deck_version"]
    assert row["rated_at"].isoformat() == "2026-04-01T00:00:00+00:00"
    assert row["start_time"].isoformat() == "2026-03-10T12:00:00+00:00"


def test_rating_twice_gives_identical_output(tmp_path: Path) -> None:
    reference = simple_reference(
        tmp_path,
        [deck_row("44", "0.0123"), deck_row("4420", "0.05", connection_fee="0.01")],
        client_deck=[deck_row("4", "0.004")],
    )
    records = [
        cdr(cdr_id=f"c{i}", duration_ms=i * 777, callee=f"44{20 + i % 3}7946{i:04d}")
        for i in range(200)
    ]
    assert rate(reference, records) == rate(reference, records)


def test_an_empty_batch_rates_to_an_empty_table(tmp_path: Path) -> None:
    reference = simple_reference(tmp_path, [deck_row("44", "0.01")])
    assert rate(reference, []) == []


def test_the_longest_call_a_cdr_may_carry_is_priced_exactly(tmp_path: Path) -> None:
    longest = MAX_DURATION_MS  # 7 days: decoding refuses anything longer
    reference = simple_reference(tmp_path, [deck_row("44", "999999.123456789")])
    [row] = rate(reference, [cdr(duration_ms=longest)])
    exact = Decimal("999999.123456789") * (longest // 1000) / 60
    assert row["customer_amount"] == exact.quantize(Decimal("0.000001"))


def test_the_engine_prices_any_int64_duration_exactly(tmp_path: Path) -> None:
    """Decoding caps durations, but the engine itself never overflows (defence in depth)."""
    longest = 2**63 - 1
    assert _billed(longest, 1, 1) == 9_223_372_036_854_776
    assert _billed(longest, 60, 60) == 9_223_372_036_854_780
    reference = simple_reference(tmp_path, [deck_row("44", "999999.123456789")])
    decoded = decode_cdrs(encode([cdr()])).good.with_columns(
        pl.lit(longest, dtype=pl.Int64).alias("duration_ms")
    )
    [row] = rate_batch(decoded, reference, RATED_AT).to_pylist()
    exact = Decimal("999999.123456789") * 9_223_372_036_854_776 / 60
    assert row["customer_amount"] == exact.quantize(Decimal("0.000001"))
