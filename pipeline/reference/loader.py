"""Reference data: plans, decks, associations, memberships and the roster, from a plans folder.

The folder layout and columns are those of DESIGN.md section 4. Loading validates everything and
refuses the whole set with a :class:`ReferenceDataError` listing every problem (file, line,
column, value) when anything is wrong, so a rater never runs on half-good data. The result is a
:class:`~pipeline.rating.reference.ReferenceData`; the files come from a folder on disk or from
a publication on the reference topics (:mod:`pipeline.reference.files`).
"""

from __future__ import annotations

import ctypes
import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pipeline.prefix_trie import DeckIndex, DeckRows
from pipeline.rating.exceptions import Problem, ReferenceDataError
from pipeline.rating.reference import (
    MEMBERSHIP_SCHEMA,
    DeckArrays,
    PlanArrays,
    ReferenceData,
)
from pipeline.reference.csv_checks import LINE, read_csv
from pipeline.reference.enrollments import combined_memberships
from pipeline.reference.files import (
    ASSOCIATIONS_FILE,
    DECKS_DIR,
    MEMBERSHIPS_FILE,
    PLANS_FILE,
    FolderPlanFiles,
    PlanFiles,
)
from pipeline.reference.fx_rates import read_fx_rates
from pipeline.reference.origins_and_bands import (
    Vocabulary,
    build_origins_and_bands,
    deck_names_problems,
    read_origins_and_bands,
)
from pipeline.reference.roster import read_roster
from pipeline.reference.validation import (
    ASSOCIATION_COLUMNS,
    ASSOCIATION_REQUIRED,
    DECK_COLUMNS,
    DECK_REQUIRED,
    MEMBERSHIP_COLUMNS,
    MEMBERSHIP_REQUIRED,
    PLAN_COLUMNS,
    PLAN_REQUIRED,
    build_membership_index,
    empty_deck,
    empty_plans,
    validate_associations,
    validate_deck,
    validate_memberships,
    validate_plans,
)


def load_plans_folder(folder: Path) -> ReferenceData:
    """Load and validate a plans folder; raise :class:`ReferenceDataError` listing every problem."""
    if not folder.is_dir():
        raise ReferenceDataError([Problem(str(folder), None, None, None, "not a folder")])
    return load_plans(FolderPlanFiles(folder))


def load_plans(folder: PlanFiles) -> ReferenceData:
    """Load and validate the files of a plans folder, wherever they come from.

    Raises :class:`ReferenceDataError` listing every problem. The version is a digest of the
    files' paths and contents, so the same files give the same version on disk and when
    reassembled from a publication. The memory the loading freed is given back to the system
    (:func:`give_back_free_memory`).
    """
    try:
        return _load_plans(folder)
    finally:
        give_back_free_memory()


def give_back_free_memory() -> None:
    """Give the C library's freed heap memory back to the system (glibc; elsewhere nothing).

    Loading a large folder allocates and frees hundreds of MB of work arrays, and glibc keeps
    the freed part of its heap: a rater would hold it for as long as it runs (30-35 MB after
    loading a 1,000,000-row deck, measured in benchmarks/RESULTS.md).
    """
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return
    trim(0)


