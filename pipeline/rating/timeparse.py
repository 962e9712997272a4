"""RFC 3339 timestamps as polars expressions, shared by CDR decoding and reference data.

Accepted: ``YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)``; ``T`` and ``Z`` may be lower case. The
fraction may have any number of digits and is truncated to microseconds. Every instant is
converted to UTC and held as integer microseconds since the epoch (``Datetime("us", "UTC")``).

Two readers decide together. The fixed-width reader (:func:`fixed_width_micros`) handles the
common forms (no fraction, or a fraction of at most 9 digits) with byte arithmetic over the
whole column: ~11 ms instead of ~35 ms per 100,000 texts on one core here. It only *accepts*: a text
it does not cover, valid or not, goes to the general reader (:func:`parse_rfc3339_general`, a
strict pattern plus chrono's ISO reader), which alone decides what else is valid. Both give the
same instant for every text the fixed-width reader covers (a property test holds them to it).
:func:`format_rfc3339` writes instants back as text.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa

RFC3339_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"

#: Sentinel for an open-ended ``effective_until``: later than any instant we rate.
OPEN_END_US = 2**62

_UTC_US = pl.Datetime("us", "UTC")
_HEAD = 19  # YYYY-MM-DDTHH:MM:SS
_MAX_FRACTION = 9  # fraction digits the fixed-width reader covers (milli, micro, nano and between)
_FRACTION = 1 + _MAX_FRACTION  # "." and the digits
_OFFSET = 6  # ±HH:MM
_SHORTEST = _HEAD + 1
_LONGEST = _HEAD + _FRACTION + _OFFSET
_FIELDS = (
    "year",
    "month",
    "day",
    "hour",
    "minute",
    "second",
    "micro",
    "offset_hour",
    "offset_minute",
)
# Days per month, index 0 unused; February gets its leap day added where the year has one.
_MONTH_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int32)
_LOWER = 0x20  # ASCII letters: upper | 0x20 == lower

_Bytes = npt.NDArray[np.uint8]


def parse_rfc3339(text: pl.Expr) -> pl.Expr:
    """Parse RFC 3339 text to ``Datetime("us", "UTC")``; null where the text is not valid.

    Null input stays null. Impossible dates (February 30) and malformed text both give null, so
    callers compare ``is_null()`` of input and output to tell missing from malformed.
    """
    # Not elementwise on purpose: one call for the whole column, not one per morsel (the reader
    # has a fixed cost per call that small morsels would multiply).
    return text.map_batches(parse_rfc3339_series, return_dtype=_UTC_US)


def parse_rfc3339_series(text: pl.Series) -> pl.Series:
    """:func:`parse_rfc3339` on a series: the fixed-width reader, the general one for the rest."""
    if text.dtype != pl.String:
        text = text.cast(pl.String)
    micros, covered = fixed_width_micros(text)
    if not covered.all() and len(rest := np.flatnonzero(~covered & text.is_not_null().to_numpy())):
        general = pl.select(parse_rfc3339_general(pl.lit(text.gather(rest)))).to_series()
        micros[rest] = general.dt.epoch("us").fill_null(0).to_numpy()
        covered[rest] = general.is_not_null().to_numpy()
    values = pa.Array.from_buffers(
        pa.int64(),
        len(micros),
        [pa.py_buffer(np.packbits(covered, bitorder="little")), pa.py_buffer(micros)],
    )
    return pl.Series(text.name, values).cast(_UTC_US)


def format_rfc3339(micros: pl.Expr) -> pl.Expr:
    """Microseconds since the epoch as RFC 3339 UTC text; null and the open end give null.

    Whole seconds read ``2026-03-31T08:30:15Z``; an instant with a fraction has all six digits
    of it (``2026-03-31T08:30:15.250000Z``).
    """
    moment = pl.when(micros < OPEN_END_US).then(micros).cast(_UTC_US)
    whole = moment.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    fraction = moment.dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
    return pl.when(micros % 1_000_000 == 0).then(whole).otherwise(fraction)


def parse_instant(text: object) -> datetime | None:
    """One RFC 3339 text as a UTC ``datetime``; None if it is not valid (or not text).

    The same reader as for a column, so a command-line option, a payment and a CDR field
    accept exactly the same texts.
    """
    if not isinstance(text, str):
        return None
    parsed = parse_rfc3339_series(pl.Series([text], dtype=pl.String))[0]
    return parsed if isinstance(parsed, datetime) else None


def parse_rfc3339_general(text: pl.Expr) -> pl.Expr:
    """The general reader: every valid form, at about 35 ms per 100,000 texts (one core here).

    chrono's ISO 8601 reader ("%+") takes T or t, Z or z or an offset, any fraction (truncated
    to the microseconds we hold) and a leap second (``:60``, the next minute's first second).
    It also takes forms RFC 3339 does not (a space for T, +0200), so the strict pattern decides
    what is valid.
    """
    parsed = text.str.to_datetime("%+", strict=False, time_unit="us", time_zone="UTC")
    return pl.when(text.str.contains(RFC3339_PATTERN)).then(parsed).otherwise(None)


def fixed_width_micros(text: pl.Series) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Microseconds since the epoch of the texts in the fixed-width form, and which those are.

    Covered: ``YYYY-MM-DD(T|t)HH:MM:SS``, then ``.`` and 1 to 9 ASCII digits or nothing, then
    ``Z``, ``z`` or ``±HH:MM``, with a real calendar date (leap years included), hour 0-23,
    minute 0-59, second 0-60 (60 is the next minute's first second, as chrono reads it) and an
    offset of at most 23:59. Where ``covered`` is false the microseconds are meaningless: the
    text is null, or not in this form (it may still be valid; ask the general reader).

    How: the length of a text and its last byte (``Z`` or not) fix its layout, so the texts are
    grouped by layout (at most 18 of them) and each group is read as a byte matrix, checked
    against its template in one comparison and turned into date and time fields by sums of
    its digit rows; the calendar arithmetic then runs once over the whole column.
    """
    array = text.to_arrow(compat_level=pl.CompatLevel.oldest())  # large_string: one buffer
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    count = len(array)
    micros = np.zeros(count, dtype=np.int64)
    covered = np.zeros(count, dtype=np.bool_)
    _, offsets_buffer, data_buffer = array.buffers()
    if count == 0 or offsets_buffer is None or data_buffer is None or data_buffer.size < _SHORTEST:
        return micros, covered  # no text long enough
    offsets = np.frombuffer(
        offsets_buffer, dtype=np.int64, count=count + 1, offset=array.offset * 8
    )
    data = np.frombuffer(data_buffer, dtype=np.uint8)
    starts, ends = offsets[:-1], offsets[1:]
    lengths = ends - starts
    zulu = (data[np.maximum(ends - 1, 0)] | _LOWER) == ord("z")
    fits = (lengths >= _SHORTEST) & (lengths <= _LONGEST)
    if text.null_count():
        fits &= text.is_not_null().to_numpy()
    # Layout key: 2 * length + zulu, 0 for texts no layout fits; a stable radix sort groups them.
    key = np.where(fits, lengths * 2 + zulu, 0).astype(np.uint8)
    order = np.argsort(key, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(key, minlength=2 * _LONGEST + 2))])
    sorted_starts = starts[order]
    fields = np.zeros((len(_FIELDS), count), dtype=np.int32)
    ok = np.zeros(count, dtype=np.bool_)
    west = np.zeros(count, dtype=np.bool_)  # a "-" offset
    for group in np.flatnonzero(bounds[1:] - bounds[:-1]):
        layout = _layout(int(group) // 2, zulu=bool(group % 2)) if group else None
        if layout is None:
            continue
        first, last = bounds[group], bounds[group + 1]
        rows = _take(data, sorted_starts[first:last], layout.width)  # (width, texts)
        rows[10] |= _LOWER  # T or t
        if layout.zulu:
            rows[-1] |= _LOWER  # Z or z
        else:
            west[first:last] = rows[-_OFFSET] == ord("-")
            rows[-_OFFSET] -= west[first:last].view(np.uint8) * np.uint8(2)  # "-" -> "+"
        rows -= layout.template  # digits become 0-9, the fixed characters 0; wraps below 0
        ok[first:last] = np.logical_and.reduce(rows < layout.limit, axis=0)
        for field, terms in layout.terms:
            value = fields[field, first:last]
            for row, weight in terms:
                value += rows[row] * np.int32(weight)
    year, month, day, hour, minute, second, micro, offset_hour, offset_minute = fields
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_days = _MONTH_DAYS[np.clip(month, 0, 12)] + ((month == 2) & leap)
    ok &= (month >= 1) & (month <= 12) & (day >= 1) & (day <= month_days)
    ok &= (hour <= 23) & (minute <= 59) & (second <= 60)
    ok &= (offset_hour <= 23) & (offset_minute <= 59)
    offset = offset_hour * 3600 + offset_minute * 60
    seconds = _days_from_civil(year, month, day).astype(np.int64) * 86_400 + (
        hour * 3600 + minute * 60 + second - np.where(west, -offset, offset)
    )
    micros[order] = seconds * 1_000_000 + micro
    covered[order] = ok
    return micros, covered


@dataclass(frozen=True)
class _Layout:
    """One fixed-width form: its template, the allowed difference per byte, digits of each field."""

    width: int
    zulu: bool
    template: npt.NDArray[np.uint8]  # (width, 1): "0" where a digit goes, else the character
    limit: npt.NDArray[np.uint8]  # (width, 1): 10 for a digit, 1 for a fixed character
    # Per field: (byte position, power of ten) of each of its digits.
    terms: tuple[tuple[int, tuple[tuple[int, int], ...]], ...]


@functools.cache
def _layout(width: int, *, zulu: bool) -> _Layout | None:
    """The layout of texts of ``width`` bytes ending in ``Z`` (``zulu``) or an offset; or None.

    Field values are sums of digits times powers of ten, computed in int32 with numpy's own
    loops (a float32 matrix product was as exact, but it called BLAS, whose worker thread then
    spun on the second core that the rest of the rating needs).
    """
    places = width - _HEAD - (1 if zulu else _OFFSET)  # "." and the fraction digits
    if places < 0 or places == 1 or places > _FRACTION:
        return None
    text = "0000-00-00t00:00:00" + ("." + "0" * (places - 1) if places else "")
    text += "z" if zulu else "+00:00"
    template = np.frombuffer(text.encode(), dtype=np.uint8)
    terms: list[tuple[int, tuple[tuple[int, int], ...]]] = []
    spans = {"year": (0, 4), "month": (5, 2), "day": (8, 2), "hour": (11, 2), "minute": (14, 2)}
    spans |= {"second": (17, 2), "micro": (_HEAD + 1, min(places - 1, 6) if places else 0)}
    if not zulu:
        spans |= {"offset_hour": (width - 5, 2), "offset_minute": (width - 2, 2)}
    for field, (start, digits) in spans.items():
        scale = 6 if field == "micro" else digits  # the fraction's first digit is 10**5 us
        if digits:
            places_of = tuple((start + p, 10 ** (scale - 1 - p)) for p in range(digits))
            terms.append((_FIELDS.index(field), places_of))
    return _Layout(
        width=width,
        zulu=zulu,
        template=template[:, None].copy(),
        limit=np.where(template == ord("0"), 10, 1).astype(np.uint8)[:, None],
        terms=tuple(terms),
    )


def _take(data: _Bytes, starts: npt.NDArray[np.int64], width: int) -> _Bytes:
    """``data[s:s + width]`` for every ``s`` in ``starts``, as a ``(width, len(starts))`` matrix.

    ``data`` is viewed as overlapping ``width``-byte items, so taking them copies ``width``
    bytes per text in one step (several times faster than a two-dimensional fancy index). The
    result is transposed so that each byte position is one contiguous row.
    """
    items = np.ndarray(
        shape=(len(data) - width + 1,), dtype=f"S{width}", buffer=data, offset=0, strides=(1,)
    )
    return np.ascontiguousarray(items[starts].view(np.uint8).reshape(len(starts), width).T)


def _days_from_civil(
    year: npt.NDArray[np.int32], month: npt.NDArray[np.int32], day: npt.NDArray[np.int32]
) -> npt.NDArray[np.int32]:
    """Days since 1970-01-01 of proleptic Gregorian dates (H. Hinnant's days_from_civil).

    int32 is enough: the four-digit years of RFC 3339 are within 2.9 million days of 1970.
    """
    year = year - (month <= 2)
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    days: npt.NDArray[np.int32] = era * 146_097 + day_of_era - 719_468
    return days


def to_micros(value: datetime) -> int:
    """Return microseconds since the epoch for an aware datetime."""
    if value.tzinfo is None:
        msg = f"naive datetime {value!r}: pass a timezone-aware UTC instant"
        raise ValueError(msg)
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
