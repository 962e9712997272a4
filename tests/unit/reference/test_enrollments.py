"""enrollments.csv: its rules, and the reseller of a client from the join code it enrolled with."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pipeline.rating.exceptions import ReferenceDataError
from pipeline.rating.reference import ReferenceData
from pipeline.reference.loader import load_plans_folder
from tests.builders import association, cdr, deck_row, membership, plan, rate, write_plans

ACCOUNTS = (
    "tenant_id,scope,account_id,name,company,email,billing_type,credit_limit,currency,status\n"
    "t1,reseller,res-a,Reseller A,A GmbH,a@res.example,postpaid,500,EUR,active\n"
    "t1,reseller,res-b,Reseller B,,b@res.example,prepaid,,,inactive\n"
    "t1,client,gw,Gateway,,,postpaid,,,active\n"
    "t2,client,gw-t2,Gateway of t2,,,postpaid,,,active\n"
)
CODES = "tenant_id,code,reseller_id\nt1,JOIN-A,res-a\nt1,JOIN-B,res-b\nt1,WALK-IN,\nt2,T2,\n"
ENROLL = "client_id,join_code,enrolled_at\n"


def _folder(root: Path, memberships: list[dict[str, Any]] = ()) -> Path:  # type: ignore[assignment]
    """Customer plan P; reseller plans RA (EUR) for res-a and RB (USD) for res-b."""
    return write_plans(
        root,
        [plan("P", "customer"), plan("RA", "reseller"), plan("RB", "reseller", currency="USD")],
        {
            "P": [deck_row("44", "0.01")],
            "RA": [deck_row("44", "0.001")],
            "RB": [deck_row("44", "0.002")],
        },
        [
            association("customer", "cust", "P"),
            association("reseller", "res-a", "RA"),
            association("reseller", "res-b", "RB"),
        ],
        memberships,
    )


def _roster(folder: Path, enrollments: str, *, accounts: bool = True) -> Path:
    if accounts:
        (folder / "accounts.csv").write_text(ACCOUNTS)
    (folder / "join_codes.csv").write_text(CODES)
    (folder / "enrollments.csv").write_text(ENROLL + enrollments)
    return folder


def _problems(folder: Path) -> list[str]:
    with pytest.raises(ReferenceDataError) as caught:
        load_plans_folder(folder)
    return [str(p) for p in caught.value.problems]


def _resellers(reference: ReferenceData, client: str, days: list[int]) -> list[str | None]:
    """The reseller of a call through ``client`` at noon of each day of March 2026."""
    rows = rate(
        reference,
        [
            cdr(cdr_id=f"c{day}", client_id=client, start_time=f"2026-03-{day:02d}T12:00:00Z")
            for day in days
        ],
    )
    return [row["reseller_id"] for row in rows]


# --- rules -----------------------------------------------------------------------------------


def test_an_enrollment_names_an_existing_join_code(tmp_path: Path) -> None:
    folder = _roster(
        _folder(tmp_path), "gw,JOIN-A,2026-03-01T00:00:00Z\ngw,JOIN-Z,2026-03-05T00:00:00Z\n"
    )
    assert _problems(folder) == [
        "enrollments.csv, line 3, column join_code: 'JOIN-Z': no such join code in join_codes.csv"
    ]


def test_enrolled_at_is_rfc_3339(tmp_path: Path) -> None:
    folder = _roster(_folder(tmp_path), "gw,JOIN-A,2026-03-01 00:00\n")
    assert _problems(folder) == [
        "enrollments.csv, line 2, column enrolled_at: '2026-03-01 00:00': not an RFC 3339 "
        "timestamp (like 2026-03-01T00:00:00Z)"
    ]


def test_every_column_is_required(tmp_path: Path) -> None:
    folder = _roster(
        _folder(tmp_path), ",JOIN-A,2026-03-01T00:00:00Z\ngw,,2026-03-01T00:00:00Z\ngw,JOIN-A,\n"
    )
    assert _problems(folder) == [
        "enrollments.csv, line 2, column client_id: required, empty",
        "enrollments.csv, line 3, column join_code: required, empty",
        "enrollments.csv, line 4, column enrolled_at: required, empty",
    ]
    (folder / "enrollments.csv").write_text("client_id,enrolled_at\n")
    assert _problems(folder) == [
        "enrollments.csv, line 1, column join_code: required column missing"
    ]


def test_a_client_enrolled_twice_at_one_instant_is_refused(tmp_path: Path) -> None:
    # The same instant written two ways: 01:00 at +01:00 is 00:00 UTC.
    folder = _roster(
        _folder(tmp_path),
        "gw,JOIN-A,2026-03-01T00:00:00Z\ngw,JOIN-B,2026-03-01T01:00:00+01:00\n"
        "gw2,JOIN-B,2026-03-01T00:00:00Z\n",  # another client at that instant: fine
    )
    assert _problems(folder) == [
        "enrollments.csv, line 3, column enrolled_at: '2026-03-01T01:00:00+01:00': client gw "
        "enrolled twice at this instant (first on line 2)"
    ]


def test_a_listed_client_must_be_a_client_account_of_the_codes_tenant(tmp_path: Path) -> None:
    folder = _roster(
        _folder(tmp_path),
        "gw,JOIN-A,2026-03-01T00:00:00Z\n"  # a client of t1: fine
        "gw-t2,JOIN-A,2026-03-01T00:00:00Z\n"  # a client of t2 through a code of t1
        "res-a,JOIN-B,2026-03-01T00:00:00Z\n"  # a reseller, not a client
        "unlisted,JOIN-A,2026-03-01T00:00:00Z\n",  # not in accounts.csv: taken as written
    )
    assert _problems(folder) == [
        "enrollments.csv, line 3, column client_id: 'gw-t2': accounts.csv lists it only as: "
        "client account of tenant t2; an enrolled client must be a client account of tenant t1 "
        "(the tenant of join code JOIN-A)",
        "enrollments.csv, line 4, column client_id: 'res-a': accounts.csv lists it only as: "
        "reseller account of tenant t1; an enrolled client must be a client account of tenant "
        "t1 (the tenant of join code JOIN-B)",
    ]


def test_every_enrollment_problem_is_listed_at_once(tmp_path: Path) -> None:
    folder = _roster(
        _folder(tmp_path),
        "gw,NOPE,2026-03-01T00:00:00Z\ngw,JOIN-A,yesterday\n"
        + f"{'g' * 257},JOIN-A,2026-03-02T00:00:00Z\n",
    )
    assert _problems(folder) == [
        f"enrollments.csv, line 4, column client_id: '{'g' * 257}': longer than 256 characters",
        "enrollments.csv, line 2, column join_code: 'NOPE': no such join code in join_codes.csv",
        "enrollments.csv, line 3, column enrolled_at: 'yesterday': not an RFC 3339 timestamp "
        "(like 2026-03-01T00:00:00Z)",
    ]


# --- attribution -----------------------------------------------------------------------------


def test_a_tagged_code_gives_its_reseller_from_enrolled_at_on(tmp_path: Path) -> None:
    reference = load_plans_folder(_roster(_folder(tmp_path), "gw,JOIN-A,2026-03-05T00:00:00Z\n"))
    assert _resellers(reference, "gw", [4, 5, 31]) == [None, "res-a", "res-a"]


def test_a_direct_code_ends_the_earlier_reseller_and_gives_none(tmp_path: Path) -> None:
    reference = load_plans_folder(
        _roster(
            _folder(tmp_path),
            "gw,WALK-IN,2026-03-20T00:00:00Z\ngw,JOIN-A,2026-03-05T00:00:00Z\n",  # any order
        )
    )
    assert _resellers(reference, "gw", [4, 5, 19, 20, 31]) == [
        None,
        "res-a",
        "res-a",
        None,
        None,
    ]


def test_a_re_enrollment_switches_the_reseller(tmp_path: Path) -> None:
    reference = load_plans_folder(
        _roster(
            _folder(tmp_path),
            "gw,JOIN-A,2026-03-01T00:00:00Z\ngw,JOIN-B,2026-03-10T00:00:00Z\n"
            "gw,WALK-IN,2026-03-15T00:00:00Z\ngw,JOIN-A,2026-03-25T00:00:00Z\n",
        )
    )
    assert _resellers(reference, "gw", [9, 10, 14, 15, 24, 25]) == [
        "res-a",
        "res-b",
        "res-b",
        None,
        None,
        "res-a",
    ]
    enrollments = reference.roster.enrollments
    assert enrollments.select("client_id", "join_code", "reseller_id").rows() == [
        ("gw", "JOIN-A", "res-a"),
        ("gw", "JOIN-B", "res-b"),
        ("gw", "WALK-IN", None),
        ("gw", "JOIN-A", "res-a"),
    ]
    assert enrollments["until"].to_list() == [
        datetime(2026, 3, 10, tzinfo=UTC),
        datetime(2026, 3, 15, tzinfo=UTC),
        datetime(2026, 3, 25, tzinfo=UTC),
        None,
    ]


def test_an_enrollment_agreeing_with_memberships_csv_is_accepted_and_merged(
    tmp_path: Path,
) -> None:
    folder = _folder(
        tmp_path,
        [
            # res-a until the 12th: the enrollment through JOIN-A from the 5th says the same
            membership("gw", "res-a", effective_until="2026-03-12T00:00:00Z"),
            membership("gw2", "res-b"),  # a client memberships.csv alone speaks for
        ],
    )
    reference = load_plans_folder(
        _roster(
            folder,
            "gw,JOIN-A,2026-03-05T00:00:00Z\ngw,JOIN-B,2026-03-20T00:00:00Z\n",
            accounts=False,
        )
    )
    assert _resellers(reference, "gw", [1, 5, 11, 12, 19, 20]) == ["res-a"] * 5 + ["res-b"]
    assert _resellers(reference, "gw2", [1, 31]) == ["res-b", "res-b"]


def test_an_enrollment_disagreeing_with_memberships_csv_is_refused_naming_both_lines(
    tmp_path: Path,
) -> None:
    folder = _folder(
        tmp_path,
        [
            membership("gw", "res-a", effective_until="2026-03-10T00:00:00Z"),  # line 2
            membership("gw", "res-b", effective_from="2026-03-10T00:00:00Z"),  # line 3
        ],
    )
    _roster(
        folder,
        "gw,JOIN-A,2026-03-01T00:00:00Z\n"  # line 2: res-a, until the 15th: clashes with line 3
        "gw,WALK-IN,2026-03-15T00:00:00Z\n"  # line 3: Direct from the 15th: clashes with line 3
        "gw,JOIN-B,2026-03-20T00:00:00Z\n",  # line 4: res-b, agrees with line 3
    )
    assert _problems(folder) == [
        "enrollments.csv, line 2, column join_code: 'JOIN-A': client gw enrolled with reseller "
        "res-a from this enrollment on, but memberships.csv line 3 gives it reseller res-b over "
        "part of that time",
        "enrollments.csv, line 3, column join_code: 'WALK-IN': client gw enrolled with Direct "
        "(no reseller) from this enrollment on, but memberships.csv line 3 gives it reseller "
        "res-b over part of that time",
    ]


def test_enrollments_touching_memberships_csv_do_not_overlap(tmp_path: Path) -> None:
    folder = _folder(tmp_path, [membership("gw", "res-b", effective_until="2026-03-10T00:00:00Z")])
    reference = load_plans_folder(_roster(folder, "gw,JOIN-A,2026-03-10T00:00:00Z\n"))
    assert _resellers(reference, "gw", [9, 10]) == ["res-b", "res-a"]


# --- rating end to end -----------------------------------------------------------------------


def test_the_reseller_leg_follows_the_enrollment_and_an_inactive_reseller_is_still_rated(
    tmp_path: Path,
) -> None:
    # res-b is inactive in accounts.csv: attribution is a fact, its leg is rated all the same.
    reference = load_plans_folder(
        _roster(
            _folder(tmp_path),
            "gw,JOIN-A,2026-03-01T00:00:00Z\ngw,JOIN-B,2026-03-10T00:00:00Z\n"
            "gw,WALK-IN,2026-03-20T00:00:00Z\n",
        )
    )
    assert reference.roster.accounts.filter(account_id="res-b")["status"].item() == "inactive"
    rows = {
        row["cdr_id"]: row
        for row in rate(
            reference,
            [
                cdr(cdr_id="a", start_time="2026-03-05T12:00:00Z", duration_ms=120_000),
                cdr(cdr_id="b", start_time="2026-03-15T12:00:00Z", duration_ms=120_000),
                cdr(cdr_id="direct", start_time="2026-03-25T12:00:00Z", duration_ms=120_000),
                cdr(cdr_id="explicit", start_time="2026-03-15T12:00:00Z", reseller_id="res-a"),
            ],
        )
    }
    leg = ("reseller_id", "reseller_plan_id", "reseller_amount", "reseller_currency", "status")
    assert {cdr_id: tuple(row[c] for c in leg) for cdr_id, row in rows.items()} == {
        "a": ("res-a", "RA", Decimal("0.002000"), "EUR", "rated"),
        "b": ("res-b", "RB", Decimal("0.004000"), "USD", "rated"),
        "direct": (None, None, None, None, "rated"),
        "explicit": ("res-a", "RA", Decimal("0.001000"), "EUR", "rated"),  # the CDR's reseller wins
    }
    assert {row["customer_amount"] for row in rows.values()} == {
        Decimal("0.020000"),
        Decimal("0.010000"),
    }


# --- the documented example ------------------------------------------------------------------


def _documented_example(root: Path) -> tuple[Path, list[str]]:
    """docs/reference-data.md's resellers example written out, and the refusal it shows."""
    text = (Path(__file__).parents[3] / "docs" / "reference-data.md").read_text()
    section = text.split("### Example: resellers through join codes\n", 1)[1]
    block = section.split("```\n", 2)[1]
    files = re.split(r"^# (\S+?):?(?: [^\n]*)?\n", block, flags=re.M)[1:]
    folder = write_plans(
        root,
        [plan("P", "customer"), plan("RA", "reseller"), plan("RB", "reseller", currency="USD")],
        {
            "P": [deck_row("44", "0.01")],
            "RA": [deck_row("44", "0.001")],
            "RB": [deck_row("44", "0.002")],
        },
        [
            association("customer", "cust", "P"),
            association("reseller", "res-a", "RA"),
            association("reseller", "res-b", "RB"),
        ],
    )
    for name, body in zip(files[::2], files[1::2], strict=True):
        (folder / name).write_text(body.strip() + "\n")
    refusal = section.split("```\n", 4)[3]
    return folder, [line.strip() for line in refusal.splitlines()]


def test_the_documented_example_attributes_as_it_says(tmp_path: Path) -> None:
    folder, refusal = _documented_example(tmp_path)
    reference = load_plans_folder(folder)
    assert _resellers(reference, "gw-7", [5, 15, 25]) == ["res-a", None, "res-b"]
    members = "client_id,reseller_id,effective_from,effective_until\n"
    (folder / "memberships.csv").write_text(
        members + "gw-7,res-a,2026-02-01T00:00:00Z,2026-03-10T00:00:00Z\n"
    )
    assert _resellers(load_plans_folder(folder), "gw-7", [1, 5, 15]) == ["res-a", "res-a", None]
    (folder / "memberships.csv").write_text(members + "gw-7,res-b,2026-03-01T00:00:00Z,\n")
    assert _problems(folder) == refusal
