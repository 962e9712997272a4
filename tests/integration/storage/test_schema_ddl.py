"""The cluster DDL and the access DDL, checked with the real ClickHouse engine (chdb).

No ClickHouse cluster or user management runs here (chdb has neither ZooKeeper nor a writable
access storage), so every rendered statement is parsed by ClickHouse's own parser
(``formatQuery``, which also refuses two statements in one string), the cluster tables are
compared with the single-node tables they come from, and quoting is checked by evaluating what
the engine parsed. The single-node schema printed by ``vmgate-rating schema`` is applied to a
real engine and compared with what the migration step creates.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from pipeline.cli import main
from pipeline.reference.loader import load_plans_folder
from pipeline.services.offline import rate_file
from pipeline.sinks.embedded import EmbeddedStore
from pipeline.storage.access_ddl import (
    RESELLER_CALL_HISTORY_COLUMNS,
    TENANT_TABLES,
    AccessRequest,
    access_statements,
    password_sha256,
    reseller_conditions,
    tenant_condition,
)
from pipeline.storage.cluster_ddl import (
    ClusterDdlError,
    cluster_layout,
    cluster_statements,
    merge_select,
    quote_name,
    quote_string,
    single_node_statements,
)
from pipeline.storage.migrations import Migration, load_migrations, render
from pipeline.synthetic import NetworkSpec, write_network

CLUSTER = "vmgate_cluster"
DATABASE = "vmgate"
EVIL_IDS = [
    "x' OR 1=1 --",
    "'; DROP TABLE call_history; --",
    "a`b",
    "back\\slash\\",
    "new\nline\ttab",
    "ünï-cödé 42",
]
_VIEW = re.compile(r"CREATE (?:OR REPLACE )?VIEW (?:IF NOT EXISTS )?(\w+)")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStore]:
    """A migrated embedded store with a small rated synthetic network."""
    root = tmp_path_factory.mktemp("schema-ddl")
    write_network(
        NetworkSpec(seed=3, cdrs=1_500, prefixes_per_plan=60), root / "plans", root / "cdrs"
    )
    with EmbeddedStore(root / "store", f"ddl_{uuid.uuid4().hex}") as opened:
        opened.migrate()
        rate_file(
            load_plans_folder(root / "plans"),
            root / "cdrs",
            root / "out.parquet",
            root / "dlq.jsonl",
            datetime(2026, 4, 1, tzinfo=UTC),
            store=opened,
        )
        yield opened


def formatted(store: EmbeddedStore, statement: str) -> str:
    """ClickHouse's own formatting of one statement (raises if it does not parse)."""
    table = store.query("SELECT formatQuery({q:String}) AS f", {"q": statement})
    text = table.column("f")[0].as_py()
    assert isinstance(text, str)
    return text


# -- cluster DDL ---------------------------------------------------------------------------------


def test_every_cluster_statement_parses_and_runs_on_the_cluster(store: EmbeddedStore) -> None:
    statements = cluster_statements(CLUSTER, DATABASE)
    assert statements[0].startswith("CREATE DATABASE")
    for statement in statements:
        text = formatted(store, statement)
        if text.startswith(("USE ", "INSERT INTO schema_migrations")):
            continue
        if text.startswith("INSERT INTO"):
            # A migration's data statement runs once, through the Distributed tables, and
            # returns when every shard has its rows.
            assert "distributed_foreground_insert = 1" in text, text
            continue
        assert f"ON CLUSTER {CLUSTER}" in text, text
    # The last statement records every migration, so raters find the schema applied.
    recorded = re.findall(r"\('(\d{3}_\w+\.sql)', '([0-9a-f]+)'", statements[-1])
    assert recorded == [(m.name, m.checksum) for m in load_migrations()]


def _engine_free(text: str) -> str:
    """A formatted CREATE TABLE without its name, ON CLUSTER and engine clause."""
    text = re.sub(r"^CREATE TABLE IF NOT EXISTS \w+( ON CLUSTER \w+)?", "", text)
    return re.sub(r"ENGINE = \w+(\([^\n]*\))?", "ENGINE", text)


