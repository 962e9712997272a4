"""The rules of each file of a plans folder: plans, decks, associations, memberships.

Each validator takes a file read by :func:`~pipeline.reference.csv_checks.read_csv`, appends
every problem it finds, and returns the typed frame the loader builds the indexes from.
"""

from __future__ import annotations

import polars as pl

from pipeline.prefix_trie import IntervalIndex, encoded_digits
from pipeline.prefix_trie.deck_index import MAX_DIGITS
from pipeline.rating.exceptions import Problem
from pipeline.rating.money import (
    ROUNDING_CODES,
    Rounding,
    decimal_text_problem,
    scaled_integer,
)
from pipeline.rating.reference import (
    DEFAULT_DECIMALS,
    DURATION_ROUNDING,
    MAX_PLAN_DECIMALS,
    AccountPlans,
    Scope,
)
from pipeline.reference.csv_checks import (
    LINE,
    currency_problem,
    in_slices,
    integer_problem,
    overlaps,
    per_distinct,
    report,
    report_all,
    required,
    required_checks,
    timestamps,
)
from pipeline.reference.files import ASSOCIATIONS_FILE, MEMBERSHIPS_FILE, PLANS_FILE

PLAN_COLUMNS = (
    "plan_id",
    "tenant_id",
    "name",
    "scope",
    "currency",
    "decimals",
    "rounding",
    # tariff v2 (DESIGN.md section 8), each optional
    "timezone",
    "duration_rounding",
)
PLAN_REQUIRED = ("plan_id", "tenant_id", "scope", "currency")
DECK_COLUMNS = (
    "prefix",
    "destination",
    "rate",
    "connection_fee",
    "initial_increment",
    "subsequent_increment",
    "effective_from",
    "effective_until",
    # tariff v2 (DESIGN.md section 8), each optional
    "initial_rate",
    "grace_seconds",
    "min_cost",
    "max_cost",
    "origin",
    "band",
)
#: Deck columns of the price shape (tariff v2): a deck without them prices as section 4 says.
PRICE_SHAPE_COLUMNS = ("initial_rate", "grace_seconds", "min_cost", "max_cost")
DURATION_ROUNDING_CODES = DURATION_ROUNDING
DECK_REQUIRED = ("prefix", "rate", "effective_from")
ASSOCIATION_COLUMNS = ("scope", "account_id", "plan_id", "effective_from", "effective_until")
ASSOCIATION_REQUIRED = ("scope", "account_id", "plan_id", "effective_from")
MEMBERSHIP_COLUMNS = ("client_id", "reseller_id", "effective_from", "effective_until")
MEMBERSHIP_REQUIRED = ("client_id", "reseller_id", "effective_from")


# --- plans ---------------------------------------------------------------------------------


def empty_plans() -> pl.DataFrame:
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
            "timezone": pl.String,
            "duration_rounding_code": pl.Int8,
        }
    )


