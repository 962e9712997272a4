"""Reference data: plans, decks, associations and memberships, loaded from a plans folder.

The folder layout and columns are those of DESIGN.md section 4. Loading validates everything and
refuses the whole set with a :class:`ReferenceDataError` listing every problem (file, line,
column, value) when anything is wrong, so a rater never runs on half-good data. The result is a
:class:`~pipeline.rating.reference.ReferenceData`; the files come from a folder on disk or from
a publication on the reference topics (:mod:`pipeline.reference.files`).
"""

from __future__ import annotations

import codecs
import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from pipeline.prefix_trie import DeckIndex, DeckRows, IntervalIndex, encoded_digits
from pipeline.prefix_trie.deck_index import MAX_DIGITS
from pipeline.rating.exceptions import Problem, ReferenceDataError
from pipeline.rating.money import (
    ISO_4217,
    ROUNDING_CODES,
    Rounding,
    decimal_text_problem,
    scaled_integer,
)
from pipeline.rating.reference import (
    DEFAULT_DECIMALS,
    MAX_PLAN_DECIMALS,
    AccountPlans,
    DeckArrays,
    PlanArrays,
    ReferenceData,
    Scope,
)
from pipeline.rating.timeparse import OPEN_END_US, parse_rfc3339
from pipeline.reference.files import DECKS_DIR, FolderPlanFiles, PlanFiles

PLANS_FILE = "plans.csv"
ASSOCIATIONS_FILE = "associations.csv"
MEMBERSHIPS_FILE = "memberships.csv"

_PLAN_COLUMNS = ("plan_id", "tenant_id", "name", "scope", "currency", "decimals", "rounding")
_PLAN_REQUIRED = ("plan_id", "tenant_id", "scope", "currency")
_DECK_COLUMNS = (
    "prefix",
    "destination",
    "rate",
    "connection_fee",
    "initial_increment",
    "subsequent_increment",
    "effective_from",
    "effective_until",
)
_DECK_REQUIRED = ("prefix", "rate", "effective_from")
_ASSOCIATION_COLUMNS = ("scope", "account_id", "plan_id", "effective_from", "effective_until")
_ASSOCIATION_REQUIRED = ("scope", "account_id", "plan_id", "effective_from")
_MEMBERSHIP_COLUMNS = ("client_id", "reseller_id", "effective_from", "effective_until")
_MEMBERSHIP_REQUIRED = ("client_id", "reseller_id", "effective_from")
_LINE = "_line"


def load_plans_folder(folder: Path) -> ReferenceData:
    """Load and validate a plans folder; raise :class:`ReferenceDataError` listing every problem."""
    if not folder.is_dir():
        raise ReferenceDataError([Problem(str(folder), None, None, None, "not a folder")])
    return load_plans(FolderPlanFiles(folder))


def load_plans(folder: PlanFiles) -> ReferenceData:
    """Load and validate the files of a plans folder, wherever they come from.

    Raises :class:`ReferenceDataError` listing every problem. The version is a digest of the
    files' paths and contents, so the same files give the same version on disk and when
    reassembled from a publication.
    """
    problems: list[Problem] = []
    digest = hashlib.sha256()
    plans = _read_plans(folder, problems, digest)
    known = set(plans["plan_id"].to_list())
    for relative in folder.deck_files():
        stem = relative.removeprefix(f"{DECKS_DIR}/").removesuffix(".csv")
        if stem not in known:
            problems.append(Problem(relative, None, None, stem, "deck of a plan not in plans.csv"))
    deck_frames, deck_versions = _read_decks(folder, plans, problems, digest)

    plans = plans.with_columns(
        deck_version=pl.col("plan_id").replace_strict(
            deck_versions, default=None, return_dtype=pl.String
        )
    )
    deck = pl.concat(deck_frames, how="vertical") if deck_frames else _empty_deck()

    assoc_raw = _read_csv(
        folder,
        ASSOCIATIONS_FILE,
        _ASSOCIATION_COLUMNS,
        _ASSOCIATION_REQUIRED,
        problems,
        digest,
        optional_file=True,
    )
    associations = _validate_associations(assoc_raw, plans, problems)
    member_raw = _read_csv(
        folder,
        MEMBERSHIPS_FILE,
        _MEMBERSHIP_COLUMNS,
        _MEMBERSHIP_REQUIRED,
        problems,
        digest,
        optional_file=True,
    )
    memberships, membership_index, resellers = _validate_memberships(member_raw, problems)

    if problems:
        raise ReferenceDataError(problems)
    # A rater keeps only the index and the arrays: the deck's text frames go as soon as they
    # are turned into those (a million-row deck must fit in a rater's memory budget).
    deck_frames.clear()
    deck_index = DeckIndex.build(
        DeckRows(
            plan=deck["plan_index"].to_numpy(),
            prefix=deck["prefix"],
            effective_from=deck["effective_from_us"].to_numpy(),
            effective_until=deck["effective_until_us"].to_numpy(),
        ),
        plans.height,
    )
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
    )


