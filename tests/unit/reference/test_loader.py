"""Loading a plans folder: every problem named with file, line, column and value; all listed."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.rating.exceptions import ReferenceDataError
from pipeline.rating.reference import Scope
from pipeline.reference.files import FolderPlanFiles
from pipeline.reference.loader import deck_rows, load_plans_folder
from tests.builders import (
    association,
    cdr,
    deck_row,
    membership,
    plan,
    rate,
    simple_reference,
    write_plans,
)


def _problems(folder: Path) -> list[str]:
    with pytest.raises(ReferenceDataError) as caught:
        load_plans_folder(folder)
    return [str(p) for p in caught.value.problems]


def test_a_good_folder_loads(tmp_path: Path) -> None:
    write_plans(
        tmp_path,
        [plan("P", "customer"), plan("R", "reseller", currency="USD", decimals="2", rounding="up")],
        {"P": [deck_row("44", "0.01"), deck_row("4420", "0.02")], "R": [deck_row("4", "0.001")]},
        [association("customer", "cust", "P"), association("reseller", "res", "R")],
        [membership("gw", "res")],
    )
    reference = load_plans_folder(tmp_path)
    assert reference.plan_count == 2
    assert reference.deck_row_count == 3
    assert reference.plans["decimals"].to_list() == [6, 2]
    assert reference.plans["rounding"].to_list() == ["half_up", "up"]
    assert reference.associations[Scope.CUSTOMER].accounts.height == 1
    assert len(reference.version) == 16
    assert load_plans_folder(tmp_path).version == reference.version


def test_version_changes_with_content(tmp_path: Path) -> None:
    write_plans(tmp_path, [plan("P", "customer")], {"P": [deck_row("44", "0.01")]})
    first = load_plans_folder(tmp_path).version
    write_plans(tmp_path, [plan("P", "customer")], {"P": [deck_row("44", "0.02")]})
    assert load_plans_folder(tmp_path).version != first


def test_every_deck_problem_is_listed_with_line_column_and_value(tmp_path: Path) -> None:
    write_plans(
        tmp_path,
        [plan("P", "customer")],
        {
            "P": [
                deck_row("44", "0.01"),  # line 2, fine
                deck_row("44a", "0.01"),  # line 3
                deck_row("45", "-0.01"),  # line 4
                deck_row("46", "1,5"),  # quoted by csv: line 5
                deck_row("47", "0.01", initial_increment="0"),  # line 6
                deck_row("48", "0.01", subsequent_increment="-6"),  # line 7
                deck_row("49", "0.01", effective_from="2026-03-01"),  # line 8
                deck_row("33", "0.01", effective_until="2026-02-01T00:00:00Z"),  # line 9
                deck_row("44", "0.02"),  # line 10: same prefix, same effective_from as line 2
                deck_row("34", "0.0000000001"),  # line 11: ten decimals
                deck_row("", "0.01"),  # line 12
                deck_row("35", "0.01", connection_fee="-1"),  # line 13
            ]
        },
    )
    problems = _problems(tmp_path)
    expected = [
        "decks/P.csv, line 3, column prefix: '44a': must be 1 to 15 digits",
        "decks/P.csv, line 4, column rate: '-0.01': negative",
        "decks/P.csv, line 5, column rate: '1,5': not a decimal number",
        "decks/P.csv, line 6, column initial_increment: '0': increment below 1 second",
        "decks/P.csv, line 7, column subsequent_increment: '-6': increment below 1 second",
        "decks/P.csv, line 8, column effective_from: '2026-03-01': not an RFC 3339 timestamp",
        "decks/P.csv, line 9, column effective_until: '2026-02-01T00:00:00Z': not after",
        "decks/P.csv, line 10, column prefix: '44': same prefix twice",
        "decks/P.csv, line 2, column prefix: '44': same prefix twice",
        "decks/P.csv, line 11, column rate: '0.0000000001': more than 9 decimal places",
        "decks/P.csv, line 12, column prefix: required, empty",
        "decks/P.csv, line 13, column connection_fee: '-1': negative",
    ]
    for text in expected:
        assert any(p.startswith(text) for p in problems), (text, problems)
    assert len(problems) == len(expected)


def test_plan_problems(tmp_path: Path) -> None:
    write_plans(
        tmp_path,
        [
            plan("P", "customer", currency="EURO"),
            plan("Q", "wholesale"),
            plan("R", "client", decimals="7"),
            plan("S", "client", rounding="banker"),
            plan("P", "client"),
        ],
        {"P": [], "Q": [], "R": [], "S": []},
    )
    problems = _problems(tmp_path)
    assert "plans.csv, line 2, column currency: 'EURO': not an ISO 4217 currency code" in problems
    assert any(p.startswith("plans.csv, line 3, column scope: 'wholesale'") for p in problems)
    assert "plans.csv, line 4, column decimals: '7': must be 0 to 6" in problems
    assert any(p.startswith("plans.csv, line 5, column rounding: 'banker'") for p in problems)
    assert any(
        p.startswith("plans.csv, line 6, column plan_id: 'P': plan_id appears") for p in problems
    )


def test_missing_deck_file_and_stray_deck(tmp_path: Path) -> None:
    write_plans(tmp_path, [plan("P", "customer"), plan("Q", "client")], {"P": [], "Z": []})
    problems = _problems(tmp_path)
    assert "decks/Q.csv: file missing" in problems
    assert any(p.startswith("decks/Z.csv") and "not in plans.csv" in p for p in problems)


def test_unknown_and_missing_columns(tmp_path: Path) -> None:
    write_plans(tmp_path, [plan("P", "customer")], {"P": [deck_row("44", "0.01")]})
    (tmp_path / "decks" / "P.csv").write_text(
        "prefix,destination,rat,effective_from\n44,UK,0.1,x\n"
    )
    problems = _problems(tmp_path)
    assert any(p.startswith("decks/P.csv, line 1, column rat: unknown column") for p in problems)
    assert "decks/P.csv, line 1, column rate: required column missing" in problems


def test_overlapping_associations_are_refused(tmp_path: Path) -> None:
    write_plans(
        tmp_path,
        [plan("P", "customer"), plan("Q", "customer"), plan("C", "client")],
        {"P": [], "Q": [], "C": []},
        [
            association("customer", "cust", "P", effective_until="2026-03-20T00:00:00Z"),
            association("customer", "cust", "Q", effective_from="2026-03-19T00:00:00Z"),
            association("customer", "other", "Q"),
            association("client", "cust", "C"),  # another scope: no overlap
            association("customer", "ghost", "NOPE"),
            association("client", "gw", "P"),  # plan of another scope
        ],
    )
    problems = _problems(tmp_path)
    assert any(
        p.startswith("associations.csv, line 3, column effective_from")
        and "overlaps the one on line 2" in p
        for p in problems
    ), problems
    assert "associations.csv, line 6, column plan_id: 'NOPE': no such plan in plans.csv" in problems
    assert any(
        p.startswith("associations.csv, line 7, column plan_id: 'P': plan has scope customer")
        for p in problems
    )
    assert len(problems) == 3


def test_touching_intervals_do_not_overlap(tmp_path: Path) -> None:
    """An interval ends where the next begins: the boundary instant belongs to the next one."""
    write_plans(
        tmp_path,
        [plan("P", "customer"), plan("Q", "customer")],
        {"P": [deck_row("44", "0.1")], "Q": [deck_row("44", "0.2")]},
        [
            association("customer", "cust", "P", effective_until="2026-03-20T00:00:00Z"),
            association("customer", "cust", "Q", effective_from="2026-03-20T00:00:00Z"),
        ],
        [
            membership("gw", "a", effective_until="2026-03-20T00:00:00Z"),
            membership("gw", "b", effective_from="2026-03-20T00:00:00Z"),
        ],
    )
    reference = load_plans_folder(tmp_path)
    before, at = rate(
        reference,
        [
            cdr(cdr_id="before", start_time="2026-03-19T23:59:59.999999Z"),
            cdr(cdr_id="at", start_time="2026-03-20T00:00:00Z"),
        ],
    )
    assert (before["customer_plan_id"], before["reseller_id"]) == ("P", "a")
    assert (at["customer_plan_id"], at["reseller_id"]) == ("Q", "b")


def test_overlapping_memberships_are_refused(tmp_path: Path) -> None:
    write_plans(
        tmp_path,
        [plan("P", "customer")],
        {"P": []},
        [],
        [membership("gw", "a"), membership("gw", "b", effective_from="2026-03-05T00:00:00Z")],
    )
    problems = _problems(tmp_path)
    assert len(problems) == 1
    assert problems[0].startswith("memberships.csv, line 3, column effective_from")
    assert "membership of client gw overlaps the one on line 2" in problems[0]


def test_not_a_folder(tmp_path: Path) -> None:
    assert _problems(tmp_path / "nope") == [f"{tmp_path / 'nope'}: not a folder"]


def test_missing_plans_file(tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    assert _problems(tmp_path) == ["plans.csv: file missing"]


def test_error_message_lists_every_problem(tmp_path: Path) -> None:
    write_plans(tmp_path, [plan("P", "customer")], {"P": [deck_row("x", "-1"), deck_row("y", "0")]})
    with pytest.raises(ReferenceDataError) as caught:
        load_plans_folder(tmp_path)
    text = str(caught.value)
    assert "3 problem(s)" in text
    assert "line 2, column prefix: 'x'" in text
    assert "line 3, column prefix: 'y'" in text


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("prefix,rate,effective_from\n", []),
        ("prefix,rate,effective_from\n44,x,y", [2]),
        ("prefix,rate,effective_from\n44,x,y\n\n\n", [2]),
        ("prefix,rate,effective_from\r\n44,x,y\r\n\r\n45,x,y\r\n", [2, 4]),
        ("prefix,rate,effective_from\n\n44,x,y\n   \n45,x,y", [3, 5]),
    ],
)
def test_line_numbers_count_physical_lines(tmp_path: Path, text: str, lines: list[int]) -> None:
    write_plans(tmp_path, [plan("P", "customer")], {"P": []})
    (tmp_path / "decks" / "P.csv").write_text(text, newline="")
    if not lines:
        load_plans_folder(tmp_path)  # a deck with only its header is fine
        return
    problems = [p for p in _problems(tmp_path) if "decks/P.csv" in p]
    assert sorted({int(p.split(", line ")[1].split(",")[0]) for p in problems}) == lines


# --- tariff v2: the price shape and the plan's zone and duration rounding ----------------------


def test_price_shape_problems_are_named(tmp_path: Path) -> None:
    write_plans(
        tmp_path,
        [
            plan("P", "customer", timezone="Europe/Berlin", duration_rounding="nearest"),
            plan("Q", "client", timezone="Mars/Olympus_Mons", duration_rounding="sideways"),
        ],
        {
            "P": [
                deck_row("44", "0.01", initial_rate="0.05", grace_seconds="3"),  # line 2, fine
                deck_row("45", "0.01", initial_rate="-0.05"),  # line 3
                deck_row("46", "0.01", grace_seconds="86401"),  # line 4
                deck_row("47", "0.01", grace_seconds="-1"),  # line 5
                deck_row("48", "0.01", min_cost="0.5", max_cost="0.4"),  # line 6
                deck_row("49", "0.01", max_cost="zero"),  # line 7
                deck_row("31", "0.01", min_cost="0.4", max_cost="0.4"),  # line 8, fine
            ],
            "Q": [deck_row("44", "0.01")],
        },
    )
    problems = _problems(tmp_path)
    assert any(
        "plans.csv, line 3, column timezone: 'Mars/Olympus_Mons'" in p and "IANA" in p
        for p in problems
    ), problems
    assert any("plans.csv, line 3, column duration_rounding: 'sideways'" in p for p in problems), (
        problems
    )
    assert any("decks/P.csv, line 3, column initial_rate: '-0.05'" in p for p in problems)
    assert any("decks/P.csv, line 4, column grace_seconds: '86401'" in p for p in problems)
    assert any("decks/P.csv, line 5, column grace_seconds: '-1'" in p for p in problems)
    assert any(
        "decks/P.csv, line 6, column min_cost: '0.5'" in p and "greater than max_cost" in p
        for p in problems
    ), problems
    assert any("decks/P.csv, line 7, column max_cost: 'zero'" in p for p in problems)
    assert not any("line 2" in p or "line 8" in p for p in problems), problems


def test_a_plan_zone_and_duration_rounding_load(tmp_path: Path) -> None:
    write_plans(
        tmp_path,
        [plan("P", "customer", timezone="Australia/Lord_Howe", duration_rounding="down")],
        {"P": [deck_row("44", "0.01")]},
    )
    reference = load_plans_folder(tmp_path)
    assert reference.plans["timezone"].to_list() == ["Australia/Lord_Howe"]
    assert reference.plan_arrays.duration_rounding.tolist() == [1]


def test_a_quoted_header_row_is_standard_csv(tmp_path: Path) -> None:
    folder = tmp_path / "plans"
    simple_reference(folder, [deck_row("44", "0.01")])
    deck = folder / "decks" / "P.csv"
    lines = deck.read_text().splitlines()
    quoted = ",".join(f'"{name}"' for name in lines[0].split(","))
    deck.write_text("\n".join([quoted, '"49","Germany, all","0.02",,,,"2026-03-01T00:00:00Z",']))
    plans = folder / "plans.csv"
    plans.write_text(plans.read_text().replace("plan_id,", '"plan_id",', 1))
    reference = load_plans_folder(folder)
    rows = deck_rows(FolderPlanFiles(folder))
    assert rows.select("prefix", "destination", "rate_units").rows() == [
        ("49", "Germany, all", 20_000_000)
    ]
    assert reference.plans["plan_id"].to_list() == ["P"]
