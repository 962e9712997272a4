"""What every command shares: refusing bad input in one line, option types, settings, stores.

What the user typed is checked while parsing (counts, ports, RFC 3339 instants, a window whose
``--from`` is before its ``--to``, paths that must exist, choices), so a bad value is refused in
one line, exit status 2, before anything is opened.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn

if TYPE_CHECKING:
    from pipeline.config import Settings
    from pipeline.sinks.contracts import CallHistoryStore

STORE_HELP = "embedded store folder (./store); ignored when $CLICKHOUSE_URL is set"


class Parser(argparse.ArgumentParser):
    """argparse, refusing bad input in one line on stderr (the usage is in --help)."""

    def error(self, message: str) -> NoReturn:
        """Print ``prog: error: message`` and exit 2."""
        self.refuse(self.prog, message)

    def refuse(self, prog: str, message: str) -> NoReturn:
        """Exit 2 with one line saying what ``prog`` refused and where its help is."""
        self.exit(2, f"{prog}: error: {message} (see {prog} --help)\n")


def _whole_number(text: str, minimum: int, maximum: int | None = None, what: str = "") -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < minimum or (maximum is not None and value > maximum):
        bound = f"from {minimum} to {maximum}" if maximum is not None else f"of {minimum} or more"
        msg = f"{text!r} is not a {what or 'whole number'} {bound}"
        raise argparse.ArgumentTypeError(msg)
    return value


def positive_int(text: str) -> int:
    """A count or size of at least 1."""
    return _whole_number(text, 1)


def non_negative_int(text: str) -> int:
    """A count that may be 0."""
    return _whole_number(text, 0)


def port(text: str) -> int:
    """A TCP port to listen on."""
    return _whole_number(text, 1, 65_535, "port number")


def identifier(text: str) -> str:
    """An id (tenant, client, ...): text that is not blank, at most 256 bytes in UTF-8."""
    try:
        size = len(text.encode())
    except UnicodeEncodeError:  # undecodable bytes on the command line
        size = -1
    if not text.strip() or not 0 < size <= 256:
        msg = f"{text[:64]!r} is not an id (1 to 256 bytes of text, not blank)"
        raise argparse.ArgumentTypeError(msg)
    return text


def seconds(text: str) -> float:
    """A duration in seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        msg = f"{text!r} is not a number of seconds, 0 or more"
        raise argparse.ArgumentTypeError(msg)
    return value


def currency_code(text: str) -> str:
    """An ISO 4217 currency code (``EUR``)."""
    from pipeline.rating.money import ISO_4217

    if text not in ISO_4217:
        msg = f"{text[:64]!r} is not an ISO 4217 currency code (like EUR)"
        raise argparse.ArgumentTypeError(msg)
    return text


def instant(text: str) -> datetime:
    """An RFC 3339 instant, as UTC."""
    from pipeline.rating.timeparse import parse_instant

    parsed = parse_instant(text)
    if parsed is None:
        msg = f"{text!r} is not an RFC 3339 timestamp (like 2026-03-01T00:00:00Z)"
        raise argparse.ArgumentTypeError(msg)
    return parsed


# Path arguments that must exist when the command starts: dest -> (option, folder or file).
_EXISTING_PATHS: Final = {
    "config": ("--config", "file"),
    "plans": ("--plans", "folder"),
    "cdrs": ("--cdrs", "file"),
    "file": ("--file", "file"),
    "input": ("--input", "file"),
    "profile": ("--profile", "file"),
    "old": ("old", "folder"),
    "new": ("new", "folder"),
    "old_plans": ("--old", "folder"),
    "new_plans": ("--new", "folder"),
}


def refuse_after_parsing(parser: Parser, args: argparse.Namespace) -> None:
    """Refuse what argparse cannot check option by option: an empty window, a missing path.

    Paths are checked here, not by argparse types, so that the parser still accepts a command
    line written for another machine (a container's paths in docker-compose.yml).
    """
    words = [
        parser.prog,
        args.command,
        getattr(args, "decks_command", None),
        getattr(args, "periods_command", None),
    ]
    prog = " ".join(w for w in words if w)
    start, end = getattr(args, "start", None), getattr(args, "end", None)
    if start is not None and end is not None and start >= end:
        start_text, end_text = (t.isoformat().replace("+00:00", "Z") for t in (start, end))
        parser.refuse(prog, f"--from {start_text} is not before --to {end_text}")
    for dest, (option, kind) in _EXISTING_PATHS.items():
        path = getattr(args, dest, None)
        if isinstance(path, Path) and not (path.is_dir() if kind == "folder" else path.is_file()):
            shown = repr(str(path))
            problem = f"{shown} is not a {kind}" if path.exists() else f"{kind} {shown} not found"
            parser.refuse(prog, f"argument {option}: {problem}")


def kafka_options(command: argparse.ArgumentParser) -> None:
    """``--bootstrap``."""
    command.add_argument(
        "--bootstrap", help="Kafka bootstrap servers host:port (default $KAFKA_BOOTSTRAP)"
    )


def format_option(command: argparse.ArgumentParser) -> None:
    """``--format table|json|csv``."""
    command.add_argument(
        "--format", choices=["table", "json", "csv"], default="table", help="output (table)"
    )


def window_options(command: argparse.ArgumentParser) -> None:
    """A required window ``[--from, --to)``."""
    command.add_argument(
        "--from", dest="start", type=instant, required=True, help="window start (RFC 3339)"
    )
    command.add_argument(
        "--to", dest="end", type=instant, required=True, help="window end, exclusive"
    )


def store_option(command: argparse.ArgumentParser) -> None:
    """``--store`` of a command that reads an existing store."""
    command.add_argument("--store", type=Path, default=Path("store"), help=STORE_HELP)


def settings_of(args: argparse.Namespace) -> Settings:
    """The settings (defaults, TOML file, environment), with this command's flags on top."""
    from pipeline.config import load_settings

    settings = load_settings(args.config)
    overrides: dict[str, Any] = {}
    if getattr(args, "bootstrap", None):
        overrides["kafka_bootstrap"] = args.bootstrap
    if getattr(args, "group", None):
        overrides["group_id"] = args.group
    if getattr(args, "batch_size", None) and args.command == "run":
        overrides["batch_size"] = args.batch_size
    return replace(settings, **overrides)


def open_store(settings: Settings, store_dir: Path | None) -> CallHistoryStore:
    """The ClickHouse server of the settings, else the embedded store at ``store_dir``."""
    from pipeline.sinks.open_store import open_store as opened

    url = settings.clickhouse_url.reveal() if settings.clickhouse_url else None
    return opened(
        store_dir or Path("store"),
        url,
        settings.database,
        username=settings.clickhouse_user,
        password=settings.clickhouse_password,
    )


def with_store(args: argparse.Namespace) -> CallHistoryStore:
    """The store a reading command works on, migrated; its folder must exist if embedded."""
    settings = settings_of(args)
    if settings.clickhouse_url is None and not args.store.is_dir():
        raise FileNotFoundError(2, "--store folder not found", str(args.store))
    store = open_store(settings, args.store)
    store.migrate()
    return store
