r"""ClickHouse's HTTP interface in front of an embedded chdb engine, for tests.

Production talks to a ClickHouse server through clickhouse-connect over HTTP. No server can
run on the development machine or on CI, but the real ClickHouse engine can, embedded in the
process as the ``chdb`` package. ``ChdbHttpServer`` joins the two: a ``ThreadingHTTPServer``
on 127.0.0.1 (a free port) that answers clickhouse-connect's requests by running them on ONE
chdb session. It is a test double of the *transport* only: parsing, planning, type
conversion, table engines, merges, errors and every byte of the query results come from the
real engine; this module only moves bytes between HTTP and the session.

What it serves (what clickhouse-connect sends, read in its 1.12 source and recorded from its
requests; ``ChdbHttpServer.requests`` keeps that record for tests):

- ``GET /ping`` and ``GET /`` without a query answer ``Ok.\n``.
- ``GET`` and ``POST /``: the statement comes from the ``query`` URL parameter, the body, or
  both (ClickHouse's rule: the ``query`` parameter, a line break, then the body), or from a
  ``multipart/form-data`` body (fields ``query`` and ``param_*``; clickhouse-connect switches
  to it for long bound parameters or ``form_encode_query_params=True``).
- External data: each file part of a ``multipart/form-data`` body is a table for the one
  query, named by the part's ``name``, read in ``<name>_format`` (default TabSeparated) with
  ``<name>_structure`` (``x UInt32, s String``) or ``<name>_types`` (columns ``_1, _2, ...``),
  ClickHouse's parameters. The table is a temporary table of the engine session, created and
  filled by the engine's own INSERT before the query and dropped after it.
- ``database`` becomes the current database (``USE``) for the request; absent, ``default``.
- ``param_<name>`` values are passed to the engine as query parameters, so server-side
  binding (``{name:Type}``) is done by the engine itself.
- Other URL parameters that name an engine setting (``system.settings``) are applied with
  ``SET`` for the request and reset to ``DEFAULT`` after it. HTTP-only settings
  (``enable_http_compression``, ``send_progress_in_http_headers``, ...) are read by this
  module and not sent to the engine. Parameters that are neither (``session_id``,
  ``session_timeout``, ``query_id``, ``wait_end_of_query``, ``client_protocol_version``,
  ...) are accepted and otherwise ignored; each request records what it ignored.
- Results in the format the statement names (clickhouse-connect appends ``FORMAT Native``,
  ``Arrow``, ``ArrowStream``, ``JSON``...), else ``default_format``, else ``TabSeparated``;
  the engine writes the bytes. Headers: ``X-ClickHouse-Query-Id``, ``X-ClickHouse-Format``
  (statements that produce a result), ``X-ClickHouse-Timezone``, ``X-ClickHouse-Summary``,
  ``X-ClickHouse-Server-Display-Name``, ``Content-Type``, ``Content-Encoding``.
- ``INSERT ... FORMAT <fmt>`` with the data after the statement (after the first line
  break, ClickHouse's rule) is streamed into the engine's own INSERT pipeline
  (``Session.send_insert``), so Native, Arrow, Parquet, RowBinary, CSV... are parsed by the
  engine exactly as a server would. Other INSERTs (``VALUES``, ``SELECT``) run as queries.
- Request bodies with ``Content-Encoding`` ``lz4`` (one LZ4 frame per insert block, as
  clickhouse-connect writes them), ``zstd`` (one frame per block), ``gzip`` or ``deflate``;
  chunked transfer encoding.
- Compressed responses when ``enable_http_compression`` is on (the engine's default, or the
  URL parameter) and ``Accept-Encoding`` lists a method; the method is chosen the way
  ClickHouse chooses it (zstd, then lz4, then gzip, then deflate, whatever the client's order).
- Errors: HTTP 500, ``X-ClickHouse-Exception-Code``, and the engine's message as the body
  (``Code: N. DB::Exception: ... (NAME) (version ...)``), so clickhouse-connect raises a
  ``DatabaseError`` that carries it.

Known gaps (real ClickHouse differs):

- One engine session for everything: ``session_id`` is ignored, ``SET`` and ``USE`` sent as
  statements leak into later requests, temporary tables are shared, and concurrent requests
  are serialised (never a "session is locked" error).
- chdb runs one embedded engine per process, bound to one path: while a server runs, other
  code in the same process cannot open a chdb session on a different path.
- Authentication only with ``users={name: password}``: a request must then name one of them
  with its password, the three ways ClickHouse reads them (``Authorization: Basic``, the
  ``X-ClickHouse-User``/``X-ClickHouse-Key`` headers, the ``user``/``password`` URL
  parameters; none means user ``default`` with an empty password); the password is compared
  byte for byte as UTF-8, and a mismatch is answered as ClickHouse does (HTTP 403,
  ``AUTHENTICATION_FAILED``, code 516). ``/ping`` needs none. Without ``users`` any
  credentials are accepted. The user is recorded (``RecordedRequest.user``), never the
  password. No ``readonly`` for ``GET``, no quotas, roles or grants.
- Errors are always HTTP 500 (ClickHouse answers some codes with 400, 403 or 404).
- The result is buffered and sent once the query is done (``wait_end_of_query`` always on):
  no ``X-ClickHouse-Progress`` headers, no exception tag in the middle of a stream.
- ``X-ClickHouse-Summary`` carries what chdb reports (read, written, elapsed), no
  ``result_rows``.
- ``client_protocol_version`` is ignored, so clickhouse-connect's probe falls back to protocol
  version 0 (no block info in Native results).
- Not supported (answered with ``NOT_IMPLEMENTED``): ClickHouse's own block compression
  (``compress=1``/``decompress=1``), ``br``/``xz``/``snappy``/``bz2`` request bodies. ``br``
  and the like in ``Accept-Encoding`` are ignored.
- Finding ``FORMAT`` and the statement kind uses a small lexer (quotes, comments, nesting),
  not ClickHouse's parser; exotic statements may get the wrong ``X-ClickHouse-Format``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import hmac
import importlib
import json
import os
import re
import socket
import threading
import time
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, Self, cast
from urllib.parse import parse_qsl, urlsplit

from backports import zstd
from chdb import session as chdb_session

# lz4 ships no type information; clickhouse-connect frames its lz4 bodies with lz4.frame.
_lz4_frame: Any = importlib.import_module("lz4.frame")

__all__ = ["ChdbHttpServer", "RecordedRequest"]

_SERVER_NAME: Final = "chdb-http"
_INSERT_CHUNK: Final = 8 * 1024 * 1024

# ClickHouse error codes this module raises itself (the engine raises all the others).
_SYNTAX_ERROR: Final = 62
_NOT_IMPLEMENTED: Final = 48
_BAD_ARGUMENTS: Final = 36
_UNKNOWN_FORMAT: Final = 73
_STD_EXCEPTION: Final = 1001
_AUTHENTICATION_FAILED: Final = 516

# URL parameters that are part of the HTTP protocol, not settings of the query.
_PROTOCOL_PARAMS: Final = frozenset(
    {
        "query",
        "database",
        "default_format",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "buffer_size",
        "wait_end_of_query",
        "client_protocol_version",
        "compress",
        "decompress",
        "user",
        "password",
        "quota_key",
        "role",
    }
)
# Settings the HTTP handler itself acts on; they mean nothing to an embedded engine.
_HTTP_ONLY_SETTINGS: Final = frozenset(
    {
        "enable_http_compression",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "cancel_http_readonly_queries_on_client_close",
        "http_zlib_compression_level",
        "http_native_compression_disable_checksumming_on_decompress",
        "http_wait_end_of_query",
        "http_response_buffer_size",
        "add_http_cors_header",
        # readonly=1 would also forbid the SET that resets the request's settings.
        "readonly",
    }
)
# First keywords of statements that produce a result (ClickHouse then sends X-ClickHouse-Format).
_RESULT_KINDS: Final = frozenset(
    {"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS", "CHECK", "FROM"}
)
# Formats whose chdb Python result is not bytes.
_NON_BYTE_FORMATS: Final = frozenset({"dataframe", "datastore", "arrowtable", "debug"})
# Response compression, most preferred first, as ClickHouse's chooseHTTPCompressionMethod.
_RESPONSE_ENCODINGS: Final = ("zstd", "lz4", "gzip", "deflate")
_CODE_RE: Final = re.compile(r"Code: (\d+)\.")
_NAME_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_WORD_BYTES: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_SPACE_BYTES: Final = frozenset(b" \t\r\n\f\v")


class _ClickHouseError(Exception):
    """An error to answer in ClickHouse's style: code and ``Code: N. DB::Exception: ...`` text."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @classmethod
    def own(cls, code: int, text: str) -> _ClickHouseError:
        return cls(code, f"Code: {code}. DB::Exception: {text}")

    @classmethod
    def from_engine(cls, exc: BaseException) -> _ClickHouseError:
        text = str(exc)
        start = text.find("Code: ")
        if start < 0:
            return cls.own(_STD_EXCEPTION, f"{type(exc).__name__}: {text}")
        message = text[start:].strip()
        match = _CODE_RE.match(message)
        return cls(int(match.group(1)) if match else _STD_EXCEPTION, message)


