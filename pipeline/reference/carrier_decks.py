"""A carrier's rate deck or rate notification, converted into a plan's deck as dated rows.

``decks convert`` reads the carrier's file through a deck profile (:func:`read_deck_profile`)
and :func:`convert_deck` turns it into the plan's new ``decks/<plan>.csv``:

- Each code of the file (one row per code; a cell may list several, split by
  ``code_separator``) starts at its ``effective_from``. The row of the current deck in effect
  then ends there; rows already scheduled at or after that instant for the same code (prefix,
  origin, band) are replaced by the file's. History before stays as it is. A code whose new
  terms equal the row in effect keeps that row (a weekly A-Z file does not grow the deck).
- Columns the profile does not map are carried over from the row in effect (a rate change
  keeps the code's increments), or take the deck's defaults for a new code.
- A row whose change word is one of ``closed`` ends its code at its ``effective_from``.
- In ``replace`` mode the file is the whole A-Z: a code of the current deck absent from it is
  closed at the file's earliest effective date.

Every row is classified against the rate in effect at its date (new, increase, decrease,
unchanged; ``changed`` when only other terms differ), the carrier's change word is checked
against that, and with a notification date and a notice period, increases and new codes
effective too soon are listed. Every problem names the carrier file's row, header and value;
nothing is returned unless the whole file converts.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl

from pipeline.prefix_trie.deck_index import MAX_DIGITS
from pipeline.rating.exceptions import Problem, ReferenceDataError
from pipeline.rating.money import (
    DECIMAL_PATTERN,
    RATE_DECIMALS,
    decimal_text_problem,
    scaled_integer,
)
from pipeline.rating.timeparse import OPEN_END_US, format_rfc3339
from pipeline.reference.carrier_files import (
    EXCEL_DATE_FORMATS,
    LAYOUT_KEYS,
    MAX_PROBLEMS_PER_COLUMN,
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
from pipeline.reference.csv_checks import per_distinct, read_csv, timestamps
from pipeline.reference.files import DECKS_DIR, FolderPlanFiles, PlanFiles, PublishedPlanFiles
from pipeline.reference.loader import load_plans
from pipeline.reference.validation import DECK_COLUMNS, DECK_REQUIRED

CHANGE_WORDS = ("new", "increase", "decrease", "unchanged", "closed")
PROFILE_KEYS = (*LAYOUT_KEYS, "code_separator", "rate_per", "columns", "change_values")
PROFILE_COLUMNS = (*DECK_COLUMNS, "change")
MODES = ("replace", "update")
_PER_MINUTE = ("rate", "initial_rate")  # prices per minute (per second under rate_per)
_MONEY = ("rate", "connection_fee", "initial_rate", "min_cost", "max_cost")
_WHOLE = {"initial_increment": (1, 86_400), "subsequent_increment": (1, 86_400)}
_WHOLE["grace_seconds"] = (0, 86_400)
_INCREMENTS = frozenset({"initial_increment", "subsequent_increment"})
_KEY = ["prefix", "origin", "band"]


@dataclass(frozen=True)
class DeckProfile(CarrierProfile):
    """How to read one carrier's rate decks (``columns``: a deck column or ``change``)."""

    code_separator: str | None = None
    rate_per: str = "minute"
    change_words: dict[str, str] = field(default_factory=dict)  # carrier word -> CHANGE_WORDS


def read_deck_profile(path: Path) -> DeckProfile:
    """Read and check a deck profile; :class:`ReferenceDataError` names every bad key."""
    where = str(path)
    profile, problems, layout = open_profile(path, PROFILE_KEYS)
    columns = read_columns(
        profile,
        where,
        PROFILE_COLUMNS,
        DECK_REQUIRED,
        problems,
        may_share=(_INCREMENTS,),
    )
    separator = profile.get("code_separator")
    if separator is not None and (
        not isinstance(separator, str) or not separator or any(c.isdigit() for c in separator)
    ):
        problems.append(
            Problem(where, None, "code_separator", str(separator), "must be text without digits")
        )
        separator = None
    rate_per = profile.get("rate_per", "minute")
    if rate_per not in ("minute", "second"):
        problems.append(Problem(where, None, "rate_per", str(rate_per), "must be minute or second"))
    words = _change_words(profile.get("change_values"), where, problems)
    if problems:
        raise ReferenceDataError(problems)
    return DeckProfile(where, layout, columns, separator, rate_per, words)


