"""Decoding and validation of ``cdr.v1`` JSON messages, a whole batch at a time.

Bad input is data: :func:`decode_cdrs` splits a batch into validated CDR rows and rejected rows
with a machine-readable reason, and never raises for anything a message holds, whatever its
size, depth, encoding or types.

First, the screen (:mod:`pipeline.rating.screen`) refuses what is too large and judges on its
own every message polars might read differently from the contract (wrong JSON types, a field
given twice, escaped names, bytes that are not UTF-8, deep nesting).

The rest is parsed by one ``polars.read_ndjson`` call. Messages that do not look like a JSON
object at their two ends (the usual malformed lines) are found with numpy and checked on their
own first; when the read of the others still fails, every message is checked on its own
(msgspec) to find the culprits, and the rest is parsed by polars as before. So a message is
accepted or rejected the same way whatever batch it arrives in. Sizes, nesting, text lengths,
durations and timestamps have bounds (:mod:`pipeline.rating.cdr_contract`, documented in
``docs/rating-rules.md``), and a rejection's detail is cut to ``MAX_DETAIL_CHARS``.

Cost, per 100,000 clean CDRs on one core here: the screen ~95 ms, the read ~180 ms (the join
included), the checks ~85 ms, of which ~35 ms for the three timestamps
(:mod:`pipeline.rating.timeparse`).
"""

from __future__ import annotations

import io
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

import msgspec
import numpy as np
import numpy.typing as npt
import polars as pl

from pipeline.prefix_trie.deck_index import MAX_DIGITS
from pipeline.rating.cdr_contract import (
    BOUNDED_TEXT,
    CDR_SCHEMA,
    DECODED_SCHEMA,
    DISPOSITIONS,
    DURATION_SLACK_MS,
    EARLIEST,
    INT64_MAX,
    LATEST,
    MAX_DETAIL_CHARS,
    MAX_DURATION_MS,
    MAX_NESTING,
    MAX_TEXT_CHARS,
    REQUIRED_TEXT,
)
from pipeline.rating.message_block import MessageBlock
from pipeline.rating.screen import EMPTY, exact_problem, screen
from pipeline.rating.timeparse import parse_rfc3339_series

_SHOWN = 64  # characters of a value quoted in a rejection's detail


@dataclass(frozen=True, eq=False)
class DecodedBatch:
    """A batch split into valid CDRs and rejected messages.

    ``good`` has the columns of :data:`DECODED_SCHEMA`, the callee normalised to digits and the
    timestamps in UTC. ``rejected`` has ``position`` (index of the message in the input) and
    ``reason`` (``code:field`` items joined by ``;``) and ``detail`` (human-readable).
    """

    good: pl.DataFrame
    rejected: pl.DataFrame


def screen_out(messages: Sequence[bytes]) -> list[tuple[int, str, str]]:
    """The messages the screen refuses: (position, reason, detail), the first step of decoding.

    Too large ones, and the suspects that are indeed wrong at the JSON level (see
    :mod:`pipeline.rating.screen`). A separate step so that it can run on another thread than
    the rest of :func:`decode_cdrs` (see :mod:`pipeline.services.read_ahead`).
    """
    refused, suspects = screen(messages)
    for position in suspects:
        problem = exact_problem(messages[position])
        if problem is not None:
            refused.append((position, *problem))
    return refused


def decode_cdrs(
    messages: Sequence[bytes], screened_out: list[tuple[int, str, str]] | None = None
) -> DecodedBatch:
    """Decode and validate a batch of ``cdr.v1`` messages (one JSON object each).

    Never raises for anything a message holds: every message becomes a row of ``good`` or of
    ``rejected``. ``screened_out`` is :func:`screen_out` of ``messages`` when it was run
    already.
    """
    rejected = list(screen_out(messages) if screened_out is None else screened_out)
    if rejected:
        keep = np.ones(len(messages), dtype=np.bool_)
        keep[[position for position, _, _ in rejected]] = False
        kept = np.flatnonzero(keep).tolist()
        parsed, unreadable = _parse(_take(messages, kept))
        parsed = parsed.with_columns(
            pl.Series("position", kept, dtype=pl.Int64).gather(parsed["position"])
        )
        rejected += [(kept[i], reason, detail) for i, reason, detail in unreadable]
    else:
        parsed, rejected = _parse(messages)
    good, invalid = _validate(parsed)
    if rejected:
        rejected_frame = pl.DataFrame(
            rejected,
            schema={"position": pl.Int64, "reason": pl.String, "detail": pl.String},
            orient="row",
        ).with_columns(pl.col("detail").str.slice(0, MAX_DETAIL_CHARS))
        invalid = pl.concat([rejected_frame, invalid])
    return DecodedBatch(good=good, rejected=invalid.sort("position"))


