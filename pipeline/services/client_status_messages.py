"""What a ``client-status.v1`` message must be, judged without ever raising.

The value is one JSON object ``{"client_id": str, "tenant_id": str, "online": bool, "at": RFC
3339}`` and the key is its ``client_id`` (the topic is compacted by it). Unknown extra fields are
ignored. :func:`decode_status` turns any key and value into a :class:`ClientStatus`, a
:class:`Refusal` whose ``reason`` names the field (the vocabulary of the CDR decoder,
docs/rating-rules.md), or None for a tombstone (a null value, as compaction leaves).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipeline.json_bounds import nesting_depth
from pipeline.rating.cdr_contract import (
    EARLIEST,
    LATEST,
    MAX_MESSAGE_BYTES,
    MAX_NESTING,
    MAX_TEXT_CHARS,
)
from pipeline.rating.timeparse import parse_instant
from pipeline.storage.client_status import ClientStatus

FIELDS = ("client_id", "tenant_id", "online", "at")
_IDS = ("client_id", "tenant_id")
_MAX_DETAIL_CHARS = 500


@dataclass(frozen=True)
class Refusal:
    """Why a message is not a status event: ``reason`` for machines (``;``-joined), ``detail``."""

    reason: str
    detail: str


class _Object(dict[str, Any]):
    """A JSON object that remembers which of its names were given more than once."""

    duplicates: set[str]


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    made = _Object(pairs)
    made.duplicates = {name for name, n in Counter(n for n, _ in pairs).items() if n > 1}
    return made


def _no_constants(name: str) -> Any:
    msg = f"{name} is not JSON"
    raise ValueError(msg)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 64 else f"{text[:64]}... ({len(text)} characters)"


def decode_status(value: bytes | None, key: bytes | None) -> ClientStatus | Refusal | None:
    """The status event of one message, a refusal naming what is wrong, or None (tombstone)."""
    if value is None:
        return None
    return _guarded(value, key, keyed=True)


def decode_status_line(line: bytes) -> ClientStatus | Refusal:
    """The status event of one line of a JSONL file (no key: the command keys it on publish)."""
    return _guarded(line, None, keyed=False)


def _guarded(value: bytes, key: bytes | None, *, keyed: bool) -> ClientStatus | Refusal:
    try:
        return _decode(value, key, keyed=keyed)
    except Exception as exc:  # a case nobody foresaw: a dead letter, never a stopped ingest
        return Refusal(f"internal:{type(exc).__name__}", str(exc)[:_MAX_DETAIL_CHARS])


def _decode(value: bytes, key: bytes | None, *, keyed: bool) -> ClientStatus | Refusal:
    if not value.strip():
        return Refusal("empty", "the message is empty")
    if len(value) > MAX_MESSAGE_BYTES:
        return Refusal("too_large", f"{len(value)} bytes, more than {MAX_MESSAGE_BYTES}")
    if nesting_depth(value) > MAX_NESTING:
        return Refusal("too_deep", f"JSON nested more than {MAX_NESTING} levels deep")
    try:
        data = json.loads(value, object_pairs_hook=_object, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        return Refusal("not_json", f"not JSON: {str(exc)[:200]}")
    if not isinstance(data, _Object):
        return Refusal("not_object", f"a JSON object is required, not {_shown(data)}")
    reasons: list[str] = []
    details: list[str] = []

    def refuse(reason: str, detail: str) -> None:
        reasons.append(reason)
        details.append(detail)

    for name in FIELDS:
        if name in data.duplicates:
            refuse(f"duplicate:{name}", f"{name} given more than once")
    texts: dict[str, str] = {}
    for name in _IDS:
        text = data.get(name)
        if text is None:
            refuse(f"missing:{name}", f"{name} is required")
        elif not isinstance(text, str):
            refuse(f"invalid:{name}", f"{name} {_shown(text)} is not a JSON string")
        elif not text.strip():
            refuse(f"empty:{name}", f"{name} is empty")
        elif not _utf8(text):
            refuse(f"invalid:{name}", f"{name} {_shown(text)} is not valid Unicode text")
        elif len(text.encode()) > MAX_TEXT_CHARS:
            refuse(f"too_long:{name}", f"{name} is longer than {MAX_TEXT_CHARS} bytes")
        else:
            texts[name] = text
    online = data.get("online")
    if online is None:
        refuse("missing:online", "online is required (true or false)")
    elif not isinstance(online, bool):
        refuse("invalid:online", f"online {_shown(online)} is not a JSON true or false")
    at = _instant(data.get("at"), refuse)
    client_id = texts.get("client_id")
    if client_id is not None and keyed:
        if key is None:
            refuse("missing:key", "the message has no key (it must be the client_id)")
        elif key != client_id.encode():
            refuse("invalid:key", f"key {_shown(key)} is not the client_id {_shown(client_id)}")
    if reasons:
        return Refusal(";".join(reasons), "; ".join(details)[:_MAX_DETAIL_CHARS])
    assert client_id is not None
    assert isinstance(online, bool)
    assert at is not None
    return ClientStatus(texts["tenant_id"], client_id, online, at)


def _instant(text: object, refuse: Callable[[str, str], None]) -> datetime | None:
    if text is None:
        refuse("missing:at", "at is required (RFC 3339, like 2026-03-01T12:00:00Z)")
        return None
    if not isinstance(text, str):
        refuse("invalid:at", f"at {_shown(text)} is not a JSON string")
        return None
    parsed = parse_instant(text)
    if parsed is None:
        refuse("invalid:at", f"at {_shown(text)} is not an RFC 3339 timestamp")
        return None
    if not EARLIEST <= parsed < LATEST:
        refuse("out_of_range:at", f"at {_shown(text)} is not in 2000-2099")
        return None
    return parsed


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate such as "\ud800"
        return False
    return True
