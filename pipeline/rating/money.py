"""Exact money: decimal text to scaled integers, rounding, and Arrow decimal columns.

Rates and connection fees are held as integers in units of 10**-9 (``RATE_SCALE``), so a deck
may carry up to nine decimal places. Amounts are computed in 128-bit integers and rounded once,
at the end, to the plan's decimals by its rounding mode. No binary float ever touches money.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa

RATE_DECIMALS = 9
RATE_SCALE = 10**RATE_DECIMALS
AMOUNT_DECIMALS = 6
#: Arrow / ClickHouse types of money columns. Precision 38 leaves room for any sum.
AMOUNT_TYPE = pa.decimal128(38, AMOUNT_DECIMALS)
RATE_TYPE = pa.decimal128(38, RATE_DECIMALS)

DECIMAL_PATTERN = r"^[0-9]+(\.[0-9]+)?$"
_MAX_INTEGER_DIGITS = 6


class Rounding(StrEnum):
    """How an exact cost is brought to the plan's number of decimals."""

    HALF_UP = "half_up"  # ties away from zero
    UP = "up"  # any remainder rounds away from zero
    DOWN = "down"  # remainder dropped


ROUNDING_CODES: dict[Rounding, int] = {Rounding.HALF_UP: 0, Rounding.UP: 1, Rounding.DOWN: 2}


def decimal_text_problem(text: pl.Expr, max_decimals: int = RATE_DECIMALS) -> pl.Expr:
    """Return an expression giving why a non-negative decimal text is unusable, or null if fine."""
    fraction = text.str.extract(r"\.([0-9]*)$", 1).fill_null("")
    integer = text.str.extract(r"^([0-9]+)", 1).fill_null("")
    return (
        pl.when(text.str.starts_with("-"))
        .then(pl.lit("negative"))
        .when(~text.str.contains(DECIMAL_PATTERN))
        .then(pl.lit("not a decimal number"))
        .when(fraction.str.len_bytes() > max_decimals)
        .then(pl.lit(f"more than {max_decimals} decimal places"))
        .when(integer.str.strip_chars_start("0").str.len_bytes() > _MAX_INTEGER_DIGITS)
        .then(pl.lit(f"more than {_MAX_INTEGER_DIGITS} integer digits"))
        .otherwise(None)
    )


def scaled_integer(text: pl.Expr, decimals: int = RATE_DECIMALS) -> pl.Expr:
    """Turn valid decimal text (see :func:`decimal_text_problem`) into an Int64 of 10**-decimals."""
    integer = text.str.extract(r"^([0-9]+)", 1).cast(pl.Int64)
    fraction = (
        text.str.extract(r"\.([0-9]*)$", 1).fill_null("").str.pad_end(decimals, "0").cast(pl.Int64)
    )
    factor: int = 10**decimals
    return integer * factor + fraction.fill_null(0)


def units_to_arrow(units: pl.Series, scale: int) -> pa.Array:
    """Turn integer units of 10**-scale (any integer type, nulls kept) into Arrow decimals.

    The integers are cast to ``Decimal(38, 0)`` and the Arrow buffers are re-read with the wanted
    scale: exact, with no per-row work.
    """
    whole = units.cast(pl.Int128).cast(pl.Decimal(38, 0)).to_arrow()
    if isinstance(whole, pa.ChunkedArray):
        whole = whole.combine_chunks()
    return pa.Array.from_buffers(
        pa.decimal128(38, scale), len(whole), whole.buffers(), offset=whole.offset
    )


def numpy_to_arrow(
    values: npt.NDArray[Any], valid: npt.NDArray[np.bool_] | None = None
) -> pa.Array:
    """Integers (or booleans) of a numpy array as an Arrow array, null where not ``valid``.

    Built from the array's buffers (no copy for integers): ``pa.array`` on a numpy array asks
    whether it is a pandas object, which imports pandas (about 0.2 s) in a command that has no
    use for it.
    """
    values = np.ascontiguousarray(values)
    count = len(values)
    validity = None
    if valid is not None and not valid.all():
        validity = pa.py_buffer(np.packbits(valid, bitorder="little"))
    if values.dtype == np.bool_:
        kind, data = pa.bool_(), pa.py_buffer(np.packbits(values, bitorder="little"))
    else:
        kind, data = pa.from_numpy_dtype(values.dtype), pa.py_buffer(values)
    return pa.Array.from_buffers(kind, count, [validity, data], null_count=-1)