def _take(messages: Sequence[bytes], positions: Sequence[int]) -> Sequence[bytes]:
    """The messages at ``positions``; from the same buffer when they are a block."""
    if isinstance(messages, MessageBlock):
        return messages.take(positions)
    return [messages[i] for i in positions]


def _joined(messages: Sequence[bytes]) -> bytes:
    """The messages joined by line breaks (a block's runs of lines are sliced, not rejoined)."""
    return messages.joined() if isinstance(messages, MessageBlock) else b"\n".join(messages)


def _lengths(messages: Sequence[bytes]) -> npt.NDArray[np.int64]:
    if isinstance(messages, MessageBlock):
        return messages.lengths()
    return np.fromiter(map(len, messages), dtype=np.int64, count=len(messages))


def _parse(messages: Sequence[bytes]) -> tuple[pl.DataFrame, list[tuple[int, str, str]]]:
    """Parse the messages into rows (with ``position``) and rejects (position, reason, detail).

    The usual batch is read whole, as it is, by one ``read_ndjson`` call. A message that does
    not start with ``{`` and end with ``}`` (a blank one, an array, a scalar, a cut-off or
    foreign line: the usual malformed ones) is found from the joined bytes without a Python
    loop and judged on its own first (:func:`_isolated_odd_ones`). Only when the read of the
    rest still fails or cannot be trusted to give message ``i`` as row ``i`` (see
    :func:`_read_as_is`) are all the messages looked at one by one.
    """
    if not messages:
        return pl.DataFrame(schema={**CDR_SCHEMA, "position": pl.Int64()}), []
    # A block is looked at where it lies; joined only when read (once).
    joined = None if isinstance(messages, MessageBlock) else b"\n".join(messages)
    try:
        isolated = _isolated_odd_ones(messages, joined)
    except pl.exceptions.PolarsError:  # more is wrong than the odd messages: one by one
        isolated, frame, unreadable = None, None, True
    else:
        if isolated is not None:
            return isolated
        try:
            frame = _read_as_is(messages, joined)
            unreadable = False
        except pl.exceptions.PolarsError:
            frame, unreadable = None, True
    if frame is not None:
        return frame.with_columns(pl.int_range(frame.height, dtype=pl.Int64).alias("position")), []
    if not unreadable:
        # polars read it, but a blank message or a line break inside one moved rows around:
        # set the blank messages aside and read the others again (line breaks as spaces).
        rejected = [(i, *EMPTY) for i, message in enumerate(messages) if not message.strip()]
        blank = {position for position, _, _ in rejected}
        positions = [i for i in range(len(messages)) if i not in blank]
        try:
            frame = _read([messages[i] for i in positions])
            return frame.with_columns(pl.Series("position", positions, dtype=pl.Int64)), rejected
        except pl.exceptions.PolarsError:
            pass
    # Some message is not CDR JSON: find which with msgspec, read the rest with polars.
    problems = [_json_problem(message) for message in messages]
    rejected = [(i, *problem) for i, problem in enumerate(problems) if problem is not None]
    positions = [i for i, problem in enumerate(problems) if problem is None]
    frames = _read_isolating([messages[i] for i in positions], positions, rejected)
    frame = (
        pl.concat(frames) if frames else pl.DataFrame(schema={**CDR_SCHEMA, "position": pl.Int64()})
    )
    return frame, rejected


_OPEN_BRACE = ord("{")
_CLOSE_BRACE = ord("}")
_QUOTE = ord('"')
_COMMA = ord(",")