def _change_words(table: Any, where: str, problems: list[Problem]) -> dict[str, str]:
    """Carrier word (lower case) -> our change word; each of ours also stands for itself."""
    words = {word: word for word in CHANGE_WORDS}
    if table is None:
        return words
    if not isinstance(table, dict):
        problems.append(Problem(where, None, "change_values", None, "must be a table"))
        return words
    claimed: dict[str, str] = {}
    for ours, theirs in table.items():
        if ours not in CHANGE_WORDS:
            problems.append(
                Problem(
                    where,
                    None,
                    f"change_values.{ours}",
                    None,
                    f"unknown; expected {', '.join(CHANGE_WORDS)}",
                )
            )
            continue
        if not isinstance(theirs, list) or not all(isinstance(w, str) and w for w in theirs):
            problems.append(
                Problem(where, None, f"change_values.{ours}", None, "must be a list of words")
            )
            continue
        for word in theirs:
            key = word.strip().lower()
            if claimed.get(key, ours) != ours:
                problems.append(
                    Problem(
                        where,
                        None,
                        f"change_values.{ours}",
                        word,
                        f"also listed under {claimed[key]}",
                    )
                )
            claimed[key] = ours
    return {**words, **claimed}


# --- conversion ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Conversion:
    """A converted carrier file: the plan's new deck and what it changes."""

    plan_id: str
    deck_file: str  # decks/<plan>.csv
    deck: bytes  # the new deck file
    rows: pl.DataFrame  # one per code of the carrier file, classified
    closed_absent: pl.DataFrame  # replace mode: codes of the deck the file no longer has
    notice: pl.DataFrame  # increases and new codes effective too soon
    contradictions: pl.DataFrame  # change words the numbers contradict
    replaced_rows: int  # scheduled rows of the deck replaced by the file's

    def counts(self) -> dict[str, int]:
        """How many codes of each kind of change, and the notice violations."""
        found = dict(self.rows.group_by("change").len().iter_rows())
        counts = {kind: int(found.get(kind, 0)) for kind in (*CHANGE_WORDS, "changed")}
        counts["closed"] += self.closed_absent.height
        counts["notice_violations"] = self.notice.height
        return counts

    def by_destination(self) -> pl.DataFrame:
        """Codes per destination and kind of change (closed codes of replace mode included)."""
        every = pl.concat(
            [
                self.rows.select("destination", "change"),
                self.closed_absent.select("destination", change=pl.lit("closed")),
            ]
        ).with_columns(pl.col("destination").fill_null(""))
        kinds = [*CHANGE_WORDS, "changed"]
        return (
            every.group_by("destination")
            .agg([(pl.col("change") == kind).sum().alias(kind) for kind in kinds])
            .sort("destination")
        )


def convert_deck(
    folder: PlanFiles,
    plan_id: str,
    carrier_file: Path,
    profile: DeckProfile,
    *,
    mode: str = "update",
    notified_at_us: int | None = None,
    notice_days: int | None = None,
) -> Conversion:
    """Convert ``carrier_file`` into the deck of ``plan_id`` of ``folder`` (validated before).

    Raises :class:`ReferenceDataError` naming every problem of the carrier file.
    """
    table = read_carrier_table(carrier_file, profile.layout, profile.columns)
    offers = _offers(table, profile, str(carrier_file))
    deck_file = f"{DECKS_DIR}/{plan_id}.csv"
    current, header = _current_deck(folder, deck_file)
    offers = _with_units(_with_units(_with_old_terms(offers, current, profile)), "_old")
    rows = _classified(offers)
    new_rows = _scheduled(offers)
    deck, closed_absent, replaced = _merged(current, offers, new_rows, mode)
    columns = [c for c in DECK_COLUMNS if c in header or deck[c].is_not_null().any()]
    out = io.BytesIO()
    deck.select(columns).write_csv(out, quote_style="necessary", line_terminator="\n")
    return Conversion(
        plan_id=plan_id,
        deck_file=deck_file,
        deck=out.getvalue(),
        rows=rows,
        closed_absent=closed_absent,
        notice=_short_notice(rows, notified_at_us, notice_days),
        contradictions=_contradictions(rows, profile),
        replaced_rows=replaced,
    )


