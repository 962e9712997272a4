"""A deliberately simple, independent per-row reference rater.

Tests compare the vectorised engine in ``pipeline.rating`` against this module. It is written
straight from DESIGN.md sections 3, 4 and 8 (tariff model v2) and the binding refinements below,
in plain Python (``json.loads``, the ``csv`` module, ``decimal.Decimal``, ``zoneinfo``), one CDR
at a time, clarity over speed. It imports nothing from ``pipeline`` on purpose: a bug shared by
both would go unnoticed. It assumes a valid plans folder (the loader validates).

Binding refinements (where DESIGN.md is silent):

* Validation: the line is a JSON object (strict JSON: ``NaN``/``Infinity`` are not JSON).
  Required non-empty strings: cdr_id, session_id, tenant_id, customer_id, client_id, caller,
  callee, start_time, end_time. ``reseller_id`` absent, null or a non-empty string.
  ``duration_ms`` a JSON integer (not bool/float/string), ``0 <= d < 2**63``. ``disposition``
  absent/null or exactly one of ANSWERED, NO_ANSWER, BUSY, FAILED, CANCELLED. ``sip_code``
  absent/null or an integer 100..699. ``answer_time`` absent/null or a valid timestamp.
  ``end_time >= start_time``. Unknown fields are ignored.
* Bounds (issue 11, docs/rating-rules.md section 1): a line over 65,536 UTF-8 bytes; objects or
  arrays nested more than 32 levels (the top-level object is level 1); a contract field named
  twice in the top-level object (after JSON escapes are decoded); a contract text field that is
  not a JSON string; cdr_id, session_id, tenant_id, customer_id, client_id, reseller_id or
  caller over 256 UTF-8 bytes; ``duration_ms`` over 604,800,000 (7 days), or longer than
  ``end_time - start_time`` by more than 1,000 ms; a timestamp outside
  ``[2000-01-01T00:00:00Z, 2100-01-01T00:00:00Z)``. Reason codes follow that table where it is
  easy (``too_large``, ``too_deep``, ``duplicate:<f>``, ``too_long:<f>``, ``out_of_range:<f>``);
  only the set of rejected lines is compared with the engine, never the reasons.
* Timestamps: ``YYYY-MM-DD[Tt]HH:MM:SS[.fraction]([Zz]|[+-]HH:MM)``; the fraction may have any
  number of digits and is truncated to microseconds; impossible dates are rejected.
* Callee: remove every space and ``-``; then drop one leading ``+``, else a leading ``00``; the
  rest must be 3..15 ASCII digits.
* Blank lines (only JSON whitespace: space, tab, CR, LF) are skipped: neither row nor rejection.
* Tariff model v2 (DESIGN.md section 8), where it is silent: every new column and file is
  optional and an empty cell takes the default (``timezone`` UTC, ``duration_rounding`` up,
  ``initial_rate`` = rate, grace 0, no min/max cost, any origin, any band), so a section-4 folder
  rates exactly as before. The caller is normalised by the callee's rule (3..15 digits); one
  that does not normalise is in no origin group. Group prefixes are compared with the
  normalised caller as written. Weekday names are ``mon`` .. ``sun`` (case and spaces around
  them ignored). The band is looked up on the local wall clock's minute (bands start and end on
  whole minutes); a holiday covers the whole local date, 23 or 25 hours on a DST day, and wins
  over the week's bands. Grace is compared with the billable seconds ``b`` (after
  ``duration_rounding``, before increments). ``L_rate`` stays the row's ``rate`` (not
  ``initial_rate``). min/max cost clamp the exact cost, which is then rounded once (a min_cost
  with more decimals than the plan is rounded by the plan's mode).
* Enrollments (accounts as reference data): ``join_codes.csv`` maps a code to its reseller (an
  empty ``reseller_id`` is Direct); ``enrollments.csv`` says a client enrolled with a code at an
  instant. At ``t`` the client's enrollment is its latest one at or before ``t``; the reseller
  is that code's (Direct: none). memberships.csv and enrollments never disagree in a valid
  folder (the loader refuses that), so the reseller is the CDR's, else a membership's at ``t``,
  else the enrollment's at ``t``, else Direct. ``accounts.csv`` does not change rating.
* A CDR whose cdr_id was already seen in an earlier valid line is not rated again: the first one
  is kept in ``rows`` and the later line number is listed in ``duplicates``. (The engine has its
  own documented rule for redelivery; this module only makes the case visible.)
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Context, Decimal
from pathlib import Path
from typing import TypeGuard
from zoneinfo import ZoneInfo

LEGS: tuple[str, ...] = ("customer", "client", "reseller")
LEG_COLUMNS: tuple[str, ...] = (
    "plan_id",
    "prefix",
    "destination",
    "rate",
    "billed_seconds",
    "amount",
    "currency",
)
# Per-leg columns of tariff model v2 (DESIGN.md section 8, rating step 6): the winning deck row's
# origin and band, None when empty. Kept out of LEG_COLUMNS until the engine writes them, so that
# comparisons over LEG_COLUMNS keep working; every rated row holds them all the same.
V2_LEG_COLUMNS: tuple[str, ...] = ("origin", "band")
REQUIRED_STRINGS: tuple[str, ...] = (
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
# Every field of the cdr.v1 contract (DESIGN.md section 3): a duplicate of one of them is refused.
CONTRACT_FIELDS: tuple[str, ...] = (
    *REQUIRED_STRINGS,
    "reseller_id",
    "answer_time",
    "duration_ms",
    "disposition",
    "sip_code",
)
# The contract fields that must be JSON strings when present and not null.
TEXT_FIELDS: tuple[str, ...] = (*REQUIRED_STRINGS, "reseller_id", "answer_time", "disposition")
# The text fields held to MAX_FIELD_BYTES.
BOUNDED_FIELDS: tuple[str, ...] = (
    "cdr_id",
    "session_id",
    "tenant_id",
    "customer_id",
    "client_id",
    "reseller_id",
    "caller",
)
MAX_LINE_BYTES = 65_536
MAX_DEPTH = 32
MAX_FIELD_BYTES = 256
MAX_DURATION_MS = 604_800_000  # 7 days
DURATION_SLACK_MS = 1_000
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # inclusive
LATEST = datetime(2100, 1, 1, tzinfo=UTC)  # exclusive
DISPOSITIONS: frozenset[str] = frozenset({"ANSWERED", "NO_ANSWER", "BUSY", "FAILED", "CANCELLED"})
ROUNDING_MODES: dict[str, str] = {"half_up": ROUND_HALF_UP, "up": ROUND_UP, "down": ROUND_DOWN}

# Decimal context for money: 80 significant digits. ``initial_rate * I + rate * (billed - I)``
# and the fee are exact at this precision (durations are at most 7 days, and were below 2**63 ms
# before issue 11); the only inexact step is the one division by 60, whose non-terminating tail
# (a repeating 3 or 6, from the factor 3 in 60) lies far beyond the digit being rounded, so the
# rounded result equals the rounding of the exact rational value. Clamping to min_cost/max_cost
# before that rounding commutes with it: rounding to 80 digits is monotone and both bounds are
# exact at 80 digits.
MONEY_CONTEXT = Context(prec=80)

_TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)
_DIGITS = re.compile(r"[0-9]{3,15}")


# --------------------------------------------------------------------------------------------
# Result


@dataclass
class ReferenceResult:
    """What the reference made of a list of CDR lines.

    ``rows`` is keyed by cdr_id; ``rejected`` maps a 1-based line number to a reason;
    ``duplicates`` maps the 1-based line number of a repeated cdr_id to that cdr_id.
    """

    rows: dict[str, dict[str, object]] = field(default_factory=dict)
    rejected: dict[int, str] = field(default_factory=dict)
    duplicates: dict[int, str] = field(default_factory=dict)


class InvalidCdr(Exception):
    """A CDR line that breaks the contract; the message is the reason."""


# --------------------------------------------------------------------------------------------
# Parsing helpers


def parse_timestamp(text: str) -> datetime | None:
    """Parse an RFC 3339 timestamp to an aware UTC datetime, or None when it is not valid."""
    m = _TIMESTAMP.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    fraction = m.group(7) or ""
    micros = int((fraction + "000000")[:6])  # truncate, never round
    if m.group(8) is not None:
        offset = timedelta(0)
    else:
        off_h, off_m = int(m.group(10)), int(m.group(11))
        if off_h > 23 or off_m > 59:
            return None
        offset = timedelta(hours=off_h, minutes=off_m)
        if m.group(9) == "-":
            offset = -offset
    try:
        local = datetime(year, month, day, hour, minute, second, micros)
        return (local - offset).replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        return None


def normalise_callee(text: str) -> str | None:
    """Return the callee as 3..15 digits, or None when it is malformed."""
    s = text.replace(" ", "").replace("-", "")
    if s.startswith("+"):
        s = s[1:]
    elif s.startswith("00"):
        s = s[2:]
    if _DIGITS.fullmatch(s) is None:
        return None
    return s


def _reject_constant(name: str) -> object:
    msg = f"not JSON: {name}"
    raise ValueError(msg)


class _JsonObject(dict[str, object]):
    """A decoded JSON object that remembers which contract fields it named more than once."""

    repeated: tuple[str, ...] = ()


def _object_from_pairs(pairs: list[tuple[str, object]]) -> _JsonObject:
    obj = _JsonObject(pairs)
    names = [name for name, _ in pairs]
    obj.repeated = tuple(name for name in CONTRACT_FIELDS if names.count(name) > 1)
    return obj


def _nested_deeper_than(value: object, limit: int) -> bool:
    """True when objects/arrays nest more than ``limit`` levels (a top-level container is 1)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: list[object] = list(item.values())
        elif isinstance(item, list):
            children = list(item)
        else:
            continue
        if level > limit:
            return True
        stack.extend((child, level + 1) for child in children)
    return False