def _load_plans(folder: PlanFiles) -> ReferenceData:
    problems: list[Problem] = []
    digest = hashlib.sha256()
    plans = _read_plans(folder, problems, digest)
    known = set(plans["plan_id"].to_list())
    for relative in folder.deck_files():
        stem = relative.removeprefix(f"{DECKS_DIR}/").removesuffix(".csv")
        if stem not in known:
            problems.append(Problem(relative, None, None, stem, "deck of a plan not in plans.csv"))
    vocabulary = read_origins_and_bands(folder, plans, problems, digest)
    deck_frames, deck_versions = _read_decks(folder, plans, problems, digest, vocabulary)

    plans = plans.with_columns(
        deck_version=pl.col("plan_id").replace_strict(
            deck_versions, default=None, return_dtype=pl.String
        )
    )
    deck = _concat_decks(deck_frames)

    assoc_raw = read_csv(
        folder,
        ASSOCIATIONS_FILE,
        ASSOCIATION_COLUMNS,
        ASSOCIATION_REQUIRED,
        problems,
        digest,
        optional_file=True,
    )
    associations = validate_associations(assoc_raw, plans, problems)
    member_raw = read_csv(
        folder,
        MEMBERSHIPS_FILE,
        MEMBERSHIP_COLUMNS,
        MEMBERSHIP_REQUIRED,
        problems,
        digest,
        optional_file=True,
    )
    member_intervals = validate_memberships(member_raw, problems)
    roster, enrollments = read_roster(folder, problems, digest)
    fx_rates = read_fx_rates(folder, problems, digest)
    attributed = combined_memberships(member_intervals, enrollments, problems)
    del member_intervals, enrollments
    memberships, membership_index, resellers = build_membership_index(attributed)

    if problems:
        raise ReferenceDataError(problems)
    # A rater keeps only the index and the arrays: the deck's text frames go as soon as they
    # are turned into those (a million-row deck must fit in a rater's memory budget).
    deck_frames.clear()
    rows = DeckRows(
        plan=deck["plan_index"].to_numpy(),
        prefix=deck["prefix"],
        effective_from=deck["effective_from_us"].to_numpy(),
        effective_until=deck["effective_until_us"].to_numpy(),
    )
    origins_and_bands = None
    deck_index = None
    if vocabulary.used or "origin_id" in deck.columns:
        # Tariff v2: rating reads only the variant index (one walk per call and leg).
        origins_and_bands = build_origins_and_bands(
            vocabulary, plans, rows, _ids(deck, "origin_id"), _ids(deck, "band_id")
        )
    else:
        deck_index = DeckIndex.build(rows, plans.height)
    del rows
    deck_arrays = DeckArrays.of(deck)
    deck_row_count = deck.height
    del deck
    return ReferenceData(
        version=digest.hexdigest()[:16],
        plans=plans,
        deck_row_count=deck_row_count,
        deck_index=deck_index,
        associations=associations,
        memberships=memberships,
        membership_index=membership_index,
        resellers=resellers,
        deck_arrays=deck_arrays,
        plan_arrays=PlanArrays.of(plans),
        origins_and_bands=origins_and_bands,
        roster=replace(
            roster, memberships=attributed.select(list(MEMBERSHIP_SCHEMA)).cast(MEMBERSHIP_SCHEMA)
        ),
        fx_rates=fx_rates,
    )


def _ids(deck: pl.DataFrame, column: str) -> Any:
    """A deck's origin or band ids (0 for every row of a folder whose decks name none)."""
    if column in deck.columns:
        return deck[column].to_numpy().astype(np.int16)
    return np.zeros(deck.height, dtype=np.int16)


# --- reading -------------------------------------------------------------------------------


