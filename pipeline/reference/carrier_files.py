"""Files in a carrier's own layout (CSV or Excel), read through a profile into a frame of texts.

A carrier sends rate decks and CDR files in its own layout: any delimiter, UTF-16 or Latin-1,
an Excel sheet with a banner above the header, decimal commas, ``dd/mm/yyyy`` dates in its own
time zone. A *profile* (TOML) says how to read one layout: the keys of :class:`FileLayout`
here, plus a ``[columns]`` table naming, for each column the pipeline needs, the header the
carrier gives it. :func:`read_carrier_table` reads a file into a frame of trimmed texts (empty
= null), one column per mapped column, with the file's own row number in ``_row`` (the
physical line of a CSV record, the sheet row of an Excel row), so that every problem can be
named with the file's row, the carrier's header and the value, as the carrier sees them.

The values are converted by the callers (:mod:`pipeline.reference.carrier_decks` for rate
decks) with :func:`decimal_texts` and :func:`local_instants`, which apply the layout's decimal
separator, date format and time zone.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import tomllib
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import polars as pl

from pipeline.rating.exceptions import Problem, ReferenceDataError
from pipeline.rating.timeparse import to_micros
from pipeline.reference.csv_checks import has_blank_line
from pipeline.reference.validation import is_zone

ROW = "_row"  # the column holding each row's number in the carrier's file
FORMATS = ("csv", "xlsx")
LAYOUT_KEYS = (
    "format",
    "delimiter",
    "encoding",
    "sheet",
    "header_row",
    "decimal_separator",
    "date_format",
    "timezone",
)
#: How a date cell of an Excel sheet reads as text (whatever the date format of the profile).
EXCEL_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d")
_MAX_PROFILE_BYTES = 1 << 20
MAX_PROBLEMS_PER_COLUMN = 50  # rows named per column of a carrier file; then how many more
# Directives polars reads as strptime does (two-digit years, fractions, names, offsets differ).
_FAST_DIRECTIVES = frozenset({"%Y", "%m", "%d", "%H", "%M", "%S", "%%"})


@dataclass(frozen=True)
class FileLayout:
    """How to read one carrier layout: the file's shape, numbers and dates."""

    format: str | None = None  # csv | xlsx; None: by the file's extension
    delimiter: str = ","
    encoding: str = "utf-8"  # a byte-order mark in the file wins
    sheet: str | int | None = None  # a sheet's name, or its 1-based position; None: the first
    header_row: int = 1  # 1-based row of the header in the file
    decimal_separator: str = "."
    date_format: str = "%Y-%m-%d"  # strptime; a date without a time is local midnight
    timezone: str = "UTC"  # IANA zone of the dates in the file

    def format_of(self, path: Path) -> str:
        """The profile's format, else the one the file's extension names."""
        if self.format is not None:
            return self.format
        return "xlsx" if path.suffix.lower() in (".xlsx", ".xlsm") else "csv"


@dataclass(frozen=True)
class CarrierProfile:
    """What every carrier profile has: where it was read, the file's layout, the mapping."""

    path: str
    layout: FileLayout
    columns: dict[str, str]  # our column -> the carrier's header

    def header(self, column: str) -> str:
        """The carrier's header for one of our columns."""
        return self.columns.get(column, column)


def read_profile_toml(path: Path) -> dict[str, Any]:
    """The TOML table of a profile file; :class:`ReferenceDataError` naming what is wrong."""
    where = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ReferenceDataError(
            [Problem(where, None, None, None, f"cannot read: {exc.strerror}")]
        ) from None
    if len(data) > _MAX_PROFILE_BYTES:
        raise ReferenceDataError([Problem(where, None, None, None, "too large for a profile")])
    try:
        return tomllib.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ReferenceDataError([Problem(where, None, None, None, "not UTF-8 text")]) from None
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        raise ReferenceDataError(
            [Problem(where, int(line.group(1)) if line else None, None, None, f"not TOML: {exc}")]
        ) from None


def open_profile(
    path: Path, known: tuple[str, ...]
) -> tuple[dict[str, Any], list[Problem], FileLayout]:
    """A profile's TOML table, the problems found so far, and its layout.

    The problems are unknown keys and bad layout keys; the caller checks its own keys, then
    refuses the profile if any problem was found.
    """
    where = str(path)
    profile = read_profile_toml(path)
    problems = [
        Problem(where, None, key, None, f"unknown key; expected {', '.join(known)}")
        for key in profile
        if key not in known
    ]
    return profile, problems, read_layout(profile, where, problems)


