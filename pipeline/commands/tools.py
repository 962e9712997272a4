"""Tools: ``schema`` (print the DDL), ``config show``, ``demo``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pipeline.commands.options import (
    positive_int,
    settings_of,
)


def add_commands(commands: Any) -> None:
    """Add ``schema``, ``config`` and ``demo``."""
    _schema_parser(commands)
    config = commands.add_parser(
        "config",
        help="show the effective configuration (secrets masked)",
        description="Configuration comes from defaults, then the TOML file (--config or "
        "$VMGATE_CONFIG), then environment variables, then flags. See docs/configuration.md.",
    )
    config.add_argument("action", choices=["show"], help="show: print the effective settings")
    demo = commands.add_parser(
        "demo",
        help="build a synthetic network, rate it into an embedded store and report",
        description="Generate a realistic synthetic VMGate network (tenants, customers, "
        "clients, resellers, plans of every scope, memberships, CDRs with some malformed), rate "
        "it into an embedded store and print a report: call history with reseller or Direct, "
        "totals per leg and currency, owed to resellers, unrated by reason, rejected.",
    )
    demo.add_argument("--dir", type=Path, default=Path("demo-data"), help="where (./demo-data)")
    demo.add_argument("--cdrs", type=positive_int, default=50_000, help="how many CDRs (50000)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (7)")
    commands.choices["schema"].set_defaults(run=_schema)
    config.set_defaults(run=_config)
    demo.set_defaults(run=_demo)


def _schema(args: argparse.Namespace) -> int:
    from pipeline.sinks.embedded import engine_version
    from pipeline.storage.schema import render_schema
    from pipeline.storage.server_version import ServerVersion

    if args.server_version and not args.access:
        msg = "--server-version goes with --access"
        raise ValueError(msg)
    server = ServerVersion.parse(args.server_version or engine_version()) if args.access else None
    text = render_schema(
        args.database or settings_of(args).database,
        cluster=args.cluster,
        access=args.access,
        tenants=tuple(args.tenant),
        resellers=tuple(args.reseller),
        password_env=args.password_env,
        server=server,
    )
    print(text, end="")
    return 0


def _config(args: argparse.Namespace) -> int:
    print(json.dumps(settings_of(args).masked(), indent=2, default=str))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from pipeline.services.demo import run_demo

    return run_demo(args.dir, cdrs=args.cdrs, seed=args.seed)


def _schema_parser(commands: Any) -> None:
    schema = commands.add_parser(
        "schema",
        help="print the ClickHouse DDL: one node, a cluster (--cluster), or access (--access)",
        description="Print the ClickHouse DDL for review and for clickhouse-client. Default: the "
        "single-node schema, exactly what `setup` applies. --cluster NAME: the same schema for "
        "the cluster NAME of the servers' remote_servers (Replicated tables with {shard} and "
        "{replica} macros, Distributed tables sharded by cityHash64(tenant_id, cdr_id), every "
        "statement ON CLUSTER; see docs/scaling.md). --access: roles, grants and row policies "
        "(vmgate_admin, vmgate_rater, vmgate_analyst, vmgate_reseller), plus a role and row "
        "policy per --tenant and per --reseller (see docs/access.md).",
    )
    schema.add_argument("--cluster", metavar="NAME", help="render for this ClickHouse cluster")
    schema.add_argument(
        "--access", action="store_true", help="print users, roles and row policies instead"
    )
    schema.add_argument(
        "--tenant",
        action="append",
        default=[],
        metavar="T",
        help="with --access: a role and row policy seeing tenant T only (repeatable)",
    )
    schema.add_argument(
        "--reseller",
        action="append",
        default=[],
        metavar="R",
        help="with --access and one --tenant: a role seeing reseller R's traffic (repeatable)",
    )
    schema.add_argument(
        "--password-env",
        metavar="VAR",
        help="with --access: also create a user <role>_user for each --tenant/--reseller role, "
        "identified by the SHA-256 of the password in environment variable VAR (never printed)",
    )
    schema.add_argument(
        "--server-version",
        metavar="X.Y",
        help="with --access: the ClickHouse version of the server the statements are for; "
        "settings it lacks are never named (a server before 25.10 gets no reseller access, "
        "refused with --reseller). Default: the version of the embedded engine the pipeline is "
        "tested on, which the pinned server image shares (deploy/versions.toml)",
    )
    schema.add_argument("--database", help="database name (default: the configured one, vmgate)")