# --- reading -------------------------------------------------------------------------------


def _read_plans(folder: PlanFiles, problems: list[Problem], digest: Any) -> pl.DataFrame:
    """``plans.csv``, validated (problems appended; an empty frame if it is unreadable)."""
    raw = _read_csv(folder, PLANS_FILE, _PLAN_COLUMNS, _PLAN_REQUIRED, problems, digest)
    return _validate_plans(raw, problems) if raw is not None else _empty_plans()


def _read_decks(
    folder: PlanFiles, plans: pl.DataFrame, problems: list[Problem], digest: Any
) -> tuple[list[pl.DataFrame], dict[str, str]]:
    """Each plan's deck, validated, in plan order; and each deck's version (its digest)."""
    frames: list[pl.DataFrame] = []
    versions: dict[str, str] = {}
    for plan_index, plan_id in enumerate(plans["plan_id"].to_list()):
        relative = f"{DECKS_DIR}/{plan_id}.csv"
        deck_digest = hashlib.sha256()
        raw = _read_csv(folder, relative, _DECK_COLUMNS, _DECK_REQUIRED, problems, deck_digest)
        digest.update(deck_digest.digest())
        versions[plan_id] = deck_digest.hexdigest()[:16]
        if raw is not None:
            frames.append(_validate_deck(raw, relative, plan_index, problems))
    return frames, versions


def _read_csv(
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
                {c: [] for c in (*columns, _LINE)},
                schema={**dict.fromkeys(columns, pl.String), _LINE: pl.Int64},
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
    header = [h.strip() for h in first_line.split(",")]
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
    ).with_columns(pl.Series(_LINE, content_lines, dtype=pl.Int64))
    return frame.select([*columns, _LINE])


_BLANK_LINE = re.compile(rb"(^|\n)[ \t\r]*(\n|$)")


def _content_lines(data: bytes) -> tuple[npt.NDArray[np.int64], bytes]:
    """Line numbers (1-based) of the rows after the header, and the text without blank lines.

    Blank lines hold no row; they are dropped before reading so that row ``i`` is always on line
    ``numbers[i]``, whatever the line endings.
    """
    content = data.rstrip()  # trailing blank lines hold no row
    if _BLANK_LINE.search(content) is None:  # no blank line in between: the usual case
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


def _report(
    frame: pl.DataFrame, file: str, column: str, problem: pl.Expr, problems: list[Problem]
) -> None:
    """Append a Problem for each row where ``problem`` (a text expression) is not null.

    Judged a slice of rows at a time (see :func:`_in_slices`).
    """
    for begin in range(0, frame.height, _SLICE_ROWS):
        bad = (
            frame.slice(begin, _SLICE_ROWS)
            .with_columns(_problem=problem)
            .filter(pl.col("_problem").is_not_null())
        )
        for line, value, message in bad.select(_LINE, column, "_problem").iter_rows():
            problems.append(Problem(file, line, column, value, message))


def _required(
    frame: pl.DataFrame, file: str, columns: tuple[str, ...], problems: list[Problem]
) -> None:
    for column in columns:
        _report(
            frame,
            file,
            column,
            pl.when(pl.col(column).is_null()).then(pl.lit("required, empty")),
            problems,
        )


def _integer_problem(column: str, low: int, high: int) -> pl.Expr:
    value = pl.col(column).cast(pl.Int64, strict=False)
    return (
        pl.when(pl.col(column).is_null())
        .then(None)
        .when(~pl.col(column).str.contains(r"^[0-9]+$"))
        .then(pl.lit("not a whole number"))
        .when((value < low) | (value > high))
        .then(pl.lit(f"must be {low} to {high}"))
    )