def read_layout(profile: Mapping[str, Any], where: str, problems: list[Problem]) -> FileLayout:
    """The layout keys of a profile, each checked; problems name the key and its value."""

    def bad(key: str, message: str) -> None:
        problems.append(Problem(where, None, key, _shown(profile.get(key)), message))

    def text(key: str) -> str | None:
        value = profile.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            bad(key, "must be a text")
            return None
        return value

    layout = FileLayout()
    fmt = text("format")
    if fmt is not None and fmt not in FORMATS:
        bad("format", f"must be one of {', '.join(FORMATS)}")
        fmt = None
    delimiter = text("delimiter")
    if delimiter is not None and (len(delimiter) != 1 or delimiter in "\r\n\"'"):
        bad("delimiter", 'must be one character (a tab is "\\t"), not a quote or line break')
        delimiter = None
    encoding = text("encoding")
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            bad("encoding", "not an encoding Python knows (like utf-8, utf-16, latin-1, cp1252)")
            encoding = None
    sheet = profile.get("sheet")
    if sheet is not None and not (
        (isinstance(sheet, str) and sheet) or (type(sheet) is int and sheet >= 1)
    ):
        bad("sheet", "must be a sheet's name or its position (1 = the first)")
        sheet = None
    header_row = profile.get("header_row", 1)
    if type(header_row) is not int or not 1 <= header_row <= 1_000:
        bad("header_row", "must be a whole number from 1 (the first row) to 1000")
        header_row = 1
    decimal = text("decimal_separator")
    if decimal is not None and decimal not in (".", ","):
        bad("decimal_separator", 'must be "." or ","')
        decimal = None
    date_format = text("date_format")
    if date_format is not None and not re.search(r"%[dj]", date_format):
        bad("date_format", "must be a strptime format with a day (like %d/%m/%Y)")
        date_format = None
    zone = text("timezone")
    if zone is not None and not is_zone(zone):
        bad("timezone", "not an IANA time zone (like Europe/Berlin)")
        zone = None
    return FileLayout(
        format=fmt,
        delimiter=delimiter or layout.delimiter,
        encoding=encoding or layout.encoding,
        sheet=sheet,
        header_row=header_row,
        decimal_separator=decimal or layout.decimal_separator,
        date_format=date_format or layout.date_format,
        timezone=zone or layout.timezone,
    )


def read_columns(
    profile: Mapping[str, Any],
    where: str,
    known: tuple[str, ...],
    required: tuple[str, ...],
    problems: list[Problem],
    *,
    may_share: tuple[frozenset[str], ...] = (),
) -> dict[str, str]:
    """The profile's ``[columns]`` table: each of our column names to the carrier's header.

    Two of our columns may name the same header only when ``may_share`` allows the pair.
    """
    table = profile.get("columns")
    if not isinstance(table, dict):
        problems.append(Problem(where, None, "columns", None, "a [columns] table is required"))
        return {}
    mapping: dict[str, str] = {}
    for key, header in table.items():
        if key not in known:
            problems.append(
                Problem(
                    where, None, f"columns.{key}", None, f"unknown; expected {', '.join(known)}"
                )
            )
        elif not isinstance(header, str) or not header.strip():
            problems.append(
                Problem(where, None, f"columns.{key}", _shown(header), "must be a header (text)")
            )
        else:
            mapping[key] = header.strip()
    for key in required:
        if key not in table:
            problems.append(Problem(where, None, f"columns.{key}", None, "required, missing"))
    by_header: dict[str, list[str]] = {}
    for key, header in mapping.items():
        by_header.setdefault(header, []).append(key)
    for header, keys in by_header.items():
        if len(keys) > 1 and frozenset(keys) not in may_share:
            problems.append(
                Problem(
                    where,
                    None,
                    "columns",
                    header,
                    f"one header mapped to {' and '.join(keys)}",
                )
            )
    return mapping