def _offers(table: pl.DataFrame, profile: DeckProfile, where: str) -> pl.DataFrame:
    """The carrier's rows as deck texts, one per code, each value checked."""
    problems: list[Problem] = []

    def check(frame: pl.DataFrame, column: str, problem: pl.Expr) -> None:
        problems.extend(column_problems(frame, column, problem, where, profile.header(column)))

    frame = with_missing_columns(table, PROFILE_COLUMNS)
    if profile.columns.get("initial_increment") == profile.columns.get("subsequent_increment") and (
        "initial_increment" in profile.columns
    ):  # one cell like "60/60" or "1/1"
        parts = pl.col("initial_increment").str.split("/")
        check(
            frame,
            "initial_increment",
            pl.when(pl.col("initial_increment").is_not_null() & (parts.list.len() != 2)).then(
                pl.lit("expected initial/subsequent seconds, like 60/60")
            ),
        )
        frame = frame.with_columns(
            initial_increment=parts.list.get(0, null_on_oob=True).str.strip_chars(),
            subsequent_increment=parts.list.get(1, null_on_oob=True).str.strip_chars(),
        )
    for column, (low, high) in _WHOLE.items():
        value = pl.col(column).cast(pl.Int64, strict=False)
        check(
            frame,
            column,
            pl.when(pl.col(column).is_not_null() & ~pl.col(column).str.contains(r"^[0-9]{1,9}$"))
            .then(pl.lit("not a whole number of seconds"))
            .when((value < low) | (value > high))
            .then(pl.lit(f"must be {low} to {high} seconds")),
        )
    separator = profile.layout.decimal_separator
    per_second = profile.rate_per == "second"
    for column in _MONEY:
        frame = frame.with_columns(decimal_texts(pl.col(column), separator).alias(column))
        # A per-second price may have 3 more decimals: 9 are left once it is per minute.
        decimals = RATE_DECIMALS + 3 if per_second and column in _PER_MINUTE else RATE_DECIMALS
        problem = decimal_text_problem(pl.col(column), max_decimals=decimals)
        check(frame, column, pl.when(pl.col(column).is_not_null()).then(problem))
    if per_second:
        frame = frame.with_columns(
            [_per_minute(frame[column]).alias(column) for column in _PER_MINUTE]
        )
        for column in _PER_MINUTE:
            problem = decimal_text_problem(pl.col(column))
            check(frame, column, pl.when(problem.is_not_null()).then("per minute: " + problem))
    excel = profile.layout.format_of(Path(where)) == "xlsx"
    example = datetime(2026, 3, 31, 8, 30).strftime(profile.layout.date_format)
    for column in ("effective_from", "effective_until"):
        instants = local_instants(
            frame[column],
            profile.layout.date_format,
            profile.layout.timezone,
            also=EXCEL_DATE_FORMATS if excel else (),
        )
        frame = frame.with_columns(instants.alias(f"{column}_us"))
        check(
            frame,
            column,
            pl.when(pl.col(column).is_not_null() & pl.col(f"{column}_us").is_null()).then(
                pl.lit(f"not a date in the format {profile.layout.date_format} (like {example})")
            ),
        )
    check(
        frame,
        "effective_until",
        pl.when(pl.col("effective_until_us") <= pl.col("effective_from_us")).then(
            pl.lit("not after the effective date")
        ),
    )
    words = profile.change_words
    frame = frame.with_columns(
        change_word=pl.col("change").str.to_lowercase().replace_strict(words, default=None)
    )
    if "change" in profile.columns:
        known = ", ".join(sorted(words))
        check(
            frame,
            "change",
            pl.when(pl.col("change").is_not_null() & pl.col("change_word").is_null()).then(
                pl.lit(f"not a change word of the profile ({known})")
            ),
        )
    check(frame, "prefix", pl.when(pl.col("prefix").is_null()).then(pl.lit("empty code")))
    check(
        frame,
        "effective_from",
        pl.when(pl.col("effective_from").is_null()).then(pl.lit("empty date")),
    )
    check(
        frame,
        "rate",
        pl.when(pl.col("rate").is_null() & pl.col("change_word").ne_missing("closed")).then(
            pl.lit("empty rate (only a closed code may have none)")
        ),
    )
    # One row per code.
    if profile.code_separator is not None:
        frame = frame.with_columns(
            pl.col("prefix").str.split(profile.code_separator).alias("_codes")
        ).with_columns(pl.col("_codes").list.eval(pl.element().str.strip_chars()))
        check(
            frame,
            "prefix",
            pl.when(pl.col("_codes").list.eval(pl.element() == "").list.any()).then(
                pl.lit("empty code in the list")
            ),
        )
        frame = frame.with_columns(pl.col("_codes").alias("prefix")).explode("prefix")
    frame = frame.drop("_codes", strict=False)
    check(
        frame,
        "prefix",
        pl.when(
            pl.col("prefix").is_not_null()
            & (pl.col("prefix") != "")
            & ~pl.col("prefix").str.contains(rf"^[0-9]{{1,{MAX_DIGITS}}}$")
        ).then(pl.lit(f"a code must be 1 to {MAX_DIGITS} digits")),
    )
    if problems:
        raise ReferenceDataError(problems)
    frame = frame.with_columns(
        origin=pl.col("origin").fill_null(""),
        band=pl.col("band").fill_null(""),
        effective_from=format_rfc3339(pl.col("effective_from_us")),
        effective_until=format_rfc3339(pl.col("effective_until_us")),
        effective_until_us=pl.col("effective_until_us").fill_null(OPEN_END_US),
    )
    return _one_offer_per_code(frame, profile, where)


