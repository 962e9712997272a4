"""Reference data as the rating core sees it: one validated version, indexed for rating.

A :class:`ReferenceData` is immutable and carries the indexes and arrays the rating core uses;
its ``version`` is a digest of the files' contents. It is made by
:func:`pipeline.reference.loader.load_plans` (files or a publication in, everything
validated); this module only defines it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa

from pipeline.prefix_trie import DeckIndex, IntervalIndex, VariantIndex


class Scope(StrEnum):
    """Which accounts a plan prices: the customer leg, the client leg or the reseller leg."""

    CUSTOMER = "customer"
    CLIENT = "client"
    RESELLER = "reseller"


LEGS: tuple[Scope, ...] = (Scope.CUSTOMER, Scope.CLIENT, Scope.RESELLER)
#: Billable seconds of a duration, by a plan's ``duration_rounding`` code (DESIGN.md s8):
#: ``up`` ceil(ms / 1000), ``down`` floor(ms / 1000), ``nearest`` floor((ms + 500) / 1000).
DURATION_ROUNDING = {"up": 0, "down": 1, "nearest": 2}
DEFAULT_DECIMALS = 6
MAX_PLAN_DECIMALS = 6


@dataclass(frozen=True, eq=False)
class AccountPlans:
    """Which plan each account of one scope has, over time."""

    accounts: pl.DataFrame  # tenant_id, account_id, key (UInt32 -> Int64)
    plans: IntervalIndex  # key -> plan index


@dataclass(frozen=True, eq=False)
class DeckArrays:
    """Deck rows of every plan as arrays, by global row id, for the rating hot path.

    Only what rating reads is kept, in the narrowest exact type: the text of a rate is not (its
    units are), increments (at most 86,400 s) are int32, and destinations are a dictionary
    array (a deck names a few thousand destinations over a million rows).
    """

    prefix: pa.Array  # string
    destination: pa.Array  # dictionary<int32, string>
    rate_units: npt.NDArray[np.int64]  # 10**-9 per minute
    fee_units: npt.NDArray[np.int64]  # 10**-9
    initial: npt.NDArray[np.int32]
    subsequent: npt.NDArray[np.int32]
    shape: PriceShape | None = None  # None: no deck of the folder uses the price shape

    @classmethod
    def of(cls, deck: pl.DataFrame) -> DeckArrays:
        """Arrays of a validated deck frame; the numbers are views of its columns, not copies."""
        return cls(
            prefix=_arrow(deck["prefix"]),
            destination=_arrow(deck["destination"]).dictionary_encode(),
            rate_units=deck["rate_units"].to_numpy().astype(np.int64, copy=False),
            fee_units=deck["fee_units"].to_numpy().astype(np.int64, copy=False),
            initial=deck["initial_increment"].to_numpy().astype(np.int32, copy=False),
            subsequent=deck["subsequent_increment"].to_numpy().astype(np.int32, copy=False),
            shape=PriceShape.of(deck) if "initial_rate_units" in deck.columns else None,
        )


@dataclass(frozen=True, eq=False)
class PriceShape:
    """The price shape of tariff v2 (DESIGN.md section 8), by global deck row id.

    Kept only when some deck of the folder uses it, so a folder without it costs no memory and
    rates on the section 4 path. ``min_cost_units`` and ``max_cost_units`` are -1 where a row
    sets none; money is in units of 10**-9 like rates and fees.
    """

    initial_rate_units: npt.NDArray[np.int64]  # per minute, for the first interval
    grace: npt.NDArray[np.int32]  # seconds billed nothing
    min_cost_units: npt.NDArray[np.int64]
    max_cost_units: npt.NDArray[np.int64]

    @classmethod
    def of(cls, deck: pl.DataFrame) -> PriceShape:
        """Arrays of a deck frame with the price-shape columns."""
        return cls(
            initial_rate_units=deck["initial_rate_units"].to_numpy().astype(np.int64, copy=False),
            grace=deck["grace_seconds"].to_numpy().astype(np.int32, copy=False),
            min_cost_units=deck["min_cost_units"].to_numpy().astype(np.int64, copy=False),
            max_cost_units=deck["max_cost_units"].to_numpy().astype(np.int64, copy=False),
        )


def _arrow(column: pl.Series) -> pa.Array:
    """One Arrow array of a polars column, whatever its chunks; texts as ``string``.

    ``string`` is the type of the call-history columns these texts are taken into, so rating
    takes them without converting each batch's result from polars' ``large_string``.
    """
    array = column.to_arrow()
    array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    return array.cast(pa.string()) if array.type == pa.large_string() else array


@dataclass(frozen=True, eq=False)
class PlanArrays:
    """Plan attributes as arrays, by plan index, for the rating hot path."""

    plan_id: pa.Array
    deck_version: pa.Array
    currency: pa.Array
    decimals: npt.NDArray[np.int64]
    rounding: npt.NDArray[np.int8]
    #: How a plan makes billable seconds of ``duration_ms`` (see DURATION_ROUNDING).
    duration_rounding: npt.NDArray[np.int8]

    @classmethod
    def of(cls, plans: pl.DataFrame) -> PlanArrays:
        """Arrays of a validated plans frame."""
        return cls(
            plan_id=_arrow(plans["plan_id"]),
            deck_version=_arrow(plans["deck_version"]),
            currency=_arrow(plans["currency"]),
            decimals=plans["decimals"].to_numpy().astype(np.int64),
            rounding=plans["rounding_code"].to_numpy().astype(np.int8),
            duration_rounding=plans["duration_rounding_code"].to_numpy().astype(np.int8),
        )


#: Minutes in a week: a plan's time bands cover each exactly once (Monday 00:00 is minute 0).
WEEK_MINUTES = 7 * 24 * 60


@dataclass(frozen=True, eq=False)
class OriginsAndBands:
    """Caller origins and time bands (DESIGN.md section 8) of a folder that uses them.

    Group and band ids are small integers, 0 meaning "any caller" or "any time" (a deck row
    without an origin or band); ``groups`` and ``bands`` count id 0. Rating finds a call's
    deck row in :attr:`variant_index` (one walk per call and leg);
    :attr:`ReferenceData.deck_index` is then None.
    """

    # origin groups: per tenant, a longest-prefix index of its groups' caller prefixes
    origin_tenants: pl.DataFrame  # tenant_id, key: the "plan" of a tenant in origin_index
    origin_index: DeckIndex  # over the groups' prefixes, always in effect
    origin_group: npt.NDArray[np.int32]  # origin_index row -> group id (>= 1)
    group_names: pa.Array  # group id -> name (id 0: null)
    # time bands: each plan with bands has a table of the band at every minute of its week
    band_names: pa.Array  # band id -> name (id 0: null)
    plan_zone: list[str]  # plan index -> IANA time zone
    plan_week: npt.NDArray[np.int32]  # plan index -> row of ``weeks``, -1: the plan has no bands
    weeks: npt.NDArray[np.int16]  # (plans with bands, WEEK_MINUTES) band ids
    holiday_keys: npt.NDArray[np.int64]  # sorted: plan index * 2**32 + local days since 1970
    holiday_bands: npt.NDArray[np.int16]  # band id of each holiday key
    # the deck by variant
    deck_origin: npt.NDArray[np.int16]  # deck row -> group id (0: any caller)
    deck_band: npt.NDArray[np.int16]  # deck row -> band id (0: any time)
    groups: int  # group ids 0..groups-1
    bands: int  # band ids 0..bands-1
    # the deck rows by plan, prefix and variant: a call's winner in one walk
    variant_index: VariantIndex


#: A roster frame's instants: UTC microseconds, like every timestamp of the pipeline.
UTC_INSTANT = pl.Datetime("us", "UTC")


MEMBERSHIP_SCHEMA = pl.Schema(
    {
        "client_id": pl.String(),
        "reseller_id": pl.String(),
        "effective_from_us": pl.Int64(),
        "effective_until_us": pl.Int64(),
    }
)


@dataclass(frozen=True, eq=False)
class Roster:
    """Who the accounts are: ``accounts.csv``, ``join_codes.csv`` and ``enrollments.csv``.

    Kept as frames for what shows and watches accounts (the Resellers page, money alerts); the
    rating core never reads them (attribution reaches it through the membership index). Each
    frame is empty when its file is absent.

    * ``accounts``: tenant_id, scope, account_id, name, company, email, billing_type
      (``prepaid`` | ``postpaid``), credit_limit (exact ``Decimal(38, 9)``, null: none set),
      currency, status (``active`` | ``inactive``), timezone (IANA name).
    * ``join_codes``: tenant_id, code, reseller_id (null: Direct).
    * ``enrollments``: client_id, join_code, tenant_id and reseller_id of the code (null:
      Direct), enrolled_at, and until (the client's next enrollment; null: still current).
    * ``memberships``: the reseller of each client over time as rating resolves it
      (``memberships.csv`` and the enrollments combined, disjoint per client): client_id,
      reseller_id, effective_from_us, effective_until_us (UTC microseconds; open end:
      :data:`~pipeline.rating.timeparse.OPEN_END_US`). Empty until the loader sets it.
    """

    accounts: pl.DataFrame
    join_codes: pl.DataFrame
    enrollments: pl.DataFrame
    memberships: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(schema=MEMBERSHIP_SCHEMA)
    )

    @classmethod
    def empty(cls) -> Roster:
        """The roster of a folder without any of the three files."""
        return cls(
            accounts=pl.DataFrame(schema=ACCOUNT_SCHEMA),
            join_codes=pl.DataFrame(schema=JOIN_CODE_SCHEMA),
            enrollments=pl.DataFrame(schema=ENROLLMENT_SCHEMA),
        )


ACCOUNT_SCHEMA = pl.Schema(
    {
        "tenant_id": pl.String(),
        "scope": pl.String(),
        "account_id": pl.String(),
        "name": pl.String(),
        "company": pl.String(),
        "email": pl.String(),
        "billing_type": pl.String(),
        "credit_limit": pl.Decimal(38, 9),
        "currency": pl.String(),
        "status": pl.String(),
        "timezone": pl.String(),
    }
)
JOIN_CODE_SCHEMA = pl.Schema(
    {
        "tenant_id": pl.String(),
        "code": pl.String(),
        "reseller_id": pl.String(),
    }
)
ENROLLMENT_SCHEMA = pl.Schema(
    {
        "client_id": pl.String(),
        "join_code": pl.String(),
        "tenant_id": pl.String(),
        "reseller_id": pl.String(),
        "enrolled_at": UTC_INSTANT,
        "until": UTC_INSTANT,
    }
)


#: ``fx_rates.csv``: one unit of ``currency`` buys ``rate`` units of ``quote`` from
#: ``effective_from`` until the pair's next rate (exact, 12 decimal places).
FX_RATE_SCHEMA = pl.Schema(
    {
        "currency": pl.String(),
        "quote": pl.String(),
        "rate": pl.Decimal(38, 12),
        "effective_from": UTC_INSTANT,
    }
)


@dataclass(frozen=True, eq=False)
class ReferenceData:
    """One consistent, validated version of the reference data, indexed for rating."""

    version: str
    plans: pl.DataFrame  # plan_index, plan_id, tenant_id, name, scope, currency, decimals, ...
    deck_row_count: int  # deck rows over all plans; global row ids are 0..deck_row_count-1
    #: The deck by plan index; None when ``origins_and_bands`` is set (its variant index is
    #: the deck's index then).
    deck_index: DeckIndex | None
    associations: dict[Scope, AccountPlans]
    memberships: pl.DataFrame  # client_id, key
    #: client key -> reseller index: memberships.csv and enrollments.csv combined, disjoint
    membership_index: IntervalIndex
    resellers: pl.Series  # reseller index -> reseller_id
    deck_arrays: DeckArrays
    plan_arrays: PlanArrays
    #: None: no origin group or time band anywhere, and rating reads ``deck_index``.
    origins_and_bands: OriginsAndBands | None = None
    #: Accounts, join codes and enrollments (empty without their files); not read by rating.
    roster: Roster = field(default_factory=Roster.empty)
    #: Exchange rates for reporting (:data:`FX_RATE_SCHEMA`; empty without ``fx_rates.csv``);
    #: not read by rating: amounts are rated in their plan's currency.
    fx_rates: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=FX_RATE_SCHEMA))

    @property
    def plan_count(self) -> int:
        """Number of plans."""
        return self.plans.height
