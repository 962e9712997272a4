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
import pytest
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
from tests.reference_rater import LEG_COLUMNS, LEGS, V2_LEG_COLUMNS, rate_reference

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
V2_COMPARED = tuple(f"{leg}_{column}" for leg in LEGS for column in V2_LEG_COLUMNS)


def _compare(plans: Path, cdrs: Path, tmp: Path, *, with_v2: bool = False) -> tuple[int, int]:
    """Rate with the engine (through the offline runner) and the reference; assert equality."""
    compared = COMPARED + (V2_COMPARED if with_v2 else ())
    out, dlq = tmp / "out.parquet", tmp / "dlq.jsonl"
    rate_file(load_plans_folder(plans), cdrs, out, dlq, RATED_AT, batch_size=997)
    engine_rows = {r["cdr_id"]: r for r in pl.read_parquet(out).to_dicts()}
    engine_rejected = {json.loads(line)["line"] for line in dlq.read_text().splitlines()}
    expected = rate_reference(plans, cdrs.read_text().split("\n"))
    assert engine_rejected == set(expected.rejected)
    assert engine_rows.keys() == expected.rows.keys()
    for cdr_id, want in expected.rows.items():
        got = engine_rows[cdr_id]
        mismatched = {k: (got[k], want[k]) for k in compared if got[k] != want[k]}
        assert not mismatched, (cdr_id, mismatched)
    return len(expected.rows), len(expected.rejected)


@pytest.mark.parametrize(
    ("v2", "accounts"), [(False, False), (True, False), (True, True)], ids=["v1", "v2", "roster"]
)
def test_generated_network_equals_reference(tmp_path: Path, v2: bool, accounts: bool) -> None:
    """v2: every section 8 feature (zones, bands, holidays, origins and the price shape).

    roster: v2 with the roster part too (enrollments beside memberships, the alerts' burst).
    """
    spec = NetworkSpec(
        seed=11,
        plans=15,
        prefixes_per_plan=600,
        cdrs=6_000,
        price_shape=v2,
        origins_and_bands=v2,
        accounts=accounts,
    )
    summary = write_network(spec, tmp_path / "plans", tmp_path / "cdrs.jsonl")
    rated, rejected = _compare(tmp_path / "plans", tmp_path / "cdrs.jsonl", tmp_path, with_v2=v2)
    assert rejected == len(summary.malformed_lines)
    assert rated == summary.valid_cdrs
    if v2:  # the network does exercise them: legs priced by band, by origin, on a holiday
        rows = pl.read_parquet(tmp_path / "out.parquet")
        assert rows["customer_band"].drop_nulls().n_unique() >= 4
        assert rows["customer_origin"].drop_nulls().n_unique() == 2
        assert rows["client_band"].drop_nulls().len() > 100


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


# --- tariff v2: origins, bands in local time, holidays, the price shape -------------------------

ZONES = ["UTC", "Europe/Berlin", "Australia/Lord_Howe", "America/New_York", "Asia/Kathmandu"]
# Around the DST changes of 2026 in Berlin (29 March, 01:00 UTC) and Lord Howe (5 April, 15:00
# UTC: 30 minutes back), New York (8 March, 07:00 UTC), and plain instants.
V2_INSTANTS = [
    "2026-03-01T00:00:00Z",
    "2026-03-08T06:59:59Z",
    "2026-03-08T07:00:00Z",
    "2026-03-10T07:00:00Z",
    "2026-03-10T19:30:00Z",
    "2026-03-14T13:00:00Z",
    "2026-03-27T06:59:59Z",
    "2026-03-27T07:00:00Z",
    "2026-03-29T00:59:59Z",
    "2026-03-29T01:00:00Z",
    "2026-03-29T06:30:00Z",
    "2026-04-04T14:59:59Z",
    "2026-04-04T15:00:00Z",
    "2026-04-04T15:29:59Z",
]


