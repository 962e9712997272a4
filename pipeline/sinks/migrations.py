"""The DDL files of ``schemas/clickhouse``, in the order they are applied.

Each file holds statements separated by ``;`` at the end of a line. Every statement is
idempotent (``IF NOT EXISTS``) so applying a file twice is harmless; the store also records
applied files in ``schema_migrations`` and skips them.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

_DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Migration:
    """One DDL file: its name, checksum and statements."""

    name: str
    checksum: str
    statements: tuple[str, ...]


def schemas_dir() -> Path:
    """The ``schemas/clickhouse`` folder (``VMGATE_SCHEMAS`` overrides the project's own)."""
    override = os.environ.get("VMGATE_SCHEMAS")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "schemas" / "clickhouse"


def load_migrations(folder: Path | None = None) -> list[Migration]:
    """Read the DDL files in name order."""
    folder = folder or schemas_dir()
    if not folder.is_dir():
        msg = f"DDL folder {folder} not found (set VMGATE_SCHEMAS to the schemas/clickhouse folder)"
        raise FileNotFoundError(msg)
    migrations = []
    for path in sorted(folder.glob("*.sql")):
        text = path.read_text(encoding="utf-8")
        body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
        statements = tuple(s.strip() for s in re.split(r";\s*$", body, flags=re.M) if s.strip())
        checksum = hashlib.sha256(text.encode()).hexdigest()[:16]
        migrations.append(Migration(path.name, checksum, statements))
    return migrations


def quote_identifier(name: str) -> str:
    """Backquote a database name after checking it is a plain identifier."""
    if not _DATABASE_NAME.match(name):
        msg = f"database name {name!r} must be letters, digits and '_' (not starting with a digit)"
        raise ValueError(msg)
    return f"`{name}`"
