"""``client-status``: say that a VMGateClient went online or offline (tests, demos).

In production VMGateServer publishes ``client-status.v1``; this command publishes the same
messages (or, with ``--store``, writes the table directly), validated by the same rules the
raters apply to the topic.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.commands.options import (
    STORE_HELP,
    identifier,
    instant,
    kafka_options,
    open_store,
    settings_of,
)

if TYPE_CHECKING:
    from pipeline.storage.client_status import ClientStatus

_SHOWN_PROBLEMS = 5


def add_commands(commands: Any) -> None:
    """Add ``client-status``."""
    status = commands.add_parser(
        "client-status",
        help="record that a VMGateClient went online or offline",
        description="Record a client's online status as VMGateServer does (client-status.v1: "
        "client_id, tenant_id, online, at). Without --store and with Kafka configured "
        "($KAFKA_BOOTSTRAP or --bootstrap) the event is published to the topic, keyed by "
        "client_id, with an idempotent producer, and the raters store it; with --store it is "
        "written to the store directly (no Kafka). The newest event of a client wins: an "
        "older one recorded later changes nothing, the same one twice counts once. --file "
        "records many: a JSONL file of such objects, all checked before any is recorded.",
        epilog="example: vmgate-rating client-status --tenant tnt-01 --client cl-7 --online "
        "--at 2026-03-01T08:00:00Z --store ./store",
    )
    kafka_options(status)
    status.add_argument("--store", type=Path, help=f"write here, not to Kafka; {STORE_HELP}")
    status.add_argument("--tenant", type=identifier, help="tenant id")
    status.add_argument("--client", type=identifier, help="client (VMGateClient) id")
    state = status.add_mutually_exclusive_group()
    state.add_argument("--online", action="store_true", help="the client went online")
    state.add_argument("--offline", action="store_true", help="the client went offline")
    status.add_argument("--at", type=instant, help="when, RFC 3339 (default: now)")
    status.add_argument(
        "--file",
        type=Path,
        help='JSONL, one {"client_id", "tenant_id", "online", "at"} object per line, instead '
        "of --tenant/--client/--online/--offline/--at",
    )
    status.set_defaults(run=_client_status)


def _client_status(args: argparse.Namespace) -> int:
    from pipeline.storage.client_status import ClientStatus

    one = (args.tenant, args.client, args.online or args.offline or None, args.at)
    if args.file is not None:
        if any(value is not None for value in one):
            msg = "--file replaces --tenant, --client, --online/--offline and --at: give one form"
            raise ValueError(msg)
        statuses = _read_file(args.file)
    else:
        missing = [
            option
            for option, value in zip(
                ("--tenant", "--client", "--online or --offline", "--at"), one, strict=True
            )
            if value is None and option != "--at"
        ]
        if missing:
            msg = f"client-status needs {', '.join(missing)} (or --file)"
            raise ValueError(msg)
        given = ClientStatus(args.tenant, args.client, bool(args.online), args.at or _now())
        statuses = [_checked(given)]
    settings = settings_of(args)
    if args.store is None and settings.kafka_bootstrap:
        from pipeline.services.client_status_ingest import publish_client_statuses

        sent = publish_client_statuses(settings.kafka(), settings.client_status_topic, statuses)
        print(f"published {sent:,} client status event(s) to {settings.client_status_topic}")
        if len(statuses) == 1:
            print(f"  {_line(statuses[0])}")
        return 0
    from pipeline.storage.client_status import current_client_status, record_client_statuses

    store = open_store(settings, args.store or Path("store"))
    try:
        store.migrate()
        stored = record_client_statuses(store, statuses, _now())
        current = current_client_status(store).to_pylist()
    finally:
        store.close()
    print(f"stored {stored:,} client status event(s)")
    wanted = {(s.tenant_id, s.client_id) for s in statuses}
    rows = [row for row in current if (row["tenant_id"], row["client_id"]) in wanted]
    online = sum(1 for row in rows if row["online"])
    print(f"now {online:,} of these {len(rows):,} client(s) online")
    if len(rows) == 1:
        row = rows[0]
        now = ClientStatus(row["tenant_id"], row["client_id"], bool(row["online"]), row["at"])
        print(f"  {_line(now)}")
    return 0


def _read_file(path: Path) -> list[ClientStatus]:
    """Every event of a JSONL file, or a ValueError naming the first lines refused."""
    from pipeline.services.client_status_messages import Refusal, decode_status_line

    statuses: list[ClientStatus] = []
    problems: list[str] = []
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            decoded = decode_status_line(line)
            if isinstance(decoded, Refusal):
                problems.append(f"line {number}: {decoded.reason} ({decoded.detail})")
            else:
                statuses.append(decoded)
    if problems:
        shown = "; ".join(problems[:_SHOWN_PROBLEMS])
        hidden = len(problems) - _SHOWN_PROBLEMS
        more = f"; and {hidden} more" if hidden > 0 else ""
        msg = f"{path}: {len(problems)} line(s) refused, nothing recorded: {shown}{more}"
        raise ValueError(msg)
    if not statuses:
        msg = f"{path}: no client status in the file"
        raise ValueError(msg)
    return statuses


def _checked(status: ClientStatus) -> ClientStatus:
    """``status`` if the raters would accept it from the topic; else a ValueError saying why."""
    from pipeline.services.client_status_messages import Refusal, decode_status_line

    decoded = decode_status_line(status.to_json())
    if isinstance(decoded, Refusal):
        msg = f"client status refused: {decoded.reason} ({decoded.detail})"
        raise ValueError(msg)
    return decoded


def _line(status: ClientStatus) -> str:
    state = "online" if status.online else "offline"
    data = json.loads(status.to_json())
    return f"client {status.client_id} of tenant {status.tenant_id}: {state} since {data['at']}"


def _now() -> datetime:
    return datetime.now(UTC)
