"""RFC 3339 parsing: the fixed-width reader agrees with the general reader it stands in for.

The general reader (strict pattern + chrono) defines what is valid; the fixed-width reader only
takes over the common forms for speed. Both are run on the same generated texts, valid and
nearly valid, in batches (the fixed-width reader groups texts by layout, so a batch mixes them).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.rating.timeparse import (
    fixed_width_micros,
    parse_rfc3339,
    parse_rfc3339_general,
    parse_rfc3339_series,
)


def _general(texts: Sequence[str | None]) -> list[int | None]:
    frame = pl.DataFrame({"t": texts}, schema={"t": pl.String})
    return frame.select(parse_rfc3339_general(pl.col("t")).dt.epoch("us")).to_series().to_list()


def _parsed(texts: Sequence[str | None]) -> list[int | None]:
    series = pl.Series("t", texts, dtype=pl.String)
    return parse_rfc3339_series(series).dt.epoch("us").to_list()


def _covered(texts: Sequence[str | None]) -> list[int | None]:
    """The fixed-width reader's answer: microseconds where it covers the text, else None."""
    micros, covered = fixed_width_micros(pl.Series("t", texts, dtype=pl.String))
    return [int(m) if c else None for m, c in zip(micros.tolist(), covered.tolist(), strict=True)]


def _two(low: int, high: int) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(lambda v: f"{v:02d}")


_FRACTION = st.one_of(
    st.just(""),
    st.integers(1, 12).flatmap(lambda n: st.text("0123456789", min_size=n, max_size=n)),
).map(lambda digits: f".{digits}" if digits else "")
_ZONE = st.one_of(
    st.sampled_from(["Z", "z"]),
    st.tuples(st.sampled_from("+-"), _two(0, 25), _two(0, 61)).map(
        lambda t: f"{t[0]}{t[1]}:{t[2]}"
    ),
)
_TIMESTAMP = st.builds(
    lambda year, month, day, sep, hour, minute, second, fraction, zone: (
        f"{year:04d}-{month}-{day}{sep}{hour}:{minute}:{second}{fraction}{zone}"
    ),
    st.one_of(st.integers(0, 9999), st.sampled_from([1900, 2000, 2024, 2026, 2100, 2400])),
    _two(0, 13),
    st.one_of(_two(0, 32), st.sampled_from(["28", "29", "30", "31"])),
    st.sampled_from(["T", "t", " ", "_"]),
    _two(0, 25),
    _two(0, 61),
    st.one_of(_two(0, 61), st.sampled_from(["59", "60"])),
    _FRACTION,
    _ZONE,
)
# Nearly valid: one character replaced, removed or inserted (ASCII and non-ASCII digits too).
_NOISE = st.sampled_from([*"0123456789-:.+TtZz /\u0661\u00e9\x00", "", "00"])


@st.composite
def _near(draw: st.DrawFn) -> str:
    text: str = draw(_TIMESTAMP)
    at = draw(st.integers(0, len(text)))
    cut = draw(st.integers(0, 1))
    noise: str = draw(_NOISE)
    return text[:at] + noise + text[at + cut :]


_TEXTS = st.lists(st.one_of(_TIMESTAMP, _near(), st.none()), min_size=1, max_size=40)


@settings(max_examples=400, deadline=None)
@given(_TEXTS)
def test_the_fast_reader_agrees_with_the_general_reader(texts: list[str | None]) -> None:
    expected = _general(texts)
    assert _parsed(texts) == expected
    for text, fast, general in zip(texts, _covered(texts), expected, strict=True):
        if fast is not None:
            assert fast == general, text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-10T12:00:00Z", datetime(2026, 3, 10, 12, tzinfo=UTC)),
        ("2026-03-10t12:00:00.5z", datetime(2026, 3, 10, 12, 0, 0, 500_000, tzinfo=UTC)),
        ("2026-03-10T12:00:00.123456789+01:00", datetime(2026, 3, 10, 11, 0, 0, 123456, UTC)),
        ("2026-03-10T00:30:00-05:30", datetime(2026, 3, 10, 6, 0, tzinfo=UTC)),
        ("2024-02-29T00:00:00Z", datetime(2024, 2, 29, tzinfo=UTC)),
        ("2000-02-29T23:59:59.999999999Z", datetime(2000, 2, 29, 23, 59, 59, 999999, UTC)),
        # A leap second is read as the first second of the next minute (chrono's reading).
        ("2026-12-31T23:59:60Z", datetime(2027, 1, 1, tzinfo=UTC)),
        ("1969-12-31T23:59:59.9999999Z", datetime(1969, 12, 31, 23, 59, 59, 999999, UTC)),
    ],
)
def test_fixed_width_forms(text: str, expected: datetime) -> None:
    micros = round((expected - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1e6)
    assert _covered([text]) == [micros]
    assert _parsed([text]) == [micros] == _general([text])


@pytest.mark.parametrize(
    "text",
    [
        "2023-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-03-10T24:00:00Z",
        "2026-03-10T12:60:00Z",
        "2026-03-10T12:00:61Z",
        "2026-03-10T12:00:00+24:00",
        "2026-03-10T12:00:00+01:60",
        "2026-03-10 12:00:00Z",
        "2026-03-10T12:00:00",
        "2026-03-10T12:00:00.Z",
        "2026-03-10T12:00:00+0100",
        "\u0662026-03-10T12:00:00Z",
        "",
    ],
)
def test_invalid_texts_are_null(text: str) -> None:
    assert _covered([text]) == [None]
    assert _parsed([text]) == [None] == _general([text])


def test_long_fractions_go_to_the_general_reader() -> None:
    text = "2026-03-10T12:00:00.1234567891234Z"
    assert _covered([text]) == [None]
    assert _parsed([text]) == _general([text]) == [1_773_144_000_123_456]


def test_the_expression_keeps_nulls_and_order() -> None:
    texts = [None, "2026-03-10T12:00:00Z", "nope", "2026-03-10T12:00:00.1234567891Z", None]
    frame = pl.DataFrame({"t": texts}).with_columns(p=parse_rfc3339(pl.col("t")).dt.epoch("us"))
    assert frame["p"].to_list() == [None, 1_773_144_000_000_000, None, 1_773_144_000_123_456, None]
    assert frame.schema["p"] == pl.Int64


def test_a_sliced_and_chunked_series_is_read_where_it_starts() -> None:
    texts = [f"2026-03-10T12:00:0{i}Z" for i in range(10)]
    series = pl.concat([pl.Series("t", texts[:4]), pl.Series("t", texts[4:])], rechunk=False)
    assert _parsed(texts) == parse_rfc3339_series(series).dt.epoch("us").to_list()
    sliced = series.slice(3, 5)
    assert parse_rfc3339_series(sliced).dt.epoch("us").to_list() == _general(texts[3:8])
