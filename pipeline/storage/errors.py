"""What a failed storage call means: retry it later, or stop and tell the operator what to fix.

Both stores raise the engine's own exceptions: the embedded store chdb's ``ChdbError`` (a
``RuntimeError`` whose text starts ``Code: NNN. DB::Exception: ...``), the server store
clickhouse-connect's ``DatabaseError`` family (the server's code in ``.code`` and its text in
the message) or an ``OperationalError`` when the HTTP request itself failed.
:func:`classify_store_error` reads the ClickHouse error code where there is one, else the HTTP
status, else the Python exception type, and says whether the same call can succeed later:

- ``TRANSIENT``: the server is unreachable, slow, overloaded, short of memory or parts merges,
  shutting down or waiting for Keeper or replicas. Pause, back off, resume.
- ``PERMANENT``: the schema, the SQL, the types or the credentials are wrong; the same call will
  fail the same way until someone changes something. Stop without committing, and say what to
  change (:func:`describe_store_error`).

An error this module does not recognise is classified ``TRANSIENT`` (retrying a permanent
error only costs time, stopping on a transient one stops rating), with
:attr:`StoreFailure.recognised` false so the caller can cap how long it retries it.

The codes are ClickHouse's (``src/Common/ErrorCodes.cpp``); the unit tests check every code and
name listed here against the engine's own ``errorCodeToName``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Final

__all__ = [
    "CLASSIFIED_CODES",
    "StoreErrorKind",
    "StoreFailure",
    "classify_store_error",
    "describe_store_error",
    "examine_store_error",
]


class StoreErrorKind(Enum):
    """Whether a failed storage call may succeed if it is made again later."""

    TRANSIENT = "transient"
    PERMANENT = "permanent"


class _Cause(Enum):
    """What went wrong, in the operator's words; decides the kind and the advice."""

    # permanent
    SCHEMA = "schema"
    TYPES = "types"
    SQL = "sql"
    AUTHENTICATION = "authentication"
    PRIVILEGES = "privileges"
    CLIENT = "client"
    # transient
    CONNECTION = "connection"
    TIMEOUT = "timeout"
    OVERLOAD = "overload"
    REPLICATION = "replication"
    SHUTDOWN = "shutdown"
    UNKNOWN = "unknown"


_PERMANENT_CAUSES: Final = frozenset(
    {
        _Cause.SCHEMA,
        _Cause.TYPES,
        _Cause.SQL,
        _Cause.AUTHENTICATION,
        _Cause.PRIVILEGES,
        _Cause.CLIENT,
    }
)

