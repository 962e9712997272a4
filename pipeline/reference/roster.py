"""The roster of a plans folder: accounts, join codes and enrollments, read and checked together.

The three files are optional: a folder without them loads, versions and rates exactly as before
(an absent file adds nothing to the content digest). What the enrollments say about resellers is
returned as membership intervals for the loader to combine with ``memberships.csv``.
"""

from __future__ import annotations

import hashlib

import polars as pl

from pipeline.rating.exceptions import Problem
from pipeline.rating.reference import Roster
from pipeline.reference.accounts import (
    ACCOUNT_COLUMNS,
    ACCOUNT_REQUIRED,
    JOIN_CODE_COLUMNS,
    JOIN_CODE_REQUIRED,
    empty_accounts,
    validate_accounts,
    validate_join_codes,
)
from pipeline.reference.csv_checks import LINE, read_csv
from pipeline.reference.enrollments import (
    ENROLLMENT_COLUMNS,
    ENROLLMENT_REQUIRED,
    roster_enrollments,
    validate_enrollments,
)
from pipeline.reference.files import (
    ACCOUNTS_FILE,
    ENROLLMENTS_FILE,
    JOIN_CODES_FILE,
    PlanFiles,
)


def read_roster(
    folder: PlanFiles, problems: list[Problem], digest: hashlib._Hash
) -> tuple[Roster, pl.DataFrame]:
    """The roster, and every enrollment's span (see ``validate_enrollments``).

    Without accounts.csv the join codes' resellers are taken as written; a file that cannot be
    read (a missing required column, say) is reported and counts as empty.
    """
    accounts_raw = read_csv(
        folder, ACCOUNTS_FILE, ACCOUNT_COLUMNS, ACCOUNT_REQUIRED, problems, digest,
        optional_file=True,
    )  # fmt: skip
    has_accounts = folder.read(ACCOUNTS_FILE) is not None
    accounts = (
        validate_accounts(accounts_raw, problems) if accounts_raw is not None else empty_accounts()
    )
    codes_raw = read_csv(
        folder, JOIN_CODES_FILE, JOIN_CODE_COLUMNS, JOIN_CODE_REQUIRED, problems, digest,
        optional_file=True,
    )  # fmt: skip
    codes = validate_join_codes(
        _or_empty(codes_raw, JOIN_CODE_COLUMNS), accounts if has_accounts else None, problems
    )
    enrollments_raw = read_csv(
        folder, ENROLLMENTS_FILE, ENROLLMENT_COLUMNS, ENROLLMENT_REQUIRED, problems, digest,
        optional_file=True,
    )  # fmt: skip
    enrollments = validate_enrollments(
        _or_empty(enrollments_raw, ENROLLMENT_COLUMNS), codes, accounts, problems
    )
    roster = Roster(
        accounts=accounts,
        join_codes=codes.drop(LINE),
        enrollments=roster_enrollments(enrollments),
    )
    return roster, enrollments


def _or_empty(frame: pl.DataFrame | None, columns: tuple[str, ...]) -> pl.DataFrame:
    if frame is not None:
        return frame
    return pl.DataFrame(schema={**dict.fromkeys(columns, pl.String), LINE: pl.Int64})