def _utf8_length(text: str) -> int:
    # surrogatepass: a JSON "\ud800" escape decodes to a lone surrogate; count it, never crash.
    return len(text.encode("utf-8", "surrogatepass"))


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _microseconds(delta: timedelta) -> int:
    return delta // timedelta(microseconds=1)


@dataclass(frozen=True)
class ValidCdr:
    """The fields of a CDR line that passed validation.

    ``caller`` is the caller normalised like the callee, or None when it does not normalise
    (that leaves the CDR valid: DESIGN.md section 8, rating step 1).
    """

    cdr_id: str
    session_id: str
    tenant_id: str
    customer_id: str
    client_id: str
    reseller_id: str | None
    caller: str | None
    callee: str
    start_time: datetime
    duration_ms: int


def _parse_object(line: str) -> _JsonObject:
    if _utf8_length(line) > MAX_LINE_BYTES:
        raise InvalidCdr("too_large")
    try:
        obj = json.loads(
            line, parse_constant=_reject_constant, object_pairs_hook=_object_from_pairs
        )
    except RecursionError as exc:  # nested far beyond MAX_DEPTH (or unclosed brackets)
        raise InvalidCdr("too_deep") from exc
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise InvalidCdr("not_json") from exc
    if not isinstance(obj, _JsonObject):
        raise InvalidCdr("not_object")
    if _nested_deeper_than(obj, MAX_DEPTH):
        raise InvalidCdr("too_deep")
    if obj.repeated:
        raise InvalidCdr(f"duplicate:{obj.repeated[0]}")
    return obj