# ClickHouse error code -> (name, cause). Names as ErrorCodes.cpp spells them.
_CODES: Final[dict[int, tuple[str, _Cause]]] = {
    # The tables, columns or database the rater writes are missing or shaped differently.
    7: ("INCORRECT_NUMBER_OF_COLUMNS", _Cause.SCHEMA),
    8: ("THERE_IS_NO_COLUMN", _Cause.SCHEMA),
    10: ("NOT_FOUND_COLUMN_IN_BLOCK", _Cause.SCHEMA),
    16: ("NO_SUCH_COLUMN_IN_TABLE", _Cause.SCHEMA),
    20: ("NUMBER_OF_COLUMNS_DOESNT_MATCH", _Cause.SCHEMA),
    47: ("UNKNOWN_IDENTIFIER", _Cause.SCHEMA),
    60: ("UNKNOWN_TABLE", _Cause.SCHEMA),
    81: ("UNKNOWN_DATABASE", _Cause.SCHEMA),
    122: ("INCOMPATIBLE_COLUMNS", _Cause.SCHEMA),
    # A value does not fit the type of its column.
    6: ("CANNOT_PARSE_TEXT", _Cause.TYPES),
    25: ("CANNOT_PARSE_ESCAPE_SEQUENCE", _Cause.TYPES),
    26: ("CANNOT_PARSE_QUOTED_STRING", _Cause.TYPES),
    27: ("CANNOT_PARSE_INPUT_ASSERTION_FAILED", _Cause.TYPES),
    38: ("CANNOT_PARSE_DATE", _Cause.TYPES),
    41: ("CANNOT_PARSE_DATETIME", _Cause.TYPES),
    43: ("ILLEGAL_TYPE_OF_ARGUMENT", _Cause.TYPES),
    44: ("ILLEGAL_COLUMN", _Cause.TYPES),
    53: ("TYPE_MISMATCH", _Cause.TYPES),
    69: ("ARGUMENT_OUT_OF_BOUND", _Cause.TYPES),
    70: ("CANNOT_CONVERT_TYPE", _Cause.TYPES),
    72: ("CANNOT_PARSE_NUMBER", _Cause.TYPES),
    117: ("INCORRECT_DATA", _Cause.TYPES),
    321: ("VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE", _Cause.TYPES),
    349: ("CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN", _Cause.TYPES),
    376: ("CANNOT_PARSE_UUID", _Cause.TYPES),
    386: ("NO_COMMON_TYPE", _Cause.TYPES),
    407: ("DECIMAL_OVERFLOW", _Cause.TYPES),
    467: ("CANNOT_PARSE_BOOL", _Cause.TYPES),
    469: ("VIOLATED_CONSTRAINT", _Cause.TYPES),
    691: ("UNKNOWN_ELEMENT_OF_ENUM", _Cause.TYPES),
    # The server does not accept the statement the rater sent.
    36: ("BAD_ARGUMENTS", _Cause.SQL),
    46: ("UNKNOWN_FUNCTION", _Cause.SQL),
    48: ("NOT_IMPLEMENTED", _Cause.SQL),
    50: ("UNKNOWN_TYPE", _Cause.SQL),
    62: ("SYNTAX_ERROR", _Cause.SQL),
    73: ("UNKNOWN_FORMAT", _Cause.SQL),
    80: ("INCORRECT_QUERY", _Cause.SQL),
    115: ("UNKNOWN_SETTING", _Cause.SQL),
    344: ("SUPPORT_IS_DISABLED", _Cause.SQL),
    456: ("UNKNOWN_QUERY_PARAMETER", _Cause.SQL),
    457: ("BAD_QUERY_PARAMETER", _Cause.SQL),
    # Who the rater is.
    192: ("UNKNOWN_USER", _Cause.AUTHENTICATION),
    193: ("WRONG_PASSWORD", _Cause.AUTHENTICATION),
    194: ("REQUIRED_PASSWORD", _Cause.AUTHENTICATION),
    195: ("IP_ADDRESS_NOT_ALLOWED", _Cause.AUTHENTICATION),
    516: ("AUTHENTICATION_FAILED", _Cause.AUTHENTICATION),
    # What the rater's user may do.
    164: ("READONLY", _Cause.PRIVILEGES),
    291: ("DATABASE_ACCESS_DENIED", _Cause.PRIVILEGES),
    452: ("SETTING_CONSTRAINT_VIOLATION", _Cause.PRIVILEGES),
    472: ("READONLY_SETTING", _Cause.PRIVILEGES),
    497: ("ACCESS_DENIED", _Cause.PRIVILEGES),
    511: ("UNKNOWN_ROLE", _Cause.PRIVILEGES),
    512: ("SET_NON_GRANTED_ROLE", _Cause.PRIVILEGES),
    # The network between the rater and the server.
    95: ("CANNOT_READ_FROM_SOCKET", _Cause.CONNECTION),
    96: ("CANNOT_WRITE_TO_SOCKET", _Cause.CONNECTION),
    198: ("DNS_ERROR", _Cause.CONNECTION),
    203: ("NO_FREE_CONNECTION", _Cause.CONNECTION),
    210: ("NETWORK_ERROR", _Cause.CONNECTION),
    1000: ("POCO_EXCEPTION", _Cause.CONNECTION),
    # Too slow.
    159: ("TIMEOUT_EXCEEDED", _Cause.TIMEOUT),
    209: ("SOCKET_TIMEOUT", _Cause.TIMEOUT),
    1017: ("ASYNC_INSERT_FLUSH_TIMEOUT", _Cause.TIMEOUT),
    1019: ("QUERY_SLOT_ACQUISITION_TIMEOUT", _Cause.TIMEOUT),
    1020: ("MEMORY_RESERVATION_ACQUISITION_TIMEOUT", _Cause.TIMEOUT),
    # The server is busy or short of something it gets back by itself.
    173: ("CANNOT_ALLOCATE_MEMORY", _Cause.OVERLOAD),
    201: ("QUOTA_EXCEEDED", _Cause.OVERLOAD),
    202: ("TOO_MANY_SIMULTANEOUS_QUERIES", _Cause.OVERLOAD),
    241: ("MEMORY_LIMIT_EXCEEDED", _Cause.OVERLOAD),
    243: ("NOT_ENOUGH_SPACE", _Cause.OVERLOAD),
    252: ("TOO_MANY_PARTS", _Cause.OVERLOAD),
    364: ("RECEIVED_ERROR_TOO_MANY_REQUESTS", _Cause.OVERLOAD),
    373: ("SESSION_IS_LOCKED", _Cause.OVERLOAD),
    384: ("PART_IS_TEMPORARILY_LOCKED", _Cause.OVERLOAD),
    439: ("CANNOT_SCHEDULE_TASK", _Cause.OVERLOAD),
    473: ("DEADLOCK_AVOIDED", _Cause.OVERLOAD),
    574: ("DISTRIBUTED_TOO_MANY_PENDING_BYTES", _Cause.OVERLOAD),
    745: ("SERVER_OVERLOADED", _Cause.OVERLOAD),
    749: ("TCP_CONNECTION_LIMIT_REACHED", _Cause.OVERLOAD),
    762: ("HTTP_CONNECTION_LIMIT_REACHED", _Cause.OVERLOAD),
    # Keeper, replicas and shards.
    225: ("NO_ZOOKEEPER", _Cause.REPLICATION),
    242: ("TABLE_IS_READ_ONLY", _Cause.REPLICATION),
    244: ("UNEXPECTED_ZOOKEEPER_ERROR", _Cause.REPLICATION),
    254: ("NO_ACTIVE_REPLICAS", _Cause.REPLICATION),
    265: ("NO_AVAILABLE_REPLICA", _Cause.REPLICATION),
    279: ("ALL_CONNECTION_TRIES_FAILED", _Cause.REPLICATION),
    285: ("TOO_FEW_LIVE_REPLICAS", _Cause.REPLICATION),
    286: ("UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE", _Cause.REPLICATION),
    289: ("REPLICA_IS_NOT_IN_QUORUM", _Cause.REPLICATION),
    319: ("UNKNOWN_STATUS_OF_INSERT", _Cause.REPLICATION),
    369: ("ALL_REPLICAS_ARE_STALE", _Cause.REPLICATION),
    415: ("ALL_REPLICAS_LOST", _Cause.REPLICATION),
    519: ("NO_REMOTE_SHARD_AVAILABLE", _Cause.REPLICATION),
    999: ("KEEPER_EXCEPTION", _Cause.REPLICATION),
    # The server is stopping ("Server shutdown is called") or cancelled the query.
    236: ("ABORTED", _Cause.SHUTDOWN),
    394: ("QUERY_WAS_CANCELLED", _Cause.SHUTDOWN),
}

