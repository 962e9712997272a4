"""Accounts and join codes: who the customers, clients and resellers of a tenant are.

``accounts.csv`` is the roster the Resellers page and money alerts read (name, company, email,
billing type, credit limit, currency, status, time zone); ``join_codes.csv`` says which reseller,
if any, each join code carries (empty: Direct, the code is tenant-managed). Both are optional.
Every problem is named with file, line, column and value, like every other file of a plans
folder; the files are small (one row per account or code).
"""

from __future__ import annotations

import polars as pl

from pipeline.rating.cdr_contract import MAX_TEXT_CHARS
from pipeline.rating.exceptions import Problem
from pipeline.rating.money import (
    RATE_DECIMALS,
    decimal_text_problem,
    scaled_integer,
    units_to_arrow,
)
from pipeline.rating.reference import ACCOUNT_SCHEMA, JOIN_CODE_SCHEMA, Scope
from pipeline.reference.csv_checks import LINE, currency_problem, report, required
from pipeline.reference.files import ACCOUNTS_FILE, JOIN_CODES_FILE
from pipeline.reference.validation import is_zone

ACCOUNT_COLUMNS = (
    "tenant_id",
    "scope",
    "account_id",
    "name",
    "company",
    "email",
    "billing_type",
    "credit_limit",
    "currency",
    "status",
    "timezone",
)
ACCOUNT_REQUIRED = ("tenant_id", "scope", "account_id", "name", "billing_type")
JOIN_CODE_COLUMNS = ("tenant_id", "code", "reseller_id")
#: ``reseller_id`` must be a column (a file without it would make every code Direct); its
#: empty cell is Direct.
JOIN_CODE_REQUIRED = ("tenant_id", "code", "reseller_id")

BILLING_TYPES = ("prepaid", "postpaid")
STATUSES = ("active", "inactive")
DEFAULT_STATUS = "active"
DEFAULT_TIMEZONE = "UTC"
#: Longest name and company name, in characters.
MAX_NAME_CHARS = 200
#: Longest email address (RFC 5321's path limit), in characters.
MAX_EMAIL_CHARS = 254
#: One ``@``, no spaces, a domain with a dot and no empty label: plausibly an address.
EMAIL_PATTERN = r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$"
#: Ids are bounded like the CDR's ids: a longer one could never match a call.
ID_COLUMNS = ("tenant_id", "account_id", "code", "reseller_id", "client_id", "join_code")


def empty_accounts() -> pl.DataFrame:
    """The accounts of a folder without ``accounts.csv``."""
    return pl.DataFrame(schema=ACCOUNT_SCHEMA)


def too_long(frame: pl.DataFrame, file: str, problems: list[Problem]) -> None:
    """Refuse ids over :data:`MAX_TEXT_CHARS` characters, names and emails over theirs."""
    limits = {column: MAX_TEXT_CHARS for column in ID_COLUMNS}
    limits |= {"name": MAX_NAME_CHARS, "company": MAX_NAME_CHARS, "email": MAX_EMAIL_CHARS}
    for column, limit in limits.items():
        if column in frame.columns:
            report(
                frame,
                file,
                column,
                pl.when(pl.col(column).str.len_chars() > limit).then(
                    pl.lit(f"longer than {limit} characters")
                ),
                problems,
            )


def one_of(column: str, allowed: tuple[str, ...]) -> pl.Expr:
    """Why a cell of ``column`` is not one of ``allowed`` (null when it is, or is empty)."""
    return pl.when(pl.col(column).is_not_null() & ~pl.col(column).is_in(list(allowed))).then(
        pl.lit(f"must be one of {', '.join(allowed)}")
    )


def repeated(keys: list[str], what: str) -> pl.Expr:
    """On every line but the first of a repeated key: ``what`` and the line it is first on."""
    first = pl.col(LINE).min().over(keys)
    return pl.when(pl.all_horizontal(pl.col(keys).is_not_null()) & (pl.col(LINE) != first)).then(
        pl.lit(f"{what} appears more than once (first on line ") + first.cast(pl.String) + ")"
    )