def _per_minute(per_second: pl.Series) -> pl.Series:
    """Per-second prices as exact per-minute texts (each distinct text converted once)."""
    distinct = per_second.drop_nulls().unique()
    minute = [_times_sixty(t) for t in distinct.to_list()]
    return per_second.replace_strict(distinct, pl.Series(minute, dtype=pl.String), default=None)


def _times_sixty(text: str) -> str | None:
    """A per-second price text as per minute, exactly.

    None for a text that is not a plain decimal (its problem is reported already).
    """
    if re.fullmatch(DECIMAL_PATTERN, text) is None:
        return None
    return format((Decimal(text) * 60).normalize(), "f")


_TERMS = [
    "destination",
    "rate",
    "connection_fee",
    "initial_increment",
    "subsequent_increment",
    "initial_rate",
    "grace_seconds",
    "min_cost",
    "max_cost",
    "effective_until_us",
    "change_word",
]


def _one_offer_per_code(frame: pl.DataFrame, profile: DeckProfile, where: str) -> pl.DataFrame:
    """Refuse a code listed twice for one date with different terms; keep one of identical."""
    key = [*_KEY, "effective_from_us"]
    first = frame.group_by(key, maintain_order=True).agg(
        pl.col(ROW).first().alias("_first_row"),
        pl.struct(_TERMS).n_unique().alias("_terms"),
    )
    clashing = frame.join(first.filter(pl.col("_terms") > 1), on=key).filter(
        pl.col(ROW) != pl.col("_first_row")
    )
    problems = [
        Problem(
            where,
            number,
            profile.header("prefix"),
            code,
            f"code listed again with different terms for the same date (first on row {first_row})",
        )
        for number, code, first_row in clashing.head(MAX_PROBLEMS_PER_COLUMN)
        .select(ROW, "prefix", "_first_row")
        .iter_rows()
    ]
    if problems:
        raise ReferenceDataError(problems)
    return frame.unique(subset=key, keep="first", maintain_order=True)


