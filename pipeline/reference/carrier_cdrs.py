"""A carrier's CDR file, read through a CDR profile into typed calls (``reconcile``'s input).

A carrier (the operator behind a VMGateClient) invoices the tenant from its own CDRs, in its own
layout. A *CDR profile* (TOML) says how to read them: the layout keys of
:class:`pipeline.reference.carrier_files.FileLayout` (``date_format`` then includes the time of
day, ``timezone`` is the zone of the carrier's clock), ``duration_unit``, an optional
``currency`` for the whole file, and a ``[columns]`` table naming the carrier's header for each
of ours: ``callee``, ``start_time`` and ``duration`` (required), ``amount``, ``currency``,
``call_id`` and ``caller`` (optional).

:func:`read_carrier_cdrs` returns one row per call with the callee normalised as our CDRs'
callee is (:func:`pipeline.rating.decode.normalise_callee`), the start as a UTC microsecond
instant, the duration in milliseconds and the amount in integer units of 10**-9 (never a float).
Nothing is returned unless every row reads; every problem names the file's row, the carrier's
header and the value.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import polars as pl

from pipeline.prefix_trie.deck_index import MAX_DIGITS
from pipeline.rating.decode import normalise_callee
from pipeline.rating.exceptions import Problem, ReferenceDataError
from pipeline.rating.money import ISO_4217, RATE_DECIMALS, decimal_text_problem, scaled_integer
from pipeline.reference.carrier_files import (
    EXCEL_DATE_FORMATS,
    LAYOUT_KEYS,
    ROW,
    CarrierProfile,
    column_problems,
    decimal_texts,
    local_instants,
    open_profile,
    read_carrier_table,
    read_columns,
    with_missing_columns,
)

DURATION_UNITS = ("seconds", "milliseconds", "mm:ss", "hh:mm:ss")
PROFILE_KEYS = (*LAYOUT_KEYS, "duration_unit", "currency", "columns")
PROFILE_COLUMNS = ("callee", "start_time", "duration", "amount", "currency", "call_id", "caller")
REQUIRED_COLUMNS = ("callee", "start_time", "duration")
DEFAULT_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
#: Amounts are held as integer units of 10**-9, the unit of rates (rated amounts have 6).
AMOUNT_DECIMALS = RATE_DECIMALS

#: The columns of :func:`read_carrier_cdrs`' frame.
CDR_SCHEMA = {
    ROW: pl.Int64,
    "callee": pl.String,
    "start_us": pl.Int64,
    "start_text": pl.String,
    "duration_ms": pl.Int64,
    "amount_units": pl.Int64,
    "amount_text": pl.String,
    "currency": pl.String,
    "call_id": pl.String,
    "caller": pl.String,
}


@dataclass(frozen=True)
class CdrProfile(CarrierProfile):
    """How to read one carrier's CDR files."""

    duration_unit: str = "seconds"
    currency: str | None = None  # the file's currency when no column names it


def read_cdr_profile(path: Path) -> CdrProfile:
    """Read and check a CDR profile; :class:`ReferenceDataError` names every bad key."""
    where = str(path)
    profile, problems, layout = open_profile(path, PROFILE_KEYS)
    if "date_format" not in profile:
        layout = replace(layout, date_format=DEFAULT_DATE_FORMAT)
    elif "%H" not in layout.date_format and "%I" not in layout.date_format:
        problems.append(
            Problem(
                where,
                None,
                "date_format",
                layout.date_format,
                "a call's start needs the time of day (like %d/%m/%Y %H:%M:%S)",
            )
        )
    columns = read_columns(profile, where, PROFILE_COLUMNS, REQUIRED_COLUMNS, problems)
    unit = profile.get("duration_unit", "seconds")
    if unit not in DURATION_UNITS:
        problems.append(
            Problem(
                where,
                None,
                "duration_unit",
                str(unit)[:64],
                f"must be one of {', '.join(DURATION_UNITS)}",
            )
        )
    currency = profile.get("currency")
    if currency is not None and currency not in ISO_4217:
        problems.append(
            Problem(where, None, "currency", str(currency)[:64], "not an ISO 4217 code (like EUR)")
        )
    if "amount" in columns and "currency" not in columns and currency is None:
        problems.append(
            Problem(
                where,
                None,
                "currency",
                None,
                'an amount needs its currency: map columns.currency or set currency = "EUR"',
            )
        )
    if problems:
        raise ReferenceDataError(problems)
    return CdrProfile(where, layout, columns, str(unit), currency)


