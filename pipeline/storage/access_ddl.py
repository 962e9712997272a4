"""Users, roles and row policies for a ClickHouse server: who may read and write what.

The embedded engine has no users; on a server, ``vmgate-rating schema --access`` prints the
statements this module renders, for an administrator to apply (docs/access.md):

- ``vmgate_admin``: everything in the pipeline's database (DDL, refreshes, corrections).
- ``vmgate_rater``: inserts call history, payments and the balances pre-aggregation, reads the
  database (re-rating, payment idempotency, migrations already applied).
- ``vmgate_analyst``: reads the database; sees the rows of the tenants whose role it holds.
  Each tenant ``T`` gets a role ``vmgate_tenant_T`` (which holds ``vmgate_analyst``) and a row
  policy ``tenant_id = 'T'`` on every table holding tenant rows.
- ``vmgate_reseller``: reads only the reseller views and the columns of its own leg; each
  reseller ``R`` of tenant ``T`` gets a role ``vmgate_reseller_T_R`` and row policies limiting
  call history to ``reseller_id = 'R'`` and payments to its payouts.

Row policies sit on the tables; the views run with the invoker's rights (``SQL SECURITY
INVOKER``, made explicit for every view), so a view never shows a row its table hides. Every
role has an explicit policy on every table holding tenant rows: ``vmgate_all_rows`` (``1``) for
the admin and rater roles, ``vmgate_no_rows`` (``0``) for the analyst and reseller roles, which a
tenant's or reseller's own policy widens (permissive policies add up). So a holder of a
restricted role sees no rows until it also holds a tenant or reseller role, whatever the
server's ``users_without_row_policies_can_read_rows``; users holding none of these roles are
the server configuration's to deny (deploy/clickhouse/config.d/access.xml, docs/access.md).

The statements are rendered for a server version (:mod:`pipeline.storage.server_version`): a
server without ``apply_row_policy_after_final`` gets no reseller grants at all, since a reseller
policy applied before ``FINAL`` would show a reseller the older rating of a CDR re-rated away.

Values (tenant and reseller ids) are written as escaped string literals and names as escaped
back-quoted identifiers, so no id can end a literal and add SQL. Passwords are never printed: a
user is rendered only with the SHA-256 of a password read from the environment.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from pipeline.storage.cluster_ddl import (
    check_cluster_name,
    cluster_layout,
    quote_name,
    quote_string,
)
from pipeline.storage.migrations import Migration, load_migrations, quote_identifier
from pipeline.storage.server_version import ServerVersion, check_supported, has_setting

ADMIN, RATER, ANALYST, RESELLER = (
    "vmgate_admin",
    "vmgate_rater",
    "vmgate_analyst",
    "vmgate_reseller",
)
# Tables holding rows of a tenant (a tenant_id column); every other table holds none.
TENANT_TABLES = (
    "call_history",
    "payments",
    "balance_partitions",
    "client_status",
    "roster_accounts",
    "roster_join_codes",
    "roster_enrollments",
    "roster_memberships",
    "period_events",
    "statement_items",
    "closed_statements",
)
# Tables the raters write (the call history, its key index, payments and the balances
# pre-aggregation). cdr_days holds hashes of (tenant_id, cdr_id) and days, no tenant column;
# fx_rates (the exchange rates of each reference version) holds no tenant column either.
# The billing-period tables are written by `periods close` / `reopen`, run as this role too.
RATER_WRITES = (
    "call_history",
    "cdr_days",
    "payments",
    "balance_partitions",
    "balance_refreshes",
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
)
# The call-history columns a reseller may read: those reseller_call_history reads.
RESELLER_CALL_HISTORY_COLUMNS = (
    "cdr_id",
    "session_id",
    "tenant_id",
    "reseller_id",
    "client_id",
    "callee",
    "start_time",
    "answer_time",
    "end_time",
    "duration_ms",
    "disposition",
    "sip_code",
    "rated_at",
    "reseller_plan_id",
    "reseller_deck_version",
    "reseller_prefix",
    "reseller_destination",
    "reseller_rate",
    "reseller_billed_seconds",
    "reseller_amount",
    "reseller_currency",
    "reseller_origin",
    "reseller_band",
)
RESELLER_VIEWS = ("reseller_call_history", "reseller_payouts", "reseller_balance")
AFTER_FINAL = "apply_row_policy_after_final"
FOREGROUND_INSERT = "distributed_foreground_insert"
_VIEW_NAME = re.compile(r"^CREATE (?:OR REPLACE )?VIEW (?:IF NOT EXISTS )?(\w+)\s")


@dataclass(frozen=True)
class AccessRequest:
    """What to render: the database, the tenants and resellers to scope, and the cluster.

    ``resellers`` belong to the single tenant in ``tenants``. ``password_sha256`` is the hex
    SHA-256 of the password of the users rendered for them (no users without it). ``server``
    is the version of the server the statements are for (``None``: one that has every setting
    of :data:`~pipeline.storage.server_version.SETTINGS_SINCE`).
    """

    database: str
    tenants: tuple[str, ...] = ()
    resellers: tuple[str, ...] = ()
    cluster: str | None = None
    password_sha256: str | None = None
    server: ServerVersion | None = None

    def has_setting(self, setting: str) -> bool:
        """Whether the server the statements are for knows ``setting``."""
        return self.server is None or has_setting(self.server, setting)


def password_sha256(password: str) -> str:
    """The hex SHA-256 of a password, as ``IDENTIFIED WITH sha256_hash`` takes it."""
    return hashlib.sha256(password.encode("utf-8")).hexdigest()


def tenant_role(tenant: str) -> str:
    """The role whose holders see tenant ``tenant``'s rows."""
    return f"vmgate_tenant_{tenant}"