def _current_deck(folder: PlanFiles, deck_file: str) -> tuple[pl.DataFrame, list[str]]:
    """The plan's deck as texts with instants and rate units, and its header's columns."""
    problems: list[Problem] = []
    raw = read_csv(
        folder,
        deck_file,
        DECK_COLUMNS,
        DECK_REQUIRED,
        problems,
        hashlib.sha256(),
        optional_file=True,
    )
    if raw is None or problems:  # the folder was validated before: not expected
        raise ReferenceDataError(problems)
    data = folder.read(deck_file)
    header: list[str] = []
    if data is not None:  # the header only: the deck's first line
        header = next(csv.reader([data.split(b"\n", 1)[0].decode("utf-8-sig")]))
    timed = timestamps(raw, deck_file, problems)
    if problems:
        raise ReferenceDataError(problems)
    deck = timed.drop("_line").with_columns(
        origin=pl.col("origin").fill_null(""), band=pl.col("band").fill_null("")
    )
    return _with_units(deck), [h.strip() for h in header]


def _with_old_terms(
    offers: pl.DataFrame, current: pl.DataFrame, profile: DeckProfile
) -> pl.DataFrame:
    """Each offer with the terms before it, as ``<term>_old``.

    The terms before an offer are the file's previous date for the code, else the deck's row in
    effect just before its date; terms the profile does not map are carried over from that row.
    """
    terms = _TERMS[:-2]  # not effective_until_us, change_word
    deck = current.select(
        *_KEY,
        _at=pl.col("effective_from_us"),
        _until=pl.col("effective_until_us"),
        **{f"{c}_old": pl.col(c) for c in terms},
    ).sort("_at")
    # The terms in effect just before the date: a row the deck already starts at that date
    # (the same file converted again) is the file's own, not what it changes.
    found = offers.with_columns(_before=pl.col("effective_from_us") - 1).sort("_before")
    found = found.join_asof(
        deck,
        left_on="_before",
        right_on="_at",
        by=_KEY,
        strategy="backward",
        check_sortedness=False,  # sorted by the instant above, within every code too
    )
    old = [c for c in deck.columns if c.endswith("_old")]
    in_effect = pl.col("_until") > pl.col("_before")
    found = found.with_columns([pl.when(in_effect).then(pl.col(c)).alias(c) for c in old])
    # Terms the profile does not map come from the deck's row, and so does an empty
    # destination; a mapped term left empty takes the deck's default.
    found = found.with_columns(
        [
            pl.col(c).fill_null(pl.col(f"{c}_old"))
            for c in terms
            if c not in profile.columns or c == "destination"
        ]
    )
    # After an earlier date of the same code in the file, that date's terms are in effect.
    ordered = found.sort([*_KEY, "effective_from_us"]).with_columns(_earlier=_same_code(1))
    closed_before = pl.col("change_word").shift(1) == "closed"
    return ordered.with_columns(
        [
            pl.when(pl.col("_earlier"))
            .then(pl.when(closed_before).then(None).otherwise(pl.col(c[:-4]).shift(1)))
            .otherwise(pl.col(c))
            .alias(c)
            for c in old
        ]
    ).drop("_at", "_until", "_before", "_earlier")


def _same_code(step: int) -> pl.Expr:
    """Whether the row ``step`` rows away (in a frame sorted by code) is of the same code."""
    return pl.all_horizontal([pl.col(k).eq_missing(pl.col(k).shift(step)) for k in _KEY])


def _with_units(frame: pl.DataFrame, suffix: str = "") -> pl.DataFrame:
    """Add ``_u_<term><suffix>``: each money term as exact integer units (10**-9).

    Null where empty; each distinct text is converted once (a deck names a few thousand prices).
    """
    return frame.with_columns(
        [
            per_distinct(frame[f"{c}{suffix}"], scaled_integer).alias(f"_u_{c}{suffix}")
            for c in _MONEY
        ]
    )


def _units(column: str, suffix: str, default: pl.Expr | None = None) -> pl.Expr:
    units = pl.col(f"_u_{column}{suffix}")
    return units if default is None else units.fill_null(default)


