"""The sensible per-row rater: what a competent Python developer writes first (issue 17).

One line at a time, with the fast stdlib choices and nothing deliberately slow:

- ``json.loads`` per line (stdlib ``json``: what one reaches for first; ``orjson``/``msgspec``
  are a later optimisation and another dependency), the ``cdr.v1`` rules of DESIGN.md section 3
  checked in plain Python; RFC 3339 by one compiled regex, with the day number of each date
  cached (a month of CDRs has ~31 dates), so each timestamp is parsed once per line;
- reference data in dicts built once: associations and memberships per account, and per plan
  a dict ``prefix -> {(origin, band): (starts, rows)}`` with the rows sorted by
  ``effective_from``; the longest prefix by trying ``callee[:n]`` from the longest down and
  ``bisect`` for the row in effect at the start time;
- ``Decimal`` money with the plan's rounding, the deck's numbers converted once at load;
- tariff v2 (DESIGN.md section 8) where the plans folder uses it: zones via ``zoneinfo``
  (the local time computed once per call and zone), weekly bands as a minute-of-week table per
  plan, holidays, caller origin groups, ``duration_rounding``, ``initial_rate``, grace,
  ``min_cost``/``max_cost``;
- a row is a tuple in :data:`NAMES` order (no dict per row); the file rater collects them
  (with the cyclic GC paused: the one non-obvious fix its profile pointed to) and writes ONE
  Parquet file at the end, pyarrow's default settings (:mod:`benchmarks.per_row_file`).

Written without the usual waste (a timestamp, the caller or a local time computed once per
call, not per leg; deck numbers converted once at load; no dict per row); then cProfile on
20,000 lines showed two more things a developer fixes in ten minutes: trying prefix lengths
above the deck's longest (most dict lookups missed), and, on 600,000 lines, the cyclic GC
(see :func:`benchmarks.per_row_file.rate_file`). Kept: stdlib ``json`` (``orjson`` or
``msgspec`` are a dependency one adds later), the strict RFC 3339 regex (``fromisoformat``
accepts a space separator and refuses a lower-case ``t``/``z``, so it would not agree with the
contract), ``Decimal`` arithmetic per leg.

It follows the engine's rules exactly and the harness checks it row for row against
``rate_batch`` (same rated rows, same amounts, same rejected lines). It imports nothing of the
pipeline: it is what someone would write without it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

LEGS = ("customer", "client", "reseller")
LEG_FIELDS = (
    "plan_id",
    "deck_version",
    "prefix",
    "destination",
    "rate",
    "billed_seconds",
    "amount",
    "currency",
    "origin",
    "band",
)
BASE = (
    "cdr_id",
    "session_id",
    "tenant_id",
    "customer_id",
    "client_id",
    "reseller_id",
    "cdr_reseller_id",
    "caller",
    "callee",
    "start_time",
    "answer_time",
    "end_time",
    "duration_ms",
    "disposition",
    "sip_code",
    "status",
    "unrated_reason",
    "rated_at",
    "reference_version",
)
#: The call-history columns, in the order of a row tuple (those of DESIGN.md section 4).
NAMES = (*BASE, *(f"{leg}_{name}" for leg in LEGS for name in LEG_FIELDS))
REQUIRED_TEXT = (
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
DISPOSITIONS = frozenset({"ANSWERED", "NO_ANSWER", "BUSY", "FAILED", "CANCELLED"})
ROUNDING = {"half_up": ROUND_HALF_UP, "up": ROUND_UP, "down": ROUND_DOWN}
OPEN = 2**62
_INT64 = 2**63 - 1
_TS = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:[Zz]|([+-])(\d{2}):(\d{2}))"
)
_DIGITS = re.compile(r"[0-9]{3,15}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY = date(1970, 1, 1).toordinal()
_DAY_US = 86_400_000_000
_SIXTY = Decimal(60)
_ZERO = Decimal(0)
_NO_LEG = (None,) * len(LEG_FIELDS)
# Money uses the default decimal context (28 digits): an amount of the contract's range needs
# at most ~22 before the rounding, and n / 60 has a period of one digit (3 or 6), so rounding
# the quotient at 28 digits can never make or break a half-way tie at 6 decimals.


# --- parsing ----------------------------------------------------------------------------------

_DAYS: dict[str, int | None] = {}


def _day(text: str) -> int | None:
    """Days since 1970-01-01 of ``YYYY-MM-DD`` (None if no such date), cached per date."""
    try:
        return _DAYS[text]
    except KeyError:
        pass
    try:
        value: int | None = date.fromisoformat(text).toordinal() - _EPOCH_DAY
    except ValueError:
        value = None
    _DAYS[text] = value
    return value


def parse_time(text: object) -> int | None:
    """RFC 3339 text to epoch microseconds (fraction truncated), None if not valid."""
    if not isinstance(text, str):
        return None
    m = _TS.fullmatch(text)
    if m is None or not text.isascii():
        return None
    day_text, hour, minute, second, fraction, sign, oh, om = m.groups()
    day = _day(day_text)
    h, mi, s = int(hour), int(minute), int(second)
    if day is None or h > 23 or mi > 59 or s > 59:
        return None
    micros = day * _DAY_US + ((h * 60 + mi) * 60 + s) * 1_000_000
    if fraction:
        micros += int(fraction[:6].ljust(6, "0"))
    if sign:
        oh_, om_ = int(oh), int(om)
        if oh_ > 23 or om_ > 59:
            return None
        offset = (oh_ * 60 + om_) * 60_000_000
        micros += -offset if sign == "+" else offset
    return micros


def normalise_number(text: str) -> str:
    """Strip spaces and dashes, then one leading ``+`` or ``00`` (DESIGN.md section 3)."""
    number = text.replace(" ", "").replace("-", "")
    if number.startswith("+"):
        return number[1:]
    if number.startswith("00"):
        return number[2:]
    return number


def _text(value: object) -> str | None:
    """A JSON value where text is expected (numbers and booleans taken as their text)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value)


