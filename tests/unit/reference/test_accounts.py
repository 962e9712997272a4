"""accounts.csv and join_codes.csv: each rule refused with file, line, column and value."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from pipeline.rating.exceptions import ReferenceDataError
from pipeline.reference.loader import load_plans_folder
from tests.builders import association, deck_row, plan, write_plans

HEADER = (
    "tenant_id,scope,account_id,name,company,email,billing_type,credit_limit,currency,status,"
    "timezone\n"
)
GOOD_RESELLER = "t1,reseller,res,Res One,Res Ltd,res@example.com,postpaid,1000.50,EUR,active,UTC\n"


def _folder(root: Path) -> Path:
    return write_plans(
        root,
        [plan("P", "customer"), plan("R", "reseller")],
        {"P": [deck_row("44", "0.01")], "R": [deck_row("44", "0.001")]},
        [association("customer", "cust", "P"), association("reseller", "res", "R")],
    )


def _problems(folder: Path) -> list[str]:
    with pytest.raises(ReferenceDataError) as caught:
        load_plans_folder(folder)
    return [str(p) for p in caught.value.problems]


def test_accounts_load_with_their_defaults_and_exact_credit_limits(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "accounts.csv").write_text(
        HEADER
        + GOOD_RESELLER
        + "t1,reseller,res2,Res Two,,two@res.example.org,prepaid,,,inactive,\n"
        + "t1,client,res,Gateway named like the reseller,,,postpaid,0.000000001,USD,,"
        "Europe/Berlin\n"
        + "t2,reseller,res,Other tenant's res,,r@t2.example,prepaid,999999.999999999,GBP,,\n"
    )
    accounts = load_plans_folder(folder).roster.accounts
    assert accounts.rows() == [
        ("t1", "reseller", "res", "Res One", "Res Ltd", "res@example.com", "postpaid",
         Decimal("1000.500000000"), "EUR", "active", "UTC"),
        ("t1", "reseller", "res2", "Res Two", None, "two@res.example.org", "prepaid",
         None, None, "inactive", "UTC"),
        ("t1", "client", "res", "Gateway named like the reseller", None, None, "postpaid",
         Decimal("0.000000001"), "USD", "active", "Europe/Berlin"),
        ("t2", "reseller", "res", "Other tenant's res", None, "r@t2.example", "prepaid",
         Decimal("999999.999999999"), "GBP", "active", "UTC"),
    ]  # fmt: skip


LONG = "x" * 201


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("t1,wholesale,w,W,,,prepaid,,,,", "column scope: 'wholesale': must be one of customer"),
        (",customer,c,C,,,prepaid,,,,", "column tenant_id: required, empty"),
        ("t1,customer,,C,,,prepaid,,,,", "column account_id: required, empty"),
        ("t1,customer,c,,,,prepaid,,,,", "column name: required, empty"),
        ("t1,customer,c,C,,,,,,,", "column billing_type: required, empty"),
        ("t1,customer,c,C,,,credit,,,,", "column billing_type: 'credit': must be one of prepaid"),
        ("t1,customer,c,C,,a@b,prepaid,,,,", "column email: 'a@b': not an email address"),
        ("t1,customer,c,C,,a b@c.de,prepaid,,,,", "column email: 'a b@c.de': not an email"),
        ("t1,customer,c,C,,a@@c.de,prepaid,,,,", "column email: 'a@@c.de': not an email"),
        ("t1,reseller,r,R,,,prepaid,,,,", "column email: required for a reseller account"),
        ("t1,customer,c,C,,,prepaid,-5,EUR,,", "column credit_limit: '-5': negative"),
        ("t1,customer,c,C,,,prepaid,1e3,EUR,,", "column credit_limit: '1e3': not a decimal"),
        ("t1,customer,c,C,,,prepaid,1.5.0,EUR,,", "column credit_limit: '1.5.0': not a decimal"),
        (
            "t1,customer,c,C,,,prepaid,0.0000000001,EUR,,",
            "column credit_limit: '0.0000000001': more than 9 decimal places",
        ),
        (
            "t1,customer,c,C,,,prepaid,1000000,EUR,,",
            "column credit_limit: '1000000': more than 6 integer digits",
        ),
        (
            f"t1,customer,c,C,,,prepaid,{'9' * 20},EUR,,",
            f"column credit_limit: '{'9' * 20}': more than 6 integer digits",
        ),
        ("t1,customer,c,C,,,prepaid,10,,,", "column currency: required with a credit_limit"),
        ("t1,customer,c,C,,,prepaid,10,EURO,,", "column currency: 'EURO': not an ISO 4217"),
        ("t1,customer,c,C,,,prepaid,,,gone,", "column status: 'gone': must be one of active"),
        ("t1,customer,c,C,,,prepaid,,,,Mars/Base", "column timezone: 'Mars/Base': not a known"),
        (f"t1,customer,c,{LONG},,,prepaid,,,,", f"column name: '{LONG}': longer than 200"),
        (f"t1,customer,c,C,{LONG},,prepaid,,,,", f"column company: '{LONG}': longer than 200"),
        (
            f"t1,customer,c,C,,{'a' * 250}@b.de,prepaid,,,,",
            f"column email: '{'a' * 250}@b.de': longer than 254 characters",
        ),
        (f"t1,customer,{'c' * 257},C,,,prepaid,,,,", "column account_id: 'ccc"),
    ],
)
def test_each_account_rule_names_line_column_and_value(
    tmp_path: Path, row: str, problem: str
) -> None:
    folder = _folder(tmp_path)
    (folder / "accounts.csv").write_text(HEADER + GOOD_RESELLER + row + "\n")
    problems = _problems(folder)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"accounts.csv, line 3, {problem}"), problems


def test_an_account_id_is_unique_per_tenant_and_scope(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "accounts.csv").write_text(
        HEADER
        + GOOD_RESELLER
        + "t1,customer,res,A customer called res,,,prepaid,,,,\n"  # another scope: fine
        + "t1,reseller,res,Again,,x@y.example,prepaid,,,,\n"
    )
    assert _problems(folder) == [
        "accounts.csv, line 4, column account_id: 'res': account of this tenant and scope "
        "appears more than once (first on line 2)"
    ]


def test_unknown_and_missing_account_columns(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "accounts.csv").write_text("tenant_id,scope,account_id,name,credit\n")
    problems = _problems(folder)
    assert problems[0].startswith("accounts.csv, line 1, column credit: unknown column")
    assert problems[1:] == ["accounts.csv, line 1, column billing_type: required column missing"]


def test_every_account_problem_is_listed_at_once(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "accounts.csv").write_text(
        HEADER
        + "t1,reseller,res,,,not-an-address,monthly,-1,XXX,closed,Nowhere/City\n"
        + "t1,customer,c,C,,,prepaid,,,,\n"
    )
    assert _problems(folder) == [
        "accounts.csv, line 2, column name: required, empty",
        "accounts.csv, line 2, column email: 'not-an-address': not an email address (like "
        "billing@example.com)",
        "accounts.csv, line 2, column billing_type: 'monthly': must be one of prepaid, postpaid",
        "accounts.csv, line 2, column status: 'closed': must be one of active, inactive",
        "accounts.csv, line 2, column credit_limit: '-1': negative",
        "accounts.csv, line 2, column currency: 'XXX': not an ISO 4217 currency code",
        "accounts.csv, line 2, column timezone: 'Nowhere/City': not a known IANA time zone (like "
        "Europe/Berlin or UTC)",
    ]


# --- join codes ------------------------------------------------------------------------------

CODES = "tenant_id,code,reseller_id\n"


def test_join_codes_load_tagged_and_direct(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "accounts.csv").write_text(HEADER + GOOD_RESELLER)
    (folder / "join_codes.csv").write_text(CODES + "t1,JOIN-RES,res\nt1,WALK-IN,\n")
    codes = load_plans_folder(folder).roster.join_codes
    assert codes.rows() == [("t1", "JOIN-RES", "res"), ("t1", "WALK-IN", None)]


def test_a_join_code_is_unique_across_the_folder(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "join_codes.csv").write_text(CODES + "t1,JOIN,res\nt2,JOIN,\n")
    assert _problems(folder) == [
        "join_codes.csv, line 3, column code: 'JOIN': join code appears more than once "
        "(first on line 2)"
    ]


def test_a_join_code_needs_its_tenant_and_its_code(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "join_codes.csv").write_text(CODES + ",JOIN,res\nt1,,res\n")
    assert _problems(folder) == [
        "join_codes.csv, line 2, column tenant_id: required, empty",
        "join_codes.csv, line 3, column code: required, empty",
    ]


def test_with_accounts_a_tagged_code_names_a_reseller_account_of_its_tenant(
    tmp_path: Path,
) -> None:
    folder = _folder(tmp_path)
    (folder / "accounts.csv").write_text(
        HEADER
        + GOOD_RESELLER
        + "t1,customer,cust,Customer,,,prepaid,,,,\n"
        + "t2,reseller,res-t2,Res of t2,,r@t2.example,prepaid,,,,\n"
    )
    (folder / "join_codes.csv").write_text(
        CODES
        + "t1,OK,res\n"
        + "t1,TYPO,ress\n"  # no such account
        + "t1,NOT-A-RESELLER,cust\n"  # a customer account
        + "t1,OTHER-TENANT,res-t2\n"  # a reseller of another tenant
        + "t1,WALK-IN,\n"  # Direct
    )
    assert _problems(folder) == [
        f"join_codes.csv, line {line}, column reseller_id: '{value}': no reseller account of "
        "tenant t1 in accounts.csv"
        for line, value in ((3, "ress"), (4, "cust"), (5, "res-t2"))
    ]


def test_without_accounts_a_tagged_code_is_taken_as_written(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "join_codes.csv").write_text(CODES + "t1,JOIN,anyone\n")
    assert load_plans_folder(folder).roster.join_codes["reseller_id"].to_list() == ["anyone"]


def test_join_codes_need_the_reseller_column(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "join_codes.csv").write_text("tenant_id,code\nt1,JOIN\n")
    assert _problems(folder) == [
        "join_codes.csv, line 1, column reseller_id: required column missing"
    ]
