r"""The screen before polars reads a batch: what is too large, and what is *suspect*.

A message is suspect when polars might read it differently from the contract: a contract
string field whose value is not a JSON string (polars would take a number, array or object as
its text), an integer field whose value is not a plain integer, a contract field given twice
(polars keeps the first or fails, most readers keep the last), an escaped character (``\u``,
which could spell a field name), bytes that are not UTF-8, or more opening brackets than
:data:`~pipeline.rating.cdr_contract.MAX_NESTING` (deep nesting overflows recursive parsers).
Each suspect is judged exactly on its own (:func:`exact_problem`, which bounds the nesting
before it parses), so a message that is not suspect holds nothing on which polars and the
contract disagree.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from pipeline.json_bounds import nesting_depth
from pipeline.rating.cdr_contract import (
    INT64_MAX,
    INTEGER_FIELDS,
    MAX_MESSAGE_BYTES,
    MAX_NESTING,
    STRING_FIELDS,
)
from pipeline.rating.message_block import MessageBlock

#: Reason and detail of a blank message.
EMPTY = ("empty", "empty message")

_WS = r"[ \t\r\n]*"
_SCREEN_PATTERN = "|".join(
    [
        # A contract string field whose value is not a string (nor null).
        rf'"(?:{"|".join(STRING_FIELDS)})"{_WS}:{_WS}[^" \t\r\nn]',
        # An integer field whose value is not a plain integer of at most 18 digits (nor null):
        # polars refuses those when they come first, but not when they repeat a field.
        rf'"(?:{"|".join(INTEGER_FIELDS)})"{_WS}:{_WS}'
        r"(?:[^-0-9 \t\r\nn]|-?[0-9]{19}|-?[0-9]+[^0-9 \t\r\n,}])",
        # An escaped character, which could spell a field name.
        r"\\u",
        # A contract field given twice (polars would keep the first or fail, others the last).
        *(rf'"{name}"{_WS}:(?s:.*)"{name}"{_WS}:' for name in (*STRING_FIELDS, *INTEGER_FIELDS)),
    ]
)


def screen(messages: Sequence[bytes]) -> tuple[list[tuple[int, str, str]], list[int]]:
    """Refuse what is too large; list the messages polars might read unlike the contract.

    One vectorised pass over the batch (~0.9 us a message on one core here). A message is
    *suspect* when it is not UTF-8, has more opening brackets than :data:`MAX_NESTING` (so it
    may nest deeper), or matches :data:`_SCREEN_PATTERN`. Suspects are judged by
    :func:`exact_problem`; a message that is not suspect holds nothing on which polars and
    the contract disagree.
    """
    if not messages:
        return [], []
    if isinstance(messages, MessageBlock):  # a line feed after a message changes no flag
        binary = messages.with_line_feeds()
        sizes = pl.Series("size", messages.lengths(), dtype=pl.UInt32)
    else:
        binary = pl.Series("message", messages, dtype=pl.Binary)
        sizes = binary.bin.size()
    try:
        text = binary.cast(pl.String)
    except pl.exceptions.PolarsError:  # some message is not UTF-8: those are null, and suspect
        text = pl.Series("text", [_utf8_or_none(m) for m in messages], dtype=pl.String)
    flags = pl.DataFrame({"size": sizes, "text": text})
    large = flags["size"] > MAX_MESSAGE_BYTES
    refused: list[tuple[int, str, str]] = []
    if large.any():
        for position, size in flags.with_row_index().filter(large).select("index", "size").rows():
            refused.append((position, "too_large", f"{size} bytes, more than {MAX_MESSAGE_BYTES}"))
        flags = flags.with_columns(pl.when(~large).then(pl.col("text")))
    suspect = flags.select(
        ~large
        & (
            pl.col("text").is_null()
            | pl.col("text").str.contains(_SCREEN_PATTERN)
            | (pl.col("text").str.count_matches(r"[\[{]") > MAX_NESTING)
        )
    ).to_series()
    return refused, np.flatnonzero(suspect.to_numpy()).tolist()


def _utf8_or_none(message: bytes) -> str | None:
    try:
        return message.decode("utf-8")
    except UnicodeDecodeError:
        return None


_CONTRACT_FIELDS = frozenset((*STRING_FIELDS, *INTEGER_FIELDS))


def _no_constant(name: str) -> Any:
    msg = f"{name} is not a JSON number"
    raise ValueError(msg)


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def exact_problem(message: bytes) -> tuple[str, str] | None:
    """What is wrong with a suspect message at the JSON level, judged alone; None if nothing.

    Bounds the nesting before parsing (so no parser recurses deeply), then reads the message
    with the standard library and checks the contract fields of the top-level object: each at
    once at most, strings where strings are due, integers in Int64 where integers are due.
    """
    if not message.strip():
        return EMPTY
    try:
        text = message.decode("utf-8")
    except UnicodeDecodeError as exc:
        return "not_json", f"not UTF-8: byte {exc.start} is {message[exc.start]:#04x}"
    depth = nesting_depth(message)
    if depth > MAX_NESTING:
        return "too_deep", f"nested {depth} levels deep, more than {MAX_NESTING}"
    objects: list[list[tuple[str, Any]]] = []

    def keep_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        objects.append(pairs)
        return dict(pairs)

    try:
        value = json.loads(text, object_pairs_hook=keep_pairs, parse_constant=_no_constant)
    except ValueError as exc:  # JSONDecodeError and the constants NaN, Infinity
        return "not_json", f"not JSON: {exc}"
    if not isinstance(value, dict):
        return "not_object", f"not a JSON object but {_json_type(value)}"
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name, field in objects[-1]:  # the top-level object is the last one completed
        if name not in _CONTRACT_FIELDS:
            continue
        if name in seen:
            problems.append((f"duplicate:{name}", f"{name} is given more than once"))
            continue
        seen.add(name)
        if field is None:
            continue
        if name in INTEGER_FIELDS:
            if isinstance(field, bool) or not isinstance(field, int):
                problems.append(
                    (f"invalid:{name}", f"{name} is {_json_type(field)}, not an integer")
                )
            elif not -INT64_MAX <= field <= INT64_MAX:
                problems.append((f"invalid:{name}", f"{name} does not fit in 64 bits"))
        elif not isinstance(field, str):
            problems.append((f"invalid:{name}", f"{name} is {_json_type(field)}, not a string"))
    if not problems:
        return None
    return ";".join(code for code, _ in problems), "; ".join(detail for _, detail in problems)
