"""The two store paths every storage test runs on: the embedded engine, and clickhouse-connect
against a ClickHouse HTTP endpoint (the chdb engine behind pipeline/testing/clickhouse_http.py)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pyarrow as pa

from pipeline.rating.columns import CALL_HISTORY_SCHEMA
from pipeline.rating.decode import decode_cdrs
from pipeline.rating.engine import rate_batch
from pipeline.rating.reference import ReferenceData
from pipeline.sinks.clickhouse_server import ServerSettings, ServerStore
from pipeline.sinks.contracts import CallHistoryStore
from pipeline.sinks.embedded import EmbeddedStore
from pipeline.testing.clickhouse_http import ChdbHttpServer
from tests.builders import cdr, deck_row, membership, simple_reference

PATHS = ("embedded", "server")


RATED_AT = datetime(2026, 4, 1, tzinfo=UTC)


T = TypeVar("T")


COLUMNS_SQL = (
    "SELECT name, type FROM system.columns WHERE database = {db:String} "
    "AND table = 'call_history' ORDER BY position"
)


@dataclass(frozen=True)
class StorePath:
    """An open store of one path, with the folder it lives in and the server it talks to."""

    kind: str
    store: EmbeddedStore | ServerStore
    folder: Path
    server: ChdbHttpServer | None = None


@contextmanager
def open_path(kind: str, folder: Path, database: str) -> Iterator[StorePath]:
    """An open store of ``kind`` in ``folder`` (the server's data folder for ``server``)."""
    if kind == "embedded":
        with EmbeddedStore(folder / "embedded", database) as store:
            yield StorePath(kind, store, folder / "embedded")
    else:
        with (
            ChdbHttpServer(folder / "server") as server,
            ServerStore(ServerSettings.from_url(server.url, database=database)) as server_store,
        ):
            yield StorePath(kind, server_store, folder / "server", server)


def on_both_paths(folder: Path, work: Callable[[CallHistoryStore], T]) -> dict[str, T]:
    """Run ``work`` on a fresh, migrated store of each path in turn (never two engines at once)."""
    database = unique_database()
    results: dict[str, T] = {}
    for kind in PATHS:
        with open_path(kind, folder, database) as path:
            path.store.migrate()
            results[kind] = work(path.store)
    return results


def unique_database() -> str:
    return f"it_{uuid.uuid4().hex}"


def network(folder: Path) -> ReferenceData:
    """Customer deck in EUR, client deck, reseller deck in USD; gateway ``gw`` under ``res``."""
    return simple_reference(
        folder,
        [
            deck_row("44", "0.012345678", connection_fee="0.001", initial_increment="30"),
            deck_row("4420", "0.0211", subsequent_increment="6"),
            deck_row("49", "0.000000001"),
        ],
        client_deck=[deck_row("44", "0.0071"), deck_row("49", "0.0003")],
        reseller_deck=[deck_row("4420", "0.00123")],
        memberships=[membership("gw", "res")],
    )


def calls(count: int) -> list[dict[str, object]]:
    """Calls to London, the UK, Germany and nowhere (unrated), some via a Direct gateway."""
    callees = ["4420794612", "441612345678", "4930123456", "3312345678", "+44 20 7946 0000"]
    start = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    out = []
    for i in range(count):
        out.append(
            cdr(
                cdr_id=f"cdr-{i:04d}",
                session_id=f"s-{i}",
                client_id="gw" if i % 4 else "gw-direct",
                callee=callees[i % len(callees)],
                start_time=(start + timedelta(minutes=i)).isoformat().replace("+00:00", "Z"),
                duration_ms=(i * 7919) % 900_000,
                disposition="ANSWERED" if i % 6 else "NO_ANSWER",
            )
        )
    return out


def rated(reference: ReferenceData, records: list[dict[str, object]], at: datetime) -> pa.Table:
    decoded = decode_cdrs([json.dumps(r).encode() for r in records])
    assert decoded.rejected.height == 0, decoded.rejected.to_dicts()
    table = rate_batch(decoded.good, reference, at)
    assert table.schema.equals(CALL_HISTORY_SCHEMA)
    return table


def by_key(table: pa.Table) -> pa.Table:
    return table.sort_by([("tenant_id", "ascending"), ("cdr_id", "ascending")])