def _timestamps(frame: pl.DataFrame, file: str, problems: list[Problem]) -> pl.DataFrame:
    """Parse effective_from/until; until must be after from. Adds *_us Int64 columns."""
    out = frame.hstack(
        _in_slices(
            frame,
            lambda part: part.select(
                _from=_per_distinct(part["effective_from"], parse_rfc3339),
                _until=_per_distinct(part["effective_until"], parse_rfc3339),
            ),
        )
    )
    for column, parsed in (("effective_from", "_from"), ("effective_until", "_until")):
        _report(
            out,
            file,
            column,
            pl.when(pl.col(column).is_not_null() & pl.col(parsed).is_null()).then(
                pl.lit("not an RFC 3339 timestamp (like 2026-03-01T00:00:00Z)")
            ),
            problems,
        )
    _report(
        out,
        file,
        "effective_until",
        pl.when(pl.col("_until") <= pl.col("_from")).then(pl.lit("not after effective_from")),
        problems,
    )
    return out.with_columns(
        effective_from_us=pl.col("_from").dt.epoch("us"),
        effective_until_us=pl.col("_until").dt.epoch("us").fill_null(OPEN_END_US),
    ).drop("_from", "_until")


def _in_slices(
    frame: pl.DataFrame, compute: Callable[[pl.DataFrame], pl.DataFrame]
) -> pl.DataFrame:
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


def _per_distinct(texts: pl.Series, convert: Callable[[pl.Expr], pl.Expr]) -> pl.Series:
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


def _overlaps(
    frame: pl.DataFrame, file: str, keys: list[str], what: str, problems: list[Problem]
) -> None:
    """Refuse two intervals of one key that overlap in time (checked on consecutive pairs)."""
    ordered = frame.sort([*keys, "effective_from_us"]).with_columns(
        _prev_until=pl.col("effective_until_us").shift(1).over(keys),
        _prev_line=pl.col(_LINE).shift(1).over(keys),
    )
    clash = ordered.filter(pl.col("effective_from_us") < pl.col("_prev_until"))
    for row in clash.iter_rows(named=True):
        who = "/".join(str(row[k]) for k in keys)
        problems.append(
            Problem(
                file,
                row[_LINE],
                "effective_from",
                row["effective_from"],
                f"{what} {who} overlaps the one on line {row['_prev_line']}",
            )
        )


# --- plans ---------------------------------------------------------------------------------


def _empty_plans() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "plan_index": pl.Int64,
            "plan_id": pl.String,
            "tenant_id": pl.String,
            "name": pl.String,
            "scope": pl.String,
            "currency": pl.String,
            "decimals": pl.Int64,
            "rounding": pl.String,
            "rounding_code": pl.Int8,
        }
    )


def _validate_plans(raw: pl.DataFrame, problems: list[Problem]) -> pl.DataFrame:
    file = PLANS_FILE
    _required(raw, file, _PLAN_REQUIRED, problems)
    scopes = [s.value for s in Scope]
    modes = [m.value for m in Rounding]
    _report(
        raw,
        file,
        "scope",
        pl.when(pl.col("scope").is_not_null() & ~pl.col("scope").is_in(scopes)).then(
            pl.lit(f"must be one of {', '.join(scopes)}")
        ),
        problems,
    )
    _report(
        raw,
        file,
        "currency",
        pl.when(
            pl.col("currency").is_not_null() & ~pl.col("currency").is_in(sorted(ISO_4217))
        ).then(pl.lit("not an ISO 4217 currency code")),
        problems,
    )
    _report(raw, file, "decimals", _integer_problem("decimals", 0, MAX_PLAN_DECIMALS), problems)
    _report(
        raw,
        file,
        "rounding",
        pl.when(pl.col("rounding").is_not_null() & ~pl.col("rounding").is_in(modes)).then(
            pl.lit(f"must be one of {', '.join(modes)}")
        ),
        problems,
    )
    _report(
        raw,
        file,
        "plan_id",
        pl.when(pl.col("plan_id").is_duplicated() & pl.col("plan_id").is_not_null()).then(
            pl.lit("plan_id appears more than once")
        ),
        problems,
    )
    _report(
        raw,
        file,
        "plan_id",
        pl.when(~pl.col("plan_id").str.contains(r"^[A-Za-z0-9._-]+$")).then(
            pl.lit(
                "plan_id may hold only letters, digits, '.', '_' and '-' (it names the deck file)"
            )
        ),
        problems,
    )
    codes = {m.value: c for m, c in ROUNDING_CODES.items()}
    return (
        raw.filter(pl.col("plan_id").is_not_null())
        .unique("plan_id", keep="first", maintain_order=True)
        .with_columns(
            decimals=pl.col("decimals").cast(pl.Int64, strict=False).fill_null(DEFAULT_DECIMALS),
            rounding=pl.col("rounding").fill_null(Rounding.HALF_UP.value),
            name=pl.col("name").fill_null(""),
        )
        .with_columns(
            rounding_code=pl.col("rounding").replace_strict(codes, default=0, return_dtype=pl.Int8),
        )
        .with_row_index("plan_index")
        .with_columns(pl.col("plan_index").cast(pl.Int64))
        .select(_empty_plans().columns)
    )