def _engine(text: str) -> str:
    match = re.search(r"ENGINE = (\w+(?:\([^\n]*\))?)", text)
    assert match is not None, text
    return match[1]


def test_cluster_tables_keep_columns_keys_and_version_of_the_single_node_tables(
    store: EmbeddedStore,
) -> None:
    single = {
        m[1]: formatted(store, s)
        for s in single_node_statements(DATABASE)
        if (m := re.match(r"CREATE TABLE IF NOT EXISTS (\w+)", s))
    }
    cluster = {
        m[1]: formatted(store, s)
        for s in cluster_statements(CLUSTER, DATABASE)
        if (m := re.match(r"CREATE TABLE IF NOT EXISTS (\w+)", s))
    }
    layout = cluster_layout(DATABASE)
    assert layout.sharded == {
        "call_history": "cityHash64(tenant_id, cdr_id)",
        "payments": "cityHash64(tenant_id, payment_id)",
        "cdr_days": "key",  # key is cityHash64(tenant_id, cdr_id): the shard of the CDR
    }
    assert set(single) == {*layout.sharded, *layout.shard_local_tables, *layout.every_node_tables}
    for name, text in single.items():
        local = cluster[f"{name}_local"] if name in layout.sharded else cluster[name]
        assert _engine_free(local) == _engine_free(text), name
        engine, args = re.fullmatch(r"(\w+)(?:\((.*)\))?", _engine(text)).groups()  # type: ignore[union-attr]
        replicated = _engine(local)
        assert replicated.startswith(f"Replicated{engine}('/clickhouse/tables/"), replicated
        if name in layout.every_node_tables:
            path, replica = f"all/{DATABASE}/{name}", "{shard}-{replica}"
        else:
            table = f"{name}_local" if name in layout.sharded else name
            path, replica = f"{{shard}}/{DATABASE}/{table}", "{replica}"
        expected_args = [f"'/clickhouse/tables/{path}'", f"'{replica}'", *([args] if args else [])]
        assert replicated == f"Replicated{engine}({', '.join(expected_args)})"
    for name, key in layout.sharded.items():
        assert _engine(cluster[name]) == (
            f"Distributed('{CLUSTER}', '{DATABASE}', '{name}_local', {key})"
        )
        assert f" AS {name}_local" in cluster[name]
    # The claim of docs/guarantees.md: call history is sharded by its replacing key.
    assert "cityHash64(tenant_id, cdr_id)" in cluster["call_history"]
    assert "ORDER BY (tenant_id, cdr_id)" in cluster["call_history_local"]


def test_views_read_local_tables_only_where_they_describe_a_shard(store: EmbeddedStore) -> None:
    layout = cluster_layout(DATABASE)
    assert layout.shard_local_views == (
        "call_history_partitions",
        "balance_fresh_partitions",
        "partition_totals",
    )
    assert layout.merged_views == ("rated_totals",)
    views = {m[1]: s for s in cluster_statements(CLUSTER, DATABASE) if (m := _VIEW.match(s))}
    assert "table = 'call_history_local'" in views["call_history_partitions"]
    assert "FROM call_history_local FINAL" in views["partition_totals"]
    assert "FROM call_history_local FINAL" in views["rated_totals_local"]
    assert f"cluster('{CLUSTER}', '{DATABASE}', 'rated_totals_local')" in views["rated_totals"]
    for name in layout.global_views:
        assert "_local" not in views[name], name
    # A global view is the single-node text with ON CLUSTER and nothing else changed.
    single = {m[1]: s for s in single_node_statements(DATABASE) if (m := _VIEW.match(s))}
    for name in layout.global_views:
        assert views[name].replace(f" ON CLUSTER `{CLUSTER}`", "") == single[name]


def test_rated_totals_summed_over_shards_equal_the_view_on_one_node(store: EmbeddedStore) -> None:
    # On one node the view is the only "shard": adding it up again must change nothing, names
    # and types included; on a cluster the same SELECT adds up one replica of each shard.
    order = " ORDER BY tenant_id, scope, account_id, currency"
    direct = store.query(f"SELECT * FROM rated_totals{order}")
    merged = store.query(f"SELECT * FROM ({merge_select('rated_totals', 'rated_totals')}){order}")
    assert direct.num_rows > 0
    assert merged.schema == direct.schema
    assert merged.equals(direct)


