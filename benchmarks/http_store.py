"""The ClickHouse HTTP endpoint the server-path benchmarks talk to, named in one place.

Production writes to a ClickHouse server through clickhouse-connect over HTTP. No server runs
on this machine, so the benchmarks measure that path (``ServerStore`` writes, the 1- and
2-rater end-to-end runs, the latency poller) against ``ChdbHttpServer``: ClickHouse's HTTP
interface in front of an embedded chdb engine, serving from this process.

That endpoint lives with the tests today (``tests/support/chdb_http.py``), and benchmarks
should not import from ``tests/``. This module is the only one in ``benchmarks/`` that does,
lazily, so importing it costs nothing; when the endpoint moves to a place both may import
(proposed: the package, next to ``pipeline.testing``), only the import below changes.
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
    from tests.support.chdb_http import ChdbHttpServer  # noqa: TID251 (the one; see above)

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
