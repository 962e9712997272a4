"""Enrollments: which reseller brought a client, from the join code it enrolled with.

A client enrolled through a reseller-tagged join code carries that reseller from ``enrolled_at``
until its next enrollment; a Direct code (no reseller) ends any earlier one and gives none. Those
intervals and ``memberships.csv`` make the one membership index the engine reads: where both
speak for a client over the same time they must name the same reseller, else the folder is
refused naming both lines; where they agree, their intervals are merged (an agreement is not an
overlap).
"""

from __future__ import annotations

import polars as pl

from pipeline.rating.exceptions import Problem
from pipeline.rating.reference import ENROLLMENT_SCHEMA, Scope
from pipeline.rating.timeparse import OPEN_END_US, parse_rfc3339
from pipeline.reference.accounts import too_long
from pipeline.reference.csv_checks import LINE, per_distinct, report, required
from pipeline.reference.files import ENROLLMENTS_FILE, MEMBERSHIPS_FILE

ENROLLMENT_COLUMNS = ("client_id", "join_code", "enrolled_at")
ENROLLMENT_REQUIRED = ENROLLMENT_COLUMNS
_INTERVAL = ("client_id", "reseller_id", "effective_from_us", "effective_until_us")


def validate_enrollments(
    raw: pl.DataFrame,
    join_codes: pl.DataFrame,
    accounts: pl.DataFrame,
    problems: list[Problem],
) -> pl.DataFrame:
    """``enrollments.csv`` checked against the join codes and accounts; each enrollment's span.

    Columns: those of the roster (client_id, join_code, tenant_id, reseller_id, enrolled_at,
    until), then ``known`` (the join code exists), ``effective_from_us``, ``effective_until_us``
    and the line. A client listed in ``accounts`` must be a client account of the code's tenant.
    """
    file = ENROLLMENTS_FILE
    required(raw, file, ENROLLMENT_REQUIRED, problems)
    too_long(raw, file, problems)
    codes = join_codes.select(
        join_code=pl.col("code"), tenant_id=pl.col("tenant_id"), reseller_id=pl.col("reseller_id")
    ).unique("join_code", keep="first", maintain_order=True)
    parsed = raw.with_columns(enrolled_at_t=per_distinct(raw["enrolled_at"], parse_rfc3339)).join(
        codes.with_columns(known=pl.lit(value=True)),
        on="join_code",
        how="left",
        maintain_order="left",
    )
    report(
        parsed,
        file,
        "join_code",
        pl.when(pl.col("join_code").is_not_null() & pl.col("known").is_null()).then(
            pl.lit("no such join code in join_codes.csv")
        ),
        problems,
    )
    report(
        parsed,
        file,
        "enrolled_at",
        pl.when(pl.col("enrolled_at").is_not_null() & pl.col("enrolled_at_t").is_null()).then(
            pl.lit("not an RFC 3339 timestamp (like 2026-03-01T00:00:00Z)")
        ),
        problems,
    )
    first = pl.col(LINE).min().over("client_id", "enrolled_at_t")
    report(
        parsed,
        file,
        "enrolled_at",
        pl.when(
            pl.col("client_id").is_not_null()
            & pl.col("enrolled_at_t").is_not_null()
            & (pl.col(LINE) != first)
        ).then(
            pl.lit("client ")
            + pl.col("client_id")
            + " enrolled twice at this instant (first on line "
            + first.cast(pl.String)
            + ")"
        ),
        problems,
    )
    _client_accounts(parsed, accounts, problems)
    spans = (
        parsed.filter(pl.col("client_id").is_not_null() & pl.col("enrolled_at_t").is_not_null())
        .sort("client_id", "enrolled_at_t", LINE)
        .with_columns(until=pl.col("enrolled_at_t").shift(-1).over("client_id"))
    )
    return spans.select(
        "client_id",
        "join_code",
        "tenant_id",
        "reseller_id",
        enrolled_at=pl.col("enrolled_at_t"),
        until=pl.col("until"),
        known=pl.col("known").fill_null(value=False),
        effective_from_us=pl.col("enrolled_at_t").dt.epoch("us"),
        effective_until_us=pl.col("until").dt.epoch("us").fill_null(OPEN_END_US),
        **{LINE: pl.col(LINE)},
    )