def _table(sql: str, name: str = "call_history") -> Migration:
    return Migration("009_test.sql", "0", (sql.replace("NAME", name),))


def test_cluster_rendering_refuses_what_it_cannot_place() -> None:
    bad_key = (
        "CREATE TABLE IF NOT EXISTS NAME (tenant_id String, cdr_id String, v UInt64)\n"
        "ENGINE = ReplacingMergeTree(v)\nORDER BY (tenant_id)"
    )
    with pytest.raises(ClusterDdlError, match="cdr_id"):
        cluster_statements(CLUSTER, DATABASE, [_table(bad_key)])
    with pytest.raises(ClusterDdlError, match="no place on a cluster"):
        cluster_statements(CLUSTER, DATABASE, [_table(bad_key, "rate_cache")])
    with pytest.raises(ClusterDdlError, match="cannot render"):
        cluster_statements(CLUSTER, DATABASE, [_table("DROP TABLE call_history")])
    with pytest.raises(ClusterDdlError, match="cluster name"):
        cluster_statements("c; DROP", DATABASE)


def test_alter_of_a_sharded_table_reaches_local_and_distributed_tables(
    store: EmbeddedStore,
) -> None:
    migrations = [
        *load_migrations(),
        _table("ALTER TABLE NAME ADD COLUMN IF NOT EXISTS note String DEFAULT ''"),
    ]
    statements = cluster_statements(CLUSTER, DATABASE, migrations)
    alters = [s for s in statements if s.startswith("ALTER") and " note " in s]
    assert [formatted(store, s).split("\n")[0] for s in alters] == [
        f"ALTER TABLE call_history_local ON CLUSTER {CLUSTER}",
        f"ALTER TABLE call_history ON CLUSTER {CLUSTER}",
    ]


def test_single_node_schema_printed_is_what_the_migration_step_creates(
    store: EmbeddedStore, capsys: pytest.CaptureFixture[str]
) -> None:
    assert single_node_statements(DATABASE) == [
        render(s, DATABASE) for m in load_migrations() for s in m.statements
    ]
    other = f"ddl_{uuid.uuid4().hex}"
    assert main(["schema", "--database", other]) == 0
    script = capsys.readouterr().out
    statements = [s.strip() for s in re.split(r";\n\n", script) if s.strip()]
    statements[0] = "\n".join(x for x in statements[0].splitlines() if not x.startswith("--"))
    for statement in statements:
        store.execute(statement)
    store.execute(f"USE {quote_name(store.database)}")
    objects = (
        "SELECT name, engine, replaceAll(create_table_query, {db:String}, 'DB') AS q "
        "FROM system.tables WHERE database = {db:String} ORDER BY name"
    )
    migrated = store.query(objects, {"db": store.database})
    printed = store.query(objects, {"db": other})
    assert migrated.num_rows > 10
    assert printed.equals(migrated)


def test_cli_prints_the_cluster_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "--cluster", CLUSTER]) == 0
    out = capsys.readouterr().out
    assert out.startswith("-- vmgate-rating schema for cluster vmgate_cluster")
    assert "".join(f"{s};\n\n" for s in cluster_statements(CLUSTER, DATABASE)) in out


# -- access DDL ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cluster", [None, CLUSTER])
def test_every_access_statement_parses(store: EmbeddedStore, cluster: str | None) -> None:
    request = AccessRequest(
        DATABASE, ("tnt-01",), ("tnt-01-res-01", "tnt-01-res-02"), cluster, password_sha256("pw")
    )
    statements = access_statements(request)
    texts = [formatted(store, s) for s in statements]
    kinds = {
        re.sub(
            r"^(GRANT|CREATE ROW POLICY|CREATE SETTINGS PROFILE|\w+ \w+).*", r"\1", t, flags=re.S
        )
        for t in texts
    }
    assert kinds == {
        "CREATE ROLE",
        "CREATE USER",
        "CREATE ROW POLICY",
        "CREATE SETTINGS PROFILE",
        "GRANT",
        "ALTER TABLE",
    }
    if cluster:
        assert all(f"ON CLUSTER {cluster}" in t for t in texts)
    # Views run as the invoker, every one of them, so table policies apply through them.
    views = [m[1] for s in single_node_statements(DATABASE) if (m := _VIEW.match(s))]
    for view in views:
        assert any(
            t.startswith(f"ALTER TABLE {DATABASE}.{view}") and "MODIFY SQL SECURITY INVOKER" in t
            for t in texts
        ), view
    policies = [t for t in texts if t.startswith("CREATE ROW POLICY")]
    tables = [f"{DATABASE}.{t}" for t in TENANT_TABLES]
    for policy in policies:
        if "vmgate_all_rows" in policy or "vmgate_tenant_" in policy:
            assert all(t in policy for t in tables), policy
    if cluster:
        assert f"{DATABASE}.call_history_local" in policies[0]