@dataclass
class Cdr:
    """A valid CDR: the fields the rater needs, each parsed once."""

    fields: dict[str, Any]  # the required texts, reseller_id, disposition, sip_code
    callee: str
    start: int
    answer: int | None
    end: int
    duration: int


def decode(message: bytes) -> Cdr | str:
    """A valid :class:`Cdr`, or the rejection reason (``;``-joined problems)."""
    try:
        value = json.loads(message)
    except ValueError:
        return "not_json"
    if not isinstance(value, dict):
        return "not_object"
    problems: list[str] = []
    fields: dict[str, Any] = {}
    for name in REQUIRED_TEXT:
        text = value.get(name)
        if type(text) is not str:
            text = _text(text)
        fields[name] = text
        if text is None:
            problems.append(f"missing:{name}")
        elif text == "":
            problems.append(f"empty:{name}")
    reseller = _text(value.get("reseller_id"))
    if reseller == "":
        problems.append("empty:reseller_id")
    callee = ""
    if fields["callee"]:
        callee = normalise_number(fields["callee"])
        if not _DIGITS.fullmatch(callee):
            problems.append("invalid:callee")
    start = parse_time(fields["start_time"])
    end = parse_time(fields["end_time"])
    answer_text = value.get("answer_time")
    answer = None if answer_text is None else parse_time(answer_text)
    if fields["start_time"] and start is None:
        problems.append("invalid:start_time")
    if fields["end_time"] and end is None:
        problems.append("invalid:end_time")
    if answer_text is not None and answer is None:
        problems.append("invalid:answer_time")
    if start is not None and end is not None and end < start:
        problems.append("invalid:end_time")
    duration = value.get("duration_ms")
    if duration is None:
        problems.append("missing:duration_ms")
    elif type(duration) is not int or duration < 0 or duration > _INT64:
        problems.append("invalid:duration_ms")
    disposition = value.get("disposition")
    if disposition is not None and disposition not in DISPOSITIONS:
        problems.append("invalid:disposition")
    sip = value.get("sip_code")
    if sip is not None and (type(sip) is not int or not 100 <= sip <= 699):
        problems.append("invalid:sip_code")
    if problems or start is None or end is None or type(duration) is not int:
        return ";".join(problems) or "invalid"
    fields["reseller_id"] = reseller
    fields["disposition"] = disposition
    fields["sip_code"] = sip
    return Cdr(fields, callee, start, answer, end, duration)