CLASSIFIED_CODES: Final[Mapping[int, tuple[str, StoreErrorKind]]] = MappingProxyType(
    {
        code: (
            name,
            StoreErrorKind.PERMANENT if cause in _PERMANENT_CAUSES else StoreErrorKind.TRANSIENT,
        )
        for code, (name, cause) in sorted(_CODES.items())
    }
)
"""Every ClickHouse error code classified here: code -> (name, kind). Others are unrecognised."""

_CODE_IN_TEXT: Final = re.compile(r"\bCode:\s*(\d+)")
_NAME_IN_TEXT: Final = re.compile(r"\(([A-Z][A-Z0-9_]+)\)")
_HTTP_STATUS: Final = re.compile(r"\bHTTP status (\d{3})\b")
_TABLE_MISSING: Final = re.compile(r"Table (\S+?) does(?:n't| not) exist")
_DATABASE_MISSING: Final = re.compile(r"Database (\S+?) does(?:n't| not) exist")
_COLUMN_MISSING: Final = re.compile(r"No such column (\S+) in table (\S+)")
_IDENTIFIER_MISSING: Final = re.compile(r"(?:Missing columns|identifier):? [`']?([^`'\s]+)")
_CONVERTING: Final = re.compile(r"while converting column (\S+) from type (\S+) to type (\S+?):?\s")
_CANNOT_PARSE: Final = re.compile(r"(Cannot parse (?:string )?'[^']{0,40}' as \w+)")
_SERVER_PREFIX: Final = re.compile(r"^.*?DB::Exception:\s*", re.DOTALL)
_TRAILERS: Final = re.compile(
    r"\s*\(version [^()]*(?:\([^()]*\)[^()]*)*\)|\s*\(for url [^)]*\)|\s*\([0-9a-f-]{36}\)"
)
_ERRNO: Final = re.compile(r"\[Errno -?\d+\] ([^\"'()\]]+)")
_URL: Final = re.compile(r"\((https?://[^)\s]+)\)")
_NAME_AT_END: Final = re.compile(r"[\s.:]*\([A-Z][A-Z0-9_]+\)[\s.]*$")
_MAX_DETAIL: Final = 160