def _week(plan_id: str) -> str:
    """Peak on weekdays 08:00-20:00, off-peak the rest of the weekdays, a weekend band."""
    return (
        f"{plan_id},peak,mon-fri,08:00,20:00\n"
        f"{plan_id},offpeak,mon-fri,00:00,08:00\n"
        f"{plan_id},offpeak,mon-fri,20:00,24:00\n"
        f"{plan_id},weekend,sat-sun,00:00,24:00\n"
    )


@st.composite
def v2_decks(draw: st.DrawFn, bands: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    used: set[tuple[str, str, str, str]] = set()
    for _ in range(draw(st.integers(0, 10))):
        prefix = draw(st.sampled_from(PREFIXES))
        origin = draw(st.sampled_from(["", "", "EEA", "NANP"]))
        band = draw(st.sampled_from(["", "", *bands]))
        start = draw(st.sampled_from(INSTANTS[:2]))
        if (prefix, origin, band, start) in used:
            continue
        used.add((prefix, origin, band, start))
        minimum = draw(st.sampled_from(["", "", "0.01", "0.5"]))
        maximum = draw(st.sampled_from(["", "", "0.5", "3"]))
        if minimum and maximum and float(minimum) > float(maximum):
            maximum = ""
        initial, subsequent = draw(increments)
        rows.append(
            deck_row(
                prefix,
                draw(rates),
                connection_fee=draw(st.sampled_from(["", "0.01"])),
                initial_increment=initial,
                subsequent_increment=subsequent,
                effective_from=start,
                initial_rate=draw(st.one_of(st.just(""), rates)),
                grace_seconds=draw(st.sampled_from(["", "0", "3", "6"])),
                min_cost=minimum,
                max_cost=maximum,
                origin=origin,
                band=band,
            )
        )
    return rows


@st.composite
def v2_networks(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, str]]:
    zones = {name: draw(st.sampled_from(ZONES)) for name in ("P", "C", "R")}
    roundings = st.sampled_from(["", "up", "down", "nearest"])
    plans = [
        plan("P", "customer", timezone=zones["P"], duration_rounding=draw(roundings)),
        plan("C", "client", currency="USD", timezone=zones["C"], duration_rounding=draw(roundings)),
        plan("R", "reseller", decimals="3", timezone=zones["R"], duration_rounding=draw(roundings)),
    ]
    banded = {"P", "C"} if draw(st.booleans()) else {"P"}
    bands = ["peak", "offpeak", "weekend"]
    folder = {
        "plans": plans,
        "decks": {p: draw(v2_decks(bands if p in banded else [])) for p in ("P", "C", "R")},
        "associations": [
            association("customer", "cust", "P"),
            association("client", "gw", "C"),
            association("reseller", "res", "R"),
        ],
        "memberships": [membership("gw", "res")],
    }
    files = {
        "origin_groups.csv": "tenant_id,group,prefix\nt1,EEA,49\nt1,EEA,44\nt1,EEA,33\nt1,NANP,1\n",
        "time_bands.csv": "plan_id,band,weekdays,start,end\n"
        + "".join(_week(p) for p in sorted(banded)),
        "holidays.csv": "plan_id,date,band\n"
        + draw(st.sampled_from(["", "P,2026-03-10,weekend\n", "P,2026-03-29,peak\n"])),
    }
    records = [
        cdr(
            cdr_id=f"c{i}",
            caller=draw(
                st.sampled_from(
                    ["+4930111", "0044207", "+1 212 555", "+33 1", "anonymous", "+7495"]
                )
            ),
            callee=draw(st.sampled_from(["+", "00", ""]))
            + draw(st.sampled_from(PREFIXES))
            + draw(st.sampled_from(["", "7", "123456"]))
            + "99",
            start_time=draw(st.sampled_from(V2_INSTANTS)),
            end_time="2026-04-30T00:00:00Z",
            duration_ms=draw(
                st.one_of(
                    st.sampled_from(
                        [0, 499, 500, 1_499, 1_500, 2_999, 3_000, 3_001, 60_000, 61_200]
                    ),
                    st.integers(0, 10_000_000),
                )
            ),
        )
        for i in range(draw(st.integers(1, 20)))
    ]
    return folder, records, files


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(network=v2_networks())
def test_engine_equals_reference_on_random_v2_networks(
    network: tuple[dict[str, Any], list[dict[str, Any]], dict[str, str]],
) -> None:
    folder, records, files = network
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_plans(
            root / "plans",
            folder["plans"],
            folder["decks"],
            folder["associations"],
            folder["memberships"],
        )
        for name, text in files.items():
            (root / "plans" / name).write_text(text)
        cdrs = root / "cdrs.jsonl"
        cdrs.write_text("\n".join(json.dumps(r) for r in records) + "\n")
        _compare(root / "plans", cdrs, root, with_v2=True)