def read_carrier_table(path: Path, layout: FileLayout, columns: Mapping[str, str]) -> pl.DataFrame:
    """The mapped columns of a carrier file as trimmed texts (empty = null), and ``_row``.

    ``columns`` maps our column names to the carrier's headers. Rows with no cell at all are
    skipped. Raises :class:`ReferenceDataError` naming the file, the row and what is wrong
    (not decodable, a header missing, a row longer than the header).
    """
    if not path.is_file():
        raise ReferenceDataError([Problem(str(path), None, None, None, "no such file")])
    body: str | None = None
    if layout.format_of(path) == "xlsx":
        headers, rows = _excel_rows(path, layout)
    else:
        headers, rows, body = _csv_rows(path, layout)
    where = str(path)
    problems: list[Problem] = []
    positions: dict[str, int] = {}
    for key, header in columns.items():
        found = [i for i, h in enumerate(headers) if h == header]
        if not found:
            problems.append(
                Problem(
                    where,
                    layout.header_row,
                    header,
                    None,
                    f"header not found (for {key}); the header row has: "
                    + ", ".join(repr(h) for h in headers if h),
                )
            )
        elif len(found) > 1:
            problems.append(Problem(where, layout.header_row, header, None, "header appears twice"))
        else:
            positions[key] = found[0]
    if problems:
        raise ReferenceDataError(problems)
    width = len(headers)
    if body is not None:
        fast = _plain_csv(body, layout, width, positions)
        if fast is not None:
            return _short_cells(fast, where, columns)
    numbers: list[int] = []
    cells: list[list[str | None]] = [[] for _ in positions]
    wanted = list(positions.values())
    for number, row in rows:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > width and any(cell.strip() for cell in row[width:]):
            problems.append(
                Problem(where, number, None, row[width], f"more cells than the {width} headers")
            )
            if len(problems) >= 100:
                break
            continue
        numbers.append(number)
        for column, position in zip(cells, wanted, strict=True):
            column.append(row[position] if position < len(row) else None)
    if problems:
        raise ReferenceDataError(problems)
    frame = pl.DataFrame(
        {key: column for key, column in zip(positions, cells, strict=True)},
        schema=dict.fromkeys(positions, pl.String),
    )
    frame = frame.with_columns(pl.all().str.strip_chars().replace("", None))
    return _short_cells(frame.with_columns(pl.Series(ROW, numbers, dtype=pl.Int64)), where, columns)


MAX_CELL_CHARS = 1_024  # a code list, a destination or a price is far shorter


def _short_cells(frame: pl.DataFrame, where: str, columns: Mapping[str, str]) -> pl.DataFrame:
    """The frame, unless a mapped cell is longer than any real value: then every such cell."""
    problems: list[Problem] = []
    for key, header in columns.items():
        long = frame.filter(pl.col(key).str.len_chars() > MAX_CELL_CHARS)
        for number, value in long.head(20).select(ROW, key).iter_rows():
            problems.append(
                Problem(
                    where,
                    number,
                    header,
                    f"{value[:32]}... ({len(value):,} characters)",
                    f"longer than {MAX_CELL_CHARS:,} characters",
                )
            )
    if problems:
        raise ReferenceDataError(problems)
    return frame


def _plain_csv(
    body: str, layout: FileLayout, width: int, positions: Mapping[str, int]
) -> pl.DataFrame | None:
    """The rows after the header read by polars, when every record is one line; else None.

    A file with blank lines, records spanning lines (quoted line breaks), rows longer than
    the header or anything polars does not read is left to the line-by-line reader, which
    names each problem; for the usual file both give the same texts, this one in a fraction
    of the time.
    """
    body = body.rstrip()  # trailing blank lines hold no row
    data = body.encode("utf-8")
    if not body or has_blank_line(data):
        return None
    names = [f"_{i}" for i in range(width)]
    try:
        frame = pl.read_csv(
            data,
            has_header=False,
            separator=layout.delimiter,
            quote_char='"',
            infer_schema=False,
            new_columns=names,
            truncate_ragged_lines=False,
            raise_if_empty=False,
        )
    except (pl.exceptions.PolarsError, ValueError):
        return None
    if frame.width != width or frame.height != body.count("\n") + 1:
        return None  # a quoted line break, or a row polars read otherwise
    first = layout.header_row + 1
    frame = frame.with_columns(
        pl.int_range(first, first + frame.height, dtype=pl.Int64).alias(ROW)
    ).filter(pl.any_horizontal(pl.col(names).str.strip_chars().fill_null("") != ""))
    return frame.select(
        *(
            pl.col(names[i]).str.strip_chars().replace("", None).alias(k)
            for k, i in positions.items()
        ),
        ROW,
    )


