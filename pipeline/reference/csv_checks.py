"""Reading a plans-folder CSV file into a frame, and the checks every file shares.

Every problem is reported with file, line, column and value (:class:`Problem`); lines are
physical line numbers of the file, blank lines and quoted line breaks included.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import re
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import polars as pl

from pipeline.rating.exceptions import Problem
from pipeline.rating.money import ISO_4217
from pipeline.rating.timeparse import OPEN_END_US, parse_rfc3339
from pipeline.reference.files import PlanFiles

LINE = "_line"  # the column holding each row's line number in its file


def read_csv(
    folder: PlanFiles,
    relative: str,
    columns: tuple[str, ...],
    required: tuple[str, ...],
    problems: list[Problem],
    digest: hashlib._Hash,
    *,
    optional_file: bool = False,
) -> pl.DataFrame | None:
    """Read a CSV of text cells (trimmed, empty = null) with a ``_line`` column; None on failure."""
    data = folder.read(relative)
    if data is None:
        if optional_file:
            return pl.DataFrame(
                {c: [] for c in (*columns, LINE)},
                schema={**dict.fromkeys(columns, pl.String), LINE: pl.Int64},
            )
        problems.append(Problem(relative, None, None, None, "file missing"))
        return None
    digest.update(relative.encode() + b"\0" + data)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        # Checked without keeping a decoded copy: a million-row deck must load in little memory.
        codecs.decode(data, "utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        problems.append(Problem(relative, line, None, None, "not UTF-8 text"))
        return None
    first_line = data.split(b"\n", 1)[0].decode("utf-8").strip("\r")
    # Standard CSV quoting in the header too: "prefix","destination",... names the columns.
    header = [h.strip() for h in next(csv.reader([first_line]), [])]
    if not first_line.strip():
        problems.append(Problem(relative, 1, None, None, "no header row"))
        return None
    unknown = [h for h in header if h not in columns]
    missing = [c for c in required if c not in header]
    dupes = sorted({h for h in header if header.count(h) > 1})
    for h in unknown:
        problems.append(
            Problem(relative, 1, h, None, f"unknown column; expected {', '.join(columns)}")
        )
    for c in missing:
        problems.append(Problem(relative, 1, c, None, "required column missing"))
    for h in dupes:
        problems.append(Problem(relative, 1, h, None, "column appears twice"))
    if unknown or missing or dupes:
        return None
    content_lines, data = _content_lines(data)
    try:
        frame = pl.read_csv(
            data,
            has_header=True,
            infer_schema=False,
            new_columns=header,
            truncate_ragged_lines=False,
        )
    except pl.exceptions.PolarsError as exc:
        problems.append(
            Problem(
                relative,
                _ragged_line(data.decode("utf-8").split("\n"), len(header)),
                None,
                None,
                f"not valid CSV: {exc}".splitlines()[0],
            )
        )
        return None
    if frame.height != len(content_lines):
        problems.append(
            Problem(
                relative,
                None,
                None,
                None,
                "quoted line breaks are not supported in reference files",
            )
        )
        return None
    # Trim cells (empty = null), copying only the columns that need it: decks are large.
    padded = frame.select(
        (pl.col(header).str.contains(r"^\s|\s$") | (pl.col(header) == "")).any()
    ).row(0)
    frame = frame.with_columns(
        [
            pl.col(c).str.strip_chars().replace("", None)
            for c, pad in zip(header, padded, strict=True)
            if pad
        ]
        + [pl.lit(None, dtype=pl.String).alias(c) for c in columns if c not in header]
    ).with_columns(pl.Series(LINE, content_lines, dtype=pl.Int64))
    return frame.select([*columns, LINE])


# A blank line: the first line, or one after a line break. Two patterns rather than one
# ``(^|\n)[ \t\r]*(\n|$)``: a pattern that starts with a literal line break is scanned for
# it in C (~0.05 s for the 67 MB of a million-row deck, where the alternation took ~1.1 s).
_BLANK_FIRST_LINE = re.compile(rb"[ \t\r]*(\n|$)")
_BLANK_LATER_LINE = re.compile(rb"\n[ \t\r]*(\n|$)")


def has_blank_line(content: bytes) -> bool:
    """Whether some line of ``content`` holds only spaces, tabs and carriage returns."""
    return (
        _BLANK_FIRST_LINE.match(content) is not None
        or _BLANK_LATER_LINE.search(content) is not None
    )


def _content_lines(data: bytes) -> tuple[npt.NDArray[np.int64], bytes]:
    """Line numbers (1-based) of the rows after the header, and the text without blank lines.

    Blank lines hold no row; they are dropped before reading so that row ``i`` is always on line
    ``numbers[i]``, whatever the line endings.
    """
    content = data.rstrip()  # trailing blank lines hold no row
    if not has_blank_line(content):  # no blank line in between: the usual case
        return np.arange(2, content.count(b"\n") + 2, dtype=np.int64), content + b"\n"
    physical = data.split(b"\n")
    kept = [(number, raw) for number, raw in enumerate(physical[1:], start=2) if raw.strip()]
    numbers = np.array([number for number, _ in kept], dtype=np.int64)
    return numbers, b"\n".join([physical[0], *(raw for _, raw in kept)])


def _ragged_line(physical: list[str], width: int) -> int | None:
    for number, raw in enumerate(physical[1:], start=2):
        if raw.strip() and raw.count(",") != width - 1 and '"' not in raw:
            return number
    return None


def report(
    frame: pl.DataFrame, file: str, column: str, problem: pl.Expr, problems: list[Problem]
) -> None:
    """Append a Problem for each row where ``problem`` (a text expression) is not null.

    Judged a slice of rows at a time (see :func:`in_slices`).
    """
    report_all(frame, file, [(column, problem)], problems)


def report_all(
    frame: pl.DataFrame,
    file: str,
    checks: Sequence[tuple[str, pl.Expr]],
    problems: list[Problem],
) -> list[int]:
    """:func:`report` of each ``(column, problem)`` in turn, judged in one pass; the counts.

    The problems are appended in the order separate :func:`report` calls would give (check by
    check, each in row order); all the checks are computed together, one query per slice
    instead of one per check and slice (a deck has a dozen checks, a folder dozens of decks).
    Returns how many problems each check found.
    """
    found: list[list[Problem]] = [[] for _ in checks]
    flags = [f"_problem{i}" for i in range(len(checks))]
    for begin in range(0, frame.height, _SLICE_ROWS):
        part = frame.slice(begin, _SLICE_ROWS)
        # Whether any row fails, as booleans first: the texts are made only for a slice with
        # problems (a text column per check over every row took tens of MB at once on a large
        # deck). They are made over the whole slice, as checks may compare rows.
        failing_rows = part.select(
            pl.any_horizontal(problem.is_not_null() for _, problem in checks)
        ).to_series()
        if not failing_rows.any():
            continue
        bad = part.with_columns(
            [problem.alias(flag) for (_, problem), flag in zip(checks, flags, strict=True)]
        ).filter(failing_rows)
        for (column, _), flag, into in zip(checks, flags, found, strict=True):
            failing = bad.filter(pl.col(flag).is_not_null()).select(LINE, column, flag)
            into += [
                Problem(file, line, column, value, message)
                for line, value, message in failing.iter_rows()
            ]
    for into in found:
        problems += into
    return [len(into) for into in found]


def required_checks(columns: tuple[str, ...]) -> list[tuple[str, pl.Expr]]:
    """The check of :func:`required` for each column, for :func:`report_all`."""
    return [
        (column, pl.when(pl.col(column).is_null()).then(pl.lit("required, empty")))
        for column in columns
    ]


def required(
    frame: pl.DataFrame, file: str, columns: tuple[str, ...], problems: list[Problem]
) -> None:
    report_all(frame, file, required_checks(columns), problems)


def currency_problem(column: str = "currency") -> pl.Expr:
    """Why a cell of ``column`` is not an ISO 4217 currency code (null when it is, or is empty)."""
    return pl.when(pl.col(column).is_not_null() & ~pl.col(column).is_in(sorted(ISO_4217))).then(
        pl.lit("not an ISO 4217 currency code")
    )


def integer_problem(column: str, low: int, high: int) -> pl.Expr:
    value = pl.col(column).cast(pl.Int64, strict=False)
    return (
        pl.when(pl.col(column).is_null())
        .then(None)
        .when(~pl.col(column).str.contains(r"^[0-9]+$"))
        .then(pl.lit("not a whole number"))
        .when((value < low) | (value > high))
        .then(pl.lit(f"must be {low} to {high}"))
    )


def timestamps(frame: pl.DataFrame, file: str, problems: list[Problem]) -> pl.DataFrame:
    """Parse effective_from/until; until must be after from. Adds *_us Int64 columns."""
    out = frame.hstack(
        in_slices(
            frame,
            lambda part: part.select(
                _from=per_distinct(part["effective_from"], parse_rfc3339),
                _until=per_distinct(part["effective_until"], parse_rfc3339),
            ),
        )
    )
    checks = [
        (
            column,
            pl.when(pl.col(column).is_not_null() & pl.col(parsed).is_null()).then(
                pl.lit("not an RFC 3339 timestamp (like 2026-03-01T00:00:00Z)")
            ),
        )
        for column, parsed in (("effective_from", "_from"), ("effective_until", "_until"))
    ]
    checks.append(
        (
            "effective_until",
            pl.when(pl.col("_until") <= pl.col("_from")).then(pl.lit("not after effective_from")),
        )
    )
    report_all(out, file, checks, problems)
    return out.with_columns(
        effective_from_us=pl.col("_from").dt.epoch("us"),
        effective_until_us=pl.col("_until").dt.epoch("us").fill_null(OPEN_END_US),
    ).drop("_from", "_until")


def in_slices(frame: pl.DataFrame, compute: Callable[[pl.DataFrame], pl.DataFrame]) -> pl.DataFrame:
    """``compute(frame)``, a slice of rows at a time, the slices' results concatenated.

    Over a million-row deck each work column of a computation (intermediate texts and
    integers, hash tables) takes tens of MB at once; by slices they take a few MB, reused from
    one slice to the next, which keeps them out of the loading peak.
    """
    parts = [
        compute(frame.slice(begin, _SLICE_ROWS))
        for begin in range(0, max(frame.height, 1), _SLICE_ROWS)
    ]
    return parts[0] if len(parts) == 1 else pl.concat(parts, rechunk=True)


_SLICE_ROWS = 1 << 17


def per_distinct(texts: pl.Series, convert: Callable[[pl.Expr], pl.Expr]) -> pl.Series:
    """``convert`` of each text (null included), each distinct text converted once.

    A deck of a million rows names a handful of instants and a few thousand rates: converting
    only those keeps the converters' per-text work columns (for timestamps hundreds of MB for a
    million texts) out of the loading peak.
    """
    distinct = texts.unique()
    converted = pl.select(convert(pl.lit(distinct))).to_series()
    if texts.is_empty():  # replace_strict would keep the texts' type
        return converted
    return texts.replace_strict(distinct, converted, return_dtype=converted.dtype)


def overlaps(
    frame: pl.DataFrame, file: str, keys: list[str], what: str, problems: list[Problem]
) -> None:
    """Refuse two intervals of one key that overlap in time (checked on consecutive pairs)."""
    ordered = frame.sort([*keys, "effective_from_us"]).with_columns(
        _prev_until=pl.col("effective_until_us").shift(1).over(keys),
        _prev_line=pl.col(LINE).shift(1).over(keys),
    )
    clash = ordered.filter(pl.col("effective_from_us") < pl.col("_prev_until"))
    for row in clash.iter_rows(named=True):
        who = "/".join(str(row[k]) for k in keys)
        problems.append(
            Problem(
                file,
                row[LINE],
                "effective_from",
                row["effective_from"],
                f"{what} {who} overlaps the one on line {row['_prev_line']}",
            )
        )