# --- accounts as reference data: enrollments through join codes ------------------------------

JOIN_CODES = "tenant_id,code,reseller_id\nt1,TAG-RES,res\nt1,TAG-OTHER,other\nt1,OPEN,\n"


@st.composite
def enrolled_networks(draw: st.DrawFn) -> tuple[dict[str, Any], str, list[dict[str, Any]]]:
    """gw enrolls (and re-enrolls) through tagged and Direct codes; memberships.csv agrees.

    gw2 keeps its reseller from memberships.csv only; gw3 is enrolled and in no membership.
    """
    plans = [plan("P", "customer"), plan("R", "reseller", decimals="3"), plan("O", "reseller")]
    codes = {"TAG-RES": "res", "TAG-OTHER": "other", "OPEN": None}
    chosen = draw(st.sets(st.integers(0, len(INSTANTS) - 2), min_size=1, max_size=4))
    times = [INSTANTS[i] for i in sorted(chosen)]  # in time order (not text order)
    lines = [("gw", draw(st.sampled_from(sorted(codes))), at) for at in times]
    lines += [("gw3", draw(st.sampled_from(sorted(codes))), INSTANTS[1])]
    memberships = [membership("gw2", "res", effective_until=INSTANTS[3])]
    # memberships.csv may repeat what an enrollment of gw says (the same reseller, same span)
    pick = draw(st.integers(0, len(times) - 1))
    reseller = codes[lines[pick][1]]
    if reseller is not None and draw(st.booleans()):
        until = times[pick + 1] if pick + 1 < len(times) else ""
        memberships.append(
            membership("gw", reseller, effective_from=times[pick], effective_until=until)
        )
    folder = {
        "plans": plans,
        "decks": {"P": draw(decks()), "R": draw(decks()), "O": draw(decks())},
        "associations": [
            association("customer", "cust", "P"),
            association("reseller", "res", "R"),
            association("reseller", "other", "O"),
        ],
        "memberships": memberships,
    }
    enrollments = "client_id,join_code,enrolled_at\n" + "".join(
        f"{client},{code},{at}\n" for client, code, at in draw(st.permutations(lines))
    )
    records = [
        cdr(
            cdr_id=f"c{i}",
            client_id=draw(st.sampled_from(["gw", "gw", "gw2", "gw3", "nobody"])),
            reseller_id=draw(st.sampled_from([None, None, None, "other"])),
            callee=draw(st.sampled_from(PREFIXES)) + "123456",
            start_time=draw(st.sampled_from([*INSTANTS, "2026-02-01T00:00:00Z"])),
            duration_ms=draw(st.integers(0, 200_000)),
        )
        for i in range(draw(st.integers(1, 20)))
    ]
    return folder, enrollments, records


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(network=enrolled_networks())
def test_engine_equals_reference_with_enrollments(
    network: tuple[dict[str, Any], str, list[dict[str, Any]]],
) -> None:
    folder, enrollments, records = network
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        plans = write_plans(
            root / "plans",
            folder["plans"],
            folder["decks"],
            folder["associations"],
            folder["memberships"],
        )
        (plans / "join_codes.csv").write_text(JOIN_CODES)
        (plans / "enrollments.csv").write_text(enrollments)
        cdrs = root / "cdrs.jsonl"
        cdrs.write_text("\n".join(json.dumps(r) for r in records) + "\n")
        _compare(plans, cdrs, root)