# --- reference data ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DeckRow:
    """One deck row, its numbers converted once."""

    prefix: str
    destination: str
    rate: Decimal
    rate_out: Decimal  # the rate as the engine reports it (9 decimals)
    fee: Decimal
    initial: int
    subsequent: int
    start: int
    until: int
    initial_rate: Decimal
    grace: int
    min_cost: Decimal | None
    max_cost: Decimal | None
    origin: str | None
    band: str | None


@dataclass
class Plan:
    """A plan, its rounding, its zone and its weekly bands and holidays (tariff v2)."""

    plan_id: str
    tenant_id: str
    currency: str
    quantum: Decimal
    rounding: str
    deck_version: str
    duration_rounding: str = "up"
    zone: ZoneInfo | None = None
    zone_name: str = "UTC"
    week: list[str | None] | None = None  # band per minute of the week (Monday 00:00 = 0)
    holidays: dict[date, str] = field(default_factory=dict)
    longest: int = 0  # the deck's longest prefix: shorter callee slices are tried first
    # prefix -> (origin, band) -> (starts, rows), rows sorted by effective_from
    deck: dict[str, dict[tuple[str, str], tuple[list[int], list[DeckRow]]]] = field(
        default_factory=dict
    )


@dataclass
class Reference:
    """Plain dicts: what the per-row rater looks things up in."""

    plans: dict[str, Plan] = field(default_factory=dict)
    associations: dict[tuple[str, str, str], list[tuple[int, int, str]]] = field(
        default_factory=dict
    )
    memberships: dict[str, list[tuple[int, int, str]]] = field(default_factory=dict)
    origins: dict[str, dict[str, str]] = field(default_factory=dict)  # tenant -> prefix -> group
    version: str = "per-row"


def _time(text: str) -> int:
    value = parse_time(text)
    if value is None:
        msg = f"bad timestamp {text!r}"
        raise ValueError(msg)
    return value


def _until(text: str | None) -> int:
    return _time(text) if text and text.strip() else OPEN


def _csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return [
            {k.strip(): (v or "").strip() for k, v in row.items()} for row in csv.DictReader(handle)
        ]


_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _days(text: str) -> list[int]:
    if "-" in text:
        first, last = (t.strip() for t in text.split("-"))
        return list(range(_WEEKDAYS.index(first), _WEEKDAYS.index(last) + 1))
    return [_WEEKDAYS.index(t.strip()) for t in text.split(",")]