def _isolated_odd_ones(
    messages: Sequence[bytes], joined: bytes | None
) -> tuple[pl.DataFrame, list[tuple[int, str, str]]] | None:
    """The batch parsed with its odd messages judged alone; None to take the usual way.

    A message is odd when it does not start with ``{"``, or does not end with ``}``, or ends
    with ``,}`` (found from ``joined``, the messages joined by line breaks, with numpy; a CDR
    printed by any JSON writer is not odd, the usual malformed lines are). Each odd one is
    checked by :func:`_json_problem`, the check the one-by-one way applies to every message;
    those with a problem are rejected with it, and the rest of the batch is read by polars in
    one call. None (the caller goes on as before) when no odd message has a problem; raises
    ``PolarsError`` when the rest does not read either (the caller then judges every message
    one by one, exactly as without this step). So a batch whose only bad messages are odd
    costs one read and a check of its odd messages instead of a failed read, a check of every
    message and a second read.
    """
    count = len(messages)
    lengths = _lengths(messages)
    if isinstance(messages, MessageBlock):  # the messages where they lie in their buffer
        data = np.frombuffer(messages.data, dtype=np.uint8)
        ends = messages.ends
    else:  # where the line break after each message is (or would be) in ``joined``
        data = np.frombuffer(joined or b"", dtype=np.uint8)
        ends = np.cumsum(lengths + 1) - 1
    if len(data) == 0:
        return None
    starts = np.minimum(ends - lengths, len(data) - 1)
    first, second = data[starts], data[np.minimum(starts + 1, len(data) - 1)]
    last, before_last = data[np.maximum(ends - 1, 0)], data[np.maximum(ends - 2, 0)]
    odd = np.flatnonzero(
        (lengths < 2)
        | (first != _OPEN_BRACE)
        | (second != _QUOTE)
        | (last != _CLOSE_BRACE)
        | (before_last == _COMMA)
    )
    if len(odd) == 0:
        return None
    rejected: list[tuple[int, str, str]] = []
    for position in odd.tolist():
        problem = _json_problem(messages[position])
        if problem is not None:
            rejected.append((position, *problem))
    if not rejected:
        return None
    dropped = [position for position, _, _ in rejected]
    keep = np.ones(count, dtype=np.bool_)
    keep[dropped] = False
    positions = np.flatnonzero(keep)
    if len(positions) == 0:
        return pl.DataFrame(schema={**CDR_SCHEMA, "position": pl.Int64()}), rejected
    if isinstance(messages, MessageBlock):
        rest_of_block = messages.take(positions)
        frame = _read(rest_of_block, rest_of_block.joined())
        return frame.with_columns(pl.Series("position", positions, dtype=pl.Int64)), rejected
    if joined is None:
        joined = _joined(messages)
    # The rest joined, cut from ``joined`` around the dropped messages (no per-message join).
    pieces, after = [], 0
    for position in dropped:
        pieces.append(joined[after : ends[position] - lengths[position]])
        after = ends[position] + 1
    pieces.append(joined[after:])
    rest = b"".join(pieces)
    if rest.endswith(b"\n") and not keep[-1]:
        rest = rest[:-1]  # the last message was dropped: no line break after the kept ones
    frame = _read(_take(messages, positions.tolist()), rest)
    return frame.with_columns(pl.Series("position", positions, dtype=pl.Int64)), rejected


def _read_as_is(messages: Sequence[bytes], joined: bytes | None = None) -> pl.DataFrame | None:
    """The messages joined by line breaks and read by polars; None if rows may not be messages.

    polars skips blank lines, and a line break inside a message makes more lines. Row ``i`` is
    message ``i`` when the row count equals the message count and no message is blank (then no
    message gave no row, so none gave two); "every message starts with ``{``" is the cheap test
    for "none is blank" (a few ms per 100,000, where counting line breaks took ~20).
    Raises ``PolarsError`` when polars cannot read the batch.
    """
    if joined is None:
        joined = _joined(messages)
    frame = pl.read_ndjson(io.BytesIO(joined), schema=CDR_SCHEMA)
    if frame.height != len(messages):
        return None
    if isinstance(messages, MessageBlock):
        data = np.frombuffer(messages.data, dtype=np.uint8)
        lengths = messages.lengths()
        if not len(data) or not (lengths > 0).all():
            return None
        return frame if (data[messages.starts] == _OPEN_BRACE).all() else None
    try:
        first_bytes = set(map(operator.itemgetter(0), messages))
    except IndexError:  # an empty message
        return None
    return frame if first_bytes == {_OPEN_BRACE} else None


def _read(lines: Sequence[bytes], joined: bytes | None = None) -> pl.DataFrame:
    """Read non-blank lines that are each one JSON value; row ``i`` is line ``i``.

    A raw line break inside a line can only be whitespace between JSON tokens: when one breaks
    the read, it is made a space and the lines are read again. ``joined``, when given, is the
    lines joined by line breaks. Raises ``PolarsError``.
    """
    if joined is None:
        joined = _joined(lines)
    try:
        frame = pl.read_ndjson(io.BytesIO(joined), schema=CDR_SCHEMA)
        if frame.height == len(lines):
            return frame
    except pl.exceptions.PolarsError:
        if joined.count(b"\n") == len(lines) - 1:
            raise
    joined = b"\n".join(line.replace(b"\r", b" ").replace(b"\n", b" ") for line in lines)
    return pl.read_ndjson(io.BytesIO(joined), schema=CDR_SCHEMA)