def _csv_rows(
    path: Path, layout: FileLayout
) -> tuple[list[str], Iterator[tuple[int, list[str]]], str | None]:
    """The header, the records after it (each with the line it starts on), and the body.

    The body is the text after the header's line (None when the header spans lines).
    """
    text = _decoded(path, layout.encoding)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=layout.delimiter, strict=False)
    line = 1  # the line the next record starts on
    header: list[str] | None = None
    try:
        for record in reader:
            start, line = line, reader.line_num + 1
            if start == layout.header_row:
                header = [h.strip() for h in record]
                break
            if start > layout.header_row:
                break
    except csv.Error as exc:
        raise ReferenceDataError(
            [Problem(str(path), line, None, None, f"not valid CSV: {exc}")]
        ) from None
    if header is None:
        raise ReferenceDataError(
            [Problem(str(path), layout.header_row, None, None, "no header row there")]
        )

    def records() -> Iterator[tuple[int, list[str]]]:
        nonlocal line
        try:
            for record in reader:
                start, line = line, reader.line_num + 1
                yield start, record
        except csv.Error as exc:
            raise ReferenceDataError(
                [Problem(str(path), line, None, None, f"not valid CSV: {exc}")]
            ) from None

    body = None
    if line == layout.header_row + 1:  # the header was one line: the rows start on the next
        cut = -1
        for _ in range(layout.header_row):
            cut = text.find("\n", cut + 1)
        body = "" if cut < 0 else text[cut + 1 :]
    return header, records(), body


_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def _decoded(path: Path, encoding: str) -> str:
    """The file's text: a byte-order mark names the encoding, else the profile's encoding."""
    data = path.read_bytes()
    for bom, name in _BOMS:
        if data.startswith(bom):
            data, encoding = data[len(bom) :], name
            break
    try:
        return codecs.decode(data, encoding)
    except UnicodeDecodeError as exc:
        before = codecs.decode(data[: exc.start], encoding, errors="replace")
        raise ReferenceDataError(
            [
                Problem(
                    str(path),
                    before.count("\n") + 1,
                    None,
                    data[exc.start : exc.end].hex(" "),
                    f"bytes that are not {encoding} text (set the profile's encoding)",
                )
            ]
        ) from None