@dataclass(frozen=True)
class RecordedRequest:
    """What one request carried and how it was answered (no password kept).

    ``headers`` has lower-case names and never ``authorization`` or ``x-clickhouse-key``;
    ``params`` never ``password``; ``body_bytes`` is the size on the wire (before
    decompression); ``statement`` is the start of the SQL text; ``user`` the user the request
    named (``default`` when it named none).
    """

    method: str
    path: str
    params: Mapping[str, str]
    headers: Mapping[str, str]
    body_bytes: int
    statement: str
    status: int
    response_encoding: str | None
    applied_settings: tuple[str, ...]
    ignored_params: tuple[str, ...]
    user: str = "default"


@dataclass
class _Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Statement:
    """What the lexer found: first keyword, FORMAT clause, where inline data starts."""

    kind: str
    format_name: str | None = None
    format_start: int = -1
    data_start: int = -1


class _Lexer:
    """Just enough of ClickHouse's lexer to find keywords outside quotes and comments."""

    def __init__(self, text: bytes) -> None:
        self.text = text
        self.pos = 0

    def skip_space(self) -> None:
        text, n = self.text, len(self.text)
        while self.pos < n:
            ch = text[self.pos]
            if ch in _SPACE_BYTES:
                self.pos += 1
            elif text.startswith(b"--", self.pos):
                end = text.find(b"\n", self.pos)
                self.pos = n if end < 0 else end + 1
            elif text.startswith(b"/*", self.pos):
                end = text.find(b"*/", self.pos + 2)
                self.pos = n if end < 0 else end + 2
            else:
                return

    def next_token(self) -> tuple[int, bytes] | None:
        """Return (start, token); a token is a word, a quoted literal or one other byte."""
        self.skip_space()
        text, n, start = self.text, len(self.text), self.pos
        if start >= n:
            return None
        ch = text[start]
        if ch in _WORD_BYTES:
            end = start
            while end < n and text[end] in _WORD_BYTES:
                end += 1
        elif ch in b"'\"`":
            end = start + 1
            while end < n:
                cur = text[end]
                if cur == 0x5C:  # backslash escapes the next byte
                    end += 2
                    continue
                end += 1
                if cur == ch:
                    if end < n and text[end] == ch:  # doubled quote
                        end += 1
                        continue
                    break
        else:
            end = start + 1
        self.pos = min(end, n)
        return start, text[start : self.pos]


