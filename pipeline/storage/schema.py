"""The ClickHouse DDL that `vmgate-rating schema` prints: one node, a cluster, or access.

Printing instead of applying lets an administrator review the statements and apply them with
the credentials and tools of the server (``clickhouse-client --multiquery < schema.sql``).
Nothing here connects anywhere. Output: statements separated by ``;`` and a blank line, after
a comment header saying what was rendered; the single-node statements are exactly those the
migration step (``vmgate-rating setup``) runs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from pipeline.storage.access_ddl import AccessRequest, access_statements, password_sha256
from pipeline.storage.cluster_ddl import cluster_statements, quote_name, single_node_statements
from pipeline.storage.server_version import ServerVersion


def render_schema(
    database: str,
    *,
    cluster: str | None = None,
    access: bool = False,
    tenants: Sequence[str] = (),
    resellers: Sequence[str] = (),
    password_env: str | None = None,
    server: ServerVersion | None = None,
) -> str:
    """The DDL ``vmgate-rating schema`` prints: one node, a ``cluster``, or ``access`` control.

    Raises ``ValueError`` for options that do not go together or a missing password variable.
    """
    if (tenants or resellers or password_env) and not access:
        msg = "--tenant, --reseller and --password-env go with --access"
        raise ValueError(msg)
    if access:
        digest = None
        if password_env:
            if not (tenants or resellers):
                msg = "--password-env creates the users of --tenant/--reseller roles: give one"
                raise ValueError(msg)
            password = os.environ.get(password_env)
            if not password:
                msg = f"--password-env: environment variable {password_env} is not set"
                raise ValueError(msg)
            digest = password_sha256(password)
        request = AccessRequest(
            database, tuple(tenants), tuple(resellers), cluster, digest, server=server
        )
        statements = access_statements(request)
        what = "access control (roles, grants, row policies" + (", users)" if digest else ")")
        if server is not None:
            what += f" for ClickHouse {server}"
    elif cluster:
        statements = cluster_statements(cluster, database)
        what = f"schema for cluster {cluster}"
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
