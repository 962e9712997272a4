"""The rate notification an operator sends a customer: what a new deck version changes.

``decks notify`` builds it from the same row-by-row comparison as ``decks diff``
(:func:`pipeline.reference.diff.diff_rows`), for one plan, in the customer's words: one line
per code and date with the destination, the old and the new rate, a change word (new,
increase, decrease, unchanged, changed when only other terms moved, closed) and the date it
takes effect, sorted by destination. A row that only ends because the code's next row starts
there says nothing to a customer and is left out; a code that ends with no row after it is
``closed``.
"""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import polars as pl
import pyarrow as pa

from pipeline.rating.timeparse import format_rfc3339
from pipeline.reference.diff import diff_rows
from pipeline.reference.files import PlanFiles
from pipeline.reference.loader import deck_rows

NOTICE_COLUMNS = (
    "code",
    "destination",
    "origin",
    "band",
    "old_rate",
    "new_rate",
    "change",
    "effective_from",
)
_SHOWN_DECIMALS = 4  # rates shown with at least this many decimals (0.0120)
_KEY = ["prefix", "origin", "band"]


def rate_notice(old: PlanFiles, new: PlanFiles, plan_id: str) -> pl.DataFrame:
    """The notification lines for ``plan_id`` (validate both folders first)."""
    before, after = deck_rows(old), deck_rows(new)
    diff = pl.from_arrow(diff_rows(before, after).rows)
    assert isinstance(diff, pl.DataFrame)
    diff = diff.filter(pl.col("plan_id") == plan_id).with_columns(
        pl.col("origin").fill_null(""),
        pl.col("band").fill_null(""),
        _from=pl.col("effective_from").dt.epoch("us"),
        _until=pl.col("effective_until").dt.epoch("us"),
    )
    starts = after.filter(pl.col("plan_id") == plan_id).select(
        *_KEY, _until=pl.col("effective_from_us"), _successor=pl.lit(True)
    )
    ends_before = before.filter(pl.col("plan_id") == plan_id).select(
        *_KEY, _from=pl.col("effective_from_us"), _old_until=pl.col("effective_until_us")
    )
    diff = diff.join(starts, on=[*_KEY, "_until"], how="left").join(
        ends_before, on=[*_KEY, "_from"], how="left"
    )
    terms = [c[4:] for c in diff.columns if c.startswith("old_") and c != "old_destination"]
    same_price = pl.all_horizontal(
        [pl.col(f"old_{t}").eq_missing(pl.col(f"new_{t}")) for t in terms]
    )
    same_terms = same_price & pl.col("old_destination").eq_missing(pl.col("new_destination"))
    # A changed row whose terms stayed and whose end moved earlier: closed, unless its next
    # row starts there (a rate change: the next row's own line says so). An end moved later
    # (a code reopened) tells the customer nothing new.
    ended = (pl.col("change") == "changed") & same_terms
    earlier = pl.col("_until") < pl.col("_old_until")  # open ends are OPEN_END_US there
    closes = ended & earlier & pl.col("_successor").is_null()
    removed_for_good = (pl.col("change") == "removed") & pl.col("new_rate").is_null()
    lines = diff.filter(~ended | closes).select(
        code=pl.col("prefix"),
        destination=pl.coalesce("new_destination", "old_destination").fill_null(""),
        origin=pl.col("origin"),
        band=pl.col("band"),
        old_rate=pl.col("old_rate"),
        new_rate=pl.when(closes | removed_for_good).then(None).otherwise(pl.col("new_rate")),
        change=pl.when(closes | removed_for_good)
        .then(pl.lit("closed"))
        .when(pl.col("old_rate").is_null())
        .then(pl.lit("new"))
        .when(pl.col("new_rate") > pl.col("old_rate"))
        .then(pl.lit("increase"))
        .when(pl.col("new_rate") < pl.col("old_rate"))
        .then(pl.lit("decrease"))
        .when(same_terms | (pl.col("change") == "added") & same_price)
        .then(pl.lit("unchanged"))
        .otherwise(pl.lit("changed")),
        effective_from=pl.when(closes)
        .then(pl.col("effective_until"))
        .otherwise(pl.col("effective_from")),
    )
    # A code closed twice over (its row ends, a later scheduled row is dropped): the first.
    lines = lines.sort("effective_from").unique(
        subset=["code", "origin", "band", "change", "effective_from"], keep="first"
    )
    closed = lines.filter(pl.col("change") == "closed").unique(
        subset=["code", "origin", "band"], keep="first", maintain_order=True
    )
    lines = pl.concat([lines.filter(pl.col("change") != "closed"), closed])
    return lines.sort("destination", "code", "origin", "band", "effective_from").select(
        NOTICE_COLUMNS
    )


def _rate_text(value: Decimal | None) -> str:
    if value is None:
        return ""
    text = format(value.normalize(), "f")
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(_SHOWN_DECIMALS, '0')}"


def notice_rows(notice: pl.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and rows as the customer reads them (origin and band only when used)."""
    columns = [
        c
        for c in NOTICE_COLUMNS
        if c not in ("origin", "band") or (notice[c].fill_null("") != "").any()
    ]
    shown = notice.select(columns).with_columns(
        format_rfc3339(pl.col("effective_from").dt.epoch("us")).alias("effective_from")
    )
    rows = []
    for row in shown.iter_rows(named=True):
        rows.append(
            [
                _rate_text(value)
                if name in ("old_rate", "new_rate")
                else ("" if value is None else str(value))
                for name, value in row.items()
            ]
        )
    return columns, rows


def write_notice(notice: pl.DataFrame, out: Path) -> None:
    """Write the notification as CSV (``.csv``) or an Excel sheet (``.xlsx``)."""
    header, rows = notice_rows(notice)
    if out.suffix.lower() == ".xlsx":
        _write_xlsx(header, rows, out)
        return
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _write_xlsx(header: list[str], rows: list[list[str]], out: Path) -> None:
    """One sheet; rates as numbers (shown with up to 9 decimals), codes as text."""
    import xlsxwriter

    book = xlsxwriter.Workbook(str(out), {"strings_to_numbers": False})
    try:
        sheet = book.add_worksheet("Rate notice")
        bold = book.add_format({"bold": True})
        rate = book.add_format({"num_format": "0.0000#####"})
        sheet.write_row(0, 0, header, bold)
        money = {header.index(c) for c in ("old_rate", "new_rate")}
        for number, row in enumerate(rows, start=1):
            for column, value in enumerate(row):
                if column in money and value:
                    sheet.write_number(number, column, float(Decimal(value)), rate)
                else:
                    sheet.write_string(number, column, value)
        sheet.freeze_panes(1, 0)
        sheet.set_column(0, len(header) - 1, 16)
    finally:
        book.close()


def notice_table(notice: pl.DataFrame) -> pa.Table:
    """The notification as an Arrow table of texts (for the table and JSON output)."""
    header, rows = notice_rows(notice)
    return pa.table({name: [row[i] for row in rows] for i, name in enumerate(header)})
