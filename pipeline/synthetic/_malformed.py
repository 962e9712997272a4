"""CDR lines that break exactly one rule of the ``cdr.v1`` contract, and every way they do."""

from __future__ import annotations

import json
import random
from datetime import datetime
from typing import Any

from pipeline.synthetic._cdrs import CdrColumns
from pipeline.synthetic._timestamps import STEP_US, render_one

_REQUIRED_FIELDS: tuple[str, ...] = (
    "cdr_id",
    "session_id",
    "tenant_id",
    "customer_id",
    "client_id",
    "caller",
    "callee",
    "start_time",
    "end_time",
    "duration_ms",
)
_REQUIRED_STRINGS: tuple[str, ...] = _REQUIRED_FIELDS[:-1]

MALFORMED_KINDS: tuple[str, ...] = (
    "not_json",
    "truncated_json",
    "json_array",
    "json_scalar",
    *(f"missing_{name}" for name in _REQUIRED_FIELDS),
    "null_string_field",
    "empty_string_field",
    "empty_reseller_id",
    "callee_letters",
    "callee_too_short",
    "callee_too_long",
    "bad_start_time",
    "bad_end_time",
    "bad_answer_time",
    "end_before_start",
    "negative_duration",
    "float_duration",
    "string_duration",
    "huge_duration",
    "bad_disposition",
    "bad_sip_code",
)
"""Every way ``write_network`` breaks a CDR line; each appears once the malformed count allows."""


def malformed_line(rng: random.Random, kind: str, cols: CdrColumns, i: int, month: datetime) -> str:
    """Row ``i``'s valid line broken in exactly one way (``kind``, one of MALFORMED_KINDS)."""
    line = str(cols.lines[i])
    cdr: dict[str, Any] = json.loads(line)
    if kind == "not_json":
        return rng.choice(
            (
                "this is not json",
                f"cdr_id={cdr['cdr_id']};callee={cdr['callee']}",
                f'<cdr id="{cdr["cdr_id"]}"/>',
                "{cdr_id: '" + cdr["cdr_id"] + "'}",
                line[:-1] + ",}",
            )
        )
    if kind == "truncated_json":
        return line[: rng.randrange(10, len(line) - 1)]
    if kind == "json_array":
        return json.dumps([cdr]) if rng.random() < 0.5 else json.dumps(list(cdr.values()))
    if kind == "json_scalar":
        return rng.choice(("null", "42", '"' + cdr["cdr_id"] + '"', "true"))
    day = f"{month.year:04d}-{month.month:02d}-05T"
    if kind.startswith("missing_"):
        del cdr[kind.removeprefix("missing_")]
    elif kind == "null_string_field":
        cdr[rng.choice(_REQUIRED_STRINGS)] = None
    elif kind == "empty_string_field":
        cdr[rng.choice(_REQUIRED_STRINGS)] = ""
    elif kind == "empty_reseller_id":
        cdr["reseller_id"] = ""
    elif kind == "callee_letters":
        digits = str(cols.callee_digits[i])
        cdr["callee"] = rng.choice(
            (
                "+" + digits[:3] + "ABC" + digits[3:],
                digits[:4] + "O" + digits[5:],
                "tel:+" + digits,
                "+" + digits + "#",
                "(0)" + digits,
                "+" + digits[:-1] + "\u0661",  # ARABIC-INDIC DIGIT ONE: a digit, not ASCII
                "++" + digits,
            )
        )
    elif kind == "callee_too_short":
        cdr["callee"] = rng.choice(("12", "+1", "00 4", "7", "+4-4", "0049"))
    elif kind == "callee_too_long":
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(15, 18)))
        cdr["callee"] = rng.choice(("+", "", "00")) + "4" + digits
    elif kind in ("bad_start_time", "bad_end_time", "bad_answer_time"):
        cdr[kind.removeprefix("bad_")] = rng.choice(
            (
                f"{month.year:04d}-02-30T10:00:00Z",
                day.replace("-05T", "-32T") + "00:00:00Z",
                day + "24:00:00Z",
                day + "12:60:00Z",
                day + "12:00:00",
                day + "12:00:00+2:00",
                day + "12:00:00.Z",
                day + "12:00:00+25:00",
                day.replace("T", " ") + "12:00:00Z",
                day.replace("-", "/") + "12:00:00Z",
                "yesterday",
                "1772712000",
            )
        )
    elif kind == "end_before_start":
        precision = int(cols.precision[i])
        before = int(cols.start_us[i]) - STEP_US[precision]
        zone, lower = int(cols.zone[i]), bool(cols.lower[i])
        cdr["end_time"] = render_one(before, precision, zone, lower, rng.randrange(1000))
    elif kind == "negative_duration":
        cdr["duration_ms"] = rng.choice((-1, -60000, -(2**63)))
    elif kind == "float_duration":
        cdr["duration_ms"] = rng.choice((12.5, 60000.25, 0.5))
    elif kind == "string_duration":
        cdr["duration_ms"] = rng.choice(("abc", "", "1e3"))
    elif kind == "huge_duration":
        cdr["duration_ms"] = rng.choice((2**63, 2**64, 10**20))
    elif kind == "bad_disposition":
        cdr["disposition"] = rng.choice(("ANSWER", "answered", "UNKNOWN", "", "Busy"))
    elif kind == "bad_sip_code":
        cdr["sip_code"] = rng.choice((99, 700, 0, 1000))
    else:  # pragma: no cover - MALFORMED_KINDS and this function change together
        msg = f"unknown malformed kind {kind!r}"
        raise ValueError(msg)
    return json.dumps(cdr)
