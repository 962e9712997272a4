"""A carrier file made from our own calls with planted differences, reconciled into exactly them.

Our call history: 30 answered calls of gateway ``gw`` (client plan in EUR), two of them to one
number 3 s apart, plus what must stay out of the reconciliation: another gateway's calls, an
unanswered attempt, and a corrected CDR whose first version (another day) is hidden by a
tombstone. The carrier's file is made from our rows, then: 3 calls dropped, 2 extra calls, +1 s
on 3 durations (within tolerance) and +5 s on 2 (beyond), clocks shifted +2 s on 2 calls
(within: the bound is inclusive) and +3 s on 2 (beyond: each becomes one call only in theirs
and one only in ours), a changed rate on 2 calls (+10%) and a difference of +0.4% on 1 (within
0.5%), and the repeated call's two legs each 1 s late (they pair in order, not crossed). Every
call's class and the disputed amount are checked exactly, on both store paths; then the
command line with an Excel file, --out and --format json.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pipeline.cli import main
from pipeline.rating.reference import ReferenceData
from pipeline.reference.carrier_cdrs import read_cdr_profile
from pipeline.services.reconciliation import Reconciliation, Tolerances, reconcile
from pipeline.sinks.contracts import CallHistoryStore
from pipeline.sinks.embedded import EmbeddedStore
from tests.builders import cdr, deck_row, simple_reference
from tests.support.carrier_cdrs import CarrierCall, Layout, write_carrier_file, write_profile
from tests.support.stores import PATHS, open_path, rated, unique_database

RATED_AT = datetime(2026, 4, 1, tzinfo=UTC)
DAY = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
REPEATED = "4420790000"  # called twice, 3 s apart
SEMICOLON_BERLIN = Layout(
    delimiter=";",
    decimal_separator=",",
    timezone="Europe/Berlin",
    date_format="%d/%m/%Y %H:%M:%S",
    encoding="cp1252",
)


@dataclass(frozen=True)
class Ours:
    cdr_id: str
    callee: str
    start: datetime
    seconds: int
    amount: Decimal  # the client leg, EUR


def our_calls() -> list[Ours]:
    """30 answered calls of gw; client deck 44 at 0.06/min and 49 at 0.012/min, 1/1."""
    calls = []
    for i in range(30):
        callee = f"44207946{i:04d}" if i % 3 else f"49301234{i:04d}"
        start = DAY + timedelta(seconds=97 * i)
        if i == 29:
            callee, start = REPEATED, DAY + timedelta(seconds=97 * 28 + 3)
        if i == 28:
            callee = REPEATED
        seconds = 5 + (i * 37) % 600
        per_second = Decimal("0.001") if callee.startswith("44") else Decimal("0.0002")
        calls.append(Ours(f"c-{i:02d}", callee, start, seconds, per_second * seconds))
    return calls


def _text(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def write_history(store: CallHistoryStore, reference: ReferenceData) -> None:
    records = [
        cdr(
            cdr_id=c.cdr_id,
            session_id=c.cdr_id,
            callee=c.callee,
            start_time=_text(c.start),
            duration_ms=c.seconds * 1000,
        )
        for c in our_calls()
    ]
    # Not reconciled: another gateway's call to a number of the file, an unanswered attempt.
    records.append(
        cdr(cdr_id="other-gw", client_id="gw-2", callee="442079460001", start_time=_text(DAY))
    )
    records.append(
        cdr(
            cdr_id="unanswered",
            callee="442079469999",
            start_time=_text(DAY + timedelta(hours=1)),
            duration_ms=0,
            disposition="NO_ANSWER",
        )
    )
    # A corrected CDR: first published on 9 March, then moved into a call of 10 March.
    moved = cdr(cdr_id="moved", callee="442079468888", start_time="2026-03-09T23:59:59Z")
    store.write_call_history(rated(reference, [moved], RATED_AT - timedelta(days=1)))
    store.write_call_history(rated(reference, records, RATED_AT))
    fixed = {**moved, "start_time": _text(DAY + timedelta(hours=2)), "duration_ms": 42_000}
    store.write_call_history(rated(reference, [fixed], RATED_AT + timedelta(seconds=1)))


@dataclass(frozen=True)
class Planted:
    """The carrier's file and what each of its calls and ours must come out as."""

    calls: list[CarrierCall]
    their_class: dict[str, str]  # call_id -> class
    our_class: dict[str, str]  # cdr_id -> class (calls of ours that are in the outcome)
    overcharged: Decimal
    only_in_theirs: Decimal


