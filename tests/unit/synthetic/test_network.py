"""The synthetic network generator: deterministic, in the documented file formats, realistic."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from pipeline import synthetic
from pipeline.reference.loader import load_plans_folder
from pipeline.synthetic import MALFORMED_KINDS, NetworkSpec, NetworkSummary, write_network
from tests.reference_rater import ReferenceResult, parse_timestamp, rate_reference

RFC3339_Z = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
SPEC = NetworkSpec(seed=3, prefixes_per_plan=600, cdrs=8_000, malformed_ratio=0.02)


@dataclass(frozen=True)
class Generated:
    summary: NetworkSummary
    plans_dir: Path
    lines: list[str]
    reference: ReferenceResult


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    root = tmp_path_factory.mktemp("network")
    summary = write_network(SPEC, root / "plans", root / "cdrs.jsonl")
    lines = (root / "cdrs.jsonl").read_text(encoding="utf-8").splitlines()
    return Generated(summary, root / "plans", lines, rate_reference(root / "plans", lines))


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def ts(text: str) -> datetime:
    value = parse_timestamp(text)
    assert value is not None, text
    return value


def until(text: str) -> datetime:
    return ts(text) if text else datetime.max.replace(tzinfo=ts("2026-01-01T00:00:00Z").tzinfo)


def overlaps(spans: list[tuple[datetime, datetime]]) -> bool:
    spans = sorted(spans)
    return any(later[0] < earlier[1] for earlier, later in pairwise(spans))


def valid_records(g: Generated) -> list[dict[str, Any]]:
    bad = set(g.summary.malformed_lines)
    return [json.loads(line) for n, line in enumerate(g.lines, start=1) if n not in bad]


# --- determinism and formats -----------------------------------------------------------------


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_same_seed_same_files_other_seed_other_files(tmp_path: Path) -> None:
    spec = NetworkSpec(seed=5, prefixes_per_plan=200, cdrs=1_500, malformed_ratio=0.05)
    first = write_network(spec, tmp_path / "a" / "plans", tmp_path / "a" / "cdrs.jsonl")
    second = write_network(spec, tmp_path / "b" / "plans", tmp_path / "b" / "cdrs.jsonl")
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert replace(first, plans_dir=second.plans_dir, cdrs_path=second.cdrs_path) == second
    other = write_network(
        replace(spec, seed=6), tmp_path / "c" / "plans", tmp_path / "c" / "cdrs.jsonl"
    )
    assert (tmp_path / "c" / "cdrs.jsonl").read_bytes() != (
        tmp_path / "a" / "cdrs.jsonl"
    ).read_bytes()
    assert other.malformed_lines != first.malformed_lines


def test_plans_folder_has_the_documented_files(generated: Generated) -> None:
    plans_dir = generated.plans_dir
    header, plans = read_csv(plans_dir / "plans.csv")
    assert header == ["plan_id", "tenant_id", "name", "scope", "currency", "decimals", "rounding"]
    assert [p["plan_id"] for p in plans] == list(generated.summary.plan_ids)
    assert len(plans) == SPEC.plans
    assert sorted(p.stem for p in (plans_dir / "decks").iterdir()) == sorted(
        generated.summary.plan_ids
    )
    for plan_id in generated.summary.plan_ids:
        header, _ = read_csv(plans_dir / "decks" / f"{plan_id}.csv")
        assert header == [
            "prefix",
            "destination",
            "rate",
            "connection_fee",
            "initial_increment",
            "subsequent_increment",
            "effective_from",
            "effective_until",
        ]
    header, _ = read_csv(plans_dir / "associations.csv")
    assert header == ["scope", "account_id", "plan_id", "effective_from", "effective_until"]
    header, _ = read_csv(plans_dir / "memberships.csv")
    assert header == ["client_id", "reseller_id", "effective_from", "effective_until"]
    assert (plans_dir / "plans.csv").read_bytes().decode("utf-8")  # UTF-8


def test_csv_timestamps_are_rfc3339(generated: Generated) -> None:
    files = [generated.plans_dir / "associations.csv", generated.plans_dir / "memberships.csv"]
    files += sorted((generated.plans_dir / "decks").iterdir())
    checked = 0
    for path in files:
        for row in read_csv(path)[1]:
            assert RFC3339_Z.fullmatch(row["effective_from"]), (path, row)
            assert row["effective_until"] == "" or RFC3339_Z.fullmatch(row["effective_until"])
            if row["effective_until"]:
                assert ts(row["effective_from"]) < ts(row["effective_until"]), (path, row)
            checked += 1
    assert checked > SPEC.plans * SPEC.prefixes_per_plan


def test_cdr_file_is_one_json_object_per_line(generated: Generated) -> None:
    g = generated
    assert len(g.lines) == g.summary.cdrs_written == SPEC.cdrs
    assert all(line.strip() for line in g.lines)
    records = valid_records(g)
    assert len(records) == g.summary.valid_cdrs
    assert all(isinstance(r, dict) for r in records)
    ids = [r["cdr_id"] for r in records]
    assert len(set(ids)) == len(ids)
    for r in records:
        for name in ("cdr_id", "session_id", "tenant_id", "customer_id", "client_id", "caller"):
            assert isinstance(r[name], str)
            assert r[name]


# --- reference data realism --------------------------------------------------------------------


def test_plans(generated: Generated) -> None:
    _, plans = read_csv(generated.plans_dir / "plans.csv")
    decimals = Counter(p["decimals"] for p in plans)
    assert set(decimals) <= {"", "0", "1", "2", "3", "4", "5", "6"}
    assert {"0", "2", ""} <= set(decimals)
    assert decimals["4"] + decimals["6"] >= len(plans) // 3
    roundings = Counter(p["rounding"] for p in plans)
    assert set(roundings) == {"", "half_up", "up", "down"}
    assert {p["currency"] for p in plans} == set(SPEC.currencies)
    scopes = Counter(p["scope"] for p in plans)
    assert scopes["reseller"] == len(generated.summary.paid_reseller_ids)
    assert scopes["customer"] >= SPEC.tenants
    assert {p["tenant_id"] for p in plans} == set(generated.summary.tenant_ids)


def test_decks(generated: Generated) -> None:
    month_start, month_end = generated.summary.month_start, generated.summary.month_end
    seen_kinds: Counter[str] = Counter()
    for plan_id in generated.summary.plan_ids:
        _, rows = read_csv(generated.plans_dir / "decks" / f"{plan_id}.csv")
        keys = [(r["prefix"], r["effective_from"]) for r in rows]
        assert len(keys) == len(set(keys)), plan_id
        by_prefix: dict[str, list[dict[str, str]]] = defaultdict(list)
        for r in rows:
            assert re.fullmatch(r"[1-9][0-9]{0,8}", r["prefix"]), r
            assert r["destination"]
            assert Decimal(r["rate"]) >= 0
            assert r["connection_fee"] == "" or Decimal(r["connection_fee"]) >= 0
            initial, subsequent = r["initial_increment"], r["subsequent_increment"]
            assert (initial or "1", subsequent or "1") in {
                ("1", "1"),
                ("60", "60"),
                ("30", "6"),
                ("60", "1"),
                ("6", "6"),
            }
            by_prefix[r["prefix"]].append(r)
            decimals = len(r["rate"].partition(".")[2])
            seen_kinds[f"rate_decimals_{min(decimals, 5)}"] += 1
            seen_kinds["fee"] += r["connection_fee"] not in ("", "0")
            seen_kinds["empty_increments"] += initial == ""
        prefixes = set(by_prefix)
        # nested prefixes: some prefix has three shorter prefixes of its own in the deck
        seen_kinds["nested"] += sum(
            1 for p in prefixes if sum(p[:k] in prefixes for k in range(1, len(p))) >= 3
        )
        seen_kinds["deep"] += sum(1 for p in prefixes if len(p) >= 8)
        for prefix, versions in by_prefix.items():
            ends = {r["effective_until"] for r in versions if r["effective_until"]}
            starts = {r["effective_from"] for r in versions}
            mid = {e for e in ends if month_start < ts(e) < month_end}
            if mid & starts:
                seen_kinds["rate_change"] += 1
            if mid - starts and len(versions) == 1:
                shorter = any(prefix[:k] in prefixes for k in range(1, len(prefix)))
                seen_kinds["expiry_with_fallback"] += shorter
            if len(versions) >= 2 and sum(1 for r in versions if not r["effective_until"]) >= 2:
                seen_kinds["overlap"] += 1
    for kind in (
        "rate_decimals_1",
        "rate_decimals_2",
        "rate_decimals_4",
        "rate_decimals_5",
        "fee",
        "empty_increments",
        "nested",
        "deep",
        "rate_change",
        "expiry_with_fallback",
        "overlap",
    ):
        assert seen_kinds[kind] > 0, (kind, seen_kinds)


def test_associations_and_memberships(generated: Generated) -> None:
    s = generated.summary
    _, plans = read_csv(generated.plans_dir / "plans.csv")
    plan_by_id = {p["plan_id"]: p for p in plans}
    _, associations = read_csv(generated.plans_dir / "associations.csv")
    spans: dict[tuple[str, str], list[tuple[datetime, datetime]]] = defaultdict(list)
    plans_of: dict[tuple[str, str], set[str]] = defaultdict(set)
    for a in associations:
        plan = plan_by_id[a["plan_id"]]
        assert plan["scope"] == a["scope"]
        assert a["account_id"].startswith(plan["tenant_id"] + "-")  # the account's own tenant
        spans[(a["scope"], a["account_id"])].append(
            (ts(a["effective_from"]), until(a["effective_until"]))
        )
        plans_of[(a["scope"], a["account_id"])].add(a["plan_id"])
    assert not [key for key, value in spans.items() if overlaps(value)]
    assert any(len(v) >= 2 for (scope, _), v in plans_of.items() if scope == "customer")
    assert any(len(v) >= 2 for (scope, _), v in plans_of.items() if scope == "client")
    customers_without = set(s.customer_ids) - {k[1] for k in spans if k[0] == "customer"}
    assert customers_without  # never any plan
    resellers_with_plan = {k[1] for k in spans if k[0] == "reseller"}
    assert resellers_with_plan == set(s.paid_reseller_ids)
    assert s.unpaid_reseller_ids
    assert not resellers_with_plan & set(s.unpaid_reseller_ids)

    _, memberships = read_csv(generated.plans_dir / "memberships.csv")
    by_client: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    resellers_of: dict[str, set[str]] = defaultdict(set)
    for m in memberships:
        assert m["client_id"] in s.client_ids
        assert m["reseller_id"] in s.reseller_ids
        assert m["client_id"].split("-gw-")[0] == m["reseller_id"].split("-res-")[0]
        by_client[m["client_id"]].append((ts(m["effective_from"]), until(m["effective_until"])))
        resellers_of[m["client_id"]].add(m["reseller_id"])
    assert not [c for c, value in by_client.items() if overlaps(value)]
    assert set(s.client_ids) - set(by_client)  # Direct clients
    assert any(len(v) >= 2 for v in resellers_of.values())  # a client that changes reseller
    mid_month = [
        e for value in by_client.values() for _, e in value if s.month_start < e < s.month_end
    ]
    assert mid_month


# --- CDRs ----------------------------------------------------------------------------------------


def test_malformed_lines_are_exactly_the_rejected_ones(generated: Generated) -> None:
    g = generated
    assert sorted(g.reference.rejected) == list(g.summary.malformed_lines)
    assert len(g.summary.malformed_lines) == round(SPEC.cdrs * SPEC.malformed_ratio)
    assert set(g.summary.malformed_kinds) == set(MALFORMED_KINDS)
    assert len(g.summary.malformed_kinds) == len(g.summary.malformed_lines)
    assert not g.reference.duplicates
    assert len(g.reference.rows) == g.summary.valid_cdrs
    reasons = Counter(g.reference.rejected.values())
    for reason in (
        "not_json",
        "not_object",
        "end_before_start",
        *(f"missing:{name}" for name in ("cdr_id", "callee", "duration_ms", "start_time")),
        *(f"invalid:{name}" for name in ("callee", "duration_ms", "start_time", "end_time")),
        *(f"invalid:{name}" for name in ("answer_time", "disposition", "sip_code", "reseller_id")),
    ):
        assert reasons[reason] > 0, (reason, reasons)


def test_kinds_match_reasons(generated: Generated) -> None:
    g = generated
    expected = {
        "not_json": "not_json",
        "truncated_json": "not_json",
        "json_array": "not_object",
        "json_scalar": "not_object",
        "end_before_start": "end_before_start",
        "callee_letters": "invalid:callee",
        "callee_too_short": "invalid:callee",
        "callee_too_long": "invalid:callee",
        "negative_duration": "invalid:duration_ms",
        "float_duration": "invalid:duration_ms",
        "string_duration": "invalid:duration_ms",
        "huge_duration": "invalid:duration_ms",
        "bad_disposition": "invalid:disposition",
        "bad_sip_code": "invalid:sip_code",
        "empty_reseller_id": "invalid:reseller_id",
        "bad_start_time": "invalid:start_time",
        "bad_end_time": "invalid:end_time",
        "bad_answer_time": "invalid:answer_time",
    }
    for line, kind in zip(g.summary.malformed_lines, g.summary.malformed_kinds, strict=True):
        reason = g.reference.rejected[line]
        if kind.startswith("missing_"):
            assert reason == "missing:" + kind.removeprefix("missing_")
        elif kind in ("null_string_field", "empty_string_field"):
            assert reason.startswith("invalid:")
        else:
            assert reason == expected[kind], (line, kind, reason)


def test_every_outcome_is_present(generated: Generated) -> None:
    rows = generated.reference.rows.values()
    reasons: Counter[str] = Counter()
    for row in rows:
        for part in str(row["unrated_reason"] or "").split(";"):
            reasons[part] += 1
    assert reasons["customer:no_plan"] > 0
    assert reasons["customer:no_prefix"] > 0
    assert reasons["client:no_prefix"] > 0
    assert reasons["reseller:no_prefix"] > 0
    statuses = Counter(row["status"] for row in rows)
    assert statuses["rated"] > 0.75 * len(rows)  # mostly rated, like real traffic
    assert any(row["reseller_id"] is None for row in rows)  # Direct
    assert any(row["reseller_amount"] is not None for row in rows)
    assert any(row["client_amount"] is not None for row in rows)
    assert any(row["reseller_id"] is not None and row["reseller_plan_id"] is None for row in rows)
    assert any(row["client_plan_id"] is None and row["status"] == "rated" for row in rows)
    billed = Counter(row["customer_billed_seconds"] for row in rows)
    assert billed[0] > 0
    assert len({row["customer_prefix"] for row in rows}) > 100
    assert max(len(str(row["customer_prefix"])) for row in rows) >= 8
    currencies = {row["customer_currency"] for row in rows} - {None}
    assert currencies == set(SPEC.currencies)


def test_explicit_resellers(generated: Generated) -> None:
    records = valid_records(generated)
    explicit = [r for r in records if isinstance(r.get("reseller_id"), str)]
    assert 0.02 * len(records) < len(explicit) < 0.09 * len(records)
    assert {r["reseller_id"] for r in explicit} & set(generated.summary.unpaid_reseller_ids)
    assert any("reseller_id" not in r for r in records)
    assert any(r.get("reseller_id", "") is None for r in records)
    for r in explicit:
        assert r["reseller_id"].split("-res-")[0] == r["tenant_id"]


def test_cdrs_look_like_traffic(generated: Generated) -> None:
    s = generated.summary
    records = valid_records(generated)
    rows = generated.reference.rows
    starts: list[datetime] = []
    for r in records:
        start = rows[r["cdr_id"]]["start_time"]
        assert isinstance(start, datetime)
        starts.append(start)
    assert all(s.month_start <= t < s.month_end for t in starts)
    start_texts = [r["start_time"] for r in records]
    assert any(t.endswith("Z") for t in start_texts)
    assert any(re.search(r"[+-]\d{2}:\d{2}$", t) for t in start_texts)
    assert any(re.search(r"\.\d{3}[Zz+-]", t) for t in start_texts)
    assert any(re.search(r"\.\d{6}[Zz+-]", t) for t in start_texts)
    assert any(re.search(r"\.\d{9}[Zz+-]", t) for t in start_texts)
    assert any("t" in t[10:11] for t in start_texts)  # lower-case t and z
    instants = set(s.change_instants)
    micro = timedelta(microseconds=1)
    assert sum(t in instants for t in starts) > 5
    assert sum(t + micro in instants for t in starts) > 0
    assert sum(t + timedelta(milliseconds=1) in instants for t in starts) > 0
    durations = Counter(r["duration_ms"] for r in records)
    for edge in (1, 999, 1000, 1001, 30000, 59999, 60000, 60001):
        assert durations[edge] > 0, edge
    assert len(durations) > 1000
    unanswered = [r for r in records if r["duration_ms"] == 0]
    assert unanswered
    assert any(r.get("answer_time", "absent") is None for r in unanswered)
    assert any("answer_time" not in r for r in unanswered)
    assert {r.get("disposition") for r in records} >= {
        "ANSWERED",
        "NO_ANSWER",
        "BUSY",
        "FAILED",
        "CANCELLED",
        None,
    }
    callees = [r["callee"] for r in records]
    assert any(c.startswith("+") and c[1:].isdigit() for c in callees)
    assert any(c.startswith("00") and c.isdigit() for c in callees)
    assert any(c.isdigit() and not c.startswith("0") for c in callees)
    assert any(" " in c for c in callees)
    assert any("-" in c for c in callees)
    assert any({"codec", "trunk"} <= set(r) for r in records)  # unknown extra fields
    assert {r["tenant_id"] for r in records} == set(s.tenant_ids)
    assert {r["client_id"] for r in records} == set(s.client_ids)


def test_zero_cdrs(tmp_path: Path) -> None:
    spec = NetworkSpec(cdrs=0, prefixes_per_plan=50)
    summary = write_network(spec, tmp_path / "plans", tmp_path / "cdrs.jsonl")
    assert (tmp_path / "cdrs.jsonl").read_text() == ""
    assert summary.cdrs_written == summary.valid_cdrs == 0
    assert summary.malformed_lines == ()


def test_small_spec_still_consistent(tmp_path: Path) -> None:
    spec = NetworkSpec(
        seed=1,
        tenants=1,
        customers_per_tenant=1,
        clients_per_tenant=1,
        resellers_per_tenant=1,
        plans=1,
        prefixes_per_plan=5,
        cdrs=300,
        malformed_ratio=0.1,
        month="2024-02",
        currencies=("GBP",),
    )
    summary = write_network(spec, tmp_path / "plans", tmp_path / "cdrs.jsonl")
    lines = (tmp_path / "cdrs.jsonl").read_text(encoding="utf-8").splitlines()
    result = rate_reference(tmp_path / "plans", lines)
    assert sorted(result.rejected) == list(summary.malformed_lines)
    assert summary.paid_reseller_ids == ()
    assert len(result.rows) == 270


@pytest.mark.parametrize(
    "spec",
    [
        NetworkSpec(plans=3),  # 4 paid resellers need 4 plans, plus a customer plan per tenant
        NetworkSpec(month="March"),
        NetworkSpec(tenants=0),
        NetworkSpec(malformed_ratio=1.5),
        NetworkSpec(currencies=()),
    ],
)
def test_impossible_specs_are_refused(tmp_path: Path, spec: NetworkSpec) -> None:
    with pytest.raises(ValueError, match=r"NetworkSpec|month"):
        write_network(spec, tmp_path / "plans", tmp_path / "cdrs.jsonl")


# --- the package boundary --------------------------------------------------------------------


def test_the_public_api_is_what_the_package_exports() -> None:
    assert sorted(synthetic.__all__) == [
        "MALFORMED_KINDS",
        "NetworkSpec",
        "NetworkSummary",
        "RosterSummary",
        "write_network",
    ]
    package = Path(synthetic.__file__).parent
    modules = sorted(p.stem for p in package.glob("*.py") if p.name != "__init__.py")
    assert modules, "the package has its modules"
    assert all(name.startswith("_") for name in modules), modules


def test_nothing_outside_the_package_imports_its_private_modules() -> None:
    package = Path(synthetic.__file__).parent
    root = package.parent.parent
    private = re.compile(r"pipeline\.synthetic\._|from pipeline\.synthetic import \(?\s*_")
    offenders = [
        str(path.relative_to(root))
        for folder in ("pipeline", "tests", "benchmarks")
        for path in sorted((root / folder).rglob("*.py"))
        if package not in path.parents and private.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_tariff_v2_is_drawn_on_its_own(tmp_path: Path) -> None:
    """Origins, bands and the price shape change the plans folder only, and load as v2."""
    spec = NetworkSpec(seed=5, prefixes_per_plan=200, cdrs=1_500)
    v2 = replace(spec, price_shape=True, origins_and_bands=True)
    write_network(spec, tmp_path / "v1" / "plans", tmp_path / "v1" / "cdrs.jsonl")
    write_network(v2, tmp_path / "v2" / "plans", tmp_path / "v2" / "cdrs.jsonl")
    for same in ("cdrs.jsonl", "plans/associations.csv", "plans/memberships.csv"):
        assert (tmp_path / "v1" / same).read_bytes() == (tmp_path / "v2" / same).read_bytes()
    plans_dir = tmp_path / "v2" / "plans"
    header, plans = read_csv(plans_dir / "plans.csv")
    assert header[-2:] == ["timezone", "duration_rounding"]
    assert len({p["timezone"] for p in plans}) >= 3
    _, bands = read_csv(plans_dir / "time_bands.csv")
    banded = {b["plan_id"] for b in bands}
    assert len(banded) >= len(plans) // 2
    _, groups = read_csv(plans_dir / "origin_groups.csv")
    assert {g["group"] for g in groups} == {"EEA", "NANP"}
    header, rows = read_csv(plans_dir / "decks" / f"{sorted(banded)[0]}.csv")
    assert header[-6:] == [
        "initial_rate",
        "grace_seconds",
        "min_cost",
        "max_cost",
        "origin",
        "band",
    ]
    assert any(r["band"] for r in rows)
    assert any(r["origin"] for r in rows)
    shaped = load_plans_folder(plans_dir).origins_and_bands
    assert shaped is not None
    write_network(v2, tmp_path / "again" / "plans", tmp_path / "again" / "cdrs.jsonl")
    assert _files(tmp_path / "again") == _files(tmp_path / "v2")  # the same seed, the same files


def test_accounts_are_drawn_on_their_own(tmp_path: Path) -> None:
    """The roster part adds files and appends its burst; every other byte stays what it was."""
    spec = NetworkSpec(seed=5, prefixes_per_plan=300, cdrs=1_500, price_shape=True)
    with_roster = replace(spec, accounts=True)
    plain = write_network(spec, tmp_path / "off" / "plans", tmp_path / "off" / "cdrs.jsonl")
    summary = write_network(with_roster, tmp_path / "on" / "plans", tmp_path / "on" / "cdrs.jsonl")
    before, after = _files(tmp_path / "off"), _files(tmp_path / "on")
    roster = summary.roster
    assert roster is not None
    assert plain.roster is None
    for name, content in before.items():
        if name == "cdrs.jsonl":
            assert after[name].startswith(content)  # the burst is appended, nothing else moves
        else:
            assert after[name] == content, name
    assert set(after) - set(before) == {
        "plans/accounts.csv",
        "plans/join_codes.csv",
        "plans/enrollments.csv",
        "plans/fx_rates.csv",
        "cdrs.client_status.jsonl",
        "cdrs.payments.jsonl",
    }
    burst = after["cdrs.jsonl"][len(before["cdrs.jsonl"]) :].decode().splitlines()
    assert len(burst) == roster.burst_cdrs == summary.valid_cdrs - plain.valid_cdrs > 0
    assert summary.malformed_lines == plain.malformed_lines
    hour_start = roster.alerts_now - timedelta(hours=1)
    for line in burst:
        call = json.loads(line)
        assert call["customer_id"] == roster.spike_customer
        assert hour_start <= ts(call["start_time"]) < roster.alerts_now
    write_network(with_roster, tmp_path / "again" / "plans", tmp_path / "again" / "cdrs.jsonl")
    assert _files(tmp_path / "again") == after  # the same seed, the same files


def test_accounts_roster_is_complete_and_loads(tmp_path: Path) -> None:
    spec = NetworkSpec(seed=3, prefixes_per_plan=300, cdrs=1_000, accounts=True)
    summary = write_network(spec, tmp_path / "plans", tmp_path / "cdrs.jsonl")
    roster = summary.roster
    assert roster is not None
    plans_dir = tmp_path / "plans"
    _, accounts = read_csv(plans_dir / "accounts.csv")
    listed = {(a["scope"], a["account_id"]) for a in accounts}
    assert listed == {
        *(("customer", c) for c in summary.customer_ids),
        *(("client", c) for c in summary.client_ids),
        *(("reseller", r) for r in summary.reseller_ids),
    }
    assert {a["billing_type"] for a in accounts} == {"prepaid", "postpaid"}
    assert any(a["credit_limit"] for a in accounts)
    inactive = [a for a in accounts if a["status"] == "inactive"]
    assert [(a["scope"], a["account_id"]) for a in inactive] == [
        ("reseller", roster.inactive_reseller)
    ]
    assert len({a["timezone"] for a in accounts}) >= 4
    assert all(a["email"] for a in accounts if a["scope"] == "reseller")
    _, codes = read_csv(plans_dir / "join_codes.csv")
    assert sorted(c["reseller_id"] for c in codes if c["reseller_id"]) == sorted(
        summary.reseller_ids
    )
    direct = {c["tenant_id"] for c in codes if not c["reseller_id"]}
    assert direct == set(summary.tenant_ids)
    _, enrollments = read_csv(plans_dir / "enrollments.csv")
    per_client = Counter(e["client_id"] for e in enrollments)
    assert set(per_client) == set(summary.client_ids)
    assert max(per_client.values()) >= 2  # a re-enrollment
    _, rates = read_csv(plans_dir / "fx_rates.csv")
    assert {r["quote"] for r in rates} == {roster.reporting_currency}
    changes = [ts(r["effective_from"]) for r in rates]
    assert any(summary.month_start < at < summary.month_end for at in changes)  # mid-period
    reference = load_plans_folder(plans_dir)  # enrollments agree with memberships.csv
    assert reference.roster.accounts.height == len(accounts)
    assert reference.fx_rates.height == len(rates)
    statuses = [json.loads(line) for line in roster.client_status_path.read_text().splitlines()]
    assert {s["client_id"] for s in statuses} == set(summary.client_ids)
    assert {s["online"] for s in statuses} == {True, False}
    payments = [json.loads(line) for line in roster.payments_path.read_text().splitlines()]
    assert {p["kind"] for p in payments} >= {"customer_payment_in", "reseller_payout_out"}


def test_accounts_need_two_customers_and_two_resellers(tmp_path: Path) -> None:
    spec = NetworkSpec(resellers_per_tenant=1, plans=4, accounts=True)
    with pytest.raises(ValueError, match="accounts needs"):
        write_network(spec, tmp_path / "plans", tmp_path / "cdrs.jsonl")
