"""Exchange rates for reporting: ``fx_rates.csv`` (``currency, quote, rate, effective_from``).

A row says that from ``effective_from`` one unit of ``currency`` buys ``rate`` units of
``quote``, until the next row of the same pair. The file is optional: a folder without it
loads, versions and rates exactly as before (an absent file adds nothing to the content
digest). Rating never reads the rates: they convert finished amounts for reports (the
billing overview in one currency). Rates are exact decimals, positive, with at most
:data:`FX_RATE_DECIMALS` decimal places and six integer digits (0.000000000001 to
999999.999999999999, such as 1 USD = 25,400 VND or 1 VND = 0.000039370079 USD; a pair worth
a million or more, say USD -> IRR at a market rate, is given the other way round, IRR -> USD,
and converts by the inverse). Every problem is named with file, line, column and value.
"""

from __future__ import annotations

import hashlib

import polars as pl

from pipeline.rating.exceptions import Problem
from pipeline.rating.money import decimal_text_problem, scaled_integer, units_to_arrow
from pipeline.rating.reference import FX_RATE_SCHEMA
from pipeline.rating.timeparse import parse_rfc3339
from pipeline.reference.accounts import repeated
from pipeline.reference.csv_checks import (
    LINE,
    currency_problem,
    per_distinct,
    read_csv,
    report,
    required,
)
from pipeline.reference.files import FX_RATES_FILE, PlanFiles

FX_RATE_COLUMNS = ("currency", "quote", "rate", "effective_from")
FX_RATE_REQUIRED = FX_RATE_COLUMNS
#: Decimal places a rate may have (the store keeps it as ``Decimal(38, 12)``).
FX_RATE_DECIMALS = 12


def empty_fx_rates() -> pl.DataFrame:
    """The rates of a folder without ``fx_rates.csv``."""
    return pl.DataFrame(schema=FX_RATE_SCHEMA)


def read_fx_rates(
    folder: PlanFiles, problems: list[Problem], digest: hashlib._Hash
) -> pl.DataFrame:
    """``fx_rates.csv`` read and checked; empty when the folder has none or it is unreadable."""
    raw = read_csv(
        folder, FX_RATES_FILE, FX_RATE_COLUMNS, FX_RATE_REQUIRED, problems, digest,
        optional_file=True,
    )  # fmt: skip
    return validate_fx_rates(raw, problems) if raw is not None else empty_fx_rates()


def validate_fx_rates(raw: pl.DataFrame, problems: list[Problem]) -> pl.DataFrame:
    """The rates, sorted by pair and ``effective_from``; every broken rule in ``problems``."""
    file = FX_RATES_FILE
    required(raw, file, FX_RATE_REQUIRED, problems)
    for column in ("currency", "quote"):
        report(raw, file, column, currency_problem(column), problems)
    report(
        raw,
        file,
        "quote",
        pl.when(pl.col("quote") == pl.col("currency")).then(
            pl.lit("same as currency (a rate converts one currency into another)")
        ),
        problems,
    )
    text_problem = decimal_text_problem(pl.col("rate"), FX_RATE_DECIMALS)
    report(raw, file, "rate", text_problem, problems)
    report(
        raw,
        file,
        "rate",
        pl.when(text_problem.is_null() & pl.col("rate").str.contains(r"^0+(\.0+)?$")).then(
            pl.lit("must be positive (more than 0)")
        ),
        problems,
    )
    good = raw.select(text_problem.is_null().all()).item()
    parsed = raw.with_columns(
        # Scaled only when every rate is good text: a longer one would not fit an Int64.
        _units=scaled_integer(pl.col("rate"), FX_RATE_DECIMALS)
        if good
        else pl.lit(None, dtype=pl.Int64),
        _from=per_distinct(raw["effective_from"], parse_rfc3339),
    )
    report(
        parsed,
        file,
        "effective_from",
        pl.when(pl.col("effective_from").is_not_null() & pl.col("_from").is_null()).then(
            pl.lit("not an RFC 3339 timestamp (like 2026-03-01T00:00:00Z)")
        ),
        problems,
    )
    report(
        parsed,
        file,
        "effective_from",
        repeated(["currency", "quote", "_from"], "rate of this currency and quote at this instant"),
        problems,
    )
    rates = pl.Series("rate", units_to_arrow(parsed["_units"], FX_RATE_DECIMALS))
    return (
        parsed.with_columns(rates, effective_from=pl.col("_from"))
        .sort("currency", "quote", "effective_from", LINE)
        .select(list(FX_RATE_SCHEMA))
        .cast(FX_RATE_SCHEMA)
    )