def _is_word(token: bytes) -> bool:
    return bool(token) and token[0] in _WORD_BYTES and not token[:1].isdigit()


def _scan(text: bytes) -> _Statement:
    """Find the statement kind and its FORMAT clause.

    For ``INSERT`` the first top-level ``FORMAT <name>`` ends the statement and the data starts
    after the first line break that follows (or at the first non-space byte, ClickHouse's
    rule); the scan stops there, before any binary data. For other statements the clause is
    the last ``FORMAT <name>`` that ends the statement (optionally before ``SETTINGS``/``;``).
    """
    lexer = _Lexer(text)
    first = lexer.next_token()
    if first is None:
        return _Statement(kind="")
    kind = first[1].upper().decode("ascii", "replace") if _is_word(first[1]) else ""
    if first[1] == b"(":
        kind = "SELECT"
    is_insert = kind == "INSERT"
    tokens: list[tuple[int, bytes]] = [first]
    found: _Statement | None = None
    while True:
        token = lexer.next_token()
        if token is None:
            break
        tokens.append(token)
        upper = token[1].upper()
        if is_insert and upper in (b"VALUES", b"SELECT", b"WITH") and len(tokens) > 2:
            # Inline VALUES data or INSERT ... SELECT: the engine parses the whole text.
            return _Statement(kind=kind)
        if upper != b"FORMAT" or (len(tokens) > 1 and tokens[-2][1] == b"."):
            continue
        after = lexer.pos
        name = lexer.next_token()
        if name is None or not _is_word(name[1]):
            lexer.pos = after
            continue
        format_name = name[1].decode("ascii")
        peek_at = lexer.pos
        if is_insert:
            # Never look past the name: the data that follows may be binary.
            data_start = peek_at
            while data_start < len(text) and text[data_start] in _SPACE_BYTES:
                data_start += 1
                if text[data_start - 1] == 0x0A:
                    break
            return _Statement(kind, format_name, token[0], data_start)
        following = lexer.next_token()
        if following is not None and following[1] == b"(":
            lexer.pos = after  # format(...) is a function call
            continue
        if following is None or following[1] == b";" or following[1].upper() == b"SETTINGS":
            found = _Statement(kind, format_name, token[0])
        lexer.pos = peek_at
    return found if found is not None else _Statement(kind=kind)


