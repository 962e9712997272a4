"""A carrier's CDR file and its profile, written the way carriers write them (for the tests).

:func:`write_carrier_file` writes calls as CSV (any delimiter, decimal comma, encoding, local
time zone) or as an Excel sheet with a banner above the header, with xlsxwriter;
:func:`write_profile` writes the CDR profile that reads it back.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

HEADERS = {
    "call_id": "Call ID",
    "caller": "CLI",
    "callee": "Called Number",
    "start_time": "Call Start",
    "duration": "Duration",
    "amount": "Charge",
    "currency": "Currency",
}


@dataclass(frozen=True)
class CarrierCall:
    """One call as the carrier lists it."""

    callee: str  # as the carrier writes it (+44 20..., 0044...)
    start: datetime  # aware
    duration: str  # in the profile's unit, with "." as the decimal separator
    amount: Decimal | None = None
    currency: str = "EUR"
    call_id: str = ""
    caller: str = ""


@dataclass(frozen=True)
class Layout:
    """How the carrier writes its file."""

    delimiter: str = ","
    decimal_separator: str = "."
    timezone: str = "UTC"
    date_format: str = "%Y-%m-%d %H:%M:%S"
    encoding: str = "utf-8"
    excel: bool = False
    banner: tuple[str, ...] = ()  # lines above the header
    duration_unit: str = "seconds"


def cells(call: CarrierCall, layout: Layout) -> list[str]:
    """The row of one call, in :data:`HEADERS` order."""
    local = call.start.astimezone(ZoneInfo(layout.timezone))

    def number(text: str) -> str:
        return text.replace(".", layout.decimal_separator)

    return [
        call.call_id,
        call.caller,
        call.callee,
        local.strftime(layout.date_format),
        number(call.duration),
        "" if call.amount is None else number(format(call.amount, "f")),
        "" if call.amount is None else call.currency,
    ]


def write_carrier_file(path: Path, calls: Iterable[CarrierCall], layout: Layout) -> Path:
    """Write ``calls`` to ``path`` as the carrier does."""
    rows = [list(HEADERS.values()), *(cells(call, layout) for call in calls)]
    if layout.excel:
        import xlsxwriter

        book = xlsxwriter.Workbook(str(path))
        sheet = book.add_worksheet("CDRs")
        for number, line in enumerate(layout.banner):
            sheet.write_string(number, 0, line)
        first = len(layout.banner)
        for offset, row in enumerate(rows):
            for column, value in enumerate(row):
                sheet.write_string(first + offset, column, value)
        book.close()
        return path
    out = io.StringIO()
    for line in layout.banner:
        out.write(line + "\n")
    csv.writer(out, delimiter=layout.delimiter, lineterminator="\n").writerows(rows)
    path.write_bytes(out.getvalue().encode(layout.encoding))
    return path


def write_profile(path: Path, layout: Layout, **extra: Any) -> Path:
    """The CDR profile of ``layout``; ``extra`` keys go in as they are (strings quoted)."""
    lines = [
        f'format = "{"xlsx" if layout.excel else "csv"}"',
        f'delimiter = "{layout.delimiter}"',
        f'decimal_separator = "{layout.decimal_separator}"',
        f'timezone = "{layout.timezone}"',
        f'date_format = "{layout.date_format}"',
        f'encoding = "{layout.encoding}"',
        f"header_row = {len(layout.banner) + 1}",
        f'duration_unit = "{layout.duration_unit}"',
    ]
    for key, value in extra.items():
        lines.append(f'{key} = "{value}"' if isinstance(value, str) else f"{key} = {value}")
    lines.append("")
    lines.append("[columns]")
    lines += [f'{ours} = "{theirs}"' for ours, theirs in HEADERS.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