def _classified(offers: pl.DataFrame) -> pl.DataFrame:
    """Each offer classified against the terms before it."""
    old_rate, new_rate = _units("rate", "_old"), _units("rate", "")
    return offers.select(
        ROW,
        "prefix",
        "origin",
        "band",
        destination=pl.col("destination").fill_null(pl.col("destination_old")),
        change=pl.when(pl.col("change_word") == "closed")
        .then(pl.lit("closed"))
        .when(pl.col("rate_old").is_null())
        .then(pl.lit("new"))
        .when(new_rate > old_rate)
        .then(pl.lit("increase"))
        .when(new_rate < old_rate)
        .then(pl.lit("decrease"))
        .when(pl.all_horizontal(_same_terms("", "_old")))
        .then(pl.lit("unchanged"))
        .otherwise(pl.lit("changed")),
        word=pl.col("change"),
        said=pl.col("change_word"),
        old_rate=pl.col("rate_old"),
        new_rate=pl.when(pl.col("change_word").ne_missing("closed")).then(pl.col("rate")),
        effective_from=pl.col("effective_from"),
        effective_from_us=pl.col("effective_from_us"),
    ).sort(ROW, "prefix")


def _scheduled(offers: pl.DataFrame) -> pl.DataFrame:
    """The deck rows the file adds: each open offer until the code's next date in the file."""
    ordered = offers.sort([*_KEY, "effective_from_us"]).with_columns(
        _next=pl.when(_same_code(-1)).then(pl.col("effective_from_us").shift(-1))
    )
    rows = ordered.filter(pl.col("change_word").ne_missing("closed")).with_columns(
        effective_until_us=pl.min_horizontal(
            pl.col("effective_until_us"), pl.col("_next").fill_null(OPEN_END_US)
        )
    )
    return rows.with_columns(effective_until=format_rfc3339(pl.col("effective_until_us")))


