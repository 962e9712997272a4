"""``vmgate-rating schema``: print the ClickHouse DDL for one node, a cluster, or access control.

Printing instead of applying lets an administrator review the statements and apply them with
the credentials and tools of the server (``clickhouse-client --multiquery < schema.sql``).
Nothing here connects anywhere. Output: statements separated by ``;`` and a blank line, after
a comment header saying what was rendered; the single-node statements are exactly those the
migration step (``vmgate-rating setup``) runs.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from pipeline.storage.access_ddl import AccessRequest, access_statements, password_sha256
from pipeline.storage.cluster_ddl import cluster_statements, quote_name, single_node_statements


def add_schema_parser(commands: Any) -> None:
    """Add the ``schema`` subcommand to the CLI's subparsers."""
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
    schema.add_argument("--database", help="database name (default: the configured one, vmgate)")


def render_schema(args: argparse.Namespace, database: str) -> str:
    """The text ``schema`` prints for ``args`` (parsed by :func:`add_schema_parser`).

    Raises ``ValueError`` for options that do not go together or a missing password variable.
    """
    if (args.tenant or args.reseller or args.password_env) and not args.access:
        msg = "--tenant, --reseller and --password-env go with --access"
        raise ValueError(msg)
    if args.access:
        digest = None
        if args.password_env:
            if not (args.tenant or args.reseller):
                msg = "--password-env creates the users of --tenant/--reseller roles: give one"
                raise ValueError(msg)
            password = os.environ.get(args.password_env)
            if not password:
                msg = f"--password-env: environment variable {args.password_env} is not set"
                raise ValueError(msg)
            digest = password_sha256(password)
        request = AccessRequest(
            database, tuple(args.tenant), tuple(args.reseller), args.cluster, digest
        )
        statements = access_statements(request)
        what = "access control (roles, grants, row policies" + (", users)" if digest else ")")
    elif args.cluster:
        statements = cluster_statements(args.cluster, database)
        what = f"schema for cluster {args.cluster}"
    else:
        quoted = quote_name(database)
        statements = [
            f"CREATE DATABASE IF NOT EXISTS {quoted}",
            f"USE {quoted}",
            *single_node_statements(database),
        ]
        what = "single-node schema"
    header = (
        f"-- vmgate-rating {what}, database {database}.\n"
        "-- Apply as an administrator: clickhouse-client --multiquery < this-file.sql\n\n"
    )
    return header + "".join(f"{s};\n\n" for s in statements)
