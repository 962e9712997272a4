"""Payments (``payments.v1``): money a customer paid in, or paid out to a client or a reseller.

A payment is validated here, whatever its source (the ``record-payment`` command, the
``payments.v1`` topic), and stored idempotently by ``payment_id``: recording the same payment
again changes nothing; recording a different payment under an id already used is refused.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pipeline.rating.money import ISO_4217
from pipeline.rating.timeparse import parse_instant
from pipeline.sinks.contracts import CallHistoryStore

KINDS = {
    "customer_payment_in": "customer",
    "client_payout_out": "client",
    "reseller_payout_out": "reseller",
}
_AMOUNT = re.compile(r"^[0-9]+(\.[0-9]{1,6})?$")
_MAX_AMOUNT = Decimal(10) ** 18
_MAX_ID_CHARS = 256
_MAX_NOTE_CHARS = 1000


def _shown(value: object) -> str:
    """A value as quoted in an error: its repr, cut to 64 characters."""
    text = repr(value)
    return text if len(text) <= 64 else f"{text[:64]}... ({len(text)} characters)"


class PaymentError(ValueError):
    """A payment that cannot be recorded; the message says which field and why."""


@dataclass(frozen=True)
class Payment:
    """One validated payment."""

    payment_id: str
    tenant_id: str
    kind: str
    account_id: str
    amount: Decimal
    currency: str
    recorded_at: datetime
    note: str = ""

    @classmethod
    def parse(
        cls,
        *,
        payment_id: object,
        tenant_id: object,
        kind: object,
        account_id: object,
        amount: object,
        currency: object,
        recorded_at: object = None,
        note: object = "",
    ) -> Payment:
        """Validate raw fields (text from the command line or JSON) into a Payment."""
        problems: list[str] = []
        texts: dict[str, str] = {}
        for name, value in (
            ("payment_id", payment_id),
            ("tenant_id", tenant_id),
            ("account_id", account_id),
        ):
            if not isinstance(value, str) or not value.strip():
                problems.append(f"{name} is required")
            elif len(value.strip()) > _MAX_ID_CHARS:
                problems.append(f"{name} is longer than {_MAX_ID_CHARS} characters")
            else:
                texts[name] = value.strip()
        if not isinstance(kind, str) or kind not in KINDS:
            problems.append(f"kind {_shown(kind)} is not one of {', '.join(KINDS)}")
        amount_text = amount if isinstance(amount, str) else None
        value = Decimal(0)
        if amount_text is None or not _AMOUNT.match(amount_text.strip()):
            problems.append(
                f"amount {_shown(amount)} is not a positive decimal with at most 6 decimal "
                "places (as text, like 125.50)"
            )
        else:
            try:
                value = Decimal(amount_text.strip())
            except InvalidOperation:  # pragma: no cover - the pattern rules it out
                problems.append(f"amount {_shown(amount)} is not a number")
            if value <= 0:
                problems.append(f"amount {_shown(amount)} must be greater than 0")
            elif value >= _MAX_AMOUNT:
                problems.append(f"amount {_shown(amount)} is too large")
        if not isinstance(currency, str) or currency not in ISO_4217:
            problems.append(f"currency {_shown(currency)} is not an ISO 4217 code")
        when = datetime.now(UTC)
        if recorded_at is not None:
            parsed = parse_instant(recorded_at)
            if parsed is None:
                problems.append(f"recorded_at {_shown(recorded_at)} is not an RFC 3339 timestamp")
            else:
                when = parsed
        if not isinstance(note, str):
            problems.append("note must be text")
        elif len(note) > _MAX_NOTE_CHARS:
            problems.append(f"note is longer than {_MAX_NOTE_CHARS} characters")
        if problems:
            raise PaymentError("; ".join(problems))
        return cls(
            payment_id=texts["payment_id"],
            tenant_id=texts["tenant_id"],
            kind=str(kind),
            account_id=texts["account_id"],
            amount=value,
            currency=str(currency),
            recorded_at=when,
            note=str(note),
        )

    def to_json(self) -> bytes:
        """The ``payments.v1`` message: amounts as decimal strings, times as RFC 3339."""
        data: dict[str, Any] = asdict(self)
        data["amount"] = str(self.amount)
        data["recorded_at"] = self.recorded_at.isoformat().replace("+00:00", "Z")
        return json.dumps(data, sort_keys=True).encode()


_EXISTING_SQL = """
SELECT kind, account_id, amount, currency
FROM payments FINAL
WHERE tenant_id = {tenant_id:String} AND payment_id = {payment_id:String}
"""
_INSERT_SQL = """
INSERT INTO payments (payment_id, tenant_id, kind, account_id, amount, currency, recorded_at, note)
VALUES ({payment_id:String}, {tenant_id:String}, {kind:String}, {account_id:String},
        {amount:Decimal(38, 6)}, {currency:String}, {recorded_at:DateTime64(6, 'UTC')},
        {note:String})
"""


def record_payment(store: CallHistoryStore, payment: Payment) -> bool:
    """Store the payment; False if this exact payment was already recorded.

    Raises :class:`PaymentError` if the id was used for a different payment.
    """
    keys = {"tenant_id": payment.tenant_id, "payment_id": payment.payment_id}
    existing = store.query(_EXISTING_SQL, keys).to_pylist()
    if existing:
        before = existing[0]
        same = (
            before["kind"] == payment.kind
            and before["account_id"] == payment.account_id
            and Decimal(before["amount"]) == payment.amount
            and before["currency"] == payment.currency
        )
        if same:
            return False
        msg = (
            f"payment {payment.payment_id} of tenant {payment.tenant_id} is already recorded as "
            f"{before['kind']} {before['amount']} {before['currency']} to {before['account_id']}; "
            "use a new payment_id for a different payment"
        )
        raise PaymentError(msg)
    store.execute(
        _INSERT_SQL,
        {
            **keys,
            "kind": payment.kind,
            "account_id": payment.account_id,
            "amount": str(payment.amount),
            "currency": payment.currency,
            "recorded_at": payment.recorded_at.strftime("%Y-%m-%d %H:%M:%S.%f"),
            "note": payment.note,
        },
    )
    return True