# --- decks ---------------------------------------------------------------------------------


def _empty_deck() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "plan_index": pl.Int32,
            "prefix": pl.String,
            "destination": pl.String,
            "rate_units": pl.Int64,
            "fee_units": pl.Int64,
            "initial_increment": pl.Int32,
            "subsequent_increment": pl.Int32,
            "effective_from_us": pl.Int64,
            "effective_until_us": pl.Int64,
        }
    )


def _validate_deck(
    raw: pl.DataFrame, file: str, plan_index: int, problems: list[Problem]
) -> pl.DataFrame:
    _required(raw, file, _DECK_REQUIRED, problems)
    known_problems = len(problems)
    _report(
        raw,
        file,
        "prefix",
        pl.when(
            pl.col("prefix").is_not_null()
            & ~pl.col("prefix").str.contains(rf"^[0-9]{{1,{MAX_DIGITS}}}$")
        ).then(pl.lit(f"must be 1 to {MAX_DIGITS} digits")),
        problems,
    )
    all_digits = len(problems) == known_problems
    known_problems = len(problems)
    for column in ("rate", "connection_fee"):
        _report(raw, file, column, decimal_text_problem(pl.col(column)), problems)
    # Money is scaled only when every amount is good text (else the deck is refused).
    good_money = len(problems) == known_problems
    for column in ("initial_increment", "subsequent_increment"):
        _report(
            raw,
            file,
            column,
            pl.when(
                pl.col(column).is_not_null()
                & pl.col(column).str.contains(r"^-?[0-9]+$")
                & (pl.col(column).cast(pl.Int64, strict=False) < 1)
            )
            .then(pl.lit("increment below 1 second"))
            .otherwise(_integer_problem(column, 1, 86_400)),
            problems,
        )
    timed = _timestamps(raw, file, problems)
    # Duplicates are looked for among the rows whose prefix appears twice, found by sorting
    # the prefixes as integers (their index encoding): hashing a million (text, instant) pairs
    # takes hundreds of MB. A deck with a prefix that is not 1-15 digits is refused anyway;
    # there the texts themselves are compared.
    key = (
        _in_slices(timed, lambda part: part.select(encoded_digits(pl.col("prefix")))).to_series()
        if all_digits
        else timed["prefix"]
    )
    ordered = key.drop_nulls().sort()
    repeated = ordered.filter(ordered == ordered.shift(1)).implode()
    del ordered
    shortlist = timed.filter(key.is_in(repeated) & timed["effective_from_us"].is_not_null())
    del key, repeated
    dupes = shortlist.filter(pl.struct("prefix", "effective_from_us").is_duplicated())
    for line, prefix in dupes.select(_LINE, "prefix").iter_rows():
        problems.append(
            Problem(file, line, "prefix", prefix, "same prefix twice with the same effective_from")
        )
    deck = timed.select(
        plan_index=pl.lit(plan_index, dtype=pl.Int32),
        prefix=pl.col("prefix"),
        destination=pl.col("destination").fill_null(""),
        initial_increment=pl.col("initial_increment").cast(pl.Int32, strict=False).fill_null(1),
        subsequent_increment=pl.col("subsequent_increment")
        .cast(pl.Int32, strict=False)
        .fill_null(1),
        effective_from_us=pl.col("effective_from_us"),
        effective_until_us=pl.col("effective_until_us"),
    )
    if good_money:
        deck = deck.hstack(
            _in_slices(
                timed,
                lambda part: part.select(
                    rate_units=_per_distinct(part["rate"], scaled_integer),
                    fee_units=_per_distinct(
                        part["connection_fee"], lambda fee: scaled_integer(fee.fill_null("0"))
                    ),
                ),
            )
        )
    else:
        nothing = pl.lit(None, dtype=pl.Int64)
        deck = deck.with_columns(rate_units=nothing, fee_units=nothing)
    return deck.select(_empty_deck().columns)


# --- associations and memberships ------------------------------------------------------------


