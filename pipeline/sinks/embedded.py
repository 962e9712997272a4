"""Call history in the embedded ClickHouse engine (chdb), in a local folder.

This is the default store when no ClickHouse server is configured. It runs the same DDL and SQL
as a server: tables are created by :meth:`EmbeddedStore.migrate`, never on construction. chdb
allows one engine per process; a store owns it between :meth:`open` and :meth:`close`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import pyarrow as pa

from pipeline.rating.columns import call_history_batch
from pipeline.sinks.contracts import OpenedStore
from pipeline.storage import moved_cdrs, roster
from pipeline.storage.migrations import apply_migrations, quote_identifier
from pipeline.storage.roster import RosterRows

DEFAULT_DATABASE = "vmgate"
# What _insert writes: call history, its key index, and the roster.
_TABLES = frozenset({"call_history", "cdr_days", *roster.ROSTER_TABLES, roster.LOADS_TABLE})


class EmbeddedStore(OpenedStore):
    """A chdb engine on ``path`` holding the call-history database ``database``."""

    def __init__(self, path: Path, database: str = DEFAULT_DATABASE) -> None:
        """Remember where; nothing is opened or created until :meth:`open`."""
        self.path = path
        self.database = database
        self._quoted = quote_identifier(database)
        self._session: Any = None

    def open(self) -> Self:
        """Start the engine on the folder and select the database (created if missing)."""
        if self._session is None:
            from chdb import session

            self.path.mkdir(parents=True, exist_ok=True)
            self._session = session.Session(str(self.path))  # type: ignore[no-untyped-call]
            self._session.query(f"CREATE DATABASE IF NOT EXISTS {self._quoted}")
            self._session.query(f"USE {self._quoted}")
        return self

    def close(self) -> None:
        """Stop the engine."""
        if self._session is not None:
            self._session.close()
            self._session = None

    @property
    def _engine(self) -> Any:
        if self._session is None:
            msg = "store is not open: call open() first"
            raise RuntimeError(msg)
        return self._session

    def execute(self, sql: str, parameters: Mapping[str, object] | None = None) -> None:
        """Run a statement that returns no rows."""
        self._engine.query(sql, "CSV", params=_bound(parameters))

    def migrate(self) -> list[str]:
        """Apply the DDL files not yet applied, then repair moved CDRs; return the files' names."""
        applied = apply_migrations(self, self.database)
        if applied:
            moved_cdrs.repair_after_migration(self.query, self._insert, self.database)
        return applied

    def write_call_history(self, table: pa.Table) -> None:
        """Insert rated rows (and tombstones for CDRs that moved day); returns once written."""
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
        # chdb's Python(ids) reads the local variable ``ids`` of this frame.
        sql = moved_cdrs.KNOWN_DAYS_SQL.substitute({"ids": "Python(ids)", "in": "IN"})
        return _arrow(self._engine.query(sql, "Arrow"))

    def _insert(self, name: str, data: pa.Table) -> None:
        if name not in _TABLES:
            msg = f"not a table this store inserts into: {name!r}"
            raise ValueError(msg)
        columns = ", ".join(f"`{column}`" for column in data.column_names)
        self._engine.query(f"INSERT INTO {name} ({columns}) SELECT {columns} FROM Python(data)")

    def query(self, sql: str, parameters: Mapping[str, object] | None = None) -> pa.Table:
        """Run a SELECT with bound parameters; the result as an Arrow table."""
        return _arrow(self._engine.query(sql, "Arrow", params=_bound(parameters)))


def _arrow(result: Any) -> pa.Table:
    """A chdb result in the Arrow file format as a table (no columns for an empty answer)."""
    data = result.bytes()
    if not data:
        return pa.table({})
    return pa.ipc.open_file(pa.py_buffer(data)).read_all()


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0"})
_QUOTED = str.maketrans(
    {"\\": "\\\\", "'": "\\'", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0"}
)


def _bound(parameters: Mapping[str, object] | None) -> dict[str, str]:
    r"""Parameter values as the engine parses them: escaped text, ``\N`` for NULL.

    ClickHouse reads a ``{name:Type}`` parameter from its text in the escaped (TSV) format, as
    the server does for ``param_name`` over HTTP: a raw tab, newline or backslash in a string
    would be misread, and ``None`` must be ``\N``.
    """
    out: dict[str, str] = {}
    for name, value in (parameters or {}).items():
        if value is None:
            out[name] = "\\N"
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, datetime):
            out[name] = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        elif isinstance(value, str):
            out[name] = value.translate(_ESCAPES)
        elif isinstance(value, list | tuple):
            out[name] = f"[{', '.join(_literal(item) for item in value)}]"
        else:
            out[name] = str(value)
    return out


def _literal(value: object) -> str:
    """An array element as ClickHouse parses it in a parameter: a quoted string, NULL, a number."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return f"'{str(value).translate(_QUOTED)}'"


def engine_version() -> str:
    """The ClickHouse version of the embedded engine (chdb's ``engine_version``, e.g. 26.9.2.1)."""
    import chdb

    return str(chdb.engine_version)