def reseller_role(tenant: str, reseller: str) -> str:
    """The role whose holders see reseller ``reseller``'s traffic and payouts at ``tenant``."""
    return f"vmgate_reseller_{tenant}_{reseller}"


def tenant_condition(tenant: str) -> str:
    """The row-policy condition of a tenant (on every table in :data:`TENANT_TABLES`)."""
    return f"tenant_id = {quote_string(tenant)}"


def reseller_conditions(tenant: str, reseller: str) -> dict[str, str]:
    """The row-policy condition of a reseller, per table it may read."""
    return {
        "call_history": f"{tenant_condition(tenant)} AND reseller_id = {quote_string(reseller)}",
        "payments": (
            f"{tenant_condition(tenant)} AND kind = 'reseller_payout_out' "
            f"AND account_id = {quote_string(reseller)}"
        ),
    }


def access_statements(
    request: AccessRequest, migrations: list[Migration] | None = None
) -> list[str]:
    """The statements that set up roles, grants, policies (and users) for ``request``.

    Idempotent (``IF NOT EXISTS``): applying them again changes nothing; a tenant or reseller
    added later is rendered on its own (``--tenant T`` / ``--reseller R``) and applied on top.
    Raises ``ValueError`` for resellers without exactly one tenant, or an empty id.
    """
    migrations = load_migrations() if migrations is None else migrations
    quote_identifier(request.database)
    if request.resellers and len(request.tenants) != 1:
        msg = "resellers belong to one tenant: give exactly one --tenant with --reseller"
        raise ValueError(msg)
    for value in (*request.tenants, *request.resellers):
        if not value:
            msg = "a tenant or reseller id cannot be empty"
            raise ValueError(msg)
    if request.server is not None:
        check_supported(request.server)
    if request.resellers and not request.has_setting(AFTER_FINAL):
        msg = (
            f"--reseller: ClickHouse {request.server} lacks {AFTER_FINAL} (a reseller's row "
            "policy must apply after FINAL, or a reseller sees the older rating of a CDR "
            "re-rated away from it); upgrade the server to render reseller access"
        )
        raise ValueError(msg)
    return _Access(request, migrations).statements()