def validate_plans(raw: pl.DataFrame, problems: list[Problem]) -> pl.DataFrame:
    file = PLANS_FILE
    required(raw, file, PLAN_REQUIRED, problems)
    scopes = [s.value for s in Scope]
    modes = [m.value for m in Rounding]
    report(
        raw,
        file,
        "scope",
        pl.when(pl.col("scope").is_not_null() & ~pl.col("scope").is_in(scopes)).then(
            pl.lit(f"must be one of {', '.join(scopes)}")
        ),
        problems,
    )
    report(raw, file, "currency", currency_problem(), problems)
    report(raw, file, "decimals", integer_problem("decimals", 0, MAX_PLAN_DECIMALS), problems)
    report(
        raw,
        file,
        "rounding",
        pl.when(pl.col("rounding").is_not_null() & ~pl.col("rounding").is_in(modes)).then(
            pl.lit(f"must be one of {', '.join(modes)}")
        ),
        problems,
    )
    report(
        raw,
        file,
        "plan_id",
        pl.when(pl.col("plan_id").is_duplicated() & pl.col("plan_id").is_not_null()).then(
            pl.lit("plan_id appears more than once")
        ),
        problems,
    )
    report(
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
    report(
        raw,
        file,
        "duration_rounding",
        pl.when(
            pl.col("duration_rounding").is_not_null()
            & ~pl.col("duration_rounding").is_in(list(DURATION_ROUNDING_CODES))
        ).then(pl.lit(f"must be one of {', '.join(DURATION_ROUNDING_CODES)}")),
        problems,
    )
    unknown_zones = [z for z in raw["timezone"].drop_nulls().unique().to_list() if not is_zone(z)]
    report(
        raw,
        file,
        "timezone",
        pl.when(pl.col("timezone").is_in(unknown_zones)).then(
            pl.lit("not a known IANA time zone (like Europe/Berlin or UTC)")
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
            timezone=pl.col("timezone").fill_null("UTC"),
        )
        .with_columns(
            rounding_code=pl.col("rounding").replace_strict(codes, default=0, return_dtype=pl.Int8),
            duration_rounding_code=pl.col("duration_rounding").replace_strict(
                DURATION_ROUNDING_CODES, default=0, return_dtype=pl.Int8
            ),
        )
        .with_row_index("plan_index")
        .with_columns(pl.col("plan_index").cast(pl.Int64))
        .select(empty_plans().columns)
    )


def is_zone(name: str) -> bool:
    """Whether ``name`` is a time zone the rating core can convert to (polars' tz database)."""
    try:
        pl.Series([0], dtype=pl.Int64).cast(pl.Datetime("us", "UTC")).dt.convert_time_zone(name)
    except (pl.exceptions.PolarsError, ValueError):
        return False
    return True


# --- decks ---------------------------------------------------------------------------------


def empty_deck() -> pl.DataFrame:
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


def validate_deck(
    raw: pl.DataFrame, file: str, plan_index: int, problems: list[Problem]
) -> pl.DataFrame:
    money_columns = ("rate", "connection_fee", "initial_rate", "min_cost", "max_cost")
    checks = [
        *required_checks(DECK_REQUIRED),
        (
            "prefix",
            pl.when(
                pl.col("prefix").is_not_null()
                & ~pl.col("prefix").str.contains(rf"^[0-9]{{1,{MAX_DIGITS}}}$")
            ).then(pl.lit(f"must be 1 to {MAX_DIGITS} digits")),
        ),
        *((column, decimal_text_problem(pl.col(column))) for column in money_columns),
        *(
            (
                column,
                pl.when(
                    pl.col(column).is_not_null()
                    & pl.col(column).str.contains(r"^-?[0-9]+$")
                    & (pl.col(column).cast(pl.Int64, strict=False) < 1)
                )
                .then(pl.lit("increment below 1 second"))
                .otherwise(integer_problem(column, 1, 86_400)),
            )
            for column in ("initial_increment", "subsequent_increment")
        ),
        ("grace_seconds", integer_problem("grace_seconds", 0, 86_400)),
    ]
    counts = report_all(raw, file, checks, problems)
    after_required = counts[len(DECK_REQUIRED) :]
    all_digits = after_required[0] == 0
    # Money is scaled only when every amount is good text (else the deck is refused).
    good_money = sum(after_required[1 : 1 + len(money_columns)]) == 0
    _minimum_above_maximum(raw, file, problems)
    timed = timestamps(raw, file, problems)
    # Duplicates are looked for among the rows whose prefix appears twice, found by sorting
    # the prefixes as integers (their index encoding): hashing a million (text, instant) pairs
    # takes hundreds of MB. A deck with a prefix that is not 1-15 digits is refused anyway;
    # there the texts themselves are compared.
    key = (
        in_slices(timed, lambda part: part.select(encoded_digits(pl.col("prefix")))).to_series()
        if all_digits
        else timed["prefix"]
    )
    ordered = key.drop_nulls().sort()
    repeated = ordered.filter(ordered == ordered.shift(1)).implode()
    del ordered
    shortlist = timed.filter(key.is_in(repeated) & timed["effective_from_us"].is_not_null())
    del key, repeated
    dupes = shortlist.filter(
        pl.struct("prefix", "origin", "band", "effective_from_us").is_duplicated()
    )
    for line, prefix in dupes.select(LINE, "prefix").iter_rows():
        problems.append(
            Problem(
                file,
                line,
                "prefix",
                prefix,
                "same prefix twice with the same effective_from (and the same origin and band)",
            )
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
            in_slices(
                timed,
                lambda part: part.select(
                    rate_units=per_distinct(part["rate"], scaled_integer),
                    fee_units=per_distinct(
                        part["connection_fee"], lambda fee: scaled_integer(fee.fill_null("0"))
                    ),
                ),
            )
        )
    else:
        nothing = pl.lit(None, dtype=pl.Int64)
        deck = deck.with_columns(rate_units=nothing, fee_units=nothing)
    deck = deck.select(empty_deck().columns)
    if good_money and raw.select(pl.col(PRICE_SHAPE_COLUMNS).is_not_null().any()).row(0) != (
        False,
    ) * len(PRICE_SHAPE_COLUMNS):
        deck = deck.hstack(_price_shape(timed, file, problems))
    if not timed.select(pl.col("origin").is_null().all() & pl.col("band").is_null().all()).item():
        # Checked against the folder's groups and bands by the loader, which knows them.
        deck = deck.hstack(timed.select("origin", "band", LINE))
    return deck


def _price_shape(timed: pl.DataFrame, file: str, problems: list[Problem]) -> pl.DataFrame:
    """The price-shape columns of a deck that uses them (tariff v2), as exact integer units.

    ``initial_rate_units`` defaults to the row's rate, ``grace_seconds`` to 0; ``min_cost_units``
    and ``max_cost_units`` are -1 where the row sets none. A minimum above the maximum is refused.
    """
    shape = in_slices(
        timed,
        lambda part: part.select(
            initial_rate_units=per_distinct(
                part["initial_rate"].fill_null(part["rate"]), scaled_integer
            ),
            grace_seconds=pl.col("grace_seconds").cast(pl.Int32, strict=False).fill_null(0),
            min_cost_units=per_distinct(part["min_cost"], scaled_integer).fill_null(-1),
            max_cost_units=per_distinct(part["max_cost"], scaled_integer).fill_null(-1),
            **{LINE: pl.col(LINE)},
        ),
    )
    return shape.drop(LINE)


def _minimum_above_maximum(raw: pl.DataFrame, file: str, problems: list[Problem]) -> None:
    """Refuse a row whose ``min_cost`` is above its ``max_cost`` (both valid decimals)."""
    both = raw.filter(
        decimal_text_problem(pl.col("min_cost")).is_null()
        & decimal_text_problem(pl.col("max_cost")).is_null()
        & pl.col("min_cost").is_not_null()
        & pl.col("max_cost").is_not_null()
    )
    if both.height == 0:
        return
    clash = both.filter(scaled_integer(pl.col("min_cost")) > scaled_integer(pl.col("max_cost")))
    for line, value in clash.select(LINE, "min_cost").iter_rows():
        problems.append(Problem(file, line, "min_cost", value, "greater than max_cost"))


# --- associations and memberships ------------------------------------------------------------


def validate_associations(
    raw: pl.DataFrame | None, plans: pl.DataFrame, problems: list[Problem]
) -> dict[Scope, AccountPlans]:
    file = ASSOCIATIONS_FILE
    frame = (
        raw
        if raw is not None
        else pl.DataFrame(schema={**dict.fromkeys(ASSOCIATION_COLUMNS, pl.String), LINE: pl.Int64})
    )
    required(frame, file, ASSOCIATION_REQUIRED, problems)
    scopes = [s.value for s in Scope]
    report(
        frame,
        file,
        "scope",
        pl.when(pl.col("scope").is_not_null() & ~pl.col("scope").is_in(scopes)).then(
            pl.lit(f"must be one of {', '.join(scopes)}")
        ),
        problems,
    )
    timed = timestamps(frame, file, problems)
    joined = timed.join(
        plans.select("plan_id", "plan_index", "tenant_id", pl.col("scope").alias("plan_scope")),
        on="plan_id",
        how="left",
        maintain_order="left",
    )
    report(
        joined,
        file,
        "plan_id",
        pl.when(pl.col("plan_id").is_not_null() & pl.col("plan_index").is_null()).then(
            pl.lit("no such plan in plans.csv")
        ),
        problems,
    )
    report(
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
    overlaps(usable, file, ["scope", "tenant_id", "account_id"], "association of account", problems)
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


def validate_memberships(raw: pl.DataFrame | None, problems: list[Problem]) -> pl.DataFrame:
    """``memberships.csv`` checked; its usable rows as intervals.

    Columns: client_id, reseller_id, effective_from (text), effective_from_us,
    effective_until_us and the row's line. Two overlapping memberships of one client are refused.
    """
    file = MEMBERSHIPS_FILE
    frame = (
        raw
        if raw is not None
        else pl.DataFrame(schema={**dict.fromkeys(MEMBERSHIP_COLUMNS, pl.String), LINE: pl.Int64})
    )
    required(frame, file, MEMBERSHIP_REQUIRED, problems)
    timed = timestamps(frame, file, problems)
    usable = timed.filter(
        pl.all_horizontal(pl.col("client_id", "reseller_id", "effective_from_us").is_not_null())
    )
    overlaps(usable, file, ["client_id"], "membership of client", problems)
    return usable.select(
        "client_id",
        "reseller_id",
        "effective_from",
        "effective_from_us",
        "effective_until_us",
        LINE,
    )


def build_membership_index(
    intervals: pl.DataFrame,
) -> tuple[pl.DataFrame, IntervalIndex, pl.Series]:
    """The engine's membership index of disjoint intervals (client_id, reseller_id, *_us).

    Returns the clients (client_id, key), the index (client key -> reseller index) and the
    resellers (reseller index -> reseller_id).
    """
    clients = (
        intervals.select("client_id")
        .unique(maintain_order=True)
        .with_row_index("key")
        .with_columns(pl.col("key").cast(pl.Int64))
    )
    resellers = (
        intervals.select("reseller_id")
        .unique(maintain_order=True)
        .with_row_index("reseller_index")
        .with_columns(pl.col("reseller_index").cast(pl.Int64))
    )
    keyed = intervals.join(clients, on="client_id", how="left", maintain_order="left").join(
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
