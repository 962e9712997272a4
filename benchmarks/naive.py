"""Baseline (a) per message: the sensible per-row rater, one message at a time, into chdb.

Each message goes through :func:`benchmarks.per_row.rate_line` (``json.loads``, the field rules
of DESIGN.md section 3 in plain Python, dict lookups, ``Decimal`` money, tariff v2; see
:mod:`benchmarks.per_row`) and :func:`rate_message` turns its row into values for
``INSERT ... VALUES`` of a few hundred rows into chdb (:func:`insert_values`). It follows the
same rules as the engine (:func:`compare_with_engine` checks every rated row against
``rate_batch`` and raises :class:`BaselineMismatchError` on any difference), so its speed is a
fair comparison. :func:`naive_task` is the harness's worker: the rater stage by stage and whole,
then the inserts.

The per-row baseline of before issue 17 (regex timestamps, linear deck scans, no tariff v2:
:func:`old_load_reference` and :func:`old_rate_message`) is kept only for
``python -m benchmarks.per_row_file --old``, to measure once how much slower it was.

Literal values are escaped by :func:`_literal` because ``INSERT ... VALUES`` text is what the
baseline measures; the pipeline itself never builds SQL from values.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal, localcontext
from pathlib import Path
from typing import Any

from benchmarks import per_row
from benchmarks.command_bench import LEG_COMPARED
from benchmarks.common import JSON, RATED_AT, PeakRss
from benchmarks.per_row import (  # the rules the old baseline shares with the sensible one
    _DIGITS,
    _EPOCH,
    _INT64,
    DISPOSITIONS,
    LEGS,
    REQUIRED_TEXT,
    ROUNDING,
    _csv,
    _text,
    _time,
    _until,
)

INSERT_ROWS = 500
_MONEY = Context(prec=80)
_TS = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:[Zz]|([+-])(\d{2}):(\d{2}))"
)


class BaselineMismatchError(AssertionError):
    """The naive baseline and the engine disagree: the comparison would be meaningless."""


def parse_time(text: object) -> int | None:
    """RFC 3339 text to epoch microseconds (fraction truncated), None if not valid."""
    if not isinstance(text, str):
        return None
    m = _TS.fullmatch(text)
    if m is None or not text.isascii():
        return None
    year, month, day, hour, minute, second, fraction, sign, oh, om = m.groups()
    try:
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int((fraction or "")[:6].ljust(6, "0")),
            tzinfo=UTC,
        )
    except ValueError:
        return None
    micros = (moment - _EPOCH) // timedelta(microseconds=1)
    if sign:
        if int(oh) > 23 or int(om) > 59:
            return None
        offset = (int(oh) * 60 + int(om)) * 60_000_000
        micros += -offset if sign == "+" else offset
    return micros


@dataclass
class Cdr:
    """A valid CDR, the fields the rater needs."""

    position: int
    fields: dict[str, Any]
    callee: str
    start: int
    answer: int | None
    end: int
    duration: int


def decode(position: int, message: bytes) -> Cdr | str:
    """A valid :class:`Cdr`, or the rejection reason."""
    if not message.strip():
        return "empty"
    try:
        value = json.loads(message)
    except ValueError:
        return "not_json"
    if not isinstance(value, dict):
        return "not_object"
    problems: list[str] = []
    fields = {name: _text(value.get(name)) for name in REQUIRED_TEXT}
    for name in REQUIRED_TEXT:
        if fields[name] is None:
            problems.append(f"missing:{name}")
        elif fields[name] == "":
            problems.append(f"empty:{name}")
    reseller = _text(value.get("reseller_id"))
    if reseller == "":
        problems.append("empty:reseller_id")
    callee = ""
    raw_callee = fields["callee"]
    if raw_callee:
        callee = raw_callee.replace(" ", "").replace("-", "")
        if callee.startswith("+"):
            callee = callee[1:]
        elif callee.startswith("00"):
            callee = callee[2:]
        if not _DIGITS.fullmatch(callee):
            problems.append("invalid:callee")
    start = parse_time(fields["start_time"])
    end = parse_time(fields["end_time"])
    answer_text = value.get("answer_time")
    answer = parse_time(answer_text)
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
    elif (
        isinstance(duration, bool)
        or not isinstance(duration, int)
        or duration < 0
        or duration > _INT64
    ):
        problems.append("invalid:duration_ms")
    disposition = value.get("disposition")
    if disposition is not None and disposition not in DISPOSITIONS:
        problems.append("invalid:disposition")
    sip = value.get("sip_code")
    if sip is not None and (
        isinstance(sip, bool) or not isinstance(sip, int) or not 100 <= sip <= 699
    ):
        problems.append("invalid:sip_code")
    if problems:
        return ";".join(problems)
    fields["reseller_id"] = reseller
    fields["disposition"] = disposition
    fields["sip_code"] = sip
    if start is None or end is None or not isinstance(duration, int):  # pragma: no cover
        return "invalid"
    return Cdr(position, fields, callee, start, answer, end, duration)


# --- reference data ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DeckRow:
    """One deck row, money as Decimal."""

    prefix: str
    destination: str
    rate: Decimal
    fee: Decimal
    initial: int
    subsequent: int
    start: int
    until: int


@dataclass(frozen=True)
class Plan:
    """A plan and its rules."""

    plan_id: str
    tenant_id: str
    currency: str
    decimals: int
    rounding: str
    deck_version: str


@dataclass
class Reference:
    """Plain dicts of lists: what the naive rater looks things up in."""

    plans: dict[str, Plan] = field(default_factory=dict)
    decks: dict[str, dict[str, list[DeckRow]]] = field(default_factory=dict)
    associations: dict[tuple[str, str, str], list[tuple[int, int, str]]] = field(
        default_factory=dict
    )
    memberships: dict[str, list[tuple[int, int, str]]] = field(default_factory=dict)


def old_load_reference(folder: Path) -> Reference:
    """Read a plans folder into dicts (the old baseline's reference data)."""
    ref = Reference()
    for row in _csv(folder / "plans.csv"):
        deck_path = folder / "decks" / f"{row['plan_id']}.csv"
        version = hashlib.sha256(deck_path.read_bytes()).hexdigest()[:16]
        plan = Plan(
            row["plan_id"],
            row["tenant_id"],
            row["currency"],
            int(row.get("decimals") or 6),
            row.get("rounding") or "half_up",
            version,
        )
        ref.plans[plan.plan_id] = plan
        deck: dict[str, list[DeckRow]] = {}
        for d in _csv(deck_path):
            deck.setdefault(d["prefix"], []).append(
                DeckRow(
                    d["prefix"],
                    d.get("destination") or "",
                    Decimal(d["rate"]),
                    Decimal(d.get("connection_fee") or "0"),
                    int(d.get("initial_increment") or 1),
                    int(d.get("subsequent_increment") or 1),
                    _time(d["effective_from"]),
                    _until(d.get("effective_until")),
                )
            )
        ref.decks[plan.plan_id] = deck
    for a in _csv(folder / "associations.csv"):
        tenant = ref.plans[a["plan_id"]].tenant_id
        key = (a["scope"], tenant, a["account_id"])
        ref.associations.setdefault(key, []).append(
            (_time(a["effective_from"]), _until(a.get("effective_until")), a["plan_id"])
        )
    for m in _csv(folder / "memberships.csv"):
        ref.memberships.setdefault(m["client_id"], []).append(
            (_time(m["effective_from"]), _until(m.get("effective_until")), m["reseller_id"])
        )
    return ref


# --- rating -----------------------------------------------------------------------------------


def _at(intervals: list[tuple[int, int, str]] | None, t: int) -> str | None:
    for start, until, value in intervals or ():
        if start <= t < until:
            return value
    return None


def attribute(ref: Reference, cdr: Cdr) -> str | None:
    """The CDR's reseller, else the client's membership at the start, else None (Direct)."""
    explicit = cdr.fields["reseller_id"]
    if explicit is not None:
        return str(explicit)
    return _at(ref.memberships.get(cdr.fields["client_id"]), cdr.start)


def plans_of(ref: Reference, cdr: Cdr, reseller: str | None) -> list[str | None]:
    """The plan of each leg at the start time (None: no plan)."""
    tenant = cdr.fields["tenant_id"]
    accounts = (cdr.fields["customer_id"], cdr.fields["client_id"], reseller)
    return [
        _at(ref.associations.get((leg, tenant, account)), cdr.start) if account else None
        for leg, account in zip(LEGS, accounts, strict=True)
    ]


def longest_prefix(deck: dict[str, list[DeckRow]], callee: str, t: int) -> DeckRow | None:
    """Try ``callee[:n]`` for n from 15 down; among effective rows the later start wins."""
    for n in range(min(15, len(callee)), 0, -1):
        rows = deck.get(callee[:n])
        if rows:
            best: DeckRow | None = None
            for row in rows:
                if row.start <= t < row.until and (best is None or row.start > best.start):
                    best = row
            if best is not None:
                return best
    return None


def billed_seconds(duration_ms: int, initial: int, subsequent: int) -> int:
    """DESIGN.md section 4 rule 3."""
    seconds = -(-duration_ms // 1000)
    if seconds == 0:
        return 0
    if seconds <= initial:
        return initial
    return initial + -(-(seconds - initial) // subsequent) * subsequent


def cost(row: DeckRow, plan: Plan, duration_ms: int) -> tuple[int, Decimal]:
    """Billed seconds and the rounded amount, in Decimal."""
    billed = billed_seconds(duration_ms, row.initial, row.subsequent)
    if billed == 0:
        return 0, Decimal(0)
    with localcontext(_MONEY):
        exact = row.fee + row.rate * billed / 60
        amount = exact.quantize(Decimal(1).scaleb(-plan.decimals), rounding=ROUNDING[plan.rounding])
    return billed, amount


@dataclass
class Leg:
    """One leg's outcome."""

    plan: Plan | None = None
    row: DeckRow | None = None
    billed: int | None = None
    amount: Decimal | None = None
    failure: str | None = None


def legs_for(ref: Reference, cdr: Cdr, plan_ids: list[str | None]) -> list[Leg]:
    """Match and price each leg."""
    out: list[Leg] = []
    for leg, plan_id in zip(LEGS, plan_ids, strict=True):
        if plan_id is None:
            out.append(Leg(failure="customer:no_plan" if leg == "customer" else None))
            continue
        row = longest_prefix(ref.decks[plan_id], cdr.callee, cdr.start)
        if row is None:
            out.append(Leg(ref.plans[plan_id], failure=f"{leg}:no_prefix"))
        else:
            out.append(Leg(ref.plans[plan_id], row))
    return out


def price(legs: list[Leg], cdr: Cdr) -> None:
    """Fill billed seconds and amounts of the legs that matched."""
    for leg in legs:
        if leg.row is not None and leg.plan is not None:
            leg.billed, leg.amount = cost(leg.row, leg.plan, cdr.duration)


def _iso(micros: int | None) -> str | None:
    if micros is None:
        return None
    moment = _EPOCH + timedelta(microseconds=micros)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def history_row(cdr: Cdr, reseller: str | None, legs: list[Leg], rated_at: str) -> dict[str, Any]:
    """The call-history row by column name (the insert orders it by the table's schema)."""
    f = cdr.fields
    failures = [leg.failure for leg in legs if leg.failure]
    reason = ";".join(failures) if failures else None
    row: dict[str, Any] = {
        "cdr_id": f["cdr_id"],
        "session_id": f["session_id"],
        "tenant_id": f["tenant_id"],
        "customer_id": f["customer_id"],
        "client_id": f["client_id"],
        "reseller_id": reseller,
        "cdr_reseller_id": f["reseller_id"],
        "caller": f["caller"],
        "callee": cdr.callee,
        "start_time": _iso(cdr.start),
        "answer_time": _iso(cdr.answer),
        "end_time": _iso(cdr.end),
        "duration_ms": cdr.duration,
        "disposition": f["disposition"],
        "sip_code": f["sip_code"],
        "status": "unrated" if reason else "rated",
        "unrated_reason": reason,
        "rated_at": rated_at,
        "reference_version": "naive",
    }
    for name, leg in zip(LEGS, legs, strict=True):
        plan = leg.plan if leg.row is not None else None
        row[f"{name}_plan_id"] = plan.plan_id if plan else None
        row[f"{name}_deck_version"] = plan.deck_version if plan else None
        row[f"{name}_prefix"] = leg.row.prefix if leg.row else None
        row[f"{name}_destination"] = leg.row.destination if leg.row else None
        row[f"{name}_rate"] = leg.row.rate if leg.row else None
        row[f"{name}_billed_seconds"] = leg.billed
        row[f"{name}_amount"] = leg.amount
        row[f"{name}_currency"] = plan.currency if plan else None
    return row


def old_rate_message(
    ref: Reference, position: int, message: bytes, rated_at: str
) -> dict[str, Any] | str:
    """The per-row baseline of before issue 17 (regex timestamps, linear deck scans): kept only
    to measure once how much slower it was than :func:`rate_message`."""
    cdr = decode(position, message)
    if isinstance(cdr, str):
        return cdr
    reseller = attribute(ref, cdr)
    legs = legs_for(ref, cdr, plans_of(ref, cdr, reseller))
    price(legs, cdr)
    return history_row(cdr, reseller, legs, rated_at)


# --- the sensible per-message rater (issue 17): shared with the file baseline -------------------


def load_reference(folder: Path) -> per_row.Reference:
    """The sensible per-row rater's reference data (:func:`benchmarks.per_row.load_reference`)."""
    return per_row.load_reference(folder)


_TIMES = tuple(
    per_row.NAMES.index(n) for n in ("start_time", "answer_time", "end_time", "rated_at")
)


def rate_message(
    ref: per_row.Reference, position: int, message: bytes, rated_at: str
) -> dict[str, Any] | str:
    """One message through :func:`benchmarks.per_row.rate_line`: a call-history row by column
    name with times as SQL literals (what ``INSERT ... VALUES`` is built from), or the reason.

    ``position`` is kept for the callers' signature; ``rated_at`` is the SQL literal.
    """
    row = per_row.rate_line(ref, message, 0)
    if isinstance(row, str):
        return row
    values = list(row)
    for i in _TIMES:
        values[i] = per_row.iso(values[i])
    values[_TIMES[-1]] = rated_at
    return dict(zip(per_row.NAMES, values, strict=True))


# --- storage ----------------------------------------------------------------------------------


def _literal(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def insert_values(store: Any, rows: Sequence[dict[str, Any]], names: Sequence[str]) -> None:
    """One ``INSERT ... VALUES`` statement for ``rows`` (columns ``names``, missing = NULL)."""
    columns = ", ".join(f"`{name}`" for name in names)
    values = ",".join(
        "(" + ",".join(_literal(row.get(name)) for name in names) + ")" for row in rows
    )
    store.execute(f"INSERT INTO call_history ({columns}) VALUES {values}")


def insert_all(store: Any, rows: Sequence[dict[str, Any]], names: Sequence[str]) -> int:
    """Insert in chunks of ``INSERT_ROWS``; return the number of statements."""
    statements = 0
    for first in range(0, len(rows), INSERT_ROWS):
        insert_values(store, rows[first : first + INSERT_ROWS], names)
        statements += 1
    return statements


# --- comparison -------------------------------------------------------------------------------

COMPARED = ("reseller_id", "callee", "status", "unrated_reason")


def compare_with_engine(
    rows: Iterable[dict[str, Any]],
    rejected: dict[int, str],
    engine: Any,
    engine_rejected: set[int],
) -> int:
    """Raise :class:`BaselineMismatchError` unless every row equals the engine's; return the count.

    ``engine`` is the engine's call-history Arrow table; positions of rejected messages must
    match too.
    """
    wanted = ["cdr_id", *COMPARED, *(f"{leg}_{c}" for leg in LEGS for c in LEG_COMPARED)]
    theirs = {r["cdr_id"]: r for r in engine.select(wanted).to_pylist()}
    checked = 0
    problems: list[str] = []
    if set(rejected) != engine_rejected:
        only_naive = sorted(set(rejected) - engine_rejected)[:5]
        only_engine = sorted(engine_rejected - set(rejected))[:5]
        problems.append(
            f"rejected positions differ: naive only {only_naive}, engine only {only_engine}"
        )
    for mine in rows:
        other = theirs.get(mine["cdr_id"])
        if other is None:
            problems.append(f"{mine['cdr_id']}: not rated by the engine")
            continue
        for column in wanted[1:]:
            a, b = mine[column], other[column]
            if a != b and not (
                isinstance(a, Decimal) and isinstance(b, Decimal) and a.compare(b) == 0
            ):
                problems.append(f"{mine['cdr_id']}: {column} naive={a!r} engine={b!r}")
        checked += 1
        if len(problems) > 10:
            break
    if problems:
        msg = "naive baseline disagrees with the engine:\n  " + "\n  ".join(problems[:10])
        raise BaselineMismatchError(msg)
    return checked


# --- the worker task --------------------------------------------------------------------------


def naive_task(params: JSON) -> JSON:
    """Time the naive rater on ``count`` messages, per stage and whole, and check it."""
    from benchmarks.datagen import read_lines
    from pipeline.rating.columns import CALL_HISTORY_SCHEMA
    from pipeline.rating.decode import decode_cdrs
    from pipeline.rating.engine import rate_batch
    from pipeline.sinks.embedded import EmbeddedStore

    messages = read_lines(Path(params["cdrs"]), int(params["count"]))
    rss = PeakRss()
    rss.reset()
    started = time.perf_counter()
    ref = load_reference(Path(params["plans"]))
    load_s = time.perf_counter() - started
    load_mb = rss.peak_mb()
    rated_at = RATED_AT.strftime("%Y-%m-%d %H:%M:%S.%f")
    stages: dict[str, float] = {}
    peaks: dict[str, float] = {}

    def stage(name: str, began: float) -> None:
        stages[name] = time.perf_counter() - began
        peaks[name] = rss.peak_mb()

    # Stage by stage: each loop runs over the whole batch, so each can be timed on its own.
    rss.reset()
    began = time.perf_counter()
    decoded = [per_row.decode(m) for m in messages]
    stage("decode+validate", began)
    cdrs = [c for c in decoded if isinstance(c, per_row.Cdr)]
    rejected = {i: c for i, c in enumerate(decoded) if isinstance(c, str)}
    rss.reset()
    began = time.perf_counter()
    staged_rows = [per_row.rate_cdr(ref, c, 0) for c in cdrs]
    stage("rating x3 (attribution, plans, match, cost, row)", began)

    # The same job written the way it is first written: one message at a time.
    rss.reset()
    began = time.perf_counter()
    fused = [rate_message(ref, i, m, rated_at) for i, m in enumerate(messages)]
    whole_s = time.perf_counter() - began
    whole_mb = rss.peak_mb()
    fused_rows = [r for r in fused if not isinstance(r, str)]
    if [r[0] for r in staged_rows] != [r["cdr_id"] for r in fused_rows]:
        msg = "the staged and the per-message naive rater disagree"
        raise BaselineMismatchError(msg)

    # Check against the engine before any number is reported.
    decoded_engine = decode_cdrs(messages)
    engine_table = rate_batch(decoded_engine.good, _reference(params), RATED_AT)
    checked = compare_with_engine(
        fused_rows, rejected, engine_table, set(decoded_engine.rejected["position"].to_list())
    )

    names = list(CALL_HISTORY_SCHEMA.names)
    store_dir = Path(params["store"])
    with EmbeddedStore(store_dir) as store:
        store.migrate()
        insert_rows = fused_rows[: int(params.get("insert_count", len(fused_rows)))]
        rss.reset()
        began = time.perf_counter()
        statements = insert_all(store, insert_rows, names)
        insert_s = time.perf_counter() - began
        insert_mb = rss.peak_mb()
        stored = store.query("SELECT count() AS n FROM call_history").column("n")[0].as_py()
    if stored != len(insert_rows):
        msg = f"naive inserts stored {stored} rows, expected {len(insert_rows)}"
        raise BaselineMismatchError(msg)
    return {
        "messages": len(messages),
        "rated_rows": len(fused_rows),
        "rejected": len(rejected),
        "checked_against_engine": checked,
        "reference_load_s": load_s,
        "reference_load_mb": load_mb,
        "stages_s": stages,
        "stages_mb": peaks,
        "whole_s": whole_s,
        "whole_mb": whole_mb,
        "insert_rows": len(insert_rows),
        "insert_s": insert_s,
        "insert_mb": insert_mb,
        "insert_statements": statements,
        "rows_per_insert": INSERT_ROWS,
    }


def _reference(params: JSON) -> Any:
    from pipeline.reference.loader import load_plans_folder

    return load_plans_folder(Path(params["plans"]))
