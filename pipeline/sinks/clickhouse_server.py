"""Call history in a ClickHouse server, through clickhouse-connect over HTTP(S).

This is the production store. It runs the same DDL (:func:`~pipeline.storage.migrations.
apply_migrations`) and the same SQL as the embedded store, and returns query results in the same
Arrow types, so commands and reports do not care which store they were given.

:class:`ServerSettings` is a frozen value object (usually from ``CLICKHOUSE_URL``); its password is
a :class:`Secret` that never shows in a repr, a str or a log line. :class:`ServerStore` connects
in :meth:`~ServerStore.open`, never on construction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Self
from urllib.parse import parse_qsl, unquote, urlsplit

import pyarrow as pa

from pipeline.config import Secret
from pipeline.rating.columns import call_history_batch, plain_type
from pipeline.sinks.contracts import OpenedStore
from pipeline.storage import moved_cdrs, roster
from pipeline.storage.migrations import apply_migrations, quote_identifier
from pipeline.storage.roster import RosterRows

DEFAULT_DATABASE: Final = "vmgate"
DEFAULT_USERNAME: Final = "default"
COMPRESSIONS: Final = ("lz4", "zstd", "gzip", "br")
_DEFAULT_PORTS: Final = {"http": 8123, "https": 8443}
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})
_NO_COMPRESSION: Final = frozenset({"", "none", "off", "false", "0"})


@dataclass(frozen=True)
class ServerSettings:
    """Where and how to reach a ClickHouse server.

    ``url`` is ``http(s)://host[:port]`` without credentials (the username and password are
    separate fields, so the URL can be printed). ``compression`` is the body and response
    compression clickhouse-connect uses (``lz4``, ``zstd``, ``gzip``, ``br``), ``None`` for none.
    Timeouts are in seconds: ``connect_timeout_s`` to open a connection, ``send_receive_timeout_s``
    to wait for a request to be sent and answered.
    """

    url: str
    database: str = DEFAULT_DATABASE
    username: str = DEFAULT_USERNAME
    password: Secret = field(default_factory=lambda: Secret(""))
    connect_timeout_s: int = 10
    send_receive_timeout_s: int = 300
    compression: str | None = "lz4"

    def __post_init__(self) -> None:
        """Refuse a URL that is not plain ``http(s)://host[:port]`` or a bad database name."""
        parts = urlsplit(self.url)
        if parts.scheme not in _DEFAULT_PORTS:
            msg = f"ClickHouse URL must start with http:// or https://, not {parts.scheme!r}://"
            raise ValueError(msg)
        if "@" in parts.netloc:
            msg = (
                "ServerSettings.url must not carry credentials: use ServerSettings.from_url() "
                "or the username and password fields"
            )
            raise ValueError(msg)
        if not parts.hostname:
            msg = f"ClickHouse URL {self.url!r} names no host"
            raise ValueError(msg)
        _ = parts.port  # raises ValueError on a port that is not a number in range
        if parts.path.strip("/") or parts.query or parts.fragment:
            msg = (
                f"ServerSettings.url {self.url!r} must be scheme://host[:port] only "
                "(use ServerSettings.from_url for a database path or options)"
            )
            raise ValueError(msg)
        quote_identifier(self.database)
        if not isinstance(self.password, Secret):
            msg = "ServerSettings.password must be a Secret (wrap it: Secret(value))"
            raise TypeError(msg)
        if self.compression is not None and self.compression not in COMPRESSIONS:
            msg = f"compression must be one of {', '.join(COMPRESSIONS)} or None"
            raise ValueError(msg)
        if self.connect_timeout_s <= 0 or self.send_receive_timeout_s <= 0:
            msg = "timeouts must be positive numbers of seconds"
            raise ValueError(msg)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        username: str | None = None,
        password: str | Secret | None = None,
        database: str = DEFAULT_DATABASE,
        connect_timeout_s: int = 10,
        send_receive_timeout_s: int = 300,
        compression: str | None = "lz4",
    ) -> ServerSettings:
        """Settings from a ``CLICKHOUSE_URL`` such as ``https://user:pass@host:8443/vmgate``.

        The scheme is ``http`` or ``https`` (``?secure=true`` also selects https); the port
        defaults to 8123 (http) or 8443 (https); the first path segment, if any, names the
        database, else ``database``. Credentials come from ``username``/``password``
        (``CLICKHOUSE_USER``/``CLICKHOUSE_PASSWORD``, passed to the client as they are) or from
        the URL (percent-decoded), never from both: a URL that carries a user or a password
        while ``username`` or ``password`` is given too is refused (:class:`ValueError`), since
        the two may differ. Options in the query string:
        ``secure``, ``compression`` (``lz4``, ``zstd``, ``gzip``, ``br`` or ``none``),
        ``connect_timeout`` and ``send_receive_timeout`` (seconds). Error messages never
        repeat the password.
        """
        shown = _redact(url)
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            msg = f"ClickHouse URL {shown!r} must start with http:// or https://"
            raise ValueError(msg)
        options = dict(parse_qsl(parts.query, keep_blank_values=True))
        secure = options.pop("secure", None)
        if secure is not None:
            if secure.lower() in _TRUE:
                scheme = "https"
            elif secure.lower() not in _FALSE:
                msg = f"ClickHouse URL {shown!r}: secure must be true or false"
                raise ValueError(msg)
        if "compression" in options:
            value = options.pop("compression").lower()
            compression = None if value in _NO_COMPRESSION else value
        if "connect_timeout" in options:
            connect_timeout_s = _seconds(options.pop("connect_timeout"), "connect_timeout", shown)
        if "send_receive_timeout" in options:
            send_receive_timeout_s = _seconds(
                options.pop("send_receive_timeout"), "send_receive_timeout", shown
            )
        if options:
            msg = f"ClickHouse URL {shown!r}: unknown option(s) {', '.join(sorted(options))}"
            raise ValueError(msg)
        try:
            port = parts.port
        except ValueError:
            msg = f"ClickHouse URL {shown!r} has a bad port"
            raise ValueError(msg) from None
        host = parts.hostname
        if not host:
            msg = f"ClickHouse URL {shown!r} names no host"
            raise ValueError(msg)
        path = parts.path.strip("/")
        if "/" in path:
            msg = f"ClickHouse URL {shown!r}: the path must be one database name"
            raise ValueError(msg)
        if path:
            database = unquote(path)
        host_part = f"[{host}]" if ":" in host else host
        in_url = parts.username is not None or parts.password is not None
        if in_url and (username is not None or password is not None):
            msg = (
                f"ClickHouse credentials given twice: in the URL {shown!r} and in "
                "CLICKHOUSE_USER/CLICKHOUSE_PASSWORD (clickhouse.user/password); keep them in "
                "CLICKHOUSE_USER/CLICKHOUSE_PASSWORD and drop them from the URL"
            )
            raise ValueError(msg)
        if username is None:
            username = unquote(parts.username) if parts.username else DEFAULT_USERNAME
        if password is None:
            password = unquote(parts.password) if parts.password else ""
        return cls(
            url=f"{scheme}://{host_part}:{port or _DEFAULT_PORTS[scheme]}",
            database=database,
            username=username,
            password=password if isinstance(password, Secret) else Secret(password),
            connect_timeout_s=connect_timeout_s,
            send_receive_timeout_s=send_receive_timeout_s,
            compression=compression,
        )

    @property
    def secure(self) -> bool:
        """Whether the connection uses TLS (https)."""
        return urlsplit(self.url).scheme == "https"

    @property
    def host(self) -> str:
        """The server's host name or address."""
        host = urlsplit(self.url).hostname
        assert host is not None  # checked in __post_init__
        return host

    @property
    def port(self) -> int:
        """The server's HTTP(S) port."""
        parts = urlsplit(self.url)
        return parts.port or _DEFAULT_PORTS[parts.scheme]