def _concat_decks(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Every plan's deck in one frame; the price-shape columns only if some deck has them.

    A deck without them gets their defaults where another deck has them (the rate as the
    initial rate, no grace, no minimum or maximum); a folder without any pays nothing for them.
    """
    if not frames:
        return empty_deck()
    if all(frame.width == frames[0].width for frame in frames):
        return pl.concat(frames, how="vertical")
    deck = pl.concat(frames, how="diagonal")
    defaults = {
        "initial_rate_units": pl.col("initial_rate_units").fill_null(pl.col("rate_units")),
        "grace_seconds": pl.col("grace_seconds").fill_null(0),
        "min_cost_units": pl.col("min_cost_units").fill_null(-1),
        "max_cost_units": pl.col("max_cost_units").fill_null(-1),
        "origin_id": pl.col("origin_id").fill_null(0),
        "band_id": pl.col("band_id").fill_null(0),
    }
    return deck.with_columns(
        **{name: value for name, value in defaults.items() if name in deck.columns}
    )


def _read_plans(folder: PlanFiles, problems: list[Problem], digest: Any) -> pl.DataFrame:
    """``plans.csv``, validated (problems appended; an empty frame if it is unreadable)."""
    raw = read_csv(folder, PLANS_FILE, PLAN_COLUMNS, PLAN_REQUIRED, problems, digest)
    return validate_plans(raw, problems) if raw is not None else empty_plans()


def _read_decks(
    folder: PlanFiles,
    plans: pl.DataFrame,
    problems: list[Problem],
    digest: Any,
    vocabulary: Vocabulary,
) -> tuple[list[pl.DataFrame], dict[str, str]]:
    """Each plan's deck, validated, in plan order; and each deck's version (its digest).

    A deck naming origins or bands gets their ids (``origin_id``, ``band_id``; 0: any).
    """
    frames: list[pl.DataFrame] = []
    versions: dict[str, str] = {}
    tenants = plans["tenant_id"].to_list()
    for plan_index, plan_id in enumerate(plans["plan_id"].to_list()):
        relative = f"{DECKS_DIR}/{plan_id}.csv"
        deck_digest = hashlib.sha256()
        raw = read_csv(folder, relative, DECK_COLUMNS, DECK_REQUIRED, problems, deck_digest)
        digest.update(deck_digest.digest())
        versions[plan_id] = deck_digest.hexdigest()[:16]
        if raw is None:
            continue
        deck = validate_deck(raw, relative, plan_index, problems)
        if "origin" in deck.columns:
            names = deck_names_problems(
                deck, relative, plan_index, tenants[plan_index], vocabulary, problems
            )
            deck = deck.drop("origin", "band", LINE)
            if names is not None:
                deck = deck.hstack(names)
        frames.append(deck)
    return frames, versions


# --- deck rows for comparisons (decks diff) ----------------------------------------------------


def deck_rows(folder: PlanFiles) -> pl.DataFrame:
    """Every deck row of a plans folder with its plan id, numbers as exact integer units.

    Columns: plan_id, prefix, destination, rate_units (10**-9 per minute), fee_units (10**-9),
    initial_increment, subsequent_increment, effective_from_us, effective_until_us, and the
    price shape with its defaults: initial_rate_units, grace_seconds, min_cost_units and
    max_cost_units (-1: none), and the row's origin group and time band ("": any). For
    comparing two versions (``decks diff``); load the folder with :func:`load_plans` first to
    have it validated: this raises :class:`ReferenceDataError` on the same problems.
    """
    problems: list[Problem] = []
    digest = hashlib.sha256()
    plans = _read_plans(folder, problems, digest)
    plan_ids = plans["plan_id"].to_list()
    vocabulary = read_origins_and_bands(folder, plans, problems, digest)
    frames, _ = _read_decks(folder, plans, problems, digest, vocabulary)
    if problems:
        raise ReferenceDataError(problems)
    deck = _concat_decks(frames)
    shaped = "initial_rate_units" in deck.columns
    return deck.select(
        plan_id=pl.col("plan_index").replace_strict(
            dict(enumerate(plan_ids)), default=None, return_dtype=pl.String
        ),
        prefix=pl.col("prefix"),
        destination=pl.col("destination"),
        rate_units=pl.col("rate_units").cast(pl.Int64),
        fee_units=pl.col("fee_units").cast(pl.Int64),
        initial_increment=pl.col("initial_increment").cast(pl.Int64),
        subsequent_increment=pl.col("subsequent_increment").cast(pl.Int64),
        effective_from_us=pl.col("effective_from_us").cast(pl.Int64),
        effective_until_us=pl.col("effective_until_us").cast(pl.Int64),
        initial_rate_units=(pl.col("initial_rate_units") if shaped else pl.col("rate_units")).cast(
            pl.Int64
        ),
        grace_seconds=(pl.col("grace_seconds") if shaped else pl.lit(0)).cast(pl.Int64),
        min_cost_units=(pl.col("min_cost_units") if shaped else pl.lit(-1)).cast(pl.Int64),
        max_cost_units=(pl.col("max_cost_units") if shaped else pl.lit(-1)).cast(pl.Int64),
        origin=_names(deck, "origin_id", vocabulary.group_names),
        band=_names(deck, "band_id", vocabulary.band_names),
    )


def _names(deck: pl.DataFrame, column: str, names: list[str | None]) -> pl.Expr:
    """A deck's origin or band names by id ("" for any, as the deck file writes it)."""
    if column not in deck.columns:
        return pl.lit("")
    by_id = {index: name or "" for index, name in enumerate(names)}
    return pl.col(column).replace_strict(by_id, return_dtype=pl.String)