def _timestamp_field(obj: dict[str, object], name: str) -> datetime:
    value = obj[name]
    stamp = parse_timestamp(value) if isinstance(value, str) else None
    if stamp is None:
        raise InvalidCdr(f"invalid:{name}")
    if not EARLIEST <= stamp < LATEST:
        raise InvalidCdr(f"out_of_range:{name}")
    return stamp


def validate_line(line: str) -> ValidCdr:
    """Validate one CDR line; raise InvalidCdr with the reason when it breaks a rule."""
    obj = _parse_object(line)
    for name in (*REQUIRED_STRINGS, "duration_ms"):
        if name not in obj:
            raise InvalidCdr(f"missing:{name}")
    for name in REQUIRED_STRINGS:
        value = obj[name]
        if not isinstance(value, str) or value == "":
            raise InvalidCdr(f"invalid:{name}")
    for name in TEXT_FIELDS:
        value = obj.get(name)
        if value is not None and not isinstance(value, str):
            raise InvalidCdr(f"invalid:{name}")
    reseller = obj.get("reseller_id")
    if reseller == "":
        raise InvalidCdr("invalid:reseller_id")
    for name in BOUNDED_FIELDS:
        value = obj.get(name)
        if isinstance(value, str) and _utf8_length(value) > MAX_FIELD_BYTES:
            raise InvalidCdr(f"too_long:{name}")
    duration = obj["duration_ms"]
    if not _is_int(duration) or not 0 <= duration < 2**63:
        raise InvalidCdr("invalid:duration_ms")
    if duration > MAX_DURATION_MS:
        raise InvalidCdr("out_of_range:duration_ms")
    disposition = obj.get("disposition")
    if disposition is not None and disposition not in DISPOSITIONS:
        raise InvalidCdr("invalid:disposition")
    sip_code = obj.get("sip_code")
    if sip_code is not None and (not _is_int(sip_code) or not 100 <= sip_code <= 699):
        raise InvalidCdr("invalid:sip_code")
    start = _timestamp_field(obj, "start_time")
    end = _timestamp_field(obj, "end_time")
    if obj.get("answer_time") is not None:
        _timestamp_field(obj, "answer_time")
    callee = normalise_callee(str(obj["callee"]))
    if callee is None:
        raise InvalidCdr("invalid:callee")
    if end < start:
        raise InvalidCdr("end_before_start")
    if duration * 1000 > _microseconds(end - start) + DURATION_SLACK_MS * 1000:
        raise InvalidCdr("invalid:duration_ms")
    return ValidCdr(
        cdr_id=str(obj["cdr_id"]),
        session_id=str(obj["session_id"]),
        tenant_id=str(obj["tenant_id"]),
        customer_id=str(obj["customer_id"]),
        client_id=str(obj["client_id"]),
        reseller_id=reseller if isinstance(reseller, str) else None,
        caller=normalise_callee(str(obj["caller"])),
        callee=callee,
        start_time=start,
        duration_ms=duration,
    )