def planted() -> Planted:
    calls: list[CarrierCall] = []
    theirs: dict[str, str] = {}
    ours: dict[str, str] = {}
    overcharged = only = Decimal(0)
    moved = Ours("moved", "442079468888", DAY + timedelta(hours=2), 42, Decimal("0.042"))
    for i, call in enumerate([*our_calls(), moved]):
        call_id = f"X{i:03d}"
        start, seconds, amount = call.start, call.seconds, call.amount
        klass = "matched"
        if i in (3, 4, 5):  # dropped
            ours[call.cdr_id] = "only_in_ours"
            continue
        if i in (6, 7, 8):
            seconds += 1  # within the 1 s tolerance
        if i in (9, 10):
            seconds, klass = seconds + 5, "duration_difference"
        if i in (11, 12):
            start += timedelta(seconds=2)  # within 2 s: the bound is inclusive
        if i in (13, 14):  # beyond 2 s: unmatched on both sides
            start += timedelta(seconds=3)
            klass, ours[call.cdr_id] = "only_in_theirs", "only_in_ours"
            only += amount
        if i in (15, 16):  # a changed rate
            higher = (amount * Decimal("1.1")).quantize(Decimal("0.000001"))
            overcharged += higher - amount
            amount, klass = higher, "amount_difference"
        if i == 17:  # +0.4%: within 0.5%
            amount = (amount * Decimal("1.004")).quantize(Decimal("0.000001"))
        if i in (28, 29):  # the repeated call, each leg 1 s late on their clock
            start += timedelta(seconds=1)
        if klass in ("matched", "duration_difference", "amount_difference"):
            ours[call.cdr_id] = klass
        theirs[call_id] = klass
        callee = f"00{call.callee}" if i % 2 else f"+{call.callee[:2]} {call.callee[2:]}"
        calls.append(CarrierCall(callee, start, str(seconds), amount, call_id=call_id))
    for n, extra in enumerate((Decimal("0.25"), Decimal("1.5"))):
        call_id = f"E{n}"
        start = DAY + timedelta(minutes=7 + 20 * n, seconds=13)
        calls.append(CarrierCall(f"4477001122{n}", start, "250", extra, call_id=call_id))
        theirs[call_id] = "only_in_theirs"
        only += extra
    calls.sort(key=lambda c: c.start)
    return Planted(calls, theirs, ours, overcharged, only)


@pytest.fixture(params=PATHS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CallHistoryStore]:
    with open_path(request.param, tmp_path, unique_database()) as opened:
        opened.store.migrate()
        yield opened.store


@pytest.fixture
def reference(tmp_path: Path) -> ReferenceData:
    return simple_reference(
        tmp_path / "plans",
        [deck_row("44", "0.01"), deck_row("49", "0.01")],
        client_deck=[deck_row("44", "0.06"), deck_row("49", "0.012")],
    )


def classes(outcome: Reconciliation) -> tuple[dict[str, str], dict[str, str]]:
    lines = outcome.lines
    theirs = dict(
        lines.filter(lines["their_call_id"].is_not_null())
        .select("their_call_id", "class")
        .iter_rows()
    )
    ours = dict(
        lines.filter(lines["our_cdr_id"].is_not_null()).select("our_cdr_id", "class").iter_rows()
    )
    return theirs, ours


def test_planted_differences_come_out_exactly(
    store: CallHistoryStore, reference: ReferenceData, tmp_path: Path
) -> None:
    write_history(store, reference)
    plan = planted()
    file = write_carrier_file(tmp_path / "carrier.csv", plan.calls, SEMICOLON_BERLIN)
    profile = read_cdr_profile(write_profile(tmp_path / "cdrs.toml", SEMICOLON_BERLIN))

    outcome = reconcile(store, "gw", file, profile)

    theirs, ours = classes(outcome)
    assert theirs == plan.their_class
    assert ours == plan.our_class
    counts = dict(outcome.counts().select("class", "calls").iter_rows())
    assert counts == {
        "matched": 31 - 3 - 2 - 2 - 2,  # 30 calls and the moved one, less the planted ones
        "duration_difference": 2,
        "amount_difference": 2,
        "duration_and_amount_difference": 0,
        "only_in_theirs": 2 + 2,
        "only_in_ours": 3 + 2,
    }
    # The repeated number's two calls pair in order.
    repeated = outcome.lines.filter(outcome.lines["callee"] == REPEATED)
    assert dict(repeated.select("our_cdr_id", "their_call_id").iter_rows()) == {
        "c-28": "X028",
        "c-29": "X029",
    }
    [disputed] = outcome.disputed().to_dicts()
    assert disputed["currency"] == "EUR"
    assert Decimal(disputed["overcharged"]) == plan.overcharged
    assert Decimal(disputed["only_in_theirs"]) == plan.only_in_theirs
    assert Decimal(disputed["disputed"]) == plan.overcharged + plan.only_in_theirs
    assert (disputed["undercharged"], disputed["undercharged_calls"]) == ("0", 0)
    totals = {row["side"]: row for row in outcome.totals().to_dicts()}
    theirs_total = sum((c.amount or Decimal(0) for c in plan.calls), Decimal(0))
    assert Decimal(totals["theirs"]["amount"]) == theirs_total
    assert totals["theirs"]["calls"] == len(plan.calls)
    # Ours: the 31 answered calls of gw in the window, by the amounts rated, to the last decimal.
    ours_total = sum((c.amount for c in our_calls()), Decimal("0.042"))
    assert (totals["ours"]["calls"], Decimal(totals["ours"]["amount"])) == (31, ours_total)
    assert totals["ours"]["billed_seconds"] == sum(c.seconds for c in our_calls()) + 42


