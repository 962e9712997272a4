"""The vectorised engine against the independent per-row reference rater (tests/reference_rater).

Two ways: a generated network of the shape the product sees (nested prefixes, rate changes and
expiries mid-month, membership changes, explicit resellers, malformed lines), and a hypothesis
property test over small random plans folders and CDRs.
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.reference.loader import load_plans_folder
from pipeline.services.offline import rate_file
from pipeline.synthetic import NetworkSpec, write_network
from tests.builders import (
    association,
    cdr,
    deck_row,
    membership,
    plan,
    write_plans,
)
from tests.reference_rater import LEG_COLUMNS, LEGS, rate_reference

RATED_AT = datetime(2026, 4, 1, tzinfo=UTC)
COMPARED = (
    "tenant_id",
    "customer_id",
    "client_id",
    "reseller_id",
    "callee",
    "status",
    "unrated_reason",
    *(f"{leg}_{column}" for leg in LEGS for column in LEG_COLUMNS),
)


def _compare(plans: Path, cdrs: Path, tmp: Path) -> tuple[int, int]:
    """Rate with the engine (through the offline runner) and the reference; assert equality."""
    out, dlq = tmp / "out.parquet", tmp / "dlq.jsonl"
    rate_file(load_plans_folder(plans), cdrs, out, dlq, RATED_AT, batch_size=997)
    engine_rows = {r["cdr_id"]: r for r in pl.read_parquet(out).to_dicts()}
    engine_rejected = {json.loads(line)["line"] for line in dlq.read_text().splitlines()}
    expected = rate_reference(plans, cdrs.read_text().split("\n"))
    assert engine_rejected == set(expected.rejected)
    assert engine_rows.keys() == expected.rows.keys()
    for cdr_id, want in expected.rows.items():
        got = engine_rows[cdr_id]
        mismatched = {k: (got[k], want[k]) for k in COMPARED if got[k] != want[k]}
        assert not mismatched, (cdr_id, mismatched)
    return len(expected.rows), len(expected.rejected)


def test_generated_network_equals_reference(tmp_path: Path) -> None:
    spec = NetworkSpec(seed=11, plans=15, prefixes_per_plan=600, cdrs=6_000)
    summary = write_network(spec, tmp_path / "plans", tmp_path / "cdrs.jsonl")
    rated, rejected = _compare(tmp_path / "plans", tmp_path / "cdrs.jsonl", tmp_path)
    assert rejected == len(summary.malformed_lines)
    assert rated == summary.valid_cdrs


# --- property test --------------------------------------------------------------------------

PREFIXES = ["4", "44", "447", "4477", "44770", "49", "491", "1", "12", "0"]
INSTANTS = [
    "2026-03-01T00:00:00Z",
    "2026-03-10T00:00:00Z",
    "2026-03-10T00:00:00.000001Z",
    "2026-03-20T12:00:00Z",
    "2026-04-01T00:00:00Z",
]
rates = st.builds(
    lambda whole, frac, places: (
        f"{whole}.{str(frac).zfill(places)[:places]}" if places else str(whole)
    ),
    st.integers(0, 3),
    st.integers(0, 999_999_999),
    st.integers(0, 9),
)
increments = st.sampled_from(
    [("", ""), ("1", "1"), ("60", "60"), ("30", "6"), ("60", "1"), ("6", "6")]
)


@st.composite
def decks(draw: st.DrawFn) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    used: set[tuple[str, str]] = set()
    for _ in range(draw(st.integers(0, 8))):
        prefix = draw(st.sampled_from(PREFIXES))
        position = draw(st.integers(0, len(INSTANTS) - 2))
        start = INSTANTS[position]
        if (prefix, start) in used:
            continue
        used.add((prefix, start))
        later = INSTANTS[position + 1 :]
        until = draw(st.one_of(st.just(""), st.sampled_from(later)))
        initial, subsequent = draw(increments)
        rows.append(
            deck_row(
                prefix,
                draw(rates),
                connection_fee=draw(st.sampled_from(["", "0", "0.01", "0.123456789"])),
                initial_increment=initial,
                subsequent_increment=subsequent,
                effective_from=start,
                effective_until=until,
            )
        )
    return rows


@st.composite
def networks(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    plans = [
        plan(
            "P",
            "customer",
            decimals=draw(st.sampled_from(["", "0", "2", "4", "6"])),
            rounding=draw(st.sampled_from(["", "half_up", "up", "down"])),
        ),
        plan("C", "client", currency="USD", decimals=draw(st.sampled_from(["0", "6"]))),
        plan("R", "reseller", rounding=draw(st.sampled_from(["up", "down"])), decimals="3"),
        plan("Q", "customer", tenant_id="t2"),
    ]
    switch = draw(st.sampled_from(INSTANTS[1:4]))
    folder = {
        "plans": plans,
        "decks": {"P": draw(decks()), "C": draw(decks()), "R": draw(decks()), "Q": draw(decks())},
        "associations": [
            association("customer", "cust", "P"),
            association("customer", "shared", "Q"),
            association("client", "gw", "C", effective_until=switch),
            association("reseller", "res", "R"),
        ],
        "memberships": [
            membership("gw", "res", effective_until=switch),
            membership("gw", "other", effective_from=switch),
        ],
    }
    records = [
        cdr(
            cdr_id=f"c{i}",
            tenant_id=draw(st.sampled_from(["t1", "t1", "t2"])),
            customer_id=draw(st.sampled_from(["cust", "cust", "shared", "nobody"])),
            client_id=draw(st.sampled_from(["gw", "gw", "gw2"])),
            reseller_id=draw(st.sampled_from([None, None, None, "res", "unpaid"])),
            callee=draw(st.sampled_from(["+", "00", "", "0"]))
            + draw(st.sampled_from(PREFIXES))
            + draw(st.sampled_from(["", "7", "70", "123456"]))
            + draw(st.sampled_from(["0", "9"])) * 2,
            start_time=draw(st.sampled_from([*INSTANTS[:-1], "2026-03-15T01:30:00+01:00"])),
            duration_ms=draw(
                st.one_of(
                    st.sampled_from(
                        [0, 1, 999, 1000, 1001, 6000, 29_999, 30_000, 30_001, 60_000, 60_001]
                    ),
                    st.integers(0, 10_000_000),
                )
            ),
        )
        for i in range(draw(st.integers(1, 25)))
    ]
    return folder, records


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(network=networks())
def test_engine_equals_reference_on_random_networks(
    network: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    folder, records = network
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_plans(
            root / "plans",
            folder["plans"],
            folder["decks"],
            folder["associations"],
            folder["memberships"],
        )
        cdrs = root / "cdrs.jsonl"
        cdrs.write_text("\n".join(json.dumps(r) for r in records) + "\n")
        _compare(root / "plans", cdrs, root)