def _client_accounts(parsed: pl.DataFrame, accounts: pl.DataFrame, problems: list[Problem]) -> None:
    """Refuse an enrolled client that accounts.csv lists, but not as a client of the code's tenant.

    A client accounts.csv does not list is taken as written (the roster may be partial).
    """
    listed = accounts.select(
        client_id=pl.col("account_id"), _tenant=pl.col("tenant_id"), _scope=pl.col("scope")
    )
    matched = (
        parsed.filter(pl.col("known").is_not_null())
        .select("client_id", "tenant_id", "join_code", LINE)
        .join(listed, on="client_id", how="inner")
        .with_columns(
            _fits=(pl.col("_tenant") == pl.col("tenant_id"))
            & (pl.col("_scope") == Scope.CLIENT.value)
        )
        .group_by(LINE, "client_id", "tenant_id", "join_code", maintain_order=True)
        .agg(
            pl.col("_fits").any(),
            _listed=pl.format("{} account of tenant {}", "_scope", "_tenant").sort().str.join(", "),
        )
        .filter(~pl.col("_fits"))
        .sort(LINE)
    )
    for line, client, tenant, code, listed_as in matched.select(
        LINE, "client_id", "tenant_id", "join_code", "_listed"
    ).iter_rows():
        problems.append(
            Problem(
                ENROLLMENTS_FILE,
                line,
                "client_id",
                client,
                f"accounts.csv lists it only as: {listed_as}; an enrolled client must be a "
                f"client account of tenant {tenant} (the tenant of join code {code})",
            )
        )


def combined_memberships(
    memberships: pl.DataFrame, enrollments: pl.DataFrame, problems: list[Problem]
) -> pl.DataFrame:
    """memberships.csv's intervals and the enrollments' as one set of disjoint intervals.

    ``memberships`` is :func:`~pipeline.reference.validation.validate_memberships`'s result,
    ``enrollments`` :func:`validate_enrollments`'s. An enrollment through a Direct code speaks
    for the client too (it says: no reseller), so a membership over that time disagrees with it.
    Without enrollments, memberships.csv's intervals are returned as they are.
    """
    if enrollments.height == 0:
        return memberships.select(_INTERVAL)
    spoken = enrollments.filter(pl.col("known"))
    clash = (
        spoken.select(
            "client_id",
            "join_code",
            "enrolled_at",
            "reseller_id",
            "effective_from_us",
            "effective_until_us",
            LINE,
        )
        .join(
            memberships.select(
                "client_id",
                _member=pl.col("reseller_id"),
                _from=pl.col("effective_from_us"),
                _until=pl.col("effective_until_us"),
                _member_line=pl.col(LINE),
            ),
            on="client_id",
            how="inner",
        )
        .filter(
            (pl.col("_from") < pl.col("effective_until_us"))
            & (pl.col("effective_from_us") < pl.col("_until"))
            & pl.col("reseller_id").ne_missing(pl.col("_member"))
        )
        .sort(LINE, "_member_line")
    )
    for line, code, client, reseller, member, member_line in clash.select(
        LINE, "join_code", "client_id", "reseller_id", "_member", "_member_line"
    ).iter_rows():
        problems.append(
            Problem(
                ENROLLMENTS_FILE,
                line,
                "join_code",
                code,
                f"client {client} enrolled with {_who(reseller)} from this enrollment on, but "
                f"{MEMBERSHIPS_FILE} line {member_line} gives it reseller {member} over part "
                "of that time",
            )
        )
    tagged = spoken.filter(pl.col("reseller_id").is_not_null()).select(_INTERVAL)
    return _merged(pl.concat([memberships.select(_INTERVAL), tagged]))


def _who(reseller: str | None) -> str:
    return "Direct (no reseller)" if reseller is None else f"reseller {reseller}"


def _merged(intervals: pl.DataFrame) -> pl.DataFrame:
    """Overlapping intervals of one client (the same reseller, once validated) made one."""
    reach = pl.col("effective_until_us").cum_max().shift(1).over("client_id")
    islands = (
        intervals.sort("client_id", "effective_from_us", "effective_until_us")
        .with_columns(_reach=reach)
        .with_columns(
            _island=(
                pl.col("_reach").is_null() | (pl.col("effective_from_us") >= pl.col("_reach"))
            ).cum_sum()
        )
    )
    return (
        islands.group_by("_island", maintain_order=True)
        .agg(
            pl.col("client_id").first(),
            pl.col("reseller_id").first(),
            pl.col("effective_from_us").min(),
            pl.col("effective_until_us").max(),
        )
        .select(_INTERVAL)
    )


def roster_enrollments(enrollments: pl.DataFrame) -> pl.DataFrame:
    """The enrollments as the roster keeps them (no line numbers, no working columns)."""
    return enrollments.select(list(ENROLLMENT_SCHEMA)).cast(ENROLLMENT_SCHEMA)
