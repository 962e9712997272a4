"""The project's DDL rendered for a ClickHouse cluster: Replicated and Distributed tables.

The single-node DDL in ``schemas/clickhouse/*.sql`` is the only copy of the schema. This module
reads the same statements (:func:`pipeline.storage.migrations.load_migrations`) and rewrites each
one for a cluster named by the operator, every statement ``ON CLUSTER``:

- **Sharded tables** (call history, payments, the key index ``cdr_days``): the data lives in
  ``<name>_local``, a ``Replicated*MergeTree`` (ZooKeeper path with the ``{shard}`` macro,
  replica ``{replica}``; same columns, ORDER BY, PARTITION BY and version column), and
  ``<name>`` becomes a ``Distributed`` table over it. The sharding key hashes the table's dedup
  key (``cityHash64(tenant_id, cdr_id)`` for call history), so every version of a CDR lands on
  the same shard and ``FINAL`` on each shard keeps exactly one: the rendering refuses a sharding
  key that is not made of ORDER BY columns. ``cdr_days.key`` already is that hash, so it is its
  own sharding key: a CDR's key-index rows live on the shard that holds the CDR.
- **Shard-local tables** (the balances pre-aggregation bookkeeping): replicated within a shard,
  not distributed. They describe the data parts of their own shard.
- **Tables on every node** (``schema_migrations``): one replicated copy on every node, so the
  migration step of any rater sees what the cluster DDL applied.
- **Data statements** (``INSERT INTO <sharded table> ... SELECT``, a migration's backfill): run
  once, on the node the script is applied on, through the Distributed tables (which route each
  row to its shard), with ``distributed_foreground_insert = 1`` so the rows are on their shards
  when the statement returns and the next statement sees them.
- **Views**: those that read data parts (``system.parts``, ``_partition_id``) or shard-local
  tables run per shard against the ``_local`` tables; ``rated_totals`` is computed per shard and
  summed over one replica of each shard (``cluster()``); every other view reads the Distributed
  tables and is the same text as on one node.

The script ends by recording every migration in ``schema_migrations``, so raters connecting to
any node find the schema applied and run no single-node DDL. What callers may rely on: the
output is a list of complete statements, each one parsed by ClickHouse's own parser in the
tests; the single-node statements are those :func:`single_node_statements` returns, exactly
what the migration step runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.storage.migrations import Migration, load_migrations, quote_identifier, render

# Tables whose rows are spread over the shards, with the columns of their sharding key. The key
# must be a subset of the table's ORDER BY: ReplacingMergeTree only replaces rows with the same
# sorting key on the same shard.
SHARDED_TABLES: dict[str, tuple[str, ...]] = {
    "call_history": ("tenant_id", "cdr_id"),
    "payments": ("tenant_id", "payment_id"),
    "cdr_days": ("key",),
}
# Sharded tables whose key column already holds the hash the shard is chosen by: cdr_days.key
# is cityHash64(tenant_id, cdr_id), so key % weights picks the shard of the CDR's call history.
PRE_HASHED_KEYS: dict[str, str] = {"cdr_days": "key"}
# Bookkeeping of the balances pre-aggregation: fingerprints of data parts and sums computed from
# them. Parts exist per shard, so these tables do too (replicated between a shard's replicas).
SHARD_LOCAL_TABLES = frozenset({"balance_partitions", "balance_refreshes"})
# Small tables every node needs whole: one replica set spanning the cluster (client_status: one
# row per client and event, read with the roster on any node; the roster of each reference
# version: accounts, join codes, enrollments, memberships, and when each version was loaded;
# the exchange rates of each version; the billing periods: the close log, the items and
# statements each close froze).
EVERY_NODE_TABLES = frozenset(
    {
        "schema_migrations",
        "client_status",
        "roster_accounts",
        "roster_join_codes",
        "roster_enrollments",
        "roster_memberships",
        "roster_loads",
        "fx_rates",
        "period_events",
        "statement_items",
        "closed_statements",
    }
)
# Views computed on each shard and then added up over the shards: name -> (keys, summed columns).
MERGED_ACROSS_SHARDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "rated_totals": (("tenant_id", "scope", "account_id", "currency"), ("amount", "calls")),
}
# What makes a view's result depend on the shard it runs on.
_SHARD_LOCAL_MARKERS = ("system.parts", "_partition_id")

_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_CREATE_TABLE = re.compile(
    r"^CREATE TABLE IF NOT EXISTS (?P<name>\w+)\s*\((?P<columns>.*)\)\s*"
    r"ENGINE\s*=\s*(?P<engine>\w*MergeTree)(?:\((?P<args>[^)]*)\))?(?P<rest>.*)$",
    re.S,
)
_ORDER_BY = re.compile(r"ORDER BY\s+(?:\((?P<many>[^)]*)\)|(?P<one>\w+))")
_CREATE_VIEW = re.compile(
    r"^(?P<head>CREATE (?:OR REPLACE )?VIEW (?:IF NOT EXISTS )?(?P<name>\w+))\s+AS\b", re.S
)
_ALTER_TABLE = re.compile(r"^ALTER TABLE (?P<name>\w+)\s+(?P<rest>.*)$", re.S)
_INSERT_SELECT = re.compile(
    r"^INSERT INTO (?P<name>\w+)(?P<columns>\s*\([^)]*\))?\s+(?P<select>SELECT\b.*)$", re.S
)


class ClusterDdlError(ValueError):
    """A statement or a name that cannot be rendered for a cluster (the message says which)."""


@dataclass(frozen=True)
class ClusterLayout:
    """Where each object of the schema lives on a cluster, as rendered."""

    sharded: dict[str, str]  # table -> sharding key expression
    shard_local_tables: tuple[str, ...]
    every_node_tables: tuple[str, ...]
    shard_local_views: tuple[str, ...]
    merged_views: tuple[str, ...]
    global_views: tuple[str, ...]


def quote_string(value: str) -> str:
    """A ClickHouse string literal holding exactly ``value`` (quotes and escapes escaped)."""
    escaped = (
        value.replace("\\", "\\\\")
        .replace("'", "\\'")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
        .replace("\0", "\\0")
    )
    return f"'{escaped}'"


def quote_name(value: str) -> str:
    """A back-quoted ClickHouse identifier naming exactly ``value``."""
    if not value:
        msg = "an identifier cannot be empty"
        raise ValueError(msg)
    escaped = (
        value.replace("\\", "\\\\")
        .replace("`", "\\`")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
        .replace("\0", "\\0")
    )
    return f"`{escaped}`"


def check_cluster_name(cluster: str) -> str:
    """Return ``cluster`` if it is a name from ``remote_servers`` this module can render."""
    if not _CLUSTER_NAME.match(cluster):
        msg = (
            f"cluster name {cluster!r} must be letters, digits, '_', '-' and '.' "
            "(as in the server's remote_servers configuration)"
        )
        raise ClusterDdlError(msg)
    return cluster


def single_node_statements(database: str, migrations: list[Migration] | None = None) -> list[str]:
    """The statements the migration step runs on one node, in order, for ``database``."""
    migrations = load_migrations() if migrations is None else migrations
    return [render(s, database) for m in migrations for s in m.statements]


def merge_select(name: str, source: str) -> str:
    """The SELECT that adds up a per-shard view ``name`` read from ``source``.

    Used for the cluster's global ``rated_totals`` (``source`` is a ``cluster()`` read of
    ``rated_totals_local``); the tests run it on one node over the single-node view and check it
    returns exactly that view, names and types included.
    """
    keys, summed = MERGED_ACROSS_SHARDS[name]
    columns = [*keys, *(f"sum({c}) AS {c}" for c in summed)]
    return f"SELECT {', '.join(columns)}\nFROM {source}\nGROUP BY {', '.join(keys)}"


def sharding_key(table: str) -> str:
    """The Distributed sharding key expression of a sharded table."""
    if table in PRE_HASHED_KEYS:
        return PRE_HASHED_KEYS[table]
    return f"cityHash64({', '.join(SHARDED_TABLES[table])})"


def cluster_statements(
    cluster: str, database: str, migrations: list[Migration] | None = None
) -> list[str]:
    """Every statement of the schema for ``cluster``, in order, ending with the migration records.

    Raises :class:`ClusterDdlError` for a MergeTree table without a placement above, a sharding
    key outside the table's ORDER BY, or a statement kind this module does not know (so a new
    migration cannot silently create a single-node object on a cluster).
    """
    return _Renderer(check_cluster_name(cluster), database).render(
        load_migrations() if migrations is None else migrations
    )


def cluster_layout(database: str, migrations: list[Migration] | None = None) -> ClusterLayout:
    """Where the cluster rendering puts each table and view (for docs, the CLI and tests)."""
    renderer = _Renderer("layout", database)
    renderer.render(load_migrations() if migrations is None else migrations)
    return renderer.layout()


class _Renderer:
    def __init__(self, cluster: str, database: str) -> None:
        quote_identifier(database)  # a plain identifier, as the migration step requires
        self.cluster = cluster
        self.database = database
        self.on_cluster = f"ON CLUSTER {quote_name(cluster)}"
        self.tables: dict[str, str] = {}  # name -> placement
        self.views: dict[str, str] = {}  # name -> shard_local | merged | global

    def render(self, migrations: list[Migration]) -> list[str]:
        out = [
            f"CREATE DATABASE IF NOT EXISTS {quote_name(self.database)} {self.on_cluster}",
            f"USE {quote_name(self.database)}",
        ]
        for migration in migrations:
            for statement in migration.statements:
                out.extend(self._statement(render(statement, self.database)))
        out.append(self._records(migrations))
        return out

    def layout(self) -> ClusterLayout:
        def named(kinds: dict[str, str], kind: str) -> tuple[str, ...]:
            return tuple(name for name, k in kinds.items() if k == kind)

        return ClusterLayout(
            sharded={t: sharding_key(t) for t in named(self.tables, "sharded")},
            shard_local_tables=named(self.tables, "shard_local"),
            every_node_tables=named(self.tables, "every_node"),
            shard_local_views=named(self.views, "shard_local"),
            merged_views=named(self.views, "merged"),
            global_views=named(self.views, "global"),
        )

    def _statement(self, sql: str) -> list[str]:
        if match := _CREATE_TABLE.match(sql):
            return self._table(match)
        if match := _CREATE_VIEW.match(sql):
            return self._view(match, sql)
        if match := _ALTER_TABLE.match(sql):
            name, rest = match["name"], match["rest"]
            names = [f"{name}_local", name] if self.tables.get(name) == "sharded" else [name]
            return [f"ALTER TABLE {n} {self.on_cluster} {rest}" for n in names]
        if (match := _INSERT_SELECT.match(sql)) and self.tables.get(match["name"]) == "sharded":
            columns = match["columns"] or ""
            return [
                f"INSERT INTO {match['name']}{columns}\n"
                f"SETTINGS distributed_foreground_insert = 1\n{match['select']}"
            ]
        first = sql.splitlines()[0]
        msg = f"cannot render this statement for a cluster (add a rule in cluster_ddl.py): {first}"
        raise ClusterDdlError(msg)

    def _zookeeper_path(self, table: str, shard: str) -> str:
        return quote_string(f"/clickhouse/tables/{shard}/{self.database}/{table}")

    def _replicated(self, match: re.Match[str], table: str, shard: str, replica: str) -> str:
        args = [self._zookeeper_path(table, shard), quote_string(replica)]
        if match["args"] and match["args"].strip():
            args.append(match["args"].strip())
        return (
            f"CREATE TABLE IF NOT EXISTS {table} {self.on_cluster}\n({match['columns']})\n"
            f"ENGINE = Replicated{match['engine']}({', '.join(args)}){match['rest']}"
        )

    def _table(self, match: re.Match[str]) -> list[str]:
        name = match["name"]
        if name in SHARDED_TABLES:
            order = _ORDER_BY.search(match["rest"])
            ordered = set()
            if order is not None:
                ordered = {c.strip() for c in (order["many"] or order["one"]).split(",")}
            outside = [c for c in SHARDED_TABLES[name] if c not in ordered]
            if outside:
                msg = (
                    f"sharding key of {name} uses {outside}, not in its ORDER BY: versions of "
                    "one row could land on different shards and never be replaced"
                )
                raise ClusterDdlError(msg)
            self.tables[name] = "sharded"
            local = f"{name}_local"
            distributed = (
                f"CREATE TABLE IF NOT EXISTS {name} {self.on_cluster} AS {local}\n"
                f"ENGINE = Distributed({quote_string(self.cluster)}, "
                f"{quote_string(self.database)}, {quote_string(local)}, {sharding_key(name)})"
            )
            return [self._replicated(match, local, "{shard}", "{replica}"), distributed]
        if name in SHARD_LOCAL_TABLES:
            self.tables[name] = "shard_local"
            return [self._replicated(match, name, "{shard}", "{replica}")]
        if name in EVERY_NODE_TABLES:
            self.tables[name] = "every_node"
            # One replica set over all nodes: the replica name must be unique in the cluster.
            return [self._replicated(match, name, "all", "{shard}-{replica}")]
        msg = (
            f"table {name} has no place on a cluster: add it to SHARDED_TABLES, "
            "SHARD_LOCAL_TABLES or EVERY_NODE_TABLES in pipeline/storage/cluster_ddl.py"
        )
        raise ClusterDdlError(msg)

    def _mentions(self, body: str, names: set[str]) -> bool:
        return any(re.search(rf"\b{re.escape(n)}\b", body) for n in names)

    def _view(self, match: re.Match[str], sql: str) -> list[str]:
        name = match["name"]
        body = sql[len(match["head"]) :]
        local_names = {t for t, k in self.tables.items() if k == "shard_local"}
        local_names |= {v for v, k in self.views.items() if k == "shard_local"}
        shard_local = name in MERGED_ACROSS_SHARDS or (
            any(marker in body for marker in _SHARD_LOCAL_MARKERS)
            or self._mentions(body, local_names)
        )
        if not shard_local:
            self.views[name] = "global"
            return [f"{match['head']} {self.on_cluster}{body}"]
        for table, kind in self.tables.items():
            if kind == "sharded":  # read this shard's rows (and its parts in system.parts)
                body = re.sub(rf"\b{re.escape(table)}\b", f"{table}_local", body)
        if name not in MERGED_ACROSS_SHARDS:
            self.views[name] = "shard_local"
            return [f"{match['head']} {self.on_cluster}{body}"]
        self.views[name] = "merged"
        local = f"{name}_local"
        source = (
            f"cluster({quote_string(self.cluster)}, {quote_string(self.database)}, "
            f"{quote_string(local)})"
        )
        return [
            f"CREATE VIEW IF NOT EXISTS {local} {self.on_cluster}{body}",
            f"CREATE VIEW IF NOT EXISTS {name} {self.on_cluster} AS\n{merge_select(name, source)}",
        ]

    def _records(self, migrations: list[Migration]) -> str:
        rows = ",\n".join(
            f"({quote_string(m.name)}, {quote_string(m.checksum)}, now64(6, 'UTC'))"
            for m in migrations
        )
        return f"INSERT INTO schema_migrations (name, checksum, applied_at) VALUES\n{rows}"