def test_a_tighter_or_looser_tolerance_moves_the_planted_calls(
    store: CallHistoryStore, reference: ReferenceData, tmp_path: Path
) -> None:
    write_history(store, reference)
    plan = planted()
    file = write_carrier_file(tmp_path / "carrier.csv", plan.calls, SEMICOLON_BERLIN)
    profile = read_cdr_profile(write_profile(tmp_path / "cdrs.toml", SEMICOLON_BERLIN))
    loose = Tolerances(time_us=3_000_000, duration_ms=5_000, amount=Fraction(11, 100))

    theirs, _ = classes(reconcile(store, "gw", file, profile, tolerances=loose))

    assert {k: v for k, v in theirs.items() if v != "matched"} == {
        "E0": "only_in_theirs",
        "E1": "only_in_theirs",
    }
    tight = Tolerances(time_us=1_000_000, duration_ms=0, amount=Fraction(1, 1000))
    theirs, _ = classes(reconcile(store, "gw", file, profile, tolerances=tight))
    assert theirs["X006"] == "duration_difference"  # +1 s
    assert theirs["X011"] == "only_in_theirs"  # +2 s
    assert theirs["X028"] == "matched"  # 1 s late: within 1 s, inclusive
    assert theirs["X017"] == "amount_difference"  # +0.4%, beyond 0.1%


def test_the_command_line_with_an_excel_file(
    reference: ReferenceData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "store"
    with EmbeddedStore(folder, "vmgate") as store:
        store.migrate()
        write_history(store, reference)
    plan = planted()
    layout = Layout(excel=True, banner=("ACME Telecom", "CDRs March 2026"), timezone="Asia/Kolkata")
    file = write_carrier_file(tmp_path / "carrier.xlsx", plan.calls, layout)
    profile = write_profile(tmp_path / "cdrs.toml", layout)
    out = tmp_path / "disputes.csv"
    argv = ["reconcile", "--store", str(folder), "--client", "gw", "--input", str(file)]
    argv += ["--profile", str(profile), "--out", str(out)]
    # A window from 9 March: the corrected CDR's first version, hidden there by a tombstone,
    # must not come out as a call only in ours.
    window = ["--from", "2026-03-09T00:00:00Z", "--to", "2026-03-11T00:00:00Z"]

    assert main([*argv, *window]) == 0

    printed = capsys.readouterr().out
    assert "only_in_ours                    5" in printed
    assert f"wrote {2 + 2 + 4 + 5} call line(s) to {out}" in printed
    with out.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["class"] for row in rows] == ["duration_difference"] * 2 + [
        "amount_difference"
    ] * 2 + ["only_in_theirs"] * 4 + ["only_in_ours"] * 5
    changed = next(row for row in rows if row["their_call_id"] == "X015")
    ours = our_calls()[15]
    assert changed["our_cdr_id"] == "c-15"
    assert Decimal(changed["our_amount"]) == ours.amount
    assert Decimal(changed["amount_difference"]) == Decimal(changed["their_amount"]) - ours.amount
    assert changed["their_start"] == ours.start.astimezone(ZoneInfo("Asia/Kolkata")).strftime(
        "%Y-%m-%d %H:%M:%S"
    )
    assert changed["our_start_utc"] == _text(ours.start)
    dropped = next(row for row in rows if row["our_cdr_id"] == "c-03")
    assert (dropped["class"], dropped["their_row"], dropped["callee"]) == (
        "only_in_ours",
        "",
        our_calls()[3].callee,
    )
    assert {row["our_cdr_id"] for row in rows} >= {"c-03", "c-04", "c-05", "c-13", "c-14"}

    assert main([*argv, *window, "--format", "json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    [disputed] = summary["disputed"]
    assert Decimal(disputed["disputed"]) == plan.overcharged + plan.only_in_theirs
    assert summary["from"] == "2026-03-09T00:00:00Z"
    assert summary["lines_written"] == 13
