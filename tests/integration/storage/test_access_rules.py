"""Access that fails closed, checked against the engine the pinned server shares.

No ClickHouse server runs here and the embedded engine keeps no SQL-created users or roles
(chdb has no writable access storage, and it ignores ``access_control_improvements``), so:

- every statement of ``schema --access`` is checked against the engine's own settings and
  record of when each appeared (``system.settings``, ``system.settings_changes``) for the
  pinned version and for an older server;
- the rendered row policies are evaluated as ClickHouse combines permissive policies (a user
  reads the rows some policy naming it or one of its roles allows), over real rated rows: a
  role with no tenant or reseller role reads nothing, whatever the server setting;
- the shipped server files (deploy/clickhouse) are loaded by the real engine as a users
  configuration, and the row policies it builds from them are read back from
  ``system.row_policies``; the server setting that denies users without a policy is read from
  the shipped config.d file the compose file mounts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import chdb
import pytest
import yaml

from pipeline.cli import main
from pipeline.reference.loader import load_plans_folder
from pipeline.services.offline import rate_file
from pipeline.sinks.embedded import EmbeddedStore
from pipeline.storage.access_ddl import (
    ADMIN,
    ANALYST,
    RATER,
    RESELLER,
    TENANT_TABLES,
    AccessRequest,
    access_statements,
    reseller_role,
    tenant_role,
)
from pipeline.storage.balances import refresh_balances
from pipeline.storage.payments import Payment, record_payment
from pipeline.storage.server_version import OLDEST, SETTINGS_SINCE, ServerVersion
from pipeline.synthetic import NetworkSpec, write_network

DATABASE = "vmgate"
DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
ENGINE = ServerVersion.parse(str(chdb.engine_version))
_POLICY = re.compile(
    r"^CREATE ROW POLICY IF NOT EXISTS `(?P<name>[^`]+)` ON (?P<tables>.+?) FOR SELECT "
    r"USING (?P<condition>.+) AS PERMISSIVE TO (?P<to>.+)$",
    re.S,
)
_GRANT_ROLE = re.compile(r"^GRANT `(?P<role>[^`]+)` TO `(?P<to>[^`]+)`$")
_SETTING = re.compile(r"\bSETTINGS (\w+) =")


@dataclass(frozen=True)
class Rated:
    store: EmbeddedStore
    tenant: str
    reseller: str


@pytest.fixture(scope="module")
def rated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rated]:
    """A migrated embedded store with a rated synthetic network, payouts and balances."""
    root = tmp_path_factory.mktemp("access-rules")
    network = write_network(
        NetworkSpec(seed=5, cdrs=2_000, prefixes_per_plan=60), root / "plans", root / "cdrs"
    )
    with EmbeddedStore(root / "store", f"access_{uuid.uuid4().hex}") as opened:
        opened.migrate()
        rate_file(
            load_plans_folder(root / "plans"),
            root / "cdrs",
            root / "out.parquet",
            root / "dlq.jsonl",
            datetime(2026, 4, 1, tzinfo=UTC),
            store=opened,
        )
        tenant = network.tenant_ids[0]
        reseller = next(r for r in network.paid_reseller_ids if r.startswith(tenant))
        other = next(r for r in network.paid_reseller_ids if not r.startswith(tenant))
        for number, (who, account) in enumerate([(tenant, reseller), (other[:6], other)]):
            payout = Payment.parse(
                payment_id=f"pay-{number}",
                tenant_id=who,
                kind="reseller_payout_out",
                account_id=account,
                amount="2.5",
                currency="EUR",
            )
            record_payment(opened, payout)
        refresh_balances(opened, datetime(2026, 12, 1, tzinfo=UTC))
        for who, client, online in [(tenant, "c-1", 1), (tenant, "c-2", 0), (other[:6], "c-3", 1)]:
            opened.execute(
                "INSERT INTO client_status VALUES ({t:String}, {c:String}, {o:Bool}, "
                "now64(6), now64(6))",
                {"t": who, "c": client, "o": online},
            )
        roster = {  # the synthetic network has no accounts.csv: a roster row per tenant table
            "roster_accounts": "'v', {t:String}, 'reseller', 'r-1', 'R', '', 'r@x.example', "
            "'prepaid', NULL, NULL, 'active', 'UTC'",
            "roster_join_codes": "'v', {t:String}, concat('J-', {t:String}), 'r-1'",
            "roster_enrollments": "'v', {t:String}, 'c-1', concat('J-', {t:String}), 'r-1', "
            "now64(6), NULL",
            "roster_memberships": "'v', {t:String}, 'c-1', 'r-1', now64(6), NULL",
            "period_events": "{t:String}, '2026-03', 'close', 'x', 'd', 1, 'ops', '', now64(6)",
            "statement_items": "{t:String}, '2026-03', 'x', 'call', 'call', 'c-1', 'customer', "
            "'a-1', 'EUR', '2026-03', now64(6), 'UK', 60, 1, 0, 0",
            "closed_statements": "{t:String}, '2026-03', 'x', 'customer', 'a-1', 'EUR', 0, 1, "
            "0, 0, 1, '{}', 'd'",
        }
        for table, values in roster.items():
            for who in (tenant, other[:6]):
                opened.execute(f"INSERT INTO {table} VALUES ({values})", {"t": who})
        yield Rated(opened, tenant, reseller)


@pytest.fixture(scope="module")
def store(rated: Rated) -> EmbeddedStore:
    return rated.store


def _render(server: ServerVersion | None, *, cluster: str | None = None) -> list[str]:
    resellers = ("tnt-01-res-01",) if server is None or server >= ENGINE else ()
    request = AccessRequest(DATABASE, ("tnt-01",), resellers, cluster, server=server)
    return access_statements(request)


# -- settings the server has ----------------------------------------------------------------------


@pytest.mark.parametrize("server", [ENGINE, ServerVersion(25, 10), OLDEST])
@pytest.mark.parametrize("cluster", [None, "vmgate_cluster"])
def test_no_statement_names_a_setting_the_server_lacks(
    store: EmbeddedStore, server: ServerVersion, cluster: str | None
) -> None:
    known = set(store.query("SELECT name FROM system.settings").column("name").to_pylist())
    named = [name for s in _render(server, cluster=cluster) for name in _SETTING.findall(s)]
    assert named or server < SETTINGS_SINCE["apply_row_policy_after_final"]
    for name in named:
        assert name in SETTINGS_SINCE, f"{name}: add it to server_version.SETTINGS_SINCE"
        assert SETTINGS_SINCE[name] <= server, name
        assert name in known, name


def test_when_each_setting_appeared_agrees_with_the_engines_record(store: EmbeddedStore) -> None:
    changes = store.query(
        "SELECT version, arrayJoin(changes).name AS name FROM system.settings_changes"
    )
    first: dict[str, ServerVersion] = {}
    for version, name in zip(
        changes.column("version").to_pylist(), changes.column("name").to_pylist(), strict=True
    ):
        parsed = ServerVersion.parse(version)
        first[name] = min(first.get(name, parsed), parsed)
    known = set(store.query("SELECT name FROM system.settings").column("name").to_pylist())
    for name, since in SETTINGS_SINCE.items():
        assert name in known, name
        if name in first:
            assert first[name] == since, name
    assert "apply_row_policy_after_final" in first  # the record names the one that matters


def test_an_older_server_gets_no_reseller_access_and_says_why(
    capsys: pytest.CaptureFixture[str],
) -> None:
    statements = _render(ServerVersion(25, 3))
    text = "\n".join(statements)
    assert "apply_row_policy_after_final" not in text
    assert f"TO `{RESELLER}`" not in text.replace(f"AS PERMISSIVE TO `{ANALYST}`, `{RESELLER}`", "")
    assert any(
        s.startswith(f"CREATE ROLE IF NOT EXISTS `{tenant_role('tnt-01')}`") for s in statements
    )
    request = AccessRequest(DATABASE, ("t",), ("r",), server=ServerVersion(25, 9))
    with pytest.raises(ValueError, match="lacks apply_row_policy_after_final"):
        access_statements(request)
    base = ["schema", "--access", "--tenant", "t"]
    assert main([*base, "--server-version", "25.9", "--reseller", "r"]) == 2
    assert "ClickHouse 25.9 lacks apply_row_policy_after_final" in capsys.readouterr().err
    assert main([*base, "--server-version", "24.8"]) == 2
    assert "older than 25.3" in capsys.readouterr().err
    assert main([*base, "--server-version", "latest"]) == 2
    assert main(["schema", "--server-version", "26.9"]) == 2
    assert main([*base, "--server-version", "25.10", "--reseller", "r"]) == 0
    out = capsys.readouterr().out
    assert "for ClickHouse 25.10" in out
    assert "apply_row_policy_after_final = 1 CONST" in out
    assert main(base) == 0
    assert f"for ClickHouse {ENGINE}" in capsys.readouterr().out


# -- the policies, as ClickHouse combines them ----------------------------------------------------


def _policies(statements: list[str]) -> list[dict[str, Any]]:
    found = []
    for statement in statements:
        match = _POLICY.match(statement)
        if match:
            tables = [t.split(".", 1)[1].strip("`") for t in match["tables"].split(", ")]
            roles = [r.strip("`") for r in match["to"].split(", ")]
            found.append({"tables": tables, "condition": match["condition"], "to": roles})
    return found


def _holds(statements: list[str], role: str) -> set[str]:
    """``role`` and every role granted to it, transitively."""
    granted: dict[str, set[str]] = {}
    for statement in statements:
        if match := _GRANT_ROLE.match(statement):
            granted.setdefault(match["to"], set()).add(match["role"])
    held, todo = set(), [role]
    while todo:
        current = todo.pop()
        if current not in held:
            held.add(current)
            todo.extend(granted.get(current, ()))
    return held


def _visible(store: EmbeddedStore, statements: list[str], role: str, table: str) -> int | None:
    """Rows of ``table`` a user holding ``role`` reads; None when no policy names it."""
    held = _holds(statements, role)
    conditions = [
        p["condition"]
        for p in _policies(statements)
        if table in p["tables"] and held & set(p["to"])
    ]
    if not conditions:
        return None
    return _count(store, table, " OR ".join(f"({c})" for c in conditions))


def test_every_role_has_a_policy_and_only_a_tenant_or_reseller_widens_it(rated: Rated) -> None:
    store, tenant, reseller = rated.store, rated.tenant, rated.reseller
    statements = access_statements(AccessRequest(DATABASE, (tenant,), (reseller,)))
    for table in TENANT_TABLES:
        total = _count(store, table, "1")
        own = _count(store, table, "tenant_id = {t:String}", {"t": tenant})
        assert total > own > 0, table
        for role in (ADMIN, RATER, ANALYST, RESELLER, tenant_role(tenant)):
            assert _visible(store, statements, role, table) is not None, (role, table)
        assert _visible(store, statements, ADMIN, table) == total
        assert _visible(store, statements, RATER, table) == total
        assert _visible(store, statements, ANALYST, table) == 0
        assert _visible(store, statements, RESELLER, table) == 0
        assert _visible(store, statements, tenant_role(tenant), table) == own
    role = reseller_role(tenant, reseller)
    parameters = {"t": tenant, "r": reseller}
    calls = _count(
        store, "call_history", "tenant_id = {t:String} AND reseller_id = {r:String}", parameters
    )
    assert _visible(store, statements, role, "call_history") == calls > 0
    payouts = _count(
        store, "payments", "tenant_id = {t:String} AND account_id = {r:String}", parameters
    )
    assert _visible(store, statements, role, "payments") == payouts == 1
    assert _visible(store, statements, role, "balance_partitions") == 0


def _count(
    store: EmbeddedStore, table: str, where: str, parameters: dict[str, str] | None = None
) -> int:
    found = store.query(f"SELECT count() AS n FROM {table} WHERE {where}", parameters)
    return int(found.column("n")[0].as_py())


# -- the shipped server files ---------------------------------------------------------------------


def _compose_clickhouse() -> dict[str, Any]:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))
    service: dict[str, Any] = compose["services"]["clickhouse"]
    return service


def test_the_shipped_server_config_denies_rows_to_users_no_policy_names() -> None:
    root = ElementTree.parse(DEPLOY / "clickhouse" / "config.d" / "access.xml").getroot()
    setting = root.find("access_control_improvements/users_without_row_policies_can_read_rows")
    assert setting is not None
    assert setting.text == "false"
    replace = root.find("access_control_improvements/settings_constraints_replace_previous")
    assert replace is not None
    assert replace.text == "true"
    mounts = [str(v).split(":")[:2] for v in _compose_clickhouse()["volumes"]]
    assert ["./clickhouse/config.d/access.xml", "/etc/clickhouse-server/config.d/access.xml"] in (
        mounts
    )


_LOAD_USERS = """
import json, sys, chdb
connection = chdb.connect(f"file:{sys.argv[1]}/data?config-file={sys.argv[1]}/config.xml")
cursor = connection.cursor()
cursor.execute(
    "SELECT name, database, table, arrayStringConcat(apply_to_list, ','), select_filter, "
    "is_restrictive FROM system.row_policies"
)
policies = [list(row) for row in cursor.fetchall()]
cursor.execute("SELECT name, storage FROM system.users")
users = [list(row) for row in cursor.fetchall()]
print(json.dumps({"policies": policies, "users": users}))
"""


def _load_shipped_users(root: Path, passwords: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Load deploy/clickhouse/users.d in the engine, as a server's users configuration."""
    users_d = root / "users.d"
    users_d.mkdir()
    for path in sorted((DEPLOY / "clickhouse" / "users.d").glob("*.xml")):
        shutil.copy(path, users_d / path.name)
    # The embedded engine never reads access_control_improvements, so it lacks the server's
    # settings_constraints_replace_previous (set in config.d/access.xml, checked above) that a
    # changeable_in_readonly constraint needs: the constraints are left out of what it loads.
    grafana = ElementTree.parse(users_d / "grafana.xml")
    for profile in grafana.getroot().findall("profiles/*"):
        for constraints in profile.findall("constraints"):
            profile.remove(constraints)
    grafana.write(users_d / "grafana.xml")
    # vmgate.xml removes the image's `default` user; this test connects as `default`
    # (tests/unit/test_deploy.py checks the removal), so the copy keeps it.
    vmgate = ElementTree.parse(users_d / "vmgate.xml")
    users_element = vmgate.getroot().find("users")
    assert users_element is not None
    for removed in users_element.findall("default[@remove='remove']"):
        users_element.remove(removed)
    vmgate.write(users_d / "vmgate.xml")
    (root / "users.xml").write_text(
        "<clickhouse><profiles><default/></profiles><quotas><default/></quotas><users>"
        "<default><password/><networks><ip>::/0</ip></networks><profile>default</profile>"
        "<quota>default</quota><access_management>1</access_management></default></users>"
        "</clickhouse>",
        encoding="utf-8",
    )
    (root / "config.xml").write_text(
        f"<clickhouse><users_config>{root / 'users.xml'}</users_config></clickhouse>",
        encoding="utf-8",
    )
    return subprocess.run(
        [sys.executable, "-c", _LOAD_USERS, str(root)],
        capture_output=True,
        text=True,
        env={**os.environ, **passwords},
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("character", ["&", "<", "]]>"])
def test_a_password_the_server_reads_as_xml_cannot_hold_an_ampersand_or_a_bracket(
    tmp_path: Path, character: str
) -> None:
    # ClickHouse parses a from_env value as XML, as the image's entrypoint pastes
    # CLICKHOUSE_PASSWORD into one: docs/deployment.md tells operators to leave these out.
    passwords = {
        "VMGATE_CLICKHOUSE_PASSWORD": f"pass{character}word",
        "GRAFANA_CLICKHOUSE_PASSWORD": "g",
    }
    done = _load_shipped_users(tmp_path, passwords)
    assert done.returncode != 0
    assert "Failed to preprocess config" in done.stderr


def test_the_shipped_users_load_and_each_has_a_policy_on_every_tenant_table(
    tmp_path: Path,
) -> None:
    service = _compose_clickhouse()
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))
    pipeline = compose["services"]["setup"]["environment"]
    pipeline_user, database = pipeline["CLICKHOUSE_USER"], pipeline["VMGATE_DATABASE"]
    assert database == DATABASE
    shipped = sorted((DEPLOY / "clickhouse" / "users.d").glob("*.xml"))
    mounted = {str(v).split(":")[0] for v in service["volumes"]}
    for path in shipped:
        assert f"./clickhouse/users.d/{path.name}" in mounted, path.name
    # Passwords with the characters a shell or a URL would choke on (not &, < or ]]>: the test
    # above).
    done = _load_shipped_users(
        tmp_path,
        {
            "GRAFANA_CLICKHOUSE_PASSWORD": "gr']]a\"f>",
            "VMGATE_CLICKHOUSE_PASSWORD": "p@ss:w/o%25rd #?+ ='\" é€ 密",
        },
    )
    assert done.returncode == 0, done.stderr[:3000]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    users = {name for name, _ in loaded["users"]}
    defined = {
        user.tag
        for path in shipped
        for user in ElementTree.parse(path).getroot().findall("users/*")
        if user.get("remove") != "remove"
    }
    assert {pipeline_user, "grafana"} <= defined <= users
    for user in defined:
        granted = {
            table: (condition, restrictive)
            for _, db, table, applies_to, condition, restrictive in loaded["policies"]
            if db == database and applies_to.split(",") == [user]
        }
        # Every row of every table holding tenant rows, by a permissive policy of its own.
        assert granted == dict.fromkeys(TENANT_TABLES, ("1", 0)), user