def _minute(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _optional(text: str | None) -> Decimal | None:
    return Decimal(text) if text else None


def load_reference(folder: Path) -> Reference:
    """Read a plans folder (already validated by the pipeline) into dicts."""
    ref = Reference()
    for row in _csv(folder / "plans.csv"):
        deck_path = folder / "decks" / f"{row['plan_id']}.csv"
        zone_name = row.get("timezone") or "UTC"
        plan = Plan(
            row["plan_id"],
            row["tenant_id"],
            row["currency"],
            Decimal(1).scaleb(-int(row.get("decimals") or 6)),
            ROUNDING[row.get("rounding") or "half_up"],
            hashlib.sha256(deck_path.read_bytes()).hexdigest()[:16],
            row.get("duration_rounding") or "up",
            ZoneInfo(zone_name),
            zone_name,
        )
        ref.plans[plan.plan_id] = plan
        for d in _csv(deck_path):
            rate = Decimal(d["rate"])
            deck_row = DeckRow(
                d["prefix"],
                d.get("destination") or "",
                rate,
                rate.quantize(Decimal("1e-9")),
                Decimal(d.get("connection_fee") or "0"),
                int(d.get("initial_increment") or 1),
                int(d.get("subsequent_increment") or 1),
                _time(d["effective_from"]),
                _until(d.get("effective_until")),
                Decimal(d["initial_rate"]) if d.get("initial_rate") else rate,
                int(d.get("grace_seconds") or 0),
                _optional(d.get("min_cost")),
                _optional(d.get("max_cost")),
                d.get("origin") or None,
                d.get("band") or None,
            )
            variants = plan.deck.setdefault(deck_row.prefix, {})
            key = (d.get("origin", ""), d.get("band", ""))
            variants.setdefault(key, ([], []))[1].append(deck_row)
        plan.longest = max(map(len, plan.deck), default=0)
        for variants in plan.deck.values():
            for key, (_, rows) in list(variants.items()):
                rows.sort(key=lambda r: r.start)
                variants[key] = ([r.start for r in rows], rows)
    for b in _csv(folder / "time_bands.csv"):
        plan = ref.plans[b["plan_id"]]
        if plan.week is None:
            plan.week = [None] * (7 * 1440)
        for day in _days(b["weekdays"]):
            for minute in range(_minute(b["start"]), _minute(b["end"])):
                plan.week[day * 1440 + minute] = b["band"]
    for h in _csv(folder / "holidays.csv"):
        ref.plans[h["plan_id"]].holidays[date.fromisoformat(h["date"])] = h["band"]
    for g in _csv(folder / "origin_groups.csv"):
        ref.origins.setdefault(g["tenant_id"], {})[g["prefix"]] = g["group"]
    for a in _csv(folder / "associations.csv"):
        tenant = ref.plans[a["plan_id"]].tenant_id
        ref.associations.setdefault((a["scope"], tenant, a["account_id"]), []).append(
            (_time(a["effective_from"]), _until(a.get("effective_until")), a["plan_id"])
        )
    for m in _csv(folder / "memberships.csv"):
        ref.memberships.setdefault(m["client_id"], []).append(
            (_time(m["effective_from"]), _until(m.get("effective_until")), m["reseller_id"])
        )
    return ref


# --- rating -----------------------------------------------------------------------------------


def _at(intervals: list[tuple[int, int, str]] | None, t: int) -> str | None:
    if intervals:
        for start, until, value in intervals:
            if start <= t < until:
                return value
    return None


def _effective(starts: list[int], rows: list[DeckRow], t: int) -> DeckRow | None:
    """The row in effect at ``t`` with the latest effective_from (bisect, then step back)."""
    i = bisect_right(starts, t) - 1
    while i >= 0:
        row = rows[i]
        if t < row.until:
            return row
        i -= 1
    return None


def caller_group(ref: Reference, tenant: str, caller: str) -> str:
    """The caller's origin group in its tenant ('' when none or not a number)."""
    groups = ref.origins.get(tenant)
    if not groups:
        return ""
    number = normalise_number(caller)
    if not _DIGITS.fullmatch(number):
        return ""
    for n in range(len(number), 0, -1):
        group = groups.get(number[:n])
        if group is not None:
            return group
    return ""


def band_of(plan: Plan, t: int, local: dict[str, datetime]) -> str:
    """The plan's band at ``t`` on its local clock ('' when the plan has no bands)."""
    if plan.week is None:
        return ""
    moment = local.get(plan.zone_name)
    if moment is None:  # once per call and zone, whatever the number of legs
        moment = (_EPOCH + timedelta(microseconds=t)).astimezone(plan.zone)
        local[plan.zone_name] = moment
    holiday = plan.holidays.get(moment.date()) if plan.holidays else None
    if holiday is not None:
        return holiday
    return plan.week[moment.weekday() * 1440 + moment.hour * 60 + moment.minute] or ""


def variant_keys(group: str, band: str) -> tuple[tuple[str, str], ...]:
    """The (origin, band) variants a call may match, best first (DESIGN.md section 8 rule 3)."""
    keys = []
    if group and band:
        keys.append((group, band))
    if group:
        keys.append((group, ""))
    if band:
        keys.append(("", band))
    keys.append(("", ""))
    return tuple(keys)


_PLAIN = (("", ""),)


def match(
    plan: Plan, callee: str, t: int, keys: tuple[tuple[str, str], ...] = _PLAIN
) -> DeckRow | None:
    """Longest prefix first; then a row with an origin, then one with a band (the order of
    ``keys``); then the later effective_from (DESIGN.md sections 4 and 8)."""
    deck = plan.deck
    for n in range(min(plan.longest, len(callee)), 0, -1):
        variants = deck.get(callee[:n])
        if variants is None:
            continue
        for key in keys:
            found = variants.get(key)
            if found is not None:
                row = _effective(found[0], found[1], t)
                if row is not None:
                    return row
    return None


def price(row: DeckRow, plan: Plan, duration_ms: int) -> tuple[int, Decimal]:
    """Billed seconds and the rounded amount (DESIGN.md section 4 rules 3-4, section 8 rule 4-5)."""
    rounding = plan.duration_rounding
    if rounding == "up":
        seconds = -(-duration_ms // 1000)
    elif rounding == "down":
        seconds = duration_ms // 1000
    else:
        seconds = (duration_ms + 500) // 1000
    if seconds == 0 or seconds <= row.grace:
        return 0, _ZERO
    initial = row.initial
    billed = (
        initial
        if seconds <= initial
        else initial + -(-(seconds - initial) // row.subsequent) * row.subsequent
    )
    if row.initial_rate == row.rate:
        cost = row.fee + row.rate * billed / _SIXTY
    else:
        cost = row.fee + (row.initial_rate * initial + row.rate * (billed - initial)) / _SIXTY
    if row.min_cost is not None and cost < row.min_cost:
        cost = row.min_cost
    if row.max_cost is not None and cost > row.max_cost:
        cost = row.max_cost
    return billed, cost.quantize(plan.quantum, rounding=plan.rounding)


def rate_cdr(ref: Reference, cdr: Cdr, rated_at: int) -> tuple[Any, ...]:
    """The call-history row of a valid CDR, a tuple in :data:`NAMES` order."""
    f = cdr.fields
    t = cdr.start
    tenant = f["tenant_id"]
    reseller = f["reseller_id"]
    if reseller is None:
        reseller = _at(ref.memberships.get(f["client_id"]), t)
    group: str | None = None
    local: dict[str, datetime] = {}
    legs: list[tuple[Any, ...]] = []
    failures: list[str] = []
    for leg, account in zip(LEGS, (f["customer_id"], f["client_id"], reseller), strict=True):
        plan_id = _at(ref.associations.get((leg, tenant, account)), t) if account else None
        if plan_id is None:
            if leg == "customer":
                failures.append("customer:no_plan")
            legs.append(_NO_LEG)
            continue
        plan = ref.plans[plan_id]
        if group is None:
            group = caller_group(ref, tenant, f["caller"]) if ref.origins else ""
        band = band_of(plan, t, local)
        keys = variant_keys(group, band) if group or band else _PLAIN
        row = match(plan, cdr.callee, t, keys)
        if row is None:
            failures.append(f"{leg}:no_prefix")
            legs.append(_NO_LEG)
            continue
        billed, amount = price(row, plan, cdr.duration)
        legs.append(
            (
                plan.plan_id,
                plan.deck_version,
                row.prefix,
                row.destination,
                row.rate_out,
                billed,
                amount,
                plan.currency,
                row.origin,
                row.band,
            )
        )
    reason = ";".join(failures) if failures else None
    return (
        f["cdr_id"],
        f["session_id"],
        tenant,
        f["customer_id"],
        f["client_id"],
        reseller,
        f["reseller_id"],
        f["caller"],
        cdr.callee,
        t,
        cdr.answer,
        cdr.end,
        cdr.duration,
        f["disposition"],
        f["sip_code"],
        "unrated" if reason else "rated",
        reason,
        rated_at,
        ref.version,
        *legs[0],
        *legs[1],
        *legs[2],
    )


def rate_line(ref: Reference, message: bytes, rated_at: int) -> tuple[Any, ...] | str:
    """One message: its call-history row (a tuple in :data:`NAMES` order) or why it is rejected.

    Times in the row are epoch microseconds (``rated_at`` too).
    """
    cdr = decode(message)
    if isinstance(cdr, str):
        return cdr
    return rate_cdr(ref, cdr, rated_at)


def micros(moment: datetime) -> int:
    """Epoch microseconds of an aware instant."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def iso(us: int | None) -> str | None:
    """Epoch microseconds as ``YYYY-MM-DD HH:MM:SS.ffffff`` (UTC), the SQL literal form."""
    if us is None:
        return None
    return (_EPOCH + timedelta(microseconds=us)).strftime("%Y-%m-%d %H:%M:%S.%f")