# --------------------------------------------------------------------------------------------
# Reference data


@dataclass(frozen=True)
class Plan:
    """A rate plan from plans.csv, defaults applied (``timezone`` UTC, ``duration_rounding`` up)."""

    plan_id: str
    tenant_id: str
    scope: str
    currency: str
    decimals: int
    rounding: str
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    duration_rounding: str = "up"


@dataclass(frozen=True)
class DeckRow:
    """One row of decks/<plan_id>.csv, defaults applied.

    ``origin`` and ``band`` are ``""`` when the cell is empty (any caller, any time);
    ``min_cost`` and ``max_cost`` are None when not set.
    """

    prefix: str
    destination: str
    rate: Decimal
    connection_fee: Decimal
    initial_increment: int
    subsequent_increment: int
    effective_from: datetime
    effective_until: datetime | None
    initial_rate: Decimal
    grace_seconds: int
    min_cost: Decimal | None
    max_cost: Decimal | None
    origin: str
    band: str

    def effective_at(self, t: datetime) -> bool:
        """True when ``effective_from <= t < effective_until``."""
        return self.effective_from <= t and (
            self.effective_until is None or t < self.effective_until
        )


@dataclass(frozen=True)
class TimeBand:
    """One row of time_bands.csv: on these weekdays (0 = Monday), local minutes [start, end)."""

    band: str
    weekdays: frozenset[int]
    start_minute: int
    end_minute: int


