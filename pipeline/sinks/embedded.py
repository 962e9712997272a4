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

from pipeline.rating.columns import CALL_HISTORY_SCHEMA, call_history_batch
from pipeline.sinks.contracts import OpenedStore
from pipeline.sinks.migrations import apply_migrations, quote_identifier

DEFAULT_DATABASE = "vmgate"
_COLUMN_LIST = ", ".join(f"`{name}`" for name in CALL_HISTORY_SCHEMA.names)


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
        """Apply the DDL files not yet recorded in ``schema_migrations``; return their names."""
        return apply_migrations(self, self.database)

    def write_call_history(self, table: pa.Table) -> None:
        """Insert rated rows; returns when the engine has written them."""
        if table.num_rows == 0:
            return
        batch = call_history_batch(table)  # noqa: F841 (read by chdb's Python())
        self._engine.query(
            f"INSERT INTO call_history ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM Python(batch)"
        )

    def query(self, sql: str, parameters: Mapping[str, object] | None = None) -> pa.Table:
        """Run a SELECT with bound parameters; the result as an Arrow table."""
        result = self._engine.query(sql, "Arrow", params=_bound(parameters))
        data = result.bytes()
        if not data:
            return pa.table({})
        return pa.ipc.open_file(pa.py_buffer(data)).read_all()


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0"})


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
        else:
            out[name] = str(value)
    return out
