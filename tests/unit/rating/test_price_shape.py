"""Tariff v2, the price shape (DESIGN.md section 8): first-interval rate, grace, minimum and
maximum cost per call, and the plan's duration rounding. Each rule by name, amounts worked by
hand in the comments.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pipeline.rating.reference import ReferenceData
from pipeline.reference.loader import load_plans_folder
from tests.builders import association as assoc
from tests.builders import cdr, deck_row, plan, rate, simple_reference, write_plans


def _one(reference: ReferenceData, duration_ms: int, callee: str = "4930123456") -> dict[str, Any]:
    [row] = rate(reference, [cdr(callee=callee, duration_ms=duration_ms)])
    return row


@pytest.fixture
def germany(tmp_path: Path) -> ReferenceData:
    """The deck row of section 8's worked example, without its band (bands come later)."""
    return simple_reference(
        tmp_path,
        [
            deck_row(
                "49",
                "0.0200",
                destination="Germany",
                initial_rate="0.0500",
                initial_increment="60",
                subsequent_increment="1",
                grace_seconds="3",
                min_cost="0.0100",
            )
        ],
    )


def test_the_worked_example(germany: ReferenceData) -> None:
    # b = 62 > grace 3; billed = 60 + 2 = 62; cost = 0.05 * 60/60 + 0.02 * 2/60 = 0.0506666...
    row = _one(germany, 61_200)
    assert row["customer_billed_seconds"] == 62
    assert row["customer_amount"] == Decimal("0.050667")
    assert row["customer_rate"] == Decimal("0.02")  # the rate after the first interval


@pytest.mark.parametrize(
    ("duration_ms", "billed", "amount"),
    [
        (0, 0, "0"),  # b = 0
        (2_001, 0, "0"),  # b = 3 == grace: nothing, not even the minimum
        (3_000, 0, "0"),  # b = 3 == grace
        (3_001, 60, "0.05"),  # b = 4 > grace: the first interval at the initial rate
        (60_000, 60, "0.05"),
        (60_001, 61, "0.050333"),  # 0.05 + 0.02/60 = 0.0503333...
    ],
)
def test_grace_and_first_interval(
    germany: ReferenceData, duration_ms: int, billed: int, amount: str
) -> None:
    row = _one(germany, duration_ms)
    assert row["customer_billed_seconds"] == billed
    assert row["customer_amount"] == Decimal(amount)
    assert row["status"] == "rated"


def test_within_the_grace_no_connection_fee_is_charged(tmp_path: Path) -> None:
    reference = simple_reference(
        tmp_path, [deck_row("44", "0.06", connection_fee="0.25", grace_seconds="10")]
    )
    assert _one(reference, 10_000, "4420794612")["customer_amount"] == Decimal("0")
    # b = 11: 0.25 + 0.06 * 11/60 = 0.261
    assert _one(reference, 10_001, "4420794612")["customer_amount"] == Decimal("0.261")


@pytest.mark.parametrize(
    ("duration_ms", "amount"),
    [
        (1_000, "0.05"),  # 0.001 raised to the minimum 0.05
        (60_000, "0.06"),  # 0.06 is between the clamps
        (600_000, "0.3"),  # 0.6 lowered to the maximum 0.3
    ],
)
def test_minimum_and_maximum_cost(tmp_path: Path, duration_ms: int, amount: str) -> None:
    reference = simple_reference(
        tmp_path, [deck_row("44", "0.06", min_cost="0.05", max_cost="0.3")]
    )
    assert _one(reference, duration_ms, "4420794612")["customer_amount"] == Decimal(amount)


def test_the_clamps_apply_before_the_plan_rounds(tmp_path: Path) -> None:
    # cost 0.001 < min 0.0104999 -> 0.0104999, rounded half_up to 2 places: 0.01
    reference = simple_reference(
        tmp_path, [deck_row("44", "0.06", min_cost="0.0104999")], decimals="2"
    )
    assert _one(reference, 1_000, "4420794612")["customer_amount"] == Decimal("0.01")