@dataclass(frozen=True)
class Link:
    """An association (account -> plan) or a membership (client -> reseller) over time."""

    target: str
    effective_from: datetime
    effective_until: datetime | None

    def effective_at(self, t: datetime) -> bool:
        """True when ``effective_from <= t < effective_until``."""
        return self.effective_from <= t and (
            self.effective_until is None or t < self.effective_until
        )


@dataclass
class ReferenceData:
    """Plans, decks (indexed by prefix), associations, memberships and the v2 files.

    ``origin_groups`` maps a tenant to its ``(prefix, group)`` pairs; ``time_bands`` maps a
    plan to its bands; ``holidays`` maps ``(plan_id, local date)`` to a band.
    """

    plans: dict[str, Plan]
    decks: dict[str, dict[str, list[DeckRow]]]
    associations: dict[tuple[str, str], list[Link]]
    memberships: dict[str, list[Link]]
    origin_groups: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    time_bands: dict[str, list[TimeBand]] = field(default_factory=dict)
    holidays: dict[tuple[str, date], str] = field(default_factory=dict)
    # client -> [(enrolled_at, reseller or None for Direct)], from enrollments.csv and the codes
    enrollments: dict[str, list[tuple[datetime, str | None]]] = field(default_factory=dict)


def _csv_rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _cell(row: dict[str, str], name: str) -> str:
    """The cell of an optional column: ``""`` when the column or the cell is absent."""
    value = row.get(name)
    return "" if value is None else value


def _ts(text: str) -> datetime:
    value = parse_timestamp(text)
    if value is None:
        msg = f"bad timestamp in reference data: {text!r}"
        raise ValueError(msg)
    return value


def _until(text: str | None) -> datetime | None:
    return None if text is None or text == "" else _ts(text)


def _optional_decimal(text: str) -> Decimal | None:
    return None if text == "" else Decimal(text)


WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_weekdays(text: str) -> frozenset[int]:
    """``mon-fri`` (a range, never wrapping), ``sat,sun`` (a list) or ``wed`` (one day)."""
    days: set[int] = set()
    for part in text.lower().split(","):
        first, _, last = part.strip().partition("-")
        low = WEEKDAYS.index(first.strip())
        high = WEEKDAYS.index(last.strip()) if last else low
        if high < low:
            msg = f"weekday range wraps: {text!r}"
            raise ValueError(msg)
        days.update(range(low, high + 1))
    return frozenset(days)


def parse_minute(text: str) -> int:
    """Local ``HH:MM`` (``24:00`` allowed) as minutes after midnight."""
    hours, _, minutes = text.strip().partition(":")
    return int(hours) * 60 + int(minutes)


