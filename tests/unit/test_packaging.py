"""What the wheel ships: every package of the tree, and the DDL as package data."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from pipeline.storage.migrations import load_migrations

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_of_the_tree_is_listed_for_the_wheel() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "pipeline").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert found <= listed, f"packages missing from pyproject.toml: {sorted(found - listed)}"
    assert config["package-dir"]["pipeline.schemas"] == "schemas"


def test_the_ddl_is_read_as_package_data() -> None:
    shipped = resources.files("pipeline.schemas") / "clickhouse"
    names = sorted(f.name for f in shipped.iterdir() if f.name.endswith(".sql"))
    assert names == sorted(p.name for p in (ROOT / "schemas" / "clickhouse").glob("*.sql"))
    assert [m.name for m in load_migrations()] == names
