"""Pick the call-history store from configuration: a ClickHouse server, else the embedded engine."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import Secret
from pipeline.sinks.clickhouse_server import ServerSettings, ServerStore
from pipeline.sinks.contracts import CallHistoryStore
from pipeline.sinks.embedded import DEFAULT_DATABASE, EmbeddedStore


def open_store(
    store_dir: Path | None,
    clickhouse_url: str | None,
    database: str = DEFAULT_DATABASE,
    username: str | None = None,
    password: Secret | None = None,
) -> CallHistoryStore:
    """Open the configured store and return it; the caller closes it (migrations are not run).

    With ``clickhouse_url`` (``CLICKHOUSE_URL``, see :meth:`ServerSettings.from_url`) the server
    store, even if ``store_dir`` is also given; the URL's path, if any, names the database, else
    ``database``; ``username``/``password`` (``CLICKHOUSE_USER``, ``CLICKHOUSE_PASSWORD``) are
    the credentials, and a URL that carries credentials too is refused (:class:`ValueError`).
    Without a URL, the embedded engine in
    ``store_dir``, database ``database``. Neither is an error (:class:`ValueError`).
    """
    if clickhouse_url:
        return ServerStore(server_settings(clickhouse_url, database, username, password)).open()
    if store_dir is not None:
        return EmbeddedStore(store_dir, database).open()
    msg = "no call-history store configured: give a store folder or CLICKHOUSE_URL"
    raise ValueError(msg)


def server_settings(
    clickhouse_url: str,
    database: str = DEFAULT_DATABASE,
    username: str | None = None,
    password: Secret | None = None,
) -> ServerSettings:
    """The server :func:`open_store` connects to for these settings (nothing is connected).

    Refuses (:class:`ValueError`) a URL that carries credentials while ``username`` or
    ``password`` is given too (see :meth:`ServerSettings.from_url`).
    """
    return ServerSettings.from_url(
        clickhouse_url, database=database, username=username, password=password
    )