def test_a_minimum_equal_to_the_maximum_is_a_flat_price(tmp_path: Path) -> None:
    reference = simple_reference(tmp_path, [deck_row("44", "1", min_cost="0.1", max_cost="0.1")])
    for ms in (1, 59_000, 3_600_000):
        assert _one(reference, ms, "4420794612")["customer_amount"] == Decimal("0.1")


@pytest.mark.parametrize(
    ("rounding", "duration_ms", "seconds"),
    [
        ("up", 1_499, 2),
        ("up", 1_500, 2),
        ("up", 1_000, 1),
        ("down", 1_499, 1),
        ("down", 1_500, 1),
        ("down", 999, 0),
        ("nearest", 1_499, 1),
        ("nearest", 1_500, 2),
        ("nearest", 499, 0),
        ("nearest", 500, 1),
    ],
)
def test_duration_rounding_modes(
    tmp_path: Path, rounding: str, duration_ms: int, seconds: int
) -> None:
    write_plans(
        tmp_path,
        [plan("P", "customer", duration_rounding=rounding)],
        {"P": [deck_row("44", "0.6")]},
        [assoc("customer", "cust", "P")],
    )
    row = _one(load_plans_folder(tmp_path), duration_ms, "4420794612")
    assert row["customer_billed_seconds"] == seconds
    assert row["customer_amount"] == Decimal("0.01") * seconds  # 0.6 per minute = 0.01 per s


def test_a_deck_without_the_price_shape_rates_as_before(tmp_path: Path) -> None:
    plain = simple_reference(tmp_path / "plain", [deck_row("44", "0.0123", connection_fee="0.02")])
    defaults = simple_reference(
        tmp_path / "defaults",
        [
            deck_row(
                "44",
                "0.0123",
                connection_fee="0.02",
                initial_rate="0.0123",
                grace_seconds="0",
                min_cost="",
                max_cost="",
            )
        ],
    )
    calls = [cdr(cdr_id=f"c{ms}", duration_ms=ms) for ms in (0, 1, 999, 1_000, 61_001, 7_200_000)]
    assert plain.deck_arrays.shape is None
    assert defaults.deck_arrays.shape is not None
    versions = {"reference_version", "customer_deck_version"}  # digests of different files

    def amounts(reference: ReferenceData) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k not in versions} for r in rate(reference, calls)]

    assert amounts(plain) == amounts(defaults)


def test_plans_with_and_without_the_shape_in_one_folder(tmp_path: Path) -> None:
    write_plans(
        tmp_path,
        [plan("P", "customer"), plan("C", "client")],
        {
            "P": [deck_row("44", "0.06")],
            "C": [deck_row("44", "0.03", initial_rate="0.09", initial_increment="30")],
        },
        [assoc("customer", "cust", "P"), assoc("client", "gw", "C")],
    )
    row = _one(load_plans_folder(tmp_path), 90_000, "4420794612")
    assert row["customer_amount"] == Decimal("0.09")  # 0.06 * 90/60
    assert row["client_amount"] == Decimal("0.075")  # 0.09 * 30/60 + 0.03 * 60/60


def test_the_widest_numbers_are_exact(tmp_path: Path) -> None:
    # Large enough for the 128-bit path: 999999.123456789 per minute over 7 days, first minute
    # at 999999.987654321, and a maximum far above.
    reference = simple_reference(
        tmp_path,
        [
            deck_row(
                "44",
                "999999.123456789",
                initial_rate="999999.987654321",
                initial_increment="60",
                max_cost="999999.999999999",
            )
        ],
    )
    row = _one(reference, 604_800_000, "4420794612")
    assert row["customer_amount"] == Decimal("1000000.000000")  # the maximum, half_up to 6 places
    unclamped = simple_reference(
        tmp_path / "u",
        [
            deck_row(
                "44", "999999.123456789", initial_rate="999999.987654321", initial_increment="60"
            )
        ],
    )
    exact = Decimal("999999.987654321") + Decimal("999999.123456789") * (604_800 - 60) / 60
    assert _one(unclamped, 604_800_000, "4420794612")["customer_amount"] == exact.quantize(
        Decimal("0.000001")
    )
