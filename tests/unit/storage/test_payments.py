"""A payment message of any shape is refused with the field named, never raises otherwise."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.storage.payments import Payment, PaymentError

_GOOD: dict[str, Any] = {
    "payment_id": "p-1",
    "tenant_id": "t",
    "kind": "reseller_payout_out",
    "account_id": "r",
    "amount": "10.50",
    "currency": "EUR",
}


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("kind", ["reseller_payout_out"], "kind ["),
        ("kind", {"a": 1}, "kind {"),
        ("currency", ["EUR"], "currency ["),
        ("currency", {"EUR": 1}, "currency {"),
        ("amount", 10.5, "amount 10.5"),
        ("amount", "9" * 100_000, "characters)"),
        ("payment_id", "p" * 300, "payment_id is longer than 256"),
        ("account_id", 7, "account_id is required"),
        ("recorded_at", ["2026"], "recorded_at ["),
        ("note", "n" * 5_000, "note is longer than 1000"),
    ],
)
def test_hostile_fields_are_refused_by_name(field: str, value: object, named: str) -> None:
    with pytest.raises(PaymentError) as refused:
        Payment.parse(**{**_GOOD, field: value})
    assert named in str(refused.value)
    assert len(str(refused.value)) < 500


def test_a_good_payment_still_parses() -> None:
    assert Payment.parse(**_GOOD).amount == 10.5
