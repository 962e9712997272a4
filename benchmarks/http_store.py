"""The ClickHouse HTTP endpoint the server-path benchmarks talk to, named in one place.

Production writes to a ClickHouse server through clickhouse-connect over HTTP. No server runs
on this machine, so the benchmarks measure that path (``ServerStore`` writes, the 1- and
2-rater end-to-end runs, the latency poller) against ``ChdbHttpServer``: ClickHouse's HTTP
interface in front of an embedded chdb engine, serving from this process.

The endpoint ships with the package (``pipeline/testing/clickhouse_http.py``), next to the
other test doubles of ``pipeline.testing``; it is imported lazily, so importing this module
costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.sinks.clickhouse_server import ServerStore


@contextmanager
def clickhouse_http(folder: Path) -> Iterator[str]:
    """A ClickHouse HTTP endpoint over a chdb engine stored in ``folder``, stopped on exit.

    Yields its base URL, ``http://127.0.0.1:PORT``; append ``/DATABASE`` for a store URL. One
    chdb engine per process: while it runs, nothing else here may open chdb on another path.
    """
    from pipeline.testing.clickhouse_http import ChdbHttpServer

    with ChdbHttpServer(folder) as server:
        yield server.url


@contextmanager
def server_store(folder: Path, database: str) -> Iterator[ServerStore]:
    """A ``ServerStore`` (clickhouse-connect) on :func:`clickhouse_http`, not yet migrated."""
    from pipeline.sinks.clickhouse_server import ServerSettings, ServerStore

    with (
        clickhouse_http(folder) as url,
        ServerStore(ServerSettings.from_url(f"{url}/{database}")) as store,
    ):
        yield store