def _read_isolating(
    lines: list[bytes], positions: list[int], rejects: list[tuple[int, str, str]]
) -> list[pl.DataFrame]:
    """Read with polars; if it still fails, halve until the failing lines are isolated."""
    if not lines:
        return []
    try:
        frame = _read(lines)
        return [frame.with_columns(pl.Series("position", positions, dtype=pl.Int64))]
    except pl.exceptions.PolarsError as exc:
        if len(lines) == 1:
            rejects.append((positions[0], "not_json", str(exc).splitlines()[0][:200]))
            return []
    half = len(lines) // 2
    return _read_isolating(lines[:half], positions[:half], rejects) + _read_isolating(
        lines[half:], positions[half:], rejects
    )


class _IntegerFields(msgspec.Struct):
    """The JSON-level shape polars needs of a message: an object with integer number fields."""

    duration_ms: Annotated[int, msgspec.Meta(ge=-INT64_MAX, le=INT64_MAX)] | None = None
    sip_code: Annotated[int, msgspec.Meta(ge=-INT64_MAX, le=INT64_MAX)] | None = None


_SHAPE = msgspec.json.Decoder(_IntegerFields)
_AT_FIELD = re.compile(r"at `\$\.([a-z_]+)`")


def _json_problem(line: bytes) -> tuple[str, str] | None:
    """Why a line cannot be a ``cdr.v1`` object at the JSON level, or None if it can.

    msgspec checks the JSON syntax and the integer fields' types without building the object
    (about a microsecond a line), so a batch with bad lines is still decoded quickly.
    """
    try:
        _SHAPE.decode(line)
    except RecursionError:  # the screen keeps deep messages away; never let one through
        return "too_deep", f"nested more than {MAX_NESTING} levels deep"
    except msgspec.ValidationError as exc:
        text = str(exc)
        field = _AT_FIELD.search(text)
        if field is None:
            return "not_object", f"not a JSON object: {text}"
        return f"invalid:{field.group(1)}", f"{field.group(1)}: {text}"
    except msgspec.DecodeError as exc:
        if not line.strip():
            return EMPTY
        return "not_json", f"not JSON: {exc}"
    return None


def normalise_callee(callee: pl.Expr) -> pl.Expr:
    """Strip spaces and dashes, then one leading ``+`` or ``00`` (DESIGN.md section 3)."""
    return callee.str.replace_all(r"[ \-]", "").str.replace(r"^(\+|00)", "")


def _shown(column: str) -> pl.Expr:
    """A value as quoted in a rejection's detail: cut to ``_SHOWN`` characters, length said."""
    value = pl.col(column)
    return (
        pl.when(value.str.len_chars() > _SHOWN)
        .then(pl.format("{}... ({} characters)", value.str.slice(0, _SHOWN), value.str.len_chars()))
        .otherwise(value)
    )