def _validate_associations(
    raw: pl.DataFrame | None, plans: pl.DataFrame, problems: list[Problem]
) -> dict[Scope, AccountPlans]:
    file = ASSOCIATIONS_FILE
    frame = (
        raw
        if raw is not None
        else pl.DataFrame(
            schema={**dict.fromkeys(_ASSOCIATION_COLUMNS, pl.String), _LINE: pl.Int64}
        )
    )
    _required(frame, file, _ASSOCIATION_REQUIRED, problems)
    scopes = [s.value for s in Scope]
    _report(
        frame,
        file,
        "scope",
        pl.when(pl.col("scope").is_not_null() & ~pl.col("scope").is_in(scopes)).then(
            pl.lit(f"must be one of {', '.join(scopes)}")
        ),
        problems,
    )
    timed = _timestamps(frame, file, problems)
    joined = timed.join(
        plans.select("plan_id", "plan_index", "tenant_id", pl.col("scope").alias("plan_scope")),
        on="plan_id",
        how="left",
        maintain_order="left",
    )
    _report(
        joined,
        file,
        "plan_id",
        pl.when(pl.col("plan_id").is_not_null() & pl.col("plan_index").is_null()).then(
            pl.lit("no such plan in plans.csv")
        ),
        problems,
    )
    _report(
        joined,
        file,
        "plan_id",
        pl.when(
            pl.col("plan_scope").is_not_null()
            & pl.col("scope").is_in(scopes)
            & (pl.col("plan_scope") != pl.col("scope"))
        ).then(
            pl.lit("plan has scope ")
            + pl.col("plan_scope")
            + pl.lit(", association has scope ")
            + pl.col("scope")
        ),
        problems,
    )
    usable = joined.filter(
        pl.all_horizontal(
            pl.col("plan_index", "account_id", "effective_from_us", "scope").is_not_null()
        )
    )
    _overlaps(
        usable, file, ["scope", "tenant_id", "account_id"], "association of account", problems
    )
    result: dict[Scope, AccountPlans] = {}
    for scope in Scope:
        part = usable.filter(pl.col("scope") == scope.value)
        accounts = (
            part.select("tenant_id", "account_id")
            .unique(maintain_order=True)
            .with_row_index("key")
            .with_columns(pl.col("key").cast(pl.Int64))
        )
        keyed = part.join(
            accounts, on=["tenant_id", "account_id"], how="left", maintain_order="left"
        )
        index = IntervalIndex.build(
            keyed["key"].to_numpy(),
            keyed["effective_from_us"].to_numpy(),
            keyed["effective_until_us"].to_numpy(),
            keyed["plan_index"].to_numpy(),
            accounts.height,
        )
        result[scope] = AccountPlans(accounts, index)
    return result


def _validate_memberships(
    raw: pl.DataFrame | None, problems: list[Problem]
) -> tuple[pl.DataFrame, IntervalIndex, pl.Series]:
    file = MEMBERSHIPS_FILE
    frame = (
        raw
        if raw is not None
        else pl.DataFrame(schema={**dict.fromkeys(_MEMBERSHIP_COLUMNS, pl.String), _LINE: pl.Int64})
    )
    _required(frame, file, _MEMBERSHIP_REQUIRED, problems)
    timed = _timestamps(frame, file, problems)
    usable = timed.filter(
        pl.all_horizontal(pl.col("client_id", "reseller_id", "effective_from_us").is_not_null())
    )
    _overlaps(usable, file, ["client_id"], "membership of client", problems)
    clients = (
        usable.select("client_id")
        .unique(maintain_order=True)
        .with_row_index("key")
        .with_columns(pl.col("key").cast(pl.Int64))
    )
    resellers = (
        usable.select("reseller_id")
        .unique(maintain_order=True)
        .with_row_index("reseller_index")
        .with_columns(pl.col("reseller_index").cast(pl.Int64))
    )
    keyed = usable.join(clients, on="client_id", how="left", maintain_order="left").join(
        resellers, on="reseller_id", how="left", maintain_order="left"
    )
    index = IntervalIndex.build(
        keyed["key"].to_numpy(),
        keyed["effective_from_us"].to_numpy(),
        keyed["effective_until_us"].to_numpy(),
        keyed["reseller_index"].to_numpy(),
        clients.height,
    )
    return clients, index, resellers["reseller_id"]


# --- deck rows for comparisons (decks diff) ----------------------------------------------------


def deck_rows(folder: PlanFiles) -> pl.DataFrame:
    """Every deck row of a plans folder with its plan id, numbers as exact integer units.

    Columns: plan_id, prefix, destination, rate_units (10**-9 per minute), fee_units (10**-9),
    initial_increment, subsequent_increment, effective_from_us, effective_until_us. For
    comparing two versions (``decks diff``); load the folder with :func:`load_plans` first to
    have it validated: this raises :class:`ReferenceDataError` on the same problems.
    """
    problems: list[Problem] = []
    digest = hashlib.sha256()
    plans = _read_plans(folder, problems, digest)
    plan_ids = plans["plan_id"].to_list()
    frames, _ = _read_decks(folder, plans, problems, digest)
    if problems:
        raise ReferenceDataError(problems)
    deck = pl.concat(frames, how="vertical") if frames else _empty_deck()
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
    )