def _quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _quote_string(value: str) -> str:
    # SET takes no bound parameters; the value is escaped as a ClickHouse string literal.
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def _content_type(fmt: str) -> str:
    lower = fmt.lower()
    if lower.startswith(("tabseparated", "tsv")):
        return "text/tab-separated-values; charset=UTF-8"
    if lower.startswith("csv"):
        header = "present" if "withnames" in lower else "absent"
        return f"text/csv; charset=UTF-8; header={header}"
    if lower.startswith("json"):
        return "application/json; charset=UTF-8"
    if lower.startswith(("native", "rowbinary", "arrow", "parquet", "orc", "avro")):
        return "application/octet-stream"
    return "text/plain; charset=UTF-8"


def _decompress_lz4(data: bytes) -> bytes:
    out = bytearray()
    rest = data
    while rest:
        decompressor = _lz4_frame.LZ4FrameDecompressor()
        out += decompressor.decompress(rest)
        if not decompressor.eof:
            raise _ClickHouseError.own(_BAD_ARGUMENTS, "truncated lz4 frame in request body")
        rest = bytes(decompressor.unused_data or b"")
    return bytes(out)


def _decompress_deflate(data: bytes) -> bytes:
    out = bytearray()
    rest = data
    while rest:
        decompressor = zlib.decompressobj()
        out += decompressor.decompress(rest)
        out += decompressor.flush()
        rest = decompressor.unused_data
    return bytes(out)


def _decompress(data: bytes, encoding: str) -> bytes:
    method = encoding.strip().lower()
    if method in ("", "identity"):
        return data
    try:
        if method == "lz4":
            return _decompress_lz4(data)
        if method == "zstd":
            return zstd.decompress(data)
        if method in ("gzip", "x-gzip"):
            return gzip.decompress(data)
        if method == "deflate":
            return _decompress_deflate(data)
    except _ClickHouseError:
        raise
    except Exception as exc:
        text = f"cannot decompress {method} request body: {exc}"
        raise _ClickHouseError.own(_BAD_ARGUMENTS, text) from exc
    text = f"Content-Encoding {encoding!r} is not supported by the test server"
    raise _ClickHouseError.own(_NOT_IMPLEMENTED, text)


def _compress(data: bytes, method: str) -> bytes:
    if method == "zstd":
        return zstd.compress(data)
    if method == "lz4":
        return cast(bytes, _lz4_frame.compress(data))
    if method == "gzip":
        return gzip.compress(data, mtime=0)
    return zlib.compress(data)


def _choose_encoding(accept_encoding: str) -> str | None:
    offered = accept_encoding.lower()
    for method in _RESPONSE_ENCODINGS:
        if method in offered:
            return method
    return None