def _validate(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Apply the field rules of DESIGN.md section 3 to parsed rows; split good from rejected."""
    typed = frame.with_columns(
        normalise_callee(pl.col("callee")).alias("_callee"),
        parse_rfc3339_series(frame["start_time"]).alias("_start"),
        parse_rfc3339_series(frame["answer_time"]).alias("_answer"),
        parse_rfc3339_series(frame["end_time"]).alias("_end"),
    )
    checks: list[tuple[pl.Expr, str, pl.Expr | str]] = []
    for field in REQUIRED_TEXT:
        checks.append((pl.col(field).is_null(), f"missing:{field}", f"{field} is missing or null"))
        checks.append((pl.col(field) == "", f"empty:{field}", f"{field} is empty"))
    checks += [
        (
            pl.col(field).str.len_bytes() > MAX_TEXT_CHARS,
            f"too_long:{field}",
            pl.format(
                "{} is {} bytes long, more than " + str(MAX_TEXT_CHARS),
                pl.lit(field),
                pl.col(field).str.len_bytes(),
            ),
        )
        for field in (*BOUNDED_TEXT, "caller")
    ]
    checks += [
        (
            pl.col("reseller_id") == "",
            "empty:reseller_id",
            "reseller_id is empty (use null for none)",
        ),
        (
            pl.col("callee").is_not_null()
            & (pl.col("callee") != "")
            & ~pl.col("_callee").str.contains(rf"^[0-9]{{3,{MAX_DIGITS}}}$"),
            "invalid:callee",
            pl.format("callee {} is not 3 to 15 digits after normalisation", _shown("callee")),
        ),
    ]
    for field, column in (
        ("start_time", "_start"),
        ("answer_time", "_answer"),
        ("end_time", "_end"),
    ):
        given = pl.col(field).is_not_null()
        if field != "answer_time":
            given = given & (pl.col(field) != "")
        checks += [
            (
                given & pl.col(column).is_null(),
                f"invalid:{field}",
                pl.format(field + " {} is not an RFC 3339 timestamp", _shown(field)),
            ),
            (
                (pl.col(column) < EARLIEST) | (pl.col(column) >= LATEST),
                f"out_of_range:{field}",
                pl.format(
                    field + " {} is not between " + f"{EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}",
                    _shown(field),
                ),
            ),
        ]
    call_ms = (pl.col("_end") - pl.col("_start")).dt.total_milliseconds()
    checks += [
        (pl.col("_end") < pl.col("_start"), "invalid:end_time", "end_time is before start_time"),
        (pl.col("duration_ms").is_null(), "missing:duration_ms", "duration_ms is missing or null"),
        (
            pl.col("duration_ms") < 0,
            "invalid:duration_ms",
            pl.format("duration_ms {} is negative", pl.col("duration_ms")),
        ),
        (
            pl.col("duration_ms") > MAX_DURATION_MS,
            "out_of_range:duration_ms",
            pl.format(
                "duration_ms {} is more than " + f"{MAX_DURATION_MS} (7 days)",
                pl.col("duration_ms"),
            ),
        ),
        (
            (pl.col("duration_ms") <= MAX_DURATION_MS)
            & (pl.col("_end") >= pl.col("_start"))
            & (pl.col("duration_ms") > call_ms + DURATION_SLACK_MS),
            "invalid:duration_ms",
            pl.format(
                "duration_ms {} is longer than end_time - start_time ({} ms) by more than "
                + f"{DURATION_SLACK_MS} ms",
                pl.col("duration_ms"),
                call_ms,
            ),
        ),
        (
            pl.col("disposition").is_not_null() & ~pl.col("disposition").is_in(DISPOSITIONS),
            "invalid:disposition",
            pl.format(
                "disposition {} is not one of " + ", ".join(DISPOSITIONS), _shown("disposition")
            ),
        ),
        (
            pl.col("sip_code").is_not_null() & ~pl.col("sip_code").is_between(100, 699),
            "invalid:sip_code",
            pl.format("sip_code {} is not 100-699", pl.col("sip_code")),
        ),
    ]
    # Booleans for every row; reasons and details only for the few rows that fail.
    flags = [f"_bad{i}" for i in range(len(checks))]
    checked = typed.with_columns(
        [
            cond.fill_null(value=False).alias(flag)
            for (cond, _, _), flag in zip(checks, flags, strict=True)
        ]
    ).with_columns(_is_bad=pl.any_horizontal(flags))
    failing = checked.filter(pl.col("_is_bad"))
    rejected = failing.select(
        "position",
        reason=pl.concat_list(
            [
                pl.when(pl.col(flag)).then(pl.lit(code))
                for (_, code, _), flag in zip(checks, flags, strict=True)
            ]
        )
        .list.drop_nulls()
        .list.join(";"),
        detail=pl.concat_list(
            [
                pl.when(pl.col(flag)).then(
                    detail if isinstance(detail, pl.Expr) else pl.lit(detail)
                )
                for (_, _, detail), flag in zip(checks, flags, strict=True)
            ]
        )
        .list.drop_nulls()
        .list.join("; "),
    )
    good = (
        checked.filter(~pl.col("_is_bad"))
        .select(
            *[
                pl.col(name)
                for name in CDR_SCHEMA
                if name not in {"callee", "start_time", "answer_time", "end_time"}
            ],
            callee=pl.col("_callee"),
            start_time=pl.col("_start"),
            answer_time=pl.col("_answer"),
            end_time=pl.col("_end"),
            position=pl.col("position"),
        )
        .select(list(DECODED_SCHEMA))
    )
    return good, rejected