_SETUP = "run `vmgate-rating setup` to apply the schema migrations"
_ADVICE: Final[dict[_Cause, str]] = {
    _Cause.SCHEMA: _SETUP,
    _Cause.TYPES: _SETUP + ", and check nobody altered the table's column types",
    _Cause.SQL: "the server refused the SQL the rater sent: check the server version is "
    "supported, else report this as a bug",
    _Cause.AUTHENTICATION: "check CLICKHOUSE_USER/CLICKHOUSE_PASSWORD (and the user's allowed "
    "hosts)",
    _Cause.PRIVILEGES: "grant the rater's user the vmgate_rater role, writable "
    "(`vmgate-rating schema --access` prints it)",
    _Cause.CLIENT: "the client library refused the call before sending it: report this as a bug",
    _Cause.CONNECTION: "cannot reach the store; retrying",
    _Cause.TIMEOUT: "the store did not answer in time; retrying",
    _Cause.OVERLOAD: "the store is busy; retrying",
    _Cause.REPLICATION: "the store waits for Keeper or replicas; retrying",
    _Cause.SHUTDOWN: "the store is stopping or cancelled the query; retrying",
    _Cause.UNKNOWN: "unrecognised store error; retrying for a while",
}


@dataclass(frozen=True)
class StoreFailure:
    """What a storage exception means.

    ``code`` and ``name`` are ClickHouse's error code and name when the exception carries one,
    ``http_status`` the HTTP status when the server store got an error answer without a
    ClickHouse code (a proxy, for example). ``recognised`` is false when nothing here knew the
    error: it is then ``TRANSIENT`` and the caller should stop retrying it after a while.
    ``message`` is one line for the operator (see :func:`describe_store_error`).
    """

    kind: StoreErrorKind
    code: int | None
    name: str | None
    http_status: int | None
    recognised: bool
    message: str


def classify_store_error(exc: BaseException) -> StoreErrorKind:
    """``PERMANENT`` if the same call will fail the same way, else ``TRANSIENT``.

    Unrecognised errors are ``TRANSIENT``; :func:`examine_store_error` says whether the error
    was recognised, so a caller can cap the retries of those.
    """
    return examine_store_error(exc).kind


def describe_store_error(exc: BaseException) -> str:
    """One line naming the problem and, for a permanent one, what to fix."""
    return examine_store_error(exc).message


def examine_store_error(exc: BaseException) -> StoreFailure:
    """Classify ``exc`` and describe it (see :class:`StoreFailure`)."""
    text = " ".join(str(exc).split())
    code = _code_of(exc, text)
    status = _status_of(text) if code is None else None
    name: str | None
    if code is not None and code in _CODES:
        name, cause = _CODES[code]
        recognised = True
    else:
        name = _name_of(text)
        cause = _cause_without_code(exc, status)
        recognised = cause is not _Cause.UNKNOWN
    kind = StoreErrorKind.PERMANENT if cause in _PERMANENT_CAUSES else StoreErrorKind.TRANSIENT
    return StoreFailure(
        kind, code, name, status, recognised, _message(exc, text, cause, code, name, status)
    )


