"""The map of docs/architecture.md, checked against every import of every module."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pipeline"
_EVERYTHING_BELOW_SERVICES = {
    "rating",
    "prefix_trie",
    "reference",
    "storage",
    "sinks",
    "sources",
    "services",
    "config",
    "json_bounds",
    "logs",
    "progress",
    "synthetic",
}
# room -> the rooms (or single modules, as "room.module") it may import
ALLOWED: dict[str, set[str]] = {
    "rating": {"rating", "prefix_trie", "json_bounds"},
    "prefix_trie": {"prefix_trie"},
    "reference": {"reference", "rating", "prefix_trie", "config", "json_bounds"},
    "storage": {"storage", "rating", "sinks.contracts", "progress"},
    "sinks": {"sinks", "rating", "storage", "config", "sources.contracts"},
    "sources": {"sources", "config", "rating.message_block"},
    "services": _EVERYTHING_BELOW_SERVICES,
    "commands": _EVERYTHING_BELOW_SERVICES | {"commands", "pipeline"},
    "cli": {"commands", "logs", "rating", "pipeline"},
    "config": set(),
    "json_bounds": set(),
    "logs": set(),
    "progress": set(),
    "synthetic": {"synthetic"},
    "testing": _EVERYTHING_BELOW_SERVICES | {"testing"},
    "__main__": {"cli"},
    "__init__": set(),
}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "pipeline"


def _is_module(name: str) -> bool:
    return (PACKAGE / f"{name}.py").is_file() or (PACKAGE / name).is_dir()


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every ``pipeline...`` module imported anywhere in ``path`` (functions included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "pipeline":  # a module of the package, or a name of its __init__
                found += [
                    (node.lineno, f"pipeline.{a.name}" if _is_module(a.name) else "pipeline")
                    for a in node.names
                ]
            elif node.module.startswith("pipeline."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("pipeline")]
    return found


def test_every_room_imports_only_what_the_map_allows() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(("pipeline", *path.relative_to(PACKAGE).with_suffix("").parts))
        room = _room(module) if "." in module.removeprefix("pipeline.") else path.stem
        allowed = ALLOWED[room]
        for line, imported in _imports(path):
            target = _room(imported)
            narrow = ".".join(imported.split(".")[1:3])
            if target not in allowed and narrow not in allowed:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} {room} -> {imported}")
    assert not wrong, "imports the map does not allow:\n" + "\n".join(wrong)


def test_the_map_names_every_room() -> None:
    rooms = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert rooms | modules <= set(ALLOWED), sorted((rooms | modules) - set(ALLOWED))
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    assert all(f"`{room}/`" in text for room in rooms), "a room is missing from the map"