class _Access:
    def __init__(self, request: AccessRequest, migrations: list[Migration]) -> None:
        self.request = request
        self.db = quote_name(request.database)
        self.on = ""
        self.sharded: set[str] = set()
        # Each view once, though a later migration may replace it.
        self.views = list(
            dict.fromkeys(
                m[1]
                for migration in migrations
                for s in migration.statements
                if (m := _VIEW_NAME.match(s))
            )
        )
        if request.cluster is not None:
            self.on = f" ON CLUSTER {quote_name(check_cluster_name(request.cluster))}"
            layout = cluster_layout(request.database, migrations)
            self.sharded = set(layout.sharded)
            local_views = [f"{v}_local" for v in layout.merged_views]
            self.views = [*self.views, *local_views]

    def _tables(self, name: str) -> list[str]:
        """The table and, on a cluster, the local table holding a sharded table's rows."""
        names = [name, f"{name}_local"] if name in self.sharded else [name]
        return [f"{self.db}.{quote_name(n)}" for n in names]

    def _grant(self, privilege: str, table: str, role: str) -> list[str]:
        return [
            f"GRANT{self.on} {privilege} ON {t} TO {quote_name(role)}" for t in self._tables(table)
        ]

    def _policy(self, name: str, tables: list[str], condition: str, roles: list[str]) -> str:
        on = ", ".join(t for table in tables for t in self._tables(table))
        to = ", ".join(quote_name(r) for r in roles)
        return (
            f"CREATE ROW POLICY IF NOT EXISTS {quote_name(name)}{self.on} ON {on} "
            f"FOR SELECT USING {condition} AS PERMISSIVE TO {to}"
        )

    def _role(self, role: str) -> str:
        return f"CREATE ROLE IF NOT EXISTS {quote_name(role)}{self.on}"

    def _user(self, role: str) -> list[str]:
        """A login holding ``role`` (named ``<role>_user``), if a password hash was given."""
        if self.request.password_sha256 is None:
            return []
        user = quote_name(f"{role}_user")
        digest = quote_string(self.request.password_sha256)
        return [
            f"CREATE USER IF NOT EXISTS {user}{self.on} IDENTIFIED WITH sha256_hash BY {digest} "
            f"DEFAULT DATABASE {self.db}",
            f"GRANT{self.on} {quote_name(role)} TO {user}",
        ]

    def statements(self) -> list[str]:
        out = [self._role(r) for r in (ADMIN, RATER, ANALYST, RESELLER)]
        out.append(f"GRANT{self.on} ALL ON {self.db}.* TO {quote_name(ADMIN)}")
        out.append(f"GRANT{self.on} SELECT ON {self.db}.* TO {quote_name(RATER)}")
        for table in (*RATER_WRITES, "schema_migrations"):
            out.extend(self._grant("INSERT", table, RATER))
        out.append(f"GRANT{self.on} SELECT ON {self.db}.* TO {quote_name(ANALYST)}")
        # A reseller's policy (reseller_id) is on a column outside the sorting key: it must be
        # applied after FINAL, or an older rating attributed to it would show. A server that
        # cannot do that grants the reseller role nothing.
        if self.request.has_setting(AFTER_FINAL):
            columns = ", ".join(RESELLER_CALL_HISTORY_COLUMNS)
            out.extend(self._grant(f"SELECT({columns})", "call_history", RESELLER))
            out.extend(self._grant("SELECT", "payments", RESELLER))
            for view in RESELLER_VIEWS:
                out.extend(self._grant("SELECT", view, RESELLER))
            out.append(
                f"CREATE SETTINGS PROFILE IF NOT EXISTS vmgate_reseller_settings{self.on} "
                f"SETTINGS {AFTER_FINAL} = 1 CONST TO {quote_name(RESELLER)}"
            )
        if self.request.cluster is not None:
            # A rater's INSERT returns once every shard has its rows (commit after durable);
            # every supported server (server_version.OLDEST on) has the setting.
            out.append(
                f"CREATE SETTINGS PROFILE IF NOT EXISTS vmgate_rater_settings{self.on} "
                f"SETTINGS {FOREGROUND_INSERT} = 1 TO {quote_name(RATER)}"
            )
        for view in self.views:
            out.append(
                f"ALTER TABLE {self.db}.{quote_name(view)}{self.on} MODIFY SQL SECURITY INVOKER"
            )
        # Every role has a policy of its own on every table holding tenant rows, so no holder
        # of one of them reads rows no policy grants, whatever the server's
        # users_without_row_policies_can_read_rows says (permissive policies add up: a tenant's
        # or reseller's own policy widens vmgate_no_rows to its rows).
        out.append(self._policy("vmgate_all_rows", list(TENANT_TABLES), "1", [ADMIN, RATER]))
        out.append(self._policy("vmgate_no_rows", list(TENANT_TABLES), "0", [ANALYST, RESELLER]))
        for tenant in self.request.tenants:
            role = tenant_role(tenant)
            out.append(self._role(role))
            out.append(f"GRANT{self.on} {quote_name(ANALYST)} TO {quote_name(role)}")
            out.append(self._policy(role, list(TENANT_TABLES), tenant_condition(tenant), [role]))
            out.extend(self._user(role))
        for reseller in self.request.resellers:
            tenant = self.request.tenants[0]
            role = reseller_role(tenant, reseller)
            out.append(self._role(role))
            out.append(f"GRANT{self.on} {quote_name(RESELLER)} TO {quote_name(role)}")
            for table, condition in reseller_conditions(tenant, reseller).items():
                out.append(self._policy(role, [table], condition, [role]))
            out.extend(self._user(role))
        return out