def _excel_rows(
    path: Path, layout: FileLayout
) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The header and the rows after it of an Excel sheet, each with its sheet row number.

    Cells read as text: a number as its shortest decimal (a code typed as a number reads
    ``4930``), a date cell as ``YYYY-MM-DD HH:MM:SS``.
    """
    import fastexcel

    where = str(path)
    try:
        reader = fastexcel.read_excel(str(path))
        names = reader.sheet_names
    except Exception as exc:  # fastexcel raises its own error types for a file it cannot read
        raise ReferenceDataError(
            [Problem(where, None, None, None, f"not an Excel workbook: {exc}")]
        ) from None
    sheet = layout.sheet
    if sheet is None:
        sheet = names[0] if names else ""
    elif isinstance(sheet, int):
        if sheet > len(names):
            raise ReferenceDataError(
                [Problem(where, None, None, str(sheet), f"the workbook has {len(names)} sheet(s)")]
            )
        sheet = names[sheet - 1]
    if sheet not in names:
        raise ReferenceDataError(
            [Problem(where, None, None, sheet, f"no such sheet; the workbook has {names}")]
        )
    # The sheet's cells start at its first row holding a value: rows above are not in it.
    first = _first_used_row(path, names.index(sheet))
    if first is None or layout.header_row < first:
        raise ReferenceDataError(
            [Problem(where, layout.header_row, None, None, f"no header row there (sheet {sheet})")]
        )
    try:
        loaded = reader.load_sheet(sheet, header_row=None, dtypes="string")
        table = pl.DataFrame(loaded.to_arrow())
    except Exception as exc:
        raise ReferenceDataError(
            [Problem(where, None, None, None, f"sheet {sheet} cannot be read: {exc}")]
        ) from None
    table = table.with_columns(pl.all().fill_null(""))
    skip = layout.header_row - first
    if skip >= table.height:
        raise ReferenceDataError(
            [Problem(where, layout.header_row, None, None, f"no header row there (sheet {sheet})")]
        )
    header = [str(h).strip() for h in table.row(skip)]
    body = table.slice(skip + 1)
    numbers = range(layout.header_row + 1, layout.header_row + 1 + body.height)
    rows = zip(numbers, body.iter_rows(), strict=True)
    return header, ((number, list(row)) for number, row in rows)


_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_RELS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"


def _first_used_row(path: Path, index: int) -> int | None:
    """The sheet row number of the first cell holding a value in the ``index``-th sheet."""
    with zipfile.ZipFile(path) as book:
        workbook = ElementTree.fromstring(book.read("xl/workbook.xml"))
        sheets = workbook.findall(f"{_MAIN}sheets/{_MAIN}sheet")
        relation = sheets[index].get(f"{_RELS}id")
        links = ElementTree.fromstring(book.read("xl/_rels/workbook.xml.rels"))
        target = next((link.get("Target", "") for link in links if link.get("Id") == relation), "")
        member = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
        with book.open(member) as stream:
            for _, element in ElementTree.iterparse(stream):
                if element.tag == f"{_MAIN}c":
                    value = element.find(f"{_MAIN}v")
                    inline = element.find(f"{_MAIN}is")
                    if (value is not None and value.text) or inline is not None:
                        reference = element.get("r", "")
                        digits = re.sub(r"^[A-Z]+", "", reference)
                        return int(digits) if digits.isdigit() else None
                    element.clear()
                elif element.tag == f"{_MAIN}row":
                    element.clear()
    return None


def with_missing_columns(table: pl.DataFrame, columns: tuple[str, ...]) -> pl.DataFrame:
    """The table with each of ``columns`` it lacks (not mapped by the profile) as null texts."""
    missing = [c for c in columns if c not in table.columns]
    return table.with_columns([pl.lit(None, dtype=pl.String).alias(c) for c in missing])


def column_problems(
    frame: pl.DataFrame, column: str, problem: pl.Expr, where: str, header: str
) -> list[Problem]:
    """A problem for each row where ``problem`` (a message, or null) is not null.

    Each names the row (``_row``), the carrier's ``header`` and the row's value of ``column``;
    after :data:`MAX_PROBLEMS_PER_COLUMN` of them, one more line says how many rows are left.
    """
    bad = frame.select(ROW, pl.col(column), _problem=problem).filter(
        pl.col("_problem").is_not_null()
    )
    problems = [
        Problem(where, number, header, value, message)
        for number, value, message in bad.head(MAX_PROBLEMS_PER_COLUMN).iter_rows()
    ]
    if bad.height > MAX_PROBLEMS_PER_COLUMN:
        more = bad.height - MAX_PROBLEMS_PER_COLUMN
        problems.append(Problem(where, None, header, None, f"and {more:,} more rows like these"))
    return problems


# --- values --------------------------------------------------------------------------------


def decimal_texts(texts: pl.Expr, decimal_separator: str) -> pl.Expr:
    """Decimal texts with ``.`` as the separator: ``0,0123`` -> ``0.0123`` under a comma."""
    if decimal_separator == ",":
        return texts.str.replace(",", ".", literal=True)
    return texts


def local_instants(
    texts: pl.Series, date_format: str, timezone: str, *, also: tuple[str, ...] = ()
) -> pl.Series:
    """Each text as a UTC microsecond instant (Int64), null where it does not read.

    A text is read with ``date_format`` (or a format of ``also``) as local time in ``timezone``,
    as strptime reads it. A date without a time is local midnight; a local time the zone skips
    (a DST gap) is read with the offset before the gap, i.e. the first instant of the day there;
    a local time it repeats, at its first occurrence. A text with its own UTC offset (``%z``)
    keeps it.

    Polars reads the common formats (only ``%Y %m %d %H %M %S``) over the whole column; a text
    it does not read as strptime does (written back, it is not the same text), one of the other
    formats, or a local time the zone skips or repeats goes to strptime, each distinct text
    once.
    """
    if set(re.findall(r"%.", date_format)) <= _FAST_DIRECTIVES:
        try:
            naive = texts.str.to_datetime(date_format, time_unit="us", strict=False)
            naive = naive.set((naive.dt.strftime(date_format) != texts).fill_null(False), None)
            fast = (
                naive.dt.replace_time_zone(timezone, non_existent="null", ambiguous="null")
                .dt.epoch("us")
                .cast(pl.Int64)
            )
        except pl.exceptions.PolarsError:  # a format polars refuses: every text by strptime
            pass
        else:
            missing = texts.is_not_null() & fast.is_null()
            if not missing.any():
                return fast
            slow = _strptime_instants(texts.filter(missing), date_format, timezone, also)
            return fast.scatter(missing.arg_true(), slow)
    return _strptime_instants(texts, date_format, timezone, also)


def _strptime_instants(
    texts: pl.Series, date_format: str, timezone: str, also: tuple[str, ...]
) -> pl.Series:
    """:func:`local_instants` by strptime, each distinct text converted once."""
    zone = ZoneInfo(timezone)
    formats = (date_format, *also)

    def instant(text: str | None) -> int | None:
        if text is None:
            return None
        for fmt in formats:
            try:
                moment = datetime.strptime(text, fmt)
            except ValueError:
                continue
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=zone)
            return to_micros(moment)
        return None

    distinct = texts.unique()
    converted = pl.Series([instant(t) for t in distinct.to_list()], dtype=pl.Int64)
    return texts.replace_strict(distinct, converted, return_dtype=pl.Int64)


def _shown(value: object) -> str | None:
    return None if value is None else str(value)[:64]