def _code_of(exc: BaseException, text: str) -> int | None:
    """The ClickHouse error code: clickhouse-connect's ``.code``, else ``Code: N`` in the text."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        code = getattr(current, "code", None) if _from_clickhouse_connect(current) else None
        if isinstance(code, int):
            return code
        found = _CODE_IN_TEXT.search(str(current) if current is not exc else text)
        if found:
            return int(found.group(1))
        current = current.__cause__ or current.__context__
    return None


def _status_of(text: str) -> int | None:
    found = _HTTP_STATUS.search(text)
    return int(found.group(1)) if found else None


def _name_of(text: str) -> str | None:
    names = _NAME_IN_TEXT.findall(_TRAILERS.sub("", text))
    return str(names[-1]) if names else None


def _cause_without_code(exc: BaseException, status: int | None) -> _Cause:
    """Cause from the HTTP status or the exception type, for errors without a known code."""
    if status is not None:
        if status in (401, 403, 407):
            return _Cause.AUTHENTICATION
        if status in (408, 429) or 500 <= status <= 599:
            return _Cause.OVERLOAD if status in (429, 503) else _Cause.CONNECTION
        return _Cause.UNKNOWN
    if _chain_has(exc, TimeoutError):
        return _Cause.TIMEOUT
    if _chain_has(exc, OSError):  # ConnectionError, refused, reset, unreachable...
        return _Cause.CONNECTION
    if _from_clickhouse_connect(exc):
        names = {cls.__name__ for cls in type(exc).__mro__}
        if "OperationalError" in names:  # the HTTP request failed: no answer from the server
            return _Cause.CONNECTION
        if "DataError" in names:  # e.g. None in a non-Nullable column, refused before sending
            return _Cause.TYPES
        if names & {"ProgrammingError", "NotSupportedError"}:
            return _Cause.CLIENT  # refused by the client library before anything was sent
    return _Cause.UNKNOWN


def _from_clickhouse_connect(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("clickhouse_connect.")


def _chain_has(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _message(
    exc: BaseException,
    text: str,
    cause: _Cause,
    code: int | None,
    name: str | None,
    status: int | None,
) -> str:
    what = _what(text, cause)
    tag = name or type(exc).__name__
    if code is not None:
        tag = f"{tag}, code {code}"
    elif status is not None:
        tag = f"{tag}, HTTP {status}"
    return f"{what}: {_ADVICE[cause]} [{tag}]"


def _what(text: str, cause: _Cause) -> str:
    """The problem in a few words, with the table, column or value the server named."""
    if cause is _Cause.SCHEMA:
        if found := _COLUMN_MISSING.search(text):
            return f"table {found.group(2)} lacks column {found.group(1)}"
        if found := _TABLE_MISSING.search(text):
            return f"table {found.group(1)} does not exist"
        if found := _DATABASE_MISSING.search(text):
            return f"database {found.group(1)} does not exist"
        if found := _IDENTIFIER_MISSING.search(text):
            return f"column {found.group(1)} is missing"
        return f"the tables differ from what the rater writes ({_detail(text)})"
    if cause is _Cause.TYPES:
        if found := _CONVERTING.search(text):
            column, source, target = found.groups()
            return f"column {column} is {target} in the store, the rater writes {source}"
        if found := _CANNOT_PARSE.search(text):
            return f"a value does not fit its column ({found.group(1)})"
        return f"a value does not fit its column ({_detail(text)})"
    if cause is _Cause.AUTHENTICATION:
        return "authentication failed"
    if cause is _Cause.PRIVILEGES:
        return f"the rater's user may not write ({_detail(text)})"
    if cause in (_Cause.CONNECTION, _Cause.TIMEOUT) and (found := _ERRNO.search(text)):
        url = _URL.search(text)
        return found.group(1).strip() + (f" ({url.group(1)})" if url else "")
    return _detail(text)


def _detail(text: str) -> str:
    """The server's own message without client prefixes, versions, URLs and UUIDs; shortened."""
    core = _TRAILERS.sub("", _SERVER_PREFIX.sub("", text, count=1)).strip()
    for marker in (". Note:", ": while executing", ": In scope", ". In scope", ": While "):
        core = core.split(marker, 1)[0]
    core = _NAME_AT_END.sub("", core).strip() or text
    return core if len(core) <= _MAX_DETAIL else core[: _MAX_DETAIL - 3] + "..."