def _redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for error messages)."""
    parts = urlsplit(url.strip())
    if "@" not in parts.netloc:
        return url.strip()
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    netloc = f"{user}:***@{hostport}" if ":" in userinfo else f"{user}@{hostport}"
    return parts._replace(netloc=netloc).geturl()


def _seconds(text: str, name: str, shown: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        msg = f"ClickHouse URL {shown!r}: {name} must be a positive whole number of seconds"
        raise ValueError(msg)
    return value


class ServerStore(OpenedStore):
    """Call history in the database ``settings.database`` of a ClickHouse server.

    Nothing happens on construction; :meth:`open` connects, creates the database if missing
    and makes it the client's current one. :meth:`write_call_history` returns only once the
    server acknowledged the insert and raises otherwise. :meth:`query` returns the types the
    embedded store returns for the same SQL (plain strings, never dictionary or large strings).
    """

    def __init__(self, settings: ServerSettings) -> None:
        """Remember the settings; nothing is connected or created until :meth:`open`."""
        self.settings = settings
        self.database = settings.database
        self._quoted = quote_identifier(settings.database)
        self._client: Any = None

    def __repr__(self) -> str:
        """The settings (password masked) and whether the store is open."""
        state = "open" if self._client is not None else "closed"
        return f"ServerStore({self.settings!r}, {state})"

    def open(self) -> Self:
        """Connect, create the database if missing and select it."""
        if self._client is None:
            import clickhouse_connect

            settings = self.settings
            client = clickhouse_connect.get_client(
                host=settings.host,
                port=settings.port,
                secure=settings.secure,
                username=settings.username,
                password=settings.password.reveal(),
                compress=settings.compression or False,
                connect_timeout=settings.connect_timeout_s,
                send_receive_timeout=settings.send_receive_timeout_s,
                # Stateless requests: no server session to lock, any request may go anywhere.
                autogenerate_session_id=False,
                dedicated_pool=True,
            )
            try:
                client.command(f"CREATE DATABASE IF NOT EXISTS {self._quoted}")
                client.database = settings.database
            except BaseException:
                _close_client(client)
                raise
            self._client = client
        return self

    def close(self) -> None:
        """Close the client and its connections."""
        client, self._client = self._client, None
        if client is not None:
            _close_client(client)

    @property
    def _connected(self) -> Any:
        if self._client is None:
            msg = "store is not open: call open() first"
            raise RuntimeError(msg)
        return self._client

    def execute(self, sql: str, parameters: Mapping[str, object] | None = None) -> None:
        """Run a statement that returns no rows."""
        self._connected.command(sql, parameters=dict(parameters or {}))

    def migrate(self) -> list[str]:
        """Apply the DDL files not yet applied, then repair moved CDRs; return the files' names."""
        applied = apply_migrations(self, self.database)
        if applied:
            moved_cdrs.repair_after_migration(self.query, self._insert, self.database)
        return applied

    def write_call_history(self, table: pa.Table) -> None:
        """Insert rated rows; returns once the server acknowledged them, raises otherwise.

        The batch must hold the call-history columns in their types (see
        :func:`call_history_batch`); anything else is refused before it is sent.
        ``wait_for_async_insert`` keeps that promise on servers whose profile turns on
        asynchronous inserts: the answer then comes after the buffer was flushed to the table.
        """
        if table.num_rows == 0:
            return
        moved_cdrs.write(call_history_batch(table), self._known_days, self._insert)

    def repair_moved_cdrs(self) -> int:
        """Write tombstones missing for CDRs live in two days (see :func:`moved_cdrs.repair`)."""
        return moved_cdrs.repair(self.query, self._insert)

    def write_roster(self, rows: RosterRows, loaded_at: datetime) -> bool:
        """Write a version's roster idempotently (see :func:`roster.write_roster`)."""
        return roster.write_roster(self.query, self._insert, rows, loaded_at)

    def _known_days(self, ids: pa.Table) -> pa.Table:
        """Run the key lookup with the batch's ids sent as external data (a table ``ids``).

        External data travels as a file in the POST body: a query parameter would be capped at
        128 KiB by the server (``http_max_field_value_size``), a few thousand ids.
        """
        from clickhouse_connect.driver.external import ExternalData

        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, ids.schema) as writer:
            writer.write_table(ids)
        external = ExternalData(
            file_name="ids",
            data=sink.getvalue().to_pybytes(),
            fmt="ArrowStream",
            structure=moved_cdrs.IDS_STRUCTURE,
        )
        sql = moved_cdrs.KNOWN_DAYS_SQL.substitute({"ids": "ids", "in": "GLOBAL IN"})
        return _plain_types(self._connected.query_arrow(sql, external_data=external))

    def _insert(self, name: str, data: pa.Table) -> None:
        self._connected.insert_arrow(name, data, settings={"wait_for_async_insert": 1})

    def query(self, sql: str, parameters: Mapping[str, object] | None = None) -> pa.Table:
        """Run a SELECT with server-side bound parameters; the result as an Arrow table."""
        table = self._connected.query_arrow(sql, parameters=dict(parameters or {}))
        return _plain_types(table)


def _close_client(client: Any) -> None:
    try:
        client.close_connections()
    finally:
        client.close()


def _plain_types(table: pa.Table) -> pa.Table:
    """Dictionary and large string columns as plain ones (what the embedded engine returns)."""
    fields = [f.with_type(plain_type(f.type)) for f in table.schema]
    schema = pa.schema(fields, metadata=table.schema.metadata)
    return table if schema.equals(table.schema) else table.cast(schema)
