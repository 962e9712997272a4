"""Months in an account's time zone, and the order periods close and reopen in."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from pipeline.storage.periods import (
    ClosedChain,
    PeriodError,
    month_bounds,
    next_period,
    parse_period,
    refuse_close,
    refuse_reopen,
)
from pipeline.storage.statements import Window


def test_a_month_in_auckland_and_new_york_follows_each_zone_s_dst() -> None:
    # Auckland: NZDT (+13) on 1 March, NZST (+12) from 5 April 2026.
    assert month_bounds("2026-03", "Pacific/Auckland") == (
        datetime(2026, 2, 28, 11, tzinfo=UTC),
        datetime(2026, 3, 31, 11, tzinfo=UTC),
    )
    assert month_bounds("2026-04", "Pacific/Auckland") == (
        datetime(2026, 3, 31, 11, tzinfo=UTC),
        datetime(2026, 4, 30, 12, tzinfo=UTC),
    )
    # New York: EST (-5) on 1 March, EDT (-4) from 8 March.
    assert month_bounds("2026-03", "America/New_York") == (
        datetime(2026, 3, 1, 5, tzinfo=UTC),
        datetime(2026, 4, 1, 4, tzinfo=UTC),
    )
    assert month_bounds("2026-12", "UTC") == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )


def test_a_date_window_is_read_in_the_zone() -> None:
    window = Window(start=date(2026, 3, 7), end=date(2026, 3, 9))
    assert window.label == "2026-03-07..2026-03-09"
    assert window.bounds("America/New_York") == (
        datetime(2026, 3, 7, 5, tzinfo=UTC),
        datetime(2026, 3, 9, 4, tzinfo=UTC),
    )


@pytest.mark.parametrize("text", ["2026-3", "2026-13", "2026-00", "26-03", "2026-03-01", ""])
def test_a_period_is_a_month(text: str) -> None:
    with pytest.raises(ValueError, match="is not a period YYYY-MM"):
        parse_period(text)


def test_next_period_crosses_the_year() -> None:
    assert next_period("2026-12") == "2027-01"
    assert next_period("2026-03") == "2026-04"


def test_periods_close_in_order_and_reopen_from_the_last() -> None:
    chain = ClosedChain()
    refuse_close(chain, "2025-11")  # the first close may be any month
    chain = chain.with_close("2026-02", "a").with_close("2026-03", "b")
    refuse_close(chain, "2026-04")
    with pytest.raises(PeriodError, match="cannot be closed before 2026-04"):
        refuse_close(chain, "2026-05")
    with pytest.raises(PeriodError, match="reopen 2026-03 first"):
        refuse_close(chain, "2026-01")
    refuse_reopen(chain, "2026-03")
    with pytest.raises(PeriodError, match="not the last closed period: reopen 2026-03 first"):
        refuse_reopen(chain, "2026-02")
    with pytest.raises(PeriodError, match="2026-04 is not closed"):
        refuse_reopen(chain, "2026-04")
    assert chain.close_id("2026-02") == "a"
    assert chain.close_id("2026-04") is None