def strings_to_arrow(values: Sequence[str | None]) -> pa.Array:
    """Texts as an Arrow ``string`` array, without ``pa.array`` (see :func:`numpy_to_arrow`)."""
    array = pl.Series(values, dtype=pl.String).to_arrow(compat_level=pl.CompatLevel.oldest())
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array.cast(pa.string())


def int64_units_to_arrow(
    units: npt.NDArray[np.int64], scale: int, valid: npt.NDArray[np.bool_]
) -> pa.Array:
    """int64 units of 10**-scale into Arrow ``decimal128(38, scale)``, null where not ``valid``.

    Builds the 16-byte little-endian two's complement words directly: exact and vectorised.
    """
    count = len(units)
    words = np.empty((count, 2), dtype=np.int64)
    words[:, 0] = units
    words[:, 1] = units >> 63  # sign extension
    validity = None
    if not valid.all():
        validity = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(
        pa.decimal128(38, scale), count, [validity, pa.py_buffer(words)], null_count=-1
    )


def rounded_division(numerator: pl.Expr, denominator: pl.Expr, mode: pl.Expr) -> pl.Expr:
    """Divide non-negative Int128 values and round by the rounding code in ``mode`` (per row)."""
    quotient = numerator // denominator
    remainder = numerator % denominator
    one = pl.lit(1, dtype=pl.Int128)
    zero = pl.lit(0, dtype=pl.Int128)
    bump = (
        pl.when(mode == ROUNDING_CODES[Rounding.HALF_UP])
        .then(pl.when(remainder * 2 >= denominator).then(one).otherwise(zero))
        .when(mode == ROUNDING_CODES[Rounding.UP])
        .then(pl.when(remainder > 0).then(one).otherwise(zero))
        .otherwise(zero)
    )
    return quotient + bump


# ISO 4217 active codes (plus the precious-metal and fund codes operators never bill in omitted).
ISO_4217 = frozenset(
    [
        "AED",
        "AFN",
        "ALL",
        "AMD",
        "ANG",
        "AOA",
        "ARS",
        "AUD",
        "AWG",
        "AZN",
        "BAM",
        "BBD",
        "BDT",
        "BGN",
        "BHD",
        "BIF",
        "BMD",
        "BND",
        "BOB",
        "BRL",
        "BSD",
        "BTN",
        "BWP",
        "BYN",
        "BZD",
        "CAD",
        "CDF",
        "CHF",
        "CLP",
        "CNY",
        "COP",
        "CRC",
        "CUP",
        "CVE",
        "CZK",
        "DJF",
        "DKK",
        "DOP",
        "DZD",
        "EGP",
        "ERN",
        "ETB",
        "EUR",
        "FJD",
        "FKP",
        "GBP",
        "GEL",
        "GHS",
        "GIP",
        "GMD",
        "GNF",
        "GTQ",
        "GYD",
        "HKD",
        "HNL",
        "HTG",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "IQD",
        "IRR",
        "ISK",
        "JMD",
        "JOD",
        "JPY",
        "KES",
        "KGS",
        "KHR",
        "KMF",
        "KPW",
        "KRW",
        "KWD",
        "KYD",
        "KZT",
        "LAK",
        "LBP",
        "LKR",
        "LRD",
        "LSL",
        "LYD",
        "MAD",
        "MDL",
        "MGA",
        "MKD",
        "MMK",
        "MNT",
        "MOP",
        "MRU",
        "MUR",
        "MVR",
        "MWK",
        "MXN",
        "MYR",
        "MZN",
        "NAD",
        "NGN",
        "NIO",
        "NOK",
        "NPR",
        "NZD",
        "OMR",
        "PAB",
        "PEN",
        "PGK",
        "PHP",
        "PKR",
        "PLN",
        "PYG",
        "QAR",
        "RON",
        "RSD",
        "RUB",
        "RWF",
        "SAR",
        "SBD",
        "SCR",
        "SDG",
        "SEK",
        "SGD",
        "SHP",
        "SLE",
        "SOS",
        "SRD",
        "SSP",
        "STN",
        "SVC",
        "SYP",
        "SZL",
        "THB",
        "TJS",
        "TMT",
        "TND",
        "TOP",
        "TRY",
        "TTD",
        "TWD",
        "TZS",
        "UAH",
        "UGX",
        "USD",
        "UYU",
        "UZS",
        "VED",
        "VES",
        "VND",
        "VUV",
        "WST",
        "XAF",
        "XCD",
        "XCG",
        "XOF",
        "XPF",
        "YER",
        "ZAR",
        "ZMW",
        "ZWG",
    ]
)