def load_reference_data(plans_dir: Path) -> ReferenceData:
    """Read a plans folder (DESIGN.md section 4 "Reference data as files", and section 8)."""
    plans: dict[str, Plan] = {}
    decks: dict[str, dict[str, list[DeckRow]]] = {}
    for r in _csv_rows(plans_dir / "plans.csv"):
        plan = Plan(
            plan_id=r["plan_id"],
            tenant_id=r["tenant_id"],
            scope=r["scope"],
            currency=r["currency"],
            decimals=int(r["decimals"]) if r.get("decimals") else 6,
            rounding=r["rounding"] if r.get("rounding") else "half_up",
            timezone=ZoneInfo(_cell(r, "timezone") or "UTC"),
            duration_rounding=_cell(r, "duration_rounding") or "up",
        )
        plans[plan.plan_id] = plan
        by_prefix: dict[str, list[DeckRow]] = {}
        for d in _csv_rows(plans_dir / "decks" / f"{plan.plan_id}.csv"):
            rate = Decimal(d["rate"])
            row = DeckRow(
                prefix=d["prefix"],
                destination=d["destination"],
                rate=rate,
                connection_fee=Decimal(d["connection_fee"])
                if d.get("connection_fee")
                else Decimal(0),
                initial_increment=int(d["initial_increment"]) if d.get("initial_increment") else 1,
                subsequent_increment=(
                    int(d["subsequent_increment"]) if d.get("subsequent_increment") else 1
                ),
                effective_from=_ts(d["effective_from"]),
                effective_until=_until(d.get("effective_until")),
                # not ``or rate``: an initial_rate of 0 is a free first increment, not "unset"
                initial_rate=Decimal(_cell(d, "initial_rate") or d["rate"]),
                grace_seconds=int(_cell(d, "grace_seconds") or "0"),
                min_cost=_optional_decimal(_cell(d, "min_cost")),
                max_cost=_optional_decimal(_cell(d, "max_cost")),
                origin=_cell(d, "origin"),
                band=_cell(d, "band"),
            )
            by_prefix.setdefault(row.prefix, []).append(row)
        decks[plan.plan_id] = by_prefix
    associations: dict[tuple[str, str], list[Link]] = {}
    for r in _csv_rows(plans_dir / "associations.csv"):
        link = Link(r["plan_id"], _ts(r["effective_from"]), _until(r.get("effective_until")))
        associations.setdefault((r["scope"], r["account_id"]), []).append(link)
    memberships: dict[str, list[Link]] = {}
    for r in _csv_rows(plans_dir / "memberships.csv"):
        link = Link(r["reseller_id"], _ts(r["effective_from"]), _until(r.get("effective_until")))
        memberships.setdefault(r["client_id"], []).append(link)
    origin_groups: dict[str, list[tuple[str, str]]] = {}
    for r in _csv_rows(plans_dir / "origin_groups.csv"):
        origin_groups.setdefault(r["tenant_id"], []).append((r["prefix"], r["group"]))
    time_bands: dict[str, list[TimeBand]] = {}
    for r in _csv_rows(plans_dir / "time_bands.csv"):
        band = TimeBand(
            band=r["band"],
            weekdays=parse_weekdays(r["weekdays"]),
            start_minute=parse_minute(r["start"]),
            end_minute=parse_minute(r["end"]),
        )
        time_bands.setdefault(r["plan_id"], []).append(band)
    holidays: dict[tuple[str, date], str] = {}
    for r in _csv_rows(plans_dir / "holidays.csv"):
        holidays[(r["plan_id"], date.fromisoformat(r["date"].strip()))] = r["band"]
    code_reseller = {
        r["code"].strip(): (r["reseller_id"].strip() or None)
        for r in _csv_rows(plans_dir / "join_codes.csv")
    }
    enrollments: dict[str, list[tuple[datetime, str | None]]] = {}
    for r in _csv_rows(plans_dir / "enrollments.csv"):
        enrolled = (_ts(r["enrolled_at"].strip()), code_reseller[r["join_code"].strip()])
        enrollments.setdefault(r["client_id"].strip(), []).append(enrolled)
    return ReferenceData(
        plans,
        decks,
        associations,
        memberships,
        origin_groups,
        time_bands,
        holidays,
        enrollments,
    )


# --------------------------------------------------------------------------------------------
# Rating