def _merged(
    current: pl.DataFrame, offers: pl.DataFrame, added: pl.DataFrame, mode: str
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """The new deck: history kept, rows the file replaces dropped, the file's rows added."""
    starts = offers.group_by(_KEY).agg(_start=pl.col("effective_from_us").min())
    earliest = offers["effective_from_us"].min()
    deck = current.join(starts, on=_KEY, how="left")
    listed = pl.col("_start").is_not_null()
    replaced = deck.filter(listed & (pl.col("effective_from_us") >= pl.col("_start"))).height
    deck = deck.filter(~listed | (pl.col("effective_from_us") < pl.col("_start")))
    closed_absent = pl.DataFrame(
        schema={
            **dict.fromkeys([*_KEY, "destination", "old_rate", "closed_from"], pl.String),
        }
    )
    if mode == "replace" and earliest is not None:
        absent = ~listed & (pl.col("effective_until_us") > earliest)
        gone = (
            deck.filter(absent)
            .sort("effective_from_us")
            .unique(subset=_KEY, keep="first", maintain_order=True)
            .sort(_KEY)
        )
        closed_absent = gone.select(
            *_KEY,
            "destination",
            old_rate=pl.col("rate"),
            closed_from=format_rfc3339(pl.max_horizontal("effective_from_us", pl.lit(earliest))),
        )
        deck = deck.filter(~(absent & (pl.col("effective_from_us") >= earliest))).with_columns(
            _start=pl.when(absent).then(pl.lit(earliest)).otherwise(pl.col("_start"))
        )
    # The row in effect at a code's first date in the file ends there, or, when the file's
    # first terms equal it, stays and runs until the file's row would have ended.
    ends = pl.col("_start").is_not_null() & (pl.col("effective_until_us") > pl.col("_start"))
    first = added.join(starts, on=_KEY).filter(pl.col("effective_from_us") == pl.col("_start"))
    kept = (
        deck.filter(ends)
        .join(first.drop("_start"), on=_KEY, suffix="_new")
        .filter(pl.all_horizontal(_same_terms("", "_new")))
        .select(*_KEY, _kept_from=pl.col("_start"), _kept_until=pl.col("effective_until_new"))
    )
    deck = deck.join(kept, on=_KEY, how="left")
    deck = deck.with_columns(
        effective_until=pl.when(ends & pl.col("_kept_from").is_not_null())
        .then(pl.col("_kept_until"))
        .when(ends)
        .then(format_rfc3339(pl.col("_start")))
        .otherwise(pl.col("effective_until"))
    )
    added = added.join(
        kept.select(*_KEY, effective_from_us=pl.col("_kept_from")),
        on=[*_KEY, "effective_from_us"],
        how="anti",
    )
    columns = [*DECK_COLUMNS, "effective_from_us"]
    both = pl.concat([deck.select(columns), added.select(columns)])
    ordered = both.sort([*_KEY, "effective_from_us"]).with_columns(
        origin=pl.col("origin").replace("", None), band=pl.col("band").replace("", None)
    )
    return ordered.drop("effective_from_us"), closed_absent, replaced


def _same_terms(left: str, right: str) -> list[pl.Expr]:
    """Whether two rows' terms are equal as values (``0.0120`` equals ``0.012``)."""

    def whole(column: str, suffix: str, default: int) -> pl.Expr:
        return pl.col(f"{column}{suffix}").cast(pl.Int64, strict=False).fill_null(default)

    rate = {s: _units("rate", s, pl.lit(None, dtype=pl.Int64)) for s in (left, right)}
    return [
        rate[left].eq_missing(rate[right]),
        _units("connection_fee", left, pl.lit(0)).eq(_units("connection_fee", right, pl.lit(0))),
        _units("initial_rate", left, rate[left]).eq(_units("initial_rate", right, rate[right])),
        _units("min_cost", left, pl.lit(-1)).eq(_units("min_cost", right, pl.lit(-1))),
        _units("max_cost", left, pl.lit(-1)).eq(_units("max_cost", right, pl.lit(-1))),
        whole("initial_increment", left, 1).eq(whole("initial_increment", right, 1)),
        whole("subsequent_increment", left, 1).eq(whole("subsequent_increment", right, 1)),
        whole("grace_seconds", left, 0).eq(whole("grace_seconds", right, 0)),
        pl.col(f"destination{left}").fill_null("").eq(pl.col(f"destination{right}").fill_null("")),
    ]


def _short_notice(
    rows: pl.DataFrame, notified_at_us: int | None, notice_days: int | None
) -> pl.DataFrame:
    """Increases and new codes effective sooner than ``notice_days`` after the notification."""
    frame = rows.filter(pl.lit(False))
    if notified_at_us is not None and notice_days is not None:
        deadline = notified_at_us + notice_days * 86_400_000_000
        frame = rows.filter(
            pl.col("change").is_in(["increase", "new"]) & (pl.col("effective_from_us") < deadline)
        )
    notice = pl.col("effective_from_us") - (notified_at_us or 0)
    return frame.select(
        ROW,
        "prefix",
        "origin",
        "band",
        "destination",
        "change",
        "old_rate",
        "new_rate",
        "effective_from",
        days_of_notice=(notice // 86_400_000_000).cast(pl.Int64),
    )


def _contradictions(rows: pl.DataFrame, profile: DeckProfile) -> pl.DataFrame:
    """Rows whose change word says other than the numbers (closing is an order, not a claim)."""
    return rows.filter(
        pl.col("said").is_not_null()
        & (pl.col("said") != "closed")
        & (pl.col("said") != pl.col("change"))
        & ~((pl.col("said") == "unchanged") & (pl.col("change") == "changed"))
    ).select(
        ROW,
        "prefix",
        "destination",
        pl.col("word").alias(profile.header("change")),
        says=pl.col("said"),
        numbers_say=pl.col("change"),
        old_rate=pl.col("old_rate"),
        new_rate=pl.col("new_rate"),
        effective_from=pl.col("effective_from"),
    )


# --- writing -------------------------------------------------------------------------------


def write_conversion(folder: Path, conversion: Conversion) -> None:
    """Validate the whole plans folder with the new deck, then replace the deck file.

    The folder is loaded as it would be with the new deck in place (every problem of the
    usual loader refuses it, and nothing is written); the deck is then written next to the old
    one and renamed over it, so a crash leaves the old deck or the new one, never half of one.
    """
    files = FolderPlanFiles(folder).all_files()
    files[conversion.deck_file] = conversion.deck
    load_plans(PublishedPlanFiles(files))
    target = folder / conversion.deck_file
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.converting")
    with partial.open("wb") as out:
        out.write(conversion.deck)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, target)