def validate_accounts(raw: pl.DataFrame, problems: list[Problem]) -> pl.DataFrame:
    """``accounts.csv`` checked; the accounts with their defaults, credit limits exact."""
    file = ACCOUNTS_FILE
    required(raw, file, ACCOUNT_REQUIRED, problems)
    too_long(raw, file, problems)
    scopes = tuple(s.value for s in Scope)
    report(raw, file, "scope", one_of("scope", scopes), problems)
    report(
        raw,
        file,
        "account_id",
        repeated(["tenant_id", "scope", "account_id"], "account of this tenant and scope"),
        problems,
    )
    report(
        raw,
        file,
        "email",
        pl.when(
            pl.col("email").is_not_null()
            & (pl.col("email").str.len_chars() <= MAX_EMAIL_CHARS)
            & ~pl.col("email").str.contains(EMAIL_PATTERN)
        ).then(pl.lit("not an email address (like billing@example.com)")),
        problems,
    )
    report(
        raw,
        file,
        "email",
        pl.when(pl.col("email").is_null() & (pl.col("scope") == Scope.RESELLER.value)).then(
            pl.lit("required for a reseller account (its contact), empty")
        ),
        problems,
    )
    report(raw, file, "billing_type", one_of("billing_type", BILLING_TYPES), problems)
    report(raw, file, "status", one_of("status", STATUSES), problems)
    report(raw, file, "credit_limit", decimal_text_problem(pl.col("credit_limit")), problems)
    report(raw, file, "currency", currency_problem(), problems)
    report(
        raw,
        file,
        "currency",
        pl.when(pl.col("currency").is_null() & pl.col("credit_limit").is_not_null()).then(
            pl.lit("required with a credit_limit (the limit's currency), empty")
        ),
        problems,
    )
    zones = raw["timezone"].drop_nulls().unique().to_list()
    report(
        raw,
        file,
        "timezone",
        pl.when(pl.col("timezone").is_in([z for z in zones if not is_zone(z)])).then(
            pl.lit("not a known IANA time zone (like Europe/Berlin or UTC)")
        ),
        problems,
    )
    # Scaled only when every limit is good text (else the folder is refused anyway): a text of
    # twenty digits would not fit the integer it is scaled into.
    good = raw.select(decimal_text_problem(pl.col("credit_limit")).is_null().all()).item()
    limit_units = raw.with_columns(
        _units=scaled_integer(pl.col("credit_limit")) if good else pl.lit(None, dtype=pl.Int64)
    )["_units"]
    credit_limit = pl.Series(
        "credit_limit", units_to_arrow(limit_units, RATE_DECIMALS), dtype=pl.Decimal(38, 9)
    )
    return (
        raw.with_columns(
            credit_limit,
            status=pl.col("status").fill_null(DEFAULT_STATUS),
            timezone=pl.col("timezone").fill_null(DEFAULT_TIMEZONE),
        )
        .select(list(ACCOUNT_SCHEMA))
        .cast(ACCOUNT_SCHEMA)
    )


def validate_join_codes(
    raw: pl.DataFrame, accounts: pl.DataFrame | None, problems: list[Problem]
) -> pl.DataFrame:
    """``join_codes.csv`` checked against the accounts (None: the folder has no accounts.csv).

    A code is unique across the folder (an enrollment names only the code). A non-empty
    ``reseller_id`` must be a reseller account of the code's tenant when accounts.csv is present;
    without accounts.csv it is taken as written, like ``memberships.csv``'s resellers.
    """
    file = JOIN_CODES_FILE
    required(raw, file, ("tenant_id", "code"), problems)
    too_long(raw, file, problems)
    report(raw, file, "code", repeated(["code"], "join code"), problems)
    if accounts is not None:
        resellers = (
            accounts.filter(pl.col("scope") == Scope.RESELLER.value)
            .select("tenant_id", reseller_id=pl.col("account_id"), _known=pl.lit(value=True))
            .unique()
        )
        checked = raw.join(
            resellers,
            on=["tenant_id", "reseller_id"],
            how="left",
            maintain_order="left",
        )
        report(
            checked,
            file,
            "reseller_id",
            pl.when(
                pl.col("reseller_id").is_not_null()
                & pl.col("tenant_id").is_not_null()
                & pl.col("_known").is_null()
            ).then(
                pl.lit("no reseller account of tenant ") + pl.col("tenant_id") + " in accounts.csv"
            ),
            problems,
        )
    return raw.select([*JOIN_CODE_SCHEMA.names(), LINE])