def _parse_form(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, bytes]]:
    """The text fields and the files (external data, by table name) of a multipart body."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for part in message.walk():
        if part.is_multipart():
            continue
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        if part.get_filename() is not None:
            files[name] = payload if isinstance(payload, bytes) else str(payload).encode()
            continue
        fields[name] = payload.decode("utf-8") if isinstance(payload, bytes) else str(payload)
    return fields, files


@dataclass(frozen=True)
class _ExternalTable:
    """One external-data table of a request: its name, structure, format and bytes."""

    name: str
    structure: str
    format: str
    data: bytes


def _external_tables(params: Mapping[str, str], files: Mapping[str, bytes]) -> list[_ExternalTable]:
    tables = []
    for name, data in files.items():
        if not _NAME_RE.match(name):
            raise _ClickHouseError.own(_BAD_ARGUMENTS, f"bad external table name {name!r}")
        structure = params.get(f"{name}_structure")
        if structure is None:
            types = params.get(f"{name}_types")
            if types is None:
                text = f"Neither structure nor types were given for external table {name}"
                raise _ClickHouseError.own(_BAD_ARGUMENTS, f"{text}. (BAD_ARGUMENTS)")
            structure = ", ".join(
                f"_{n} {kind.strip()}" for n, kind in enumerate(types.split(","), start=1)
            )
        fmt = params.get(f"{name}_format") or "TabSeparated"
        if not _NAME_RE.match(fmt):
            raise _ClickHouseError.own(_UNKNOWN_FORMAT, f"Unknown format {fmt}. (UNKNOWN_FORMAT)")
        tables.append(_ExternalTable(name, structure, fmt, data))
    return tables


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # handler threads are joined by server_close()
    block_on_close = True

    allow_reuse_address = True  # a restarted server takes its old port back at once

    def __init__(self, owner: ChdbHttpServer, port: int) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", port), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "chdb-http"

    def setup(self) -> None:
        super().setup()
        cast(_Server, self.server).owner._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            cast(_Server, self.server).owner._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet; ``ChdbHttpServer.requests`` records every request."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailer fields
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(65537)  # CRLF after the chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        owner = cast(_Server, self.server).owner
        body = self._read_body()
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        credentials = _credentials(self.headers.items(), params)
        headers = {
            k.lower(): v
            for k, v in self.headers.items()
            if k.lower() not in ("authorization", "x-clickhouse-key")
        }
        reply, record = owner._execute(self.command, url.path, params, headers, body, credentials)
        owner._record(record)  # before answering: the client may look at it right after
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)


def _credentials(headers: Any, params: Mapping[str, str]) -> tuple[str, bytes]:
    """The user and password (raw bytes) a request names, the ways ClickHouse reads them.

    ``Authorization: Basic`` (base64 of ``user:password`` in UTF-8, split at the first colon),
    else ``X-ClickHouse-User``/``X-ClickHouse-Key`` (header bytes as sent), else the ``user``
    and ``password`` URL parameters (percent-decoded UTF-8), else ``default`` with no password.
    """
    found = {str(k).lower(): str(v) for k, v in headers}
    authorization = found.get("authorization", "")
    if authorization[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        user, _, password = decoded.partition(b":")
        return user.decode("utf-8", "replace"), password
    if "x-clickhouse-user" in found:
        # http.server decodes header bytes as ISO-8859-1: encoding back gives what was sent.
        user_bytes = found["x-clickhouse-user"].encode("iso-8859-1")
        return user_bytes.decode("utf-8", "replace"), found.get("x-clickhouse-key", "").encode(
            "iso-8859-1"
        )
    if "user" in params:
        return params["user"], params.get("password", "").encode("utf-8")
    return "default", b""


class ChdbHttpServer:
    """ClickHouse's HTTP interface over one embedded chdb session, on 127.0.0.1.

    Nothing happens at construction; ``start()`` (or ``with``) opens the chdb session at
    ``path`` and starts serving on a free port in a background thread; ``stop()`` stops
    serving, closes open connections and closes the session. The data stays in ``path``.
    With ``users`` (name -> password) every query must come as one of them with its password.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        port: int = 0,
        users: Mapping[str, str] | None = None,
    ) -> None:
        """Serve ``path``; ``port`` 0 picks a free one, and a restart keeps the one it got."""
        self._path = os.fspath(path)
        self._port = port
        self._users = None if users is None else {n: p.encode("utf-8") for n, p in users.items()}
        self._session: Any = None
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._engine_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._requests: list[RecordedRequest] = []
        self._version = ""
        self._timezone = "UTC"
        self._settings: dict[str, str] = {}

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Open the engine session and serve; returns self."""
        if self._httpd is not None:
            msg = "ChdbHttpServer is already running"
            raise RuntimeError(msg)
        os.makedirs(self._path, exist_ok=True)
        # chdb's Session is not annotated.
        self._session = cast(Any, chdb_session.Session)(self._path)
        try:
            self._load_engine_facts()
            self._httpd = _Server(self, self._port)
            self._port = int(self._httpd.server_address[1])
        except BaseException:
            self._session.close()
            self._session = None
            raise
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"chdb-http-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections, join threads, close the session. Idempotent."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            with self._state_lock:
                open_connections = list(self._connections)
            for conn in open_connections:
                with contextlib.suppress(OSError):  # already closed by the peer
                    conn.shutdown(socket.SHUT_RDWR)
            httpd.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._session is not None:
            with self._engine_lock:
                self._session.close()
                self._session = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- where it listens, what it saw ---------------------------------------------------------

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        if self._httpd is None:
            msg = "ChdbHttpServer is not running"
            raise RuntimeError(msg)
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def engine_version(self) -> str:
        """``version()`` of the embedded engine (what clickhouse-connect sees as server_version)."""
        return self._version

    @property
    def requests(self) -> tuple[RecordedRequest, ...]:
        """Every request answered so far, oldest first."""
        with self._state_lock:
            return tuple(self._requests)

    def clear_requests(self) -> None:
        with self._state_lock:
            self._requests.clear()

    # -- internals -----------------------------------------------------------------------------

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._state_lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _record(self, record: RecordedRequest) -> None:
        with self._state_lock:
            self._requests.append(record)

    def _load_engine_facts(self) -> None:
        row = self._session.query("SELECT version(), timezone()", "TabSeparated").bytes()
        self._version, self._timezone = row.decode().rstrip("\n").split("\t")
        rows = self._session.query("SELECT name, value FROM system.settings", "JSONEachRow").bytes()
        for line in rows.decode().splitlines():
            item = json.loads(line)
            self._settings[item["name"]] = item["value"]

    def _execute(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        headers: dict[str, str],
        body: bytes,
        credentials: tuple[str, bytes] = ("default", b""),
    ) -> tuple[_Reply, RecordedRequest]:
        query_id = params.get("query_id") or headers.get("x-clickhouse-query-id") or ""
        query_id = query_id or str(uuid.uuid4())
        applied: list[str] = []
        ignored: list[str] = []
        statement = b""
        encoding: str | None = None
        try:
            if path in ("/ping", "/replicas_status"):
                reply = _Reply(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
            elif not self._authenticated(*credentials):
                text = (
                    f"{credentials[0]}: Authentication failed: password is incorrect, or there "
                    "is no user with such name. (AUTHENTICATION_FAILED)"
                )
                reply = self._error_reply(_ClickHouseError.own(_AUTHENTICATION_FAILED, text))
                reply.status = 403  # what ClickHouse answers AUTHENTICATION_FAILED with
            elif path != "/":
                text = f"There is no handle {path}\n"
                reply = _Reply(404, text.encode(), {"Content-Type": "text/plain; charset=UTF-8"})
            else:
                if _truthy(params.get("compress", "0")) or _truthy(params.get("decompress", "0")):
                    text = "ClickHouse block compression (compress/decompress=1) is not supported"
                    raise _ClickHouseError.own(_NOT_IMPLEMENTED, text)
                data = _decompress(body, headers.get("content-encoding", ""))
                content_type = headers.get("content-type", "")
                files: dict[str, bytes] = {}
                if content_type.lower().startswith("multipart/form-data"):
                    fields, files = _parse_form(content_type, data)
                    params = {**params, **fields}
                    data = b""
                query = params.get("query", "")
                statement = (query.encode() + b"\n" + data) if query else data
                if not statement.strip():
                    if method == "GET" and "query" not in params:
                        reply = _Reply(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
                    else:
                        raise _ClickHouseError.own(_SYNTAX_ERROR, "Empty query. (SYNTAX_ERROR)")
                else:
                    compress_on = params.get(
                        "enable_http_compression",
                        self._settings.get("enable_http_compression", "0"),
                    )
                    if _truthy(compress_on):
                        encoding = _choose_encoding(headers.get("accept-encoding", ""))
                    external = _external_tables(params, files)
                    reply = self._run(statement, params, applied, ignored, external)
        except _ClickHouseError as exc:
            reply = self._error_reply(exc)
        except Exception as exc:  # a bug here must still reach the client as an error
            reply = self._error_reply(_ClickHouseError.from_engine(exc))
        reply.headers.setdefault("X-ClickHouse-Server-Display-Name", _SERVER_NAME)
        reply.headers.setdefault("X-ClickHouse-Query-Id", query_id)
        if encoding is not None and reply.status != 404:
            reply.body = _compress(reply.body, encoding)
            reply.headers["Content-Encoding"] = encoding
        else:
            encoding = None
        record = RecordedRequest(
            method=method,
            path=path,
            params={k: v for k, v in params.items() if k != "password"},
            headers=headers,
            body_bytes=len(body),
            statement=statement[:300].decode("utf-8", "replace"),
            status=reply.status,
            response_encoding=encoding,
            applied_settings=tuple(applied),
            ignored_params=tuple(ignored),
            user=credentials[0],
        )
        return reply, record

    def _authenticated(self, user: str, password: bytes) -> bool:
        if self._users is None:
            return True
        expected = self._users.get(user)
        return expected is not None and hmac.compare_digest(expected, password)

    def _error_reply(self, exc: _ClickHouseError) -> _Reply:
        message = exc.message
        if "(version " not in message:
            message = f"{message} (version {self._version})"
        return _Reply(
            500,
            (message + "\n").encode("utf-8", "replace"),
            {
                "Content-Type": "text/plain; charset=UTF-8",
                "X-ClickHouse-Exception-Code": str(exc.code),
            },
        )

    def _split_params(
        self, params: Mapping[str, str], ignored: list[str], external: frozenset[str]
    ) -> tuple[dict[str, str], dict[str, str]]:
        """Split URL parameters into bound query parameters and engine settings."""
        bound: dict[str, str] = {}
        settings: dict[str, str] = {}
        for name, value in params.items():
            if name in external:
                continue  # read by _external_tables
            if name.startswith("param_"):
                bound[name[len("param_") :]] = value
            elif name in _PROTOCOL_PARAMS or name in _HTTP_ONLY_SETTINGS:
                if name not in ("query", "database", "default_format"):
                    ignored.append(name)
            elif name in self._settings and _NAME_RE.match(name):
                settings[name] = value
            else:
                ignored.append(name)
        return bound, settings

    def _run(
        self,
        text: bytes,
        params: Mapping[str, str],
        applied: list[str],
        ignored: list[str],
        external: list[_ExternalTable],
    ) -> _Reply:
        described = frozenset(
            f"{table.name}_{what}"
            for table in external
            for what in ("structure", "types", "format")
        )
        bound, settings = self._split_params(params, ignored, described)
        scanned = _scan(text)
        database = params.get("database") or "default"
        default_format = params.get("default_format") or "TabSeparated"
        timezone = settings.get("session_timezone") or self._timezone
        started = time.perf_counter_ns()
        with self._engine_lock:
            if self._session is None:
                raise _ClickHouseError.own(_STD_EXCEPTION, "the test server is stopping")
            try:
                self._session.query(f"USE {_quote_identifier(database)}", "TabSeparated")
                if settings:
                    assignments = ", ".join(
                        f"{k} = {_quote_string(v)}" for k, v in settings.items()
                    )
                    self._session.query(f"SET {assignments}", "TabSeparated")
                    applied.extend(settings)
                for table in external:
                    self._create_external(table)
                if scanned.kind == "INSERT" and scanned.format_name is not None:
                    return self._insert(text, scanned, timezone, started)
                return self._query(text, scanned, bound, default_format, timezone, started)
            except RuntimeError as exc:  # chdb raises ChdbError / RuntimeError
                raise _ClickHouseError.from_engine(exc) from exc
            finally:
                for table in external:
                    with contextlib.suppress(RuntimeError):
                        self._session.query(
                            f"DROP TEMPORARY TABLE IF EXISTS {_quote_identifier(table.name)}",
                            "TabSeparated",
                        )
                if applied:
                    reset = ", ".join(f"{k} = DEFAULT" for k in applied)
                    # A failing reset must not hide the query's own outcome.
                    with contextlib.suppress(RuntimeError):
                        self._session.query(f"SET {reset}", "TabSeparated")

    def _create_external(self, table: _ExternalTable) -> None:
        """The external table as a temporary table of the session, filled by the engine."""
        name = _quote_identifier(table.name)
        self._session.query(f"DROP TEMPORARY TABLE IF EXISTS {name}", "TabSeparated")
        self._session.query(
            f"CREATE TEMPORARY TABLE {name} ({table.structure}) ENGINE = Memory", "TabSeparated"
        )
        inserter = self._session.send_insert(f"INSERT INTO {name}", table.format)
        try:
            inserter.append(table.data)
            inserter.finish()
        except BaseException:
            inserter.cancel()
            raise

    @staticmethod
    def _summary(
        read_rows: int, read_bytes: int, written_rows: int, written_bytes: int, started: int
    ) -> str:
        return json.dumps(
            {
                "read_rows": str(read_rows),
                "read_bytes": str(read_bytes),
                "written_rows": str(written_rows),
                "written_bytes": str(written_bytes),
                "total_rows_to_read": str(read_rows),
                "elapsed_ns": str(time.perf_counter_ns() - started),
            },
            separators=(",", ":"),
        )

    def _query(
        self,
        text: bytes,
        scanned: _Statement,
        bound: dict[str, str],
        default_format: str,
        timezone: str,
        started: int,
    ) -> _Reply:
        try:
            sql = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _ClickHouseError.own(_BAD_ARGUMENTS, f"query is not UTF-8: {exc}") from exc
        fmt = scanned.format_name or default_format
        if fmt.lower() in _NON_BYTE_FORMATS or not _NAME_RE.match(default_format):
            raise _ClickHouseError.own(_UNKNOWN_FORMAT, f"Unknown format {fmt}. (UNKNOWN_FORMAT)")
        result = self._session.query(sql, default_format, params=bound or None)
        body = bytes(result.bytes())
        headers = {
            "Content-Type": _content_type(fmt),
            "X-ClickHouse-Timezone": timezone,
            "X-ClickHouse-Summary": self._summary(
                int(result.rows_read()),
                int(result.bytes_read()),
                int(result.rows_written()),
                int(result.bytes_written()),
                started,
            ),
        }
        if scanned.kind in _RESULT_KINDS:
            headers["X-ClickHouse-Format"] = fmt
        return _Reply(200, body, headers)

    def _insert(self, text: bytes, scanned: _Statement, timezone: str, started: int) -> _Reply:
        assert scanned.format_name is not None
        try:
            head = text[: scanned.format_start].decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            raise _ClickHouseError.own(_BAD_ARGUMENTS, f"INSERT is not UTF-8: {exc}") from exc
        data = memoryview(text)[scanned.data_start :]
        inserter = self._session.send_insert(head, scanned.format_name)
        try:
            for offset in range(0, len(data), _INSERT_CHUNK):
                inserter.append(data[offset : offset + _INSERT_CHUNK])
            result = inserter.finish()
        except BaseException:
            inserter.cancel()
            raise
        headers = {
            "Content-Type": "text/plain; charset=UTF-8",
            "X-ClickHouse-Timezone": timezone,
            "X-ClickHouse-Summary": self._summary(
                0, 0, int(result.rows_written), int(result.bytes_written), started
            ),
        }
        return _Reply(200, b"", headers)
