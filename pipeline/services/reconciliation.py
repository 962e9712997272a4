"""``reconcile``: a carrier's CDR file against the client leg of our call history.

The carrier behind a VMGateClient invoices the tenant from its own CDRs. :func:`reconcile`
reads that file through a CDR profile (:mod:`pipeline.reference.carrier_cdrs`), reads our
answered calls of that client (:mod:`pipeline.storage.reconciliation`) and matches them:

- **Matching.** A carrier call and one of ours are candidates when their callees are equal
  (both normalised as our CDRs' callee is) and their starts differ by at most the time
  tolerance. Pairs are then taken one-to-one, nearest start first: of all candidate pairs, the
  one with the smallest start difference is matched, its two calls leave, and so on (ties: the
  earlier carrier start, then the earlier start of ours, then the carrier's row, then our
  cdr_id). Two calls to one number seconds apart on both sides therefore pair in order, and a
  call the carrier lists twice matches once. This is computed vectorised: candidates by an
  equi-join on (callee, start bucket of the tolerance's width), then rounds that take every pair
  first in the order for both its calls (exactly the pairs the sequential greedy takes), and a
  sequential pass over the few contested pairs left.
- **Window** ``[start, end)``, by default the span of the carrier's starts. Carrier calls outside
  it are left out (counted). Ours are read from ``start - tolerance`` to ``end + tolerance`` so
  that a call near an edge still finds its partner; one of ours outside the window that matched
  nothing is not reported.
- **Classes.** A matched pair is ``matched``, ``duration_difference`` (their duration minus ours
  beyond the duration tolerance, either way), ``amount_difference`` (their amount against our
  client-leg amount beyond the relative amount tolerance: ``|theirs - ours| > tolerance x
  |ours|``; also when our leg has no amount or the currencies differ, with a note) or
  ``duration_and_amount_difference``; the rest is ``only_in_theirs`` or ``only_in_ours``. Every
  call is in exactly one class. Amounts are compared only where the carrier's file has one.
- **Disputed amount**, per currency (the carrier's): the sum of ``theirs - ours`` over the
  matched pairs with an amount difference where they charge more (same currency, our leg
  priced), plus the sum of their amounts over ``only_in_theirs``. Charges below ours beyond the
  tolerance are summed apart as ``undercharged`` (in our favour, not netted); pairs without a
  comparable amount of ours are listed but in neither sum.

Money is held in integer units of 10**-9 (Int64 per call, Int128 in sums), never a float.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import polars as pl

from pipeline.rating.timeparse import format_rfc3339, to_micros
from pipeline.reference.carrier_cdrs import AMOUNT_DECIMALS, CdrProfile, read_carrier_cdrs
from pipeline.reference.carrier_files import ROW
from pipeline.sinks.contracts import CallHistoryStore
from pipeline.storage.reconciliation import client_calls

CLASSES = (
    "matched",
    "duration_difference",
    "amount_difference",
    "duration_and_amount_difference",
    "only_in_theirs",
    "only_in_ours",
)
_DIFFERENT = ("amount_difference", "duration_and_amount_difference")
_VECTOR_ROUNDS = 8  # then the contested pairs left are taken one by one
_SEQUENTIAL_BELOW = 2_000  # candidate pairs left: one by one is cheaper than another round
_I128 = pl.Int128

#: The columns of the per-call lines an operator sends back (:meth:`Reconciliation.report`).
REPORT_COLUMNS = (
    "class",
    "note",
    "callee",
    "their_row",
    "their_call_id",
    "our_cdr_id",
    "their_start",
    "their_start_utc",
    "our_start_utc",
    "start_difference_s",
    "their_duration_s",
    "our_duration_s",
    "duration_difference_s",
    "our_billed_seconds",
    "their_amount",
    "our_amount",
    "amount_difference",
    "their_currency",
    "our_currency",
    "their_caller",
)


@dataclass(frozen=True)
class Tolerances:
    """How far the two sides may differ and still agree (each bound inclusive)."""

    time_us: int = 2_000_000  # start times
    duration_ms: int = 1_000  # durations
    amount: Fraction = Fraction(1, 200)  # relative to our amount (0.5%)


def match_calls(theirs: pl.DataFrame, ours: pl.DataFrame, tolerance_us: int) -> pl.DataFrame:
    """Pairs ``(_t, _o)`` of row positions in ``theirs`` and ``ours``, one-to-one, nearest first.

    Both frames need ``callee`` and ``start_us``. See the module's docstring for the rule.
    """
    width = max(tolerance_us, 1)
    their = theirs.select(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("_t"),
        "callee",
        _ts=pl.col("start_us"),
        _b=pl.col("start_us") // width,
    )
    our = ours.select(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("_o"),
        "callee",
        _os=pl.col("start_us"),
        _b=pl.col("start_us") // width,
    )
    near = pl.concat([our.with_columns(_b=pl.col("_b") + shift) for shift in (-1, 0, 1)])
    candidates = (
        their.join(near, on=["callee", "_b"])
        .with_columns(_d=(pl.col("_ts") - pl.col("_os")).abs())
        .filter(pl.col("_d") <= tolerance_us)
        .sort(["_d", "_ts", "_os", "_t", "_o"])
        .select("_t", "_o")
    )
    taken: list[pl.DataFrame] = []
    rounds = 0
    while candidates.height >= _SEQUENTIAL_BELOW and rounds < _VECTOR_ROUNDS:
        first = candidates.filter(
            pl.col("_t").is_first_distinct() & pl.col("_o").is_first_distinct()
        )
        taken.append(first)
        candidates = candidates.join(first.select("_t"), on="_t", how="anti").join(
            first.select("_o"), on="_o", how="anti", maintain_order="left"
        )
        rounds += 1
    used_t: set[int] = set()
    used_o: set[int] = set()
    rest: list[tuple[int, int]] = []
    for t, o in candidates.iter_rows():
        if t not in used_t and o not in used_o:
            used_t.add(t)
            used_o.add(o)
            rest.append((t, o))
    taken.append(pl.DataFrame(rest, schema={"_t": pl.Int64, "_o": pl.Int64}, orient="row"))
    return pl.concat(taken)


@dataclass(frozen=True)
class Reconciliation:
    """The outcome: one line per call (matched pair or unmatched call), and its sums."""

    client: str
    start_us: int
    end_us: int
    tolerances: Tolerances
    carrier_file: str
    carrier_rows: int  # rows of the carrier's file
    outside_window: int  # of them, starting outside [start, end)
    lines: pl.DataFrame

    def counts(self) -> pl.DataFrame:
        """Calls per class (every class, in order), with their and our seconds."""
        found = self.lines.group_by("class").agg(
            calls=pl.len(),
            their_seconds=_text(pl.col("their_duration_ms").cast(_I128).sum(), 3),
            our_seconds=_text(pl.col("our_duration_ms").cast(_I128).sum(), 3),
        )
        order = pl.DataFrame({"class": list(CLASSES)})
        return order.join(found, on="class", how="left", maintain_order="left").with_columns(
            calls=pl.col("calls").fill_null(0).cast(pl.Int64),
            their_seconds=pl.col("their_seconds").fill_null("0"),
            our_seconds=pl.col("our_seconds").fill_null("0"),
        )

    def totals(self) -> pl.DataFrame:
        """Per side and currency: calls, seconds (billed seconds of ours) and the amount.

        Calls without an amount are on a row of their own with an empty currency.
        """
        theirs = (
            self.lines.filter(pl.col("their_row").is_not_null())
            .group_by(currency="their_currency")
            .agg(
                calls=pl.len(),
                seconds=_text(pl.col("their_duration_ms").cast(_I128).sum(), 3),
                billed_seconds=pl.lit(None, dtype=pl.Int64),
                amount=_text(pl.col("their_amount_units").cast(_I128).sum(), AMOUNT_DECIMALS),
            )
            .with_columns(side=pl.lit("theirs"))
        )
        ours = (
            self.lines.filter(pl.col("our_cdr_id").is_not_null())
            .group_by(currency="our_currency")
            .agg(
                calls=pl.len(),
                seconds=_text(pl.col("our_duration_ms").cast(_I128).sum(), 3),
                billed_seconds=pl.col("our_billed_seconds").sum(),
                amount=_text(pl.col("our_amount_units").cast(_I128).sum(), AMOUNT_DECIMALS),
            )
            .with_columns(side=pl.lit("ours"))
        )
        both = pl.concat([theirs, ours], how="diagonal_relaxed")
        return both.select(
            "side",
            pl.col("currency").fill_null(""),
            pl.col("calls").cast(pl.Int64),
            "seconds",
            "billed_seconds",
            pl.when(pl.col("currency").is_not_null()).then(pl.col("amount")).alias("amount"),
        ).sort(pl.col("side") == "ours", "currency")

    def disputed(self) -> pl.DataFrame:
        """Per currency of the carrier: overcharged + only in theirs = disputed; undercharged."""
        lines = self.lines.with_columns(_diff=pl.col("amount_diff_units").cast(_I128))
        over = (
            lines.filter(pl.col("class").is_in(_DIFFERENT) & (pl.col("_diff") > 0))
            .group_by(currency="their_currency")
            .agg(over=pl.col("_diff").sum(), over_calls=pl.len())
        )
        under = (
            lines.filter(pl.col("class").is_in(_DIFFERENT) & (pl.col("_diff") < 0))
            .group_by(currency="their_currency")
            .agg(under=pl.lit(0, dtype=_I128) - pl.col("_diff").sum(), under_calls=pl.len())
        )
        extra = (
            lines.filter(
                (pl.col("class") == "only_in_theirs") & pl.col("their_amount_units").is_not_null()
            )
            .group_by(currency="their_currency")
            .agg(extra=pl.col("their_amount_units").cast(_I128).sum(), extra_calls=pl.len())
        )
        currencies = (
            pl.concat([frame.select("currency") for frame in (over, under, extra)])
            .unique()
            .sort("currency")
        )
        joined = (
            currencies.join(over, on="currency", how="left")
            .join(under, on="currency", how="left")
            .join(extra, on="currency", how="left")
        )
        zero = pl.lit(0, dtype=_I128)
        return joined.select(
            "currency",
            overcharged_calls=pl.col("over_calls").fill_null(0).cast(pl.Int64),
            overcharged=_text(pl.col("over").fill_null(zero), AMOUNT_DECIMALS),
            only_in_theirs_calls=pl.col("extra_calls").fill_null(0).cast(pl.Int64),
            only_in_theirs=_text(pl.col("extra").fill_null(zero), AMOUNT_DECIMALS),
            disputed=_text(
                pl.col("over").fill_null(zero) + pl.col("extra").fill_null(zero), AMOUNT_DECIMALS
            ),
            undercharged_calls=pl.col("under_calls").fill_null(0).cast(pl.Int64),
            undercharged=_text(pl.col("under").fill_null(zero), AMOUNT_DECIMALS),
        )

    def report(self, *, every_call: bool = False) -> pl.DataFrame:
        """The lines an operator sends back, as texts (:data:`REPORT_COLUMNS`).

        Every call that is not cleanly ``matched`` (all of them with ``every_call``), ordered by
        class, then start.
        """
        lines = self.lines if every_call else self.lines.filter(pl.col("class") != "matched")
        rank = pl.col("class").replace_strict(list(CLASSES), list(range(len(CLASSES))))
        start = pl.coalesce("their_start_us", "our_start_us")
        lines = lines.sort(rank, start, "their_row", "our_cdr_id", nulls_last=True)
        return lines.select(
            "class",
            "note",
            "callee",
            "their_row",
            "their_call_id",
            "our_cdr_id",
            their_start=pl.col("their_start_text"),
            their_start_utc=format_rfc3339(pl.col("their_start_us")),
            our_start_utc=format_rfc3339(pl.col("our_start_us")),
            start_difference_s=_text(
                (pl.col("their_start_us") - pl.col("our_start_us")).cast(_I128), 6
            ),
            their_duration_s=_text(pl.col("their_duration_ms").cast(_I128), 3),
            our_duration_s=_text(pl.col("our_duration_ms").cast(_I128), 3),
            duration_difference_s=_text(
                (pl.col("their_duration_ms") - pl.col("our_duration_ms")).cast(_I128), 3
            ),
            our_billed_seconds=pl.col("our_billed_seconds"),
            their_amount=_text(pl.col("their_amount_units").cast(_I128), AMOUNT_DECIMALS),
            our_amount=_text(pl.col("our_amount_units").cast(_I128), AMOUNT_DECIMALS),
            amount_difference=_text(pl.col("amount_diff_units").cast(_I128), AMOUNT_DECIMALS),
            their_currency=pl.col("their_currency"),
            our_currency=pl.col("our_currency"),
            their_caller=pl.col("their_caller"),
        )


def reconcile(
    store: CallHistoryStore,
    client: str,
    carrier_file: Path,
    profile: CdrProfile,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    tolerances: Tolerances = Tolerances(),
    tenant: str | None = None,
) -> Reconciliation:
    """Reconcile ``carrier_file`` with the answered calls of ``client`` in ``[start, end)``.

    Raises :class:`pipeline.rating.exceptions.ReferenceDataError` naming every problem of the
    file; ``ValueError`` when the window is empty or cannot be taken from the file.
    """
    theirs = read_carrier_cdrs(carrier_file, profile)
    start_us = to_micros(start) if start is not None else theirs["start_us"].min()
    end_us = to_micros(end) if end is not None else theirs["start_us"].max()
    if start_us is None or end_us is None:
        msg = f"{carrier_file}: no calls in the file, so no window: give --from and --to"
        raise ValueError(msg)
    assert isinstance(start_us, int)
    assert isinstance(end_us, int)
    if end is None:
        end_us += 1  # the window holds the file's last call
    if start_us >= end_us:
        msg = "the window is empty: --from is not before --to (or the file's last call)"
        raise ValueError(msg)
    inside = pl.col("start_us").is_between(start_us, end_us, closed="left")
    in_window = theirs.filter(inside)
    reach = tolerances.time_us
    ours = client_calls(store, client, start_us - reach, end_us + reach, tenant=tenant)
    lines = classify(in_window, ours, tolerances, start_us, end_us)
    return Reconciliation(
        client=client,
        start_us=start_us,
        end_us=end_us,
        tolerances=tolerances,
        carrier_file=str(carrier_file),
        carrier_rows=theirs.height,
        outside_window=theirs.height - in_window.height,
        lines=lines,
    )


def classify(
    theirs: pl.DataFrame, ours: pl.DataFrame, tolerances: Tolerances, start_us: int, end_us: int
) -> pl.DataFrame:
    """One line per call: matched pairs with their class, and the calls of one side only.

    ``theirs`` has the columns of :func:`pipeline.reference.carrier_cdrs.read_carrier_cdrs`,
    ``ours`` those of :func:`pipeline.storage.reconciliation.client_calls`; calls of ours
    outside ``[start_us, end_us)`` that match nothing are left out.
    """
    pairs = match_calls(theirs, ours, tolerances.time_us)
    their = theirs.select(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("_t"),
        pl.col(ROW).alias("their_row"),
        pl.col("callee").alias("_their_callee"),
        their_call_id="call_id",
        their_start_text="start_text",
        their_start_us="start_us",
        their_duration_ms="duration_ms",
        their_amount_units="amount_units",
        their_currency="currency",
        their_caller="caller",
    )
    our = ours.select(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("_o"),
        pl.col("callee").alias("_our_callee"),
        our_cdr_id="cdr_id",
        our_start_us="start_us",
        our_duration_ms="duration_ms",
        our_billed_seconds="billed_seconds",
        our_amount_units="amount_units",
        our_currency="currency",
        our_status="status",
    )
    matched = pairs.join(their, on="_t").join(our, on="_o")
    only_theirs = their.join(pairs, on="_t", how="anti").with_columns(_o=pl.lit(None, pl.Int64))
    only_ours = (
        our.join(pairs, on="_o", how="anti")
        .filter(pl.col("our_start_us").is_between(start_us, end_us, closed="left"))
        .with_columns(_t=pl.lit(None, pl.Int64))
    )
    lines = pl.concat([matched, only_theirs, only_ours], how="diagonal")
    has_amount = pl.col("their_amount_units").is_not_null()
    ours_priced = pl.col("our_amount_units").is_not_null()
    same_currency = pl.col("their_currency") == pl.col("our_currency")
    pair = pl.col("_t").is_not_null() & pl.col("_o").is_not_null()
    comparable = pair & has_amount & ours_priced & same_currency
    diff = (pl.col("their_amount_units") - pl.col("our_amount_units")).cast(_I128)
    num = pl.lit(tolerances.amount.numerator, dtype=_I128)
    den = pl.lit(tolerances.amount.denominator, dtype=_I128)
    beyond = diff.abs() * den > num * pl.col("our_amount_units").cast(_I128).abs()
    amount_differs = pair & has_amount & (~ours_priced | ~same_currency | beyond)
    duration_differs = pair & (
        (pl.col("their_duration_ms") - pl.col("our_duration_ms")).abs() > tolerances.duration_ms
    )
    lines = lines.with_columns(
        amount_diff_units=pl.when(comparable).then(diff.cast(pl.Int64)),
        _amount=amount_differs,
        _duration=duration_differs,
    )
    return lines.select(
        pl.when(pl.col("_o").is_null())
        .then(pl.lit("only_in_theirs"))
        .when(pl.col("_t").is_null())
        .then(pl.lit("only_in_ours"))
        .when(pl.col("_amount") & pl.col("_duration"))
        .then(pl.lit("duration_and_amount_difference"))
        .when(pl.col("_amount"))
        .then(pl.lit("amount_difference"))
        .when(pl.col("_duration"))
        .then(pl.lit("duration_difference"))
        .otherwise(pl.lit("matched"))
        .alias("class"),
        pl.when(pair & has_amount & ~ours_priced)
        .then(pl.format("our client leg has no amount (status {})", pl.col("our_status")))
        .when(pair & has_amount & ours_priced & ~same_currency)
        .then(pl.lit("currencies differ: amounts not compared"))
        .alias("note"),
        pl.coalesce("_their_callee", "_our_callee").alias("callee"),
        "their_row",
        "their_call_id",
        "our_cdr_id",
        "their_start_text",
        "their_start_us",
        "our_start_us",
        "their_duration_ms",
        "our_duration_ms",
        "our_billed_seconds",
        "their_amount_units",
        "our_amount_units",
        "amount_diff_units",
        "their_currency",
        "our_currency",
        "their_caller",
    )


def _text(units: pl.Expr, decimals: int) -> pl.Expr:
    """Integer units of 10**-decimals (Int128) as exact decimal text: ``-0.0123``, ``61``."""
    scale = pl.lit(10**decimals, dtype=_I128)
    magnitude = units.cast(_I128).abs()
    whole = (magnitude // scale).cast(pl.String)
    fraction = (magnitude % scale).cast(pl.String).str.zfill(decimals).str.strip_chars_end("0")
    text = (
        pl.when(fraction == "").then(whole).otherwise(pl.concat_str(whole, pl.lit("."), fraction))
    )
    return pl.when(units < 0).then(pl.concat_str(pl.lit("-"), text)).otherwise(text)