def read_carrier_cdrs(path: Path, profile: CdrProfile) -> pl.DataFrame:
    """The carrier's calls (columns of :data:`CDR_SCHEMA`), or every problem of the file."""
    table = read_carrier_table(path, profile.layout, profile.columns)
    where = str(path)
    problems: list[Problem] = []

    def check(frame: pl.DataFrame, column: str, problem: pl.Expr) -> None:
        problems.extend(column_problems(frame, column, problem, where, profile.header(column)))

    frame = with_missing_columns(table, PROFILE_COLUMNS)
    for column in REQUIRED_COLUMNS:
        check(frame, column, pl.when(pl.col(column).is_null()).then(pl.lit("empty")))
    callee = normalise_callee(pl.col("callee"))
    check(
        frame,
        "callee",
        pl.when(
            pl.col("callee").is_not_null() & ~callee.str.contains(rf"^[0-9]{{3,{MAX_DIGITS}}}$")
        ).then(pl.lit(f"not 3 to {MAX_DIGITS} digits after normalisation")),
    )
    excel = profile.layout.format_of(path) == "xlsx"
    layout = profile.layout
    starts = local_instants(
        frame["start_time"],
        layout.date_format,
        layout.timezone,
        also=EXCEL_DATE_FORMATS if excel else (),
    )
    example = datetime(2026, 3, 31, 8, 30, 15).strftime(layout.date_format)
    frame = frame.with_columns(starts.alias("start_us"))
    check(
        frame,
        "start_time",
        pl.when(pl.col("start_time").is_not_null() & pl.col("start_us").is_null()).then(
            pl.lit(f"not a time in the format {layout.date_format} (like {example})")
        ),
    )
    duration, duration_problem = _duration_ms(
        decimal_texts(pl.col("duration"), layout.decimal_separator), profile.duration_unit
    )
    frame = frame.with_columns(duration_ms=duration)
    check(frame, "duration", pl.when(pl.col("duration").is_not_null()).then(duration_problem))
    amount = decimal_texts(pl.col("amount"), layout.decimal_separator)
    frame = frame.with_columns(amount_text=amount)
    check(
        frame,
        "amount",
        pl.when(pl.col("amount").is_not_null()).then(
            decimal_text_problem(pl.col("amount_text"), max_decimals=AMOUNT_DECIMALS)
        ),
    )
    if "currency" in profile.columns:
        check(
            frame,
            "currency",
            pl.when(
                pl.col("currency").is_not_null() & ~pl.col("currency").is_in(sorted(ISO_4217))
            ).then(pl.lit("not an ISO 4217 code (like EUR)")),
        )
    if problems:
        raise ReferenceDataError(problems)
    currency = pl.col("currency")
    if profile.currency is not None:
        currency = currency.fill_null(pl.lit(profile.currency))
    return frame.select(
        pl.col(ROW),
        callee=callee,
        start_us=pl.col("start_us"),
        start_text=pl.col("start_time"),
        duration_ms=pl.col("duration_ms"),
        amount_units=pl.when(pl.col("amount_text").is_not_null()).then(
            scaled_integer(pl.col("amount_text"), AMOUNT_DECIMALS)
        ),
        amount_text=pl.col("amount_text"),
        currency=pl.when(pl.col("amount_text").is_not_null()).then(currency),
        call_id=pl.col("call_id"),
        caller=pl.col("caller"),
    ).cast(CDR_SCHEMA)  # type: ignore[arg-type]


def _duration_ms(text: pl.Expr, unit: str) -> tuple[pl.Expr, pl.Expr]:
    """A duration text in ``unit`` as milliseconds, and why it does not read (null if it does).

    ``seconds`` may carry up to three decimals; ``mm:ss`` and ``hh:mm:ss`` take any number of
    the leading unit (``75:30`` minutes), seconds (and minutes) below 60, and an optional
    fraction of up to three decimals.
    """
    if unit == "milliseconds":
        pattern = r"^[0-9]{1,10}$"
        return text.cast(pl.Int64, strict=False), pl.when(~text.str.contains(pattern)).then(
            pl.lit("not a whole number of milliseconds")
        )
    if unit == "seconds":
        problem = decimal_text_problem(text, max_decimals=3)
        return scaled_integer(text, 3), pl.when(problem.is_not_null()).then(
            pl.format("not a number of seconds ({})", problem)
        )
    if unit == "mm:ss":
        pattern = r"^([0-9]{1,6}):([0-5][0-9])(\.[0-9]{1,3})?$"
        minutes, hours = text.str.extract(pattern, 1).cast(pl.Int64), pl.lit(0)
        seconds = text.str.extract(pattern, 2).cast(pl.Int64)
        fraction = text.str.extract(pattern, 3)
    else:
        pattern = r"^([0-9]{1,4}):([0-5][0-9]):([0-5][0-9])(\.[0-9]{1,3})?$"
        hours = text.str.extract(pattern, 1).cast(pl.Int64)
        minutes = text.str.extract(pattern, 2).cast(pl.Int64)
        seconds = text.str.extract(pattern, 3).cast(pl.Int64)
        fraction = text.str.extract(pattern, 4)
    millis = fraction.str.slice(1).str.pad_end(3, "0").cast(pl.Int64).fill_null(0)
    total = ((hours * 60 + minutes) * 60 + seconds) * 1000 + millis
    return total, pl.when(~text.str.contains(pattern)).then(
        pl.lit(f"not a duration like {'75:30' if unit == 'mm:ss' else '1:15:30'} ({unit})")
    )
