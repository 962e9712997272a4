"""Caller origins and time bands (DESIGN.md section 8): the three optional files and their rules.

``origin_groups.csv`` names sets of caller prefixes per tenant (``EEA``); ``time_bands.csv``
divides each plan's week, in the plan's local time, into bands (``peak``, ``offpeak``);
``holidays.csv`` puts a whole local date of a plan into one of its bands. Deck rows may then
name an ``origin`` and a ``band``. Everything is checked here with file, line, column and value;
what rating needs is built into :class:`~pipeline.rating.reference.OriginsAndBands`. The files
are small (a few hundred rows), so the checks are plain Python.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import numpy.typing as npt
import polars as pl

from pipeline.prefix_trie import DeckIndex, DeckRows, VariantIndex
from pipeline.prefix_trie.deck_index import MAX_DIGITS
from pipeline.rating.exceptions import Problem
from pipeline.rating.money import strings_to_arrow
from pipeline.rating.reference import WEEK_MINUTES, OriginsAndBands
from pipeline.rating.timeparse import OPEN_END_US
from pipeline.reference.csv_checks import LINE, read_csv
from pipeline.reference.files import (
    HOLIDAYS_FILE,
    ORIGIN_GROUPS_FILE,
    TIME_BANDS_FILE,
    PlanFiles,
)

_ORIGIN_COLUMNS = ("tenant_id", "group", "prefix")
_BAND_COLUMNS = ("plan_id", "band", "weekdays", "start", "end")
_HOLIDAY_COLUMNS = ("plan_id", "date", "band")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = re.compile(r"^([0-9]{2}):([0-9]{2})$")
_DIGITS = re.compile(rf"^[0-9]{{1,{MAX_DIGITS}}}$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


@dataclass
class Vocabulary:
    """The origin groups and bands a folder defines: what its deck rows may name."""

    groups: dict[str, dict[str, int]] = field(default_factory=dict)  # tenant -> group -> id
    bands: dict[int, dict[str, int]] = field(default_factory=dict)  # plan index -> band -> id
    group_names: list[str | None] = field(default_factory=lambda: [None])  # by id; 0: any
    band_names: list[str | None] = field(default_factory=lambda: [None])  # by id; 0: any
    origin_rows: list[tuple[str, str, int]] = field(default_factory=list)  # tenant, prefix, id
    weeks: dict[int, npt.NDArray[np.int16]] = field(default_factory=dict)  # plan -> minutes
    holidays: dict[tuple[int, int], int] = field(default_factory=dict)  # (plan, day) -> band

    @property
    def used(self) -> bool:
        """Whether the folder defines any origin group or band."""
        return bool(self.origin_rows or self.bands)


def read_origins_and_bands(
    folder: PlanFiles, plans: pl.DataFrame, problems: list[Problem], digest: hashlib._Hash
) -> Vocabulary:
    """Read and check the three files (each optional) against ``plans``."""
    vocabulary = Vocabulary()
    plan_index = dict(zip(plans["plan_id"].to_list(), range(plans.height), strict=True))
    origins = read_csv(
        folder, ORIGIN_GROUPS_FILE, _ORIGIN_COLUMNS, _ORIGIN_COLUMNS, problems, digest,
        optional_file=True,
    )  # fmt: skip
    if origins is not None:
        _origin_groups(origins, set(plans["tenant_id"].to_list()), vocabulary, problems)
    bands = read_csv(
        folder, TIME_BANDS_FILE, _BAND_COLUMNS, _BAND_COLUMNS, problems, digest,
        optional_file=True,
    )  # fmt: skip
    if bands is not None:
        _time_bands(bands, plan_index, vocabulary, problems)
    holidays = read_csv(
        folder, HOLIDAYS_FILE, _HOLIDAY_COLUMNS, _HOLIDAY_COLUMNS, problems, digest,
        optional_file=True,
    )  # fmt: skip
    if holidays is not None:
        _holidays(holidays, plan_index, vocabulary, problems)
    return vocabulary


def _rows(frame: pl.DataFrame, columns: tuple[str, ...]) -> list[tuple[int, list[str | None]]]:
    return [(row[-1], list(row[:-1])) for row in frame.select(*columns, LINE).iter_rows()]


def _missing(
    file: str,
    line: int,
    columns: tuple[str, ...],
    values: list[str | None],
    problems: list[Problem],
) -> bool:
    empty = [c for c, v in zip(columns, values, strict=True) if v is None]
    for column in empty:
        problems.append(Problem(file, line, column, None, "required, empty"))
    return bool(empty)


def _origin_groups(
    frame: pl.DataFrame, tenants: set[str], vocabulary: Vocabulary, problems: list[Problem]
) -> None:
    file = ORIGIN_GROUPS_FILE
    seen: dict[tuple[str, str], tuple[str, int]] = {}  # (tenant, prefix) -> (group, line)
    for line, values in _rows(frame, _ORIGIN_COLUMNS):
        if _missing(file, line, _ORIGIN_COLUMNS, values, problems):
            continue
        tenant, group, prefix = (str(v) for v in values)
        if tenant not in tenants:
            problems.append(Problem(file, line, "tenant_id", tenant, "no plan of this tenant"))
        if not _DIGITS.match(prefix):
            problems.append(
                Problem(file, line, "prefix", prefix, f"must be 1 to {MAX_DIGITS} digits")
            )
            continue
        if (tenant, prefix) in seen:
            other, at = seen[(tenant, prefix)]
            why = (
                f"appears twice in group {group}"
                if other == group
                else f"is also in group {other} (line {at}): a caller may be in one group only"
            )
            problems.append(Problem(file, line, "prefix", prefix, why))
            continue
        seen[(tenant, prefix)] = (group, line)
        ids = vocabulary.groups.setdefault(tenant, {})
        if group not in ids:
            ids[group] = len(vocabulary.group_names)
            vocabulary.group_names.append(group)
        vocabulary.origin_rows.append((tenant, prefix, ids[group]))
    # A prefix of one group that starts another group's prefix (same tenant) makes a caller be
    # in two groups at once.
    for (tenant, prefix), (group, line) in seen.items():
        for cut in range(1, len(prefix)):
            shorter = seen.get((tenant, prefix[:cut]))
            if shorter is not None and shorter[0] != group:
                problems.append(
                    Problem(
                        file,
                        line,
                        "prefix",
                        prefix,
                        f"starts with {prefix[:cut]} of group {shorter[0]} (line {shorter[1]}):"
                        " a caller may be in one group only",
                    )
                )
                break


def _days(text: str) -> list[int] | None:
    """``mon-fri``, ``sat,sun`` or ``wed`` as day numbers (Monday 0); None if not one of those."""
    text = text.lower()
    if "-" in text:
        first, _, last = (part.strip() for part in text.partition("-"))
        if first in _DAYS and last in _DAYS and _DAYS.index(first) <= _DAYS.index(last):
            return list(range(_DAYS.index(first), _DAYS.index(last) + 1))
        return None
    names = [n.strip() for n in text.split(",")]
    if names and all(n in _DAYS for n in names) and len(set(names)) == len(names):
        return sorted(_DAYS.index(n) for n in names)
    return None


def _minute(text: str, *, end: bool) -> int | None:
    match = _TIME.match(text)
    if match is None:
        return None
    hours, minutes = int(match.group(1)), int(match.group(2))
    value = hours * 60 + minutes
    if minutes > 59 or value > 24 * 60 or (value == 24 * 60 and not end):
        return None
    return value


def _clock(minute: int) -> str:
    day, rest = divmod(minute, 24 * 60)
    return f"{_DAYS[day]} {rest // 60:02d}:{rest % 60:02d}"


def _time_bands(
    frame: pl.DataFrame,
    plan_index: dict[str, int],
    vocabulary: Vocabulary,
    problems: list[Problem],
) -> None:
    file = TIME_BANDS_FILE
    covered: dict[int, npt.NDArray[np.int16]] = {}
    first_line: dict[int, int] = {}
    for line, values in _rows(frame, _BAND_COLUMNS):
        if _missing(file, line, _BAND_COLUMNS, values, problems):
            continue
        plan_id, band, weekdays, start_text, end_text = (str(v) for v in values)
        plan = plan_index.get(plan_id)
        if plan is None:
            problems.append(Problem(file, line, "plan_id", plan_id, "no such plan in plans.csv"))
            continue
        days = _days(weekdays)
        if days is None:
            problems.append(
                Problem(
                    file,
                    line,
                    "weekdays",
                    weekdays,
                    "a range like mon-fri (never wrapping past sun), a list like sat,sun, "
                    "or one day",
                )
            )
        start = _minute(start_text, end=False)
        end = _minute(end_text, end=True)
        if start is None:
            problems.append(
                Problem(file, line, "start", start_text, "a local time HH:MM, 00:00-23:59")
            )
        if end is None:
            problems.append(Problem(file, line, "end", end_text, "a local time HH:MM, 00:01-24:00"))
        if start is not None and end is not None and start >= end:
            problems.append(
                Problem(
                    file,
                    line,
                    "end",
                    end_text,
                    "must be after start (a band never crosses midnight: split it at 24:00)",
                )
            )
            continue
        if days is None or start is None or end is None:
            continue
        ids = vocabulary.bands.setdefault(plan, {})
        if band not in ids:
            ids[band] = len(vocabulary.band_names)
            vocabulary.band_names.append(band)
        week = covered.setdefault(plan, np.zeros(WEEK_MINUTES, dtype=np.int16))
        table = vocabulary.weeks.setdefault(plan, np.zeros(WEEK_MINUTES, dtype=np.int16))
        first_line.setdefault(plan, line)
        for day in days:
            span = slice(day * 24 * 60 + start, day * 24 * 60 + end)
            if (week[span] > 0).any():
                clash = span.start + int(np.flatnonzero(week[span] > 0)[0])
                problems.append(
                    Problem(
                        file,
                        line,
                        "start",
                        start_text,
                        f"band {band} overlaps another band of plan {plan_id} at {_clock(clash)}",
                    )
                )
                break
            week[span] += 1
            table[span] = ids[band]
    names = {index: plan_id for plan_id, index in plan_index.items()}
    for plan, week in covered.items():
        gaps = np.flatnonzero(week == 0)
        if len(gaps):
            problems.append(
                Problem(
                    file,
                    first_line[plan],
                    "plan_id",
                    names[plan],
                    f"the bands of plan {names[plan]} leave {len(gaps):,} minute(s) of the week "
                    f"uncovered, from {_clock(int(gaps[0]))}: every minute needs one band",
                )
            )


def _holidays(
    frame: pl.DataFrame,
    plan_index: dict[str, int],
    vocabulary: Vocabulary,
    problems: list[Problem],
) -> None:
    file = HOLIDAYS_FILE
    epoch = date(1970, 1, 1)
    seen: dict[tuple[int, int], int] = {}
    for line, values in _rows(frame, _HOLIDAY_COLUMNS):
        if _missing(file, line, _HOLIDAY_COLUMNS, values, problems):
            continue
        plan_id, day_text, band = (str(v) for v in values)
        plan = plan_index.get(plan_id)
        if plan is None:
            problems.append(Problem(file, line, "plan_id", plan_id, "no such plan in plans.csv"))
            continue
        try:
            day = date.fromisoformat(day_text) if _DATE.match(day_text) else None
        except ValueError:
            day = None
        if day is None:
            problems.append(Problem(file, line, "date", day_text, "a date YYYY-MM-DD"))
            continue
        band_id = vocabulary.bands.get(plan, {}).get(band)
        if band_id is None:
            problems.append(
                Problem(file, line, "band", band, f"not a band of plan {plan_id} (time_bands.csv)")
            )
            continue
        key = (plan, (day - epoch).days)
        if key in seen:
            problems.append(
                Problem(
                    file,
                    line,
                    "date",
                    day_text,
                    f"a holiday of plan {plan_id} already (line {seen[key]})",
                )
            )
            continue
        seen[key] = line
        vocabulary.holidays[key] = band_id


def deck_names_problems(
    deck: pl.DataFrame,
    file: str,
    plan: int,
    tenant: str,
    vocabulary: Vocabulary,
    problems: list[Problem],
) -> pl.DataFrame | None:
    """Check a deck's ``origin`` and ``band`` cells; their ids (``origin_id``, ``band_id``).

    None when the deck names neither (it then costs nothing). An origin must be a group of the
    plan's tenant, a band one of the plan's bands (a typo such as ``peek`` is refused).
    """
    if deck.select(pl.col("origin").is_null().all() & pl.col("band").is_null().all()).item():
        return None
    groups = vocabulary.groups.get(tenant, {})
    bands = vocabulary.bands.get(plan, {})
    for line, origin, band in deck.select(LINE, "origin", "band").iter_rows():
        if origin is not None and origin not in groups:
            problems.append(
                Problem(
                    file,
                    line,
                    "origin",
                    origin,
                    f"not an origin group of tenant {tenant} (origin_groups.csv)",
                )
            )
        if band is not None and band not in bands:
            problems.append(
                Problem(file, line, "band", band, "not a band of this plan (time_bands.csv)")
            )
    return deck.select(
        origin_id=pl.col("origin")
        .replace_strict(groups, default=0, return_dtype=pl.Int16)
        .fill_null(0),
        band_id=pl.col("band").replace_strict(bands, default=0, return_dtype=pl.Int16).fill_null(0),
    )


def build_origins_and_bands(
    vocabulary: Vocabulary,
    plans: pl.DataFrame,
    deck: DeckRows,
    deck_origin: npt.NDArray[np.int16],
    deck_band: npt.NDArray[np.int16],
) -> OriginsAndBands:
    """What rating needs, the deck's :class:`~pipeline.prefix_trie.VariantIndex` included.

    ``deck`` is every deck row by plan index; ``deck_origin`` and ``deck_band`` its group and
    band ids (0: any caller, any time).
    """
    tenants = sorted({tenant for tenant, _, _ in vocabulary.origin_rows})
    tenant_key = {tenant: key for key, tenant in enumerate(tenants)}
    origin_index = DeckIndex.build(
        DeckRows(
            plan=np.array([tenant_key[t] for t, _, _ in vocabulary.origin_rows], dtype=np.int64),
            prefix=pl.Series([p for _, p, _ in vocabulary.origin_rows], dtype=pl.String),
            effective_from=np.zeros(len(vocabulary.origin_rows), dtype=np.int64),
            effective_until=np.full(len(vocabulary.origin_rows), OPEN_END_US, dtype=np.int64),
        ),
        len(tenants),
    )
    groups = len(vocabulary.group_names)
    bands = len(vocabulary.band_names)
    with_weeks = sorted(vocabulary.weeks)
    plan_week = np.full(plans.height, -1, dtype=np.int32)
    plan_week[with_weeks] = np.arange(len(with_weeks), dtype=np.int32)
    weeks = (
        np.stack([vocabulary.weeks[p] for p in with_weeks])
        if with_weeks
        else np.zeros((0, WEEK_MINUTES), dtype=np.int16)
    )
    holiday = sorted(
        (plan * 2**32 + day, band) for (plan, day), band in vocabulary.holidays.items()
    )
    return OriginsAndBands(
        origin_tenants=pl.DataFrame(
            {"tenant_id": tenants, "key": list(range(len(tenants)))},
            schema={"tenant_id": pl.String, "key": pl.Int64},
        ),
        origin_index=origin_index,
        origin_group=np.array([g for _, _, g in vocabulary.origin_rows], dtype=np.int32),
        group_names=strings_to_arrow(vocabulary.group_names),
        band_names=strings_to_arrow(vocabulary.band_names),
        plan_zone=plans["timezone"].to_list(),
        plan_week=plan_week,
        weeks=weeks,
        holiday_keys=np.array([k for k, _ in holiday], dtype=np.int64),
        holiday_bands=np.array([b for _, b in holiday], dtype=np.int16),
        deck_origin=deck_origin,
        deck_band=deck_band,
        groups=groups,
        bands=bands,
        variant_index=VariantIndex.build(deck, deck_origin, deck_band, plans.height, groups, bands),
    )
