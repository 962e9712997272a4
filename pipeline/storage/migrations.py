"""The DDL files of ``schemas/clickhouse``, in order, and the migration step that applies them.

The files ship inside the package (``pipeline.schemas``, read with :mod:`importlib.resources`),
so an installed wheel migrates a store from any folder. Each file holds statements separated by
``;`` at the end of a line. Every statement is idempotent (``IF NOT EXISTS``) so applying a file
twice is harmless; :func:`apply_migrations` also records applied files with a checksum in
``schema_migrations`` and skips them. A file changed after it was applied is refused
(:class:`MigrationChangedError`): a change to the schema goes in a new file. The embedded store
and the server store both run this one function, so both hold the same tables.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Protocol

import pyarrow as pa

_DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class MigrationTarget(Protocol):
    """What the migration step needs of a store: run a statement, run a SELECT.

    Both run in the store's current database and bind ``{name:Type}`` parameters server-side.
    """

    def execute(self, sql: str, parameters: Mapping[str, object] | None = None) -> None:
        """Run a statement that returns no rows."""
        ...

    def query(self, sql: str, parameters: Mapping[str, object] | None = None) -> pa.Table:
        """Run a SELECT; the result as Arrow."""
        ...


@dataclass(frozen=True)
class Migration:
    """One DDL file: its name, checksum and statements."""

    name: str
    checksum: str
    statements: tuple[str, ...]


class MigrationChangedError(ValueError):
    """An applied migration's file no longer matches what was applied."""


def schemas_dir() -> Traversable:
    """The DDL folder: the package's own, or ``VMGATE_SCHEMAS`` when set (tests, experiments)."""
    override = os.environ.get("VMGATE_SCHEMAS")
    if override:
        return Path(override)
    return resources.files("pipeline.schemas") / "clickhouse"


def load_migrations(folder: Traversable | None = None) -> list[Migration]:
    """Read the DDL files in name order."""
    folder = folder or schemas_dir()
    if not folder.is_dir():
        msg = f"DDL folder {folder} not found (VMGATE_SCHEMAS names a folder that is not there)"
        raise FileNotFoundError(msg)
    migrations = []
    for path in sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=_name):
        text = path.read_text(encoding="utf-8")
        body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
        statements = tuple(s.strip() for s in re.split(r";\s*$", body, flags=re.M) if s.strip())
        checksum = hashlib.sha256(text.encode()).hexdigest()[:16]
        migrations.append(Migration(path.name, checksum, statements))
    return migrations


def _name(file: Traversable) -> str:
    return file.name


def quote_identifier(name: str) -> str:
    """Backquote a database name after checking it is a plain identifier."""
    if not _DATABASE_NAME.match(name):
        msg = f"database name {name!r} must be letters, digits and '_' (not starting with a digit)"
        raise ValueError(msg)
    return f"`{name}`"


def render(statement: str, database: str) -> str:
    """Put the store's database name where a DDL statement says ``{{database}}``.

    Views that read ``system`` tables must name their own database; the name is checked to be a
    plain identifier first, so nothing but letters, digits and ``_`` can reach the SQL.
    """
    quote_identifier(database)
    return statement.replace("{{database}}", database)


def apply_migrations(store: MigrationTarget, database: str) -> list[str]:
    """Apply the DDL files not yet recorded in ``schema_migrations``; return their names.

    ``database`` is the store's current database (where the statements create their tables).
    Idempotent: a second run applies nothing and returns ``[]``. Two processes migrating at once
    may both apply a file; the statements are idempotent and ``schema_migrations`` keeps one row
    per name. Raises :class:`MigrationChangedError`, before applying anything, when a file
    applied earlier has changed since.
    """
    migrations = load_migrations()
    applied: dict[str, str] = {}
    exists = store.query(
        "SELECT count() AS n FROM system.tables WHERE database = {db:String} "
        "AND name = 'schema_migrations'",
        {"db": database},
    )
    if exists.column("n")[0].as_py():
        done = store.query("SELECT name, checksum FROM schema_migrations FINAL").to_pylist()
        applied = {row["name"]: row["checksum"] for row in done}
    for migration in migrations:
        recorded = applied.get(migration.name)
        if recorded is not None and recorded != migration.checksum:
            msg = (
                f"migration {migration.name} changed after it was applied to database "
                f"{database} (applied checksum {recorded}, the file's now {migration.checksum}): "
                "put schema changes in a new migration file and restore this one"
            )
            raise MigrationChangedError(msg)
    now = datetime.now(UTC)
    newly = []
    for migration in migrations:
        if migration.name in applied:
            continue
        for statement in migration.statements:
            store.execute(render(statement, database))
        store.execute(
            "INSERT INTO schema_migrations (name, checksum, applied_at) "
            "VALUES ({name:String}, {checksum:String}, {at:DateTime64(6, 'UTC')})",
            {
                "name": migration.name,
                "checksum": migration.checksum,
                "at": now.strftime("%Y-%m-%d %H:%M:%S.%f"),
            },
        )
        newly.append(migration.name)
    return newly