def billable_seconds(duration_ms: int, duration_rounding: str = "up") -> int:
    """Whole seconds of a duration by the plan's ``duration_rounding`` (up, down, nearest)."""
    if duration_rounding == "up":
        return -(-duration_ms // 1000)
    if duration_rounding == "down":
        return duration_ms // 1000
    if duration_rounding == "nearest":
        return (duration_ms + 500) // 1000
    msg = f"unknown duration_rounding {duration_rounding!r}"
    raise ValueError(msg)


def billed_seconds(
    duration_ms: int,
    initial: int,
    subsequent: int,
    *,
    duration_rounding: str = "up",
    grace_seconds: int = 0,
) -> int:
    """Billed seconds: 0 within grace, else the initial and subsequent increments."""
    b = billable_seconds(duration_ms, duration_rounding)
    if b == 0 or b <= grace_seconds:
        return 0
    if b <= initial:
        return initial
    return initial + -(-(b - initial) // subsequent) * subsequent


def leg_amount(row: DeckRow, billed: int, decimals: int, rounding: str) -> Decimal:
    """The cost of ``billed`` seconds on a deck row, clamped, rounded for the plan.

    ``fee + (initial_rate * I + rate * (billed - I)) / 60``: one division, so that with
    ``initial_rate == rate`` the value (and its Decimal exponent) is exactly section 4's
    ``fee + rate * billed / 60``. Then ``max(min_cost)``, ``min(max_cost)``, then one rounding.
    0 when nothing is billed (no fee, no ``min_cost``).
    """
    quantum = Decimal(1).scaleb(-decimals)
    if billed == 0:
        return Decimal(0).quantize(quantum)
    ctx = MONEY_CONTEXT
    initial = Decimal(row.initial_increment)
    per_minute = ctx.add(
        ctx.multiply(row.initial_rate, initial),
        ctx.multiply(row.rate, Decimal(billed - row.initial_increment)),
    )
    cost = ctx.add(row.connection_fee, ctx.divide(per_minute, 60))
    if row.min_cost is not None and cost < row.min_cost:
        cost = row.min_cost
    if row.max_cost is not None and cost > row.max_cost:
        cost = row.max_cost
    return cost.quantize(quantum, rounding=ROUNDING_MODES[rounding], context=ctx)


def _effective(links: list[Link], t: datetime, what: str) -> list[Link]:
    found = [link for link in links if link.effective_at(t)]
    if len(found) > 1:
        msg = f"reference data overlaps for {what} at {t.isoformat()}: {found}"
        raise ValueError(msg)
    return found


def find_plan(
    data: ReferenceData, scope: str, account_id: str, tenant_id: str, t: datetime
) -> Plan | None:
    """The plan associated with the account in that scope at t, of the CDR's tenant."""
    links = [
        link
        for link in data.associations.get((scope, account_id), [])
        if link.target in data.plans and data.plans[link.target].tenant_id == tenant_id
    ]
    found = _effective(links, t, f"association {scope}:{account_id}")
    if not found:
        return None
    plan = data.plans[found[0].target]
    if plan.scope != scope:
        msg = f"association {scope}:{account_id} points at {plan.scope} plan {plan.plan_id}"
        raise ValueError(msg)
    return plan


def find_reseller(data: ReferenceData, cdr: ValidCdr) -> str | None:
    """The CDR's reseller_id, else the client's membership, else its enrollment's, else None."""
    if cdr.reseller_id is not None:
        return cdr.reseller_id
    found = _effective(data.memberships.get(cdr.client_id, []), cdr.start_time, cdr.client_id)
    if found:
        return found[0].target
    enrolled = [e for e in data.enrollments.get(cdr.client_id, []) if e[0] <= cdr.start_time]
    return max(enrolled, key=lambda e: e[0])[1] if enrolled else None


def caller_group(data: ReferenceData, tenant_id: str, caller: str | None) -> str | None:
    """The tenant's origin group with a prefix that starts the normalised caller, if any."""
    if caller is None:
        return None
    groups = {
        group
        for prefix, group in data.origin_groups.get(tenant_id, [])
        if caller.startswith(prefix)
    }
    if len(groups) > 1:
        msg = f"caller {caller} of tenant {tenant_id} is in several origin groups: {groups}"
        raise ValueError(msg)
    return next(iter(groups), None)


def band_at(data: ReferenceData, plan: Plan, t: datetime) -> str | None:
    """The plan's band at instant t on its own wall clock: a holiday's band, else the week's."""
    local = t.astimezone(plan.timezone)
    holiday = data.holidays.get((plan.plan_id, local.date()))
    if holiday is not None:
        return holiday
    minute = local.hour * 60 + local.minute
    for band in data.time_bands.get(plan.plan_id, []):
        if local.weekday() in band.weekdays and band.start_minute <= minute < band.end_minute:
            return band.band
    return None  # a plan without bands


def match_prefix(
    deck: dict[str, list[DeckRow]],
    callee: str,
    t: datetime,
    *,
    origin_group: str | None = None,
    band: str | None = None,
) -> DeckRow | None:
    """The winning deck row for a call, or None (``no_prefix``).

    Candidates: effective at t, prefix starts the callee, origin empty or the caller's group,
    band empty or the call's band. Winner: the longest prefix; then a row with an origin; then a
    row with a band; then the later effective_from.
    """
    for length in range(len(callee), 0, -1):
        candidates = [
            row
            for row in deck.get(callee[:length], [])
            if row.effective_at(t)
            and (row.origin == "" or row.origin == origin_group)
            and (row.band == "" or row.band == band)
        ]
        if candidates:
            return max(
                candidates,
                key=lambda row: (row.origin != "", row.band != "", row.effective_from),
            )
    return None


def _empty_leg(row: dict[str, object], leg: str) -> None:
    for column in (*LEG_COLUMNS, *V2_LEG_COLUMNS):
        row[f"{leg}_{column}"] = None


def rate_cdr(data: ReferenceData, cdr: ValidCdr) -> dict[str, object]:
    """Rate one valid CDR on its three legs and return the call-history row."""
    reseller_id = find_reseller(data, cdr)
    row: dict[str, object] = {
        "cdr_id": cdr.cdr_id,
        "session_id": cdr.session_id,
        "tenant_id": cdr.tenant_id,
        "customer_id": cdr.customer_id,
        "client_id": cdr.client_id,
        "reseller_id": reseller_id,
        "callee": cdr.callee,
        "start_time": cdr.start_time,
        "duration_ms": cdr.duration_ms,
    }
    accounts = {"customer": cdr.customer_id, "client": cdr.client_id, "reseller": reseller_id}
    group = caller_group(data, cdr.tenant_id, cdr.caller)
    failures: list[str] = []
    for leg in LEGS:
        _empty_leg(row, leg)
        account = accounts[leg]
        if account is None:
            continue  # Direct: no reseller leg
        plan = find_plan(data, leg, account, cdr.tenant_id, cdr.start_time)
        if plan is None:
            if leg == "customer":
                failures.append("customer:no_plan")
            continue
        deck_row = match_prefix(
            data.decks.get(plan.plan_id, {}),
            cdr.callee,
            cdr.start_time,
            origin_group=group,
            band=band_at(data, plan, cdr.start_time),
        )
        if deck_row is None:
            failures.append(f"{leg}:no_prefix")
            continue
        billed = billed_seconds(
            cdr.duration_ms,
            deck_row.initial_increment,
            deck_row.subsequent_increment,
            duration_rounding=plan.duration_rounding,
            grace_seconds=deck_row.grace_seconds,
        )
        row[f"{leg}_plan_id"] = plan.plan_id
        row[f"{leg}_prefix"] = deck_row.prefix
        row[f"{leg}_destination"] = deck_row.destination
        row[f"{leg}_rate"] = deck_row.rate
        row[f"{leg}_billed_seconds"] = billed
        row[f"{leg}_amount"] = leg_amount(deck_row, billed, plan.decimals, plan.rounding)
        row[f"{leg}_currency"] = plan.currency
        row[f"{leg}_origin"] = deck_row.origin or None
        row[f"{leg}_band"] = deck_row.band or None
    row["status"] = "unrated" if failures else "rated"
    row["unrated_reason"] = ";".join(failures) if failures else None
    return row


def rate_reference(plans_dir: Path, cdr_lines: Sequence[str]) -> ReferenceResult:
    """Validate and rate every line; blank lines are skipped, line numbers are 1-based."""
    data = load_reference_data(plans_dir)
    result = ReferenceResult()
    for number, line in enumerate(cdr_lines, start=1):
        if line.strip(" \t\r\n") == "":
            continue
        try:
            cdr = validate_line(line)
        except InvalidCdr as exc:
            result.rejected[number] = str(exc)
            continue
        if cdr.cdr_id in result.rows:
            result.duplicates[number] = cdr.cdr_id
            continue
        result.rows[cdr.cdr_id] = rate_cdr(data, cdr)
    return result