def test_password_is_never_printed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VMGATE_TEST_PW", "s3cret-Passw0rd")
    args = ["schema", "--access", "--tenant", "tnt-01", "--password-env", "VMGATE_TEST_PW"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out
    assert f"IDENTIFIED WITH sha256_hash BY '{password_sha256('s3cret-Passw0rd')}'" in out
    assert "CREATE USER IF NOT EXISTS `vmgate_tenant_tnt-01_user`" in out
    assert main(["schema", "--access", "--tenant", "t", "--password-env", "VMGATE_UNSET_VAR"]) == 2
    assert main(["schema", "--access", "--reseller", "r"]) == 2
    assert main(["schema", "--tenant", "t"]) == 2
    assert "VMGATE_UNSET_VAR is not set" in capsys.readouterr().err
    assert main(["schema", "--access"]) == 0
    assert "CREATE USER" not in capsys.readouterr().out


@pytest.mark.parametrize("evil", EVIL_IDS)
def test_ids_with_quotes_cannot_break_out_of_the_access_ddl(
    store: EmbeddedStore, evil: str
) -> None:
    statements = access_statements(AccessRequest(DATABASE, (evil,), (evil,), None, "ab"))
    for statement in statements:
        formatted(store, statement)  # exactly one statement each: multi-statements are refused
    # The names the engine parsed are exactly the ids.
    for name in (f"vmgate_tenant_{evil}", f"vmgate_reseller_{evil}_{evil}"):
        parsed = store.query(f"SELECT 1 AS {quote_name(name)}").column_names
        assert parsed == [name]
        assert any(quote_name(name) in s for s in statements)
    # The policy conditions select the row of that id and no other.
    rows = (
        "SELECT arrayJoin([{evil:String}, 'x', 'tnt-01', '']) AS tenant_id, "
        "tenant_id AS reseller_id"
    )
    conditions = [tenant_condition(evil), reseller_conditions(evil, evil)["call_history"]]
    for condition in conditions:
        assert any(f"USING {condition} AS PERMISSIVE" in s for s in statements)
        selected = store.query(f"SELECT tenant_id FROM ({rows}) WHERE {condition}", {"evil": evil})
        assert selected.column("tenant_id").to_pylist() == [evil]
    assert store.query(f"SELECT {quote_string(evil)} AS v").column("v").to_pylist() == [evil]


def test_policy_tables_and_reseller_columns_match_the_schema(store: EmbeddedStore) -> None:
    with_tenant = store.query(
        "SELECT DISTINCT c.table AS name FROM system.columns AS c "
        "INNER JOIN system.tables AS t ON c.database = t.database AND c.table = t.name "
        "WHERE c.database = {db:String} AND c.name = 'tenant_id' AND t.engine LIKE '%MergeTree' "
        "ORDER BY name",
        {"db": store.database},
    )
    assert sorted(with_tenant.column("name").to_pylist()) == sorted(TENANT_TABLES)
    view = store.query(
        "SELECT * FROM reseller_call_history(tenant = 'tnt-01', reseller = 'tnt-01-res-01') LIMIT 0"
    )
    assert [c for c in view.column_names if c != "reseller_status"] == list(
        RESELLER_CALL_HISTORY_COLUMNS
    )
    hidden = {"caller", "customer_id", "customer_amount", "customer_rate", "client_amount"}
    assert not hidden & set(view.column_names)
