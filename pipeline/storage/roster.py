"""The roster in the store, and the Resellers and Join Codes pages read from it.

Each reference-data version the pipeline rates with has its roster written to the
``roster_*`` tables of ``schemas/clickhouse/009_roster.sql``: accounts, join codes, enrollments
and each client's memberships as the loader resolved them (``memberships.csv`` and the
enrollments combined); and its exchange rates (``fx_rates.csv``) to ``fx_rates``
(``schemas/clickhouse/010_fx_rates.sql``), read by :mod:`pipeline.storage.fx`.
:func:`roster_rows` turns a :class:`ReferenceData` into those rows;
:func:`write_roster` writes them through a store's insert, idempotently: a version already
written is not written again, and recording a load of the version already current changes
nothing. Callers rely on :func:`resellers_page` and :func:`join_codes_page` giving the rows of
the views of the same names (the current roster: the version loaded last).

``memberships.csv`` names no tenant, so each membership's tenant is resolved when written, the
first that applies: the tenant of the join code the client enrolled with through this reseller;
the tenant of a reseller account with this id; the tenant of a client account with the client's
id; the tenant of a join code carrying this reseller; else empty (listed with tenant ``''``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import polars as pl
import pyarrow as pa

from pipeline.rating.reference import ReferenceData, Roster, Scope
from pipeline.rating.timeparse import OPEN_END_US
from pipeline.sinks.contracts import CallHistoryStore

#: The tables of a version, in the order they are written (roster_loads, last, marks a version
#: whole): the roster, and the version's exchange rates (``fx_rates``, migration 010).
ROSTER_TABLES = (
    "roster_accounts",
    "roster_join_codes",
    "roster_enrollments",
    "roster_memberships",
    "fx_rates",
)
LOADS_TABLE = "roster_loads"

_INSTANT = pa.timestamp("us", tz="UTC")
ACCOUNTS_SCHEMA = pa.schema(
    [
        ("reference_version", pa.string()),
        ("tenant_id", pa.string()),
        ("scope", pa.string()),
        ("account_id", pa.string()),
        ("name", pa.string()),
        ("company", pa.string()),
        ("email", pa.string()),
        ("billing_type", pa.string()),
        ("credit_limit", pa.decimal128(38, 9)),
        ("currency", pa.string()),
        ("status", pa.string()),
        ("timezone", pa.string()),
    ]
)
JOIN_CODES_SCHEMA = pa.schema(
    [
        ("reference_version", pa.string()),
        ("tenant_id", pa.string()),
        ("code", pa.string()),
        ("reseller_id", pa.string()),
    ]
)
ENROLLMENTS_SCHEMA = pa.schema(
    [
        ("reference_version", pa.string()),
        ("tenant_id", pa.string()),
        ("client_id", pa.string()),
        ("join_code", pa.string()),
        ("reseller_id", pa.string()),
        ("enrolled_at", _INSTANT),
        ("until", _INSTANT),
    ]
)
MEMBERSHIPS_SCHEMA = pa.schema(
    [
        ("reference_version", pa.string()),
        ("tenant_id", pa.string()),
        ("client_id", pa.string()),
        ("reseller_id", pa.string()),
        ("effective_from", _INSTANT),
        ("effective_until", _INSTANT),
    ]
)
FX_RATES_SCHEMA = pa.schema(
    [
        ("reference_version", pa.string()),
        ("currency", pa.string()),
        ("quote", pa.string()),
        ("rate", pa.decimal128(38, 12)),
        ("effective_from", _INSTANT),
    ]
)
LOADS_SCHEMA = pa.schema([("reference_version", pa.string()), ("loaded_at", _INSTANT)])

_LOADED_SQL = (
    "SELECT count() AS n FROM roster_loads FINAL WHERE reference_version = {version:String}"
)
_CURRENT_SQL = "SELECT reference_version FROM roster_current_version"

Insert = Callable[[str, pa.Table], None]
Query = Callable[[str, Mapping[str, object] | None], pa.Table]


@dataclass(frozen=True)
class RosterRows:
    """The rows of one version's roster, one Arrow table per ``roster_*`` table."""

    version: str
    tables: dict[str, pa.Table]

    def rows(self, table: str) -> int:
        """How many rows ``table`` gets."""
        return int(self.tables[table].num_rows)


def roster_rows(reference: ReferenceData) -> RosterRows:
    """The roster of ``reference`` as rows of the ``roster_*`` tables, keyed by its version."""
    roster = reference.roster
    version = pl.lit(reference.version, dtype=pl.String)
    accounts = roster.accounts.select(
        reference_version=version,
        tenant_id="tenant_id",
        scope="scope",
        account_id="account_id",
        name="name",
        company=pl.col("company").fill_null(""),
        email=pl.col("email").fill_null(""),
        billing_type="billing_type",
        credit_limit="credit_limit",
        currency="currency",
        status="status",
        timezone="timezone",
    )
    codes = roster.join_codes.select(
        reference_version=version, tenant_id="tenant_id", code="code", reseller_id="reseller_id"
    )
    enrollments = roster.enrollments.select(
        reference_version=version,
        tenant_id="tenant_id",
        client_id="client_id",
        join_code="join_code",
        reseller_id="reseller_id",
        enrolled_at="enrolled_at",
        until="until",
    )
    memberships = _with_tenants(roster).select(
        reference_version=version,
        tenant_id="tenant_id",
        client_id="client_id",
        reseller_id="reseller_id",
        effective_from=pl.from_epoch("effective_from_us", time_unit="us").dt.replace_time_zone(
            "UTC"
        ),
        effective_until=pl.when(pl.col("effective_until_us") < OPEN_END_US)
        .then(pl.from_epoch("effective_until_us", time_unit="us"))
        .dt.replace_time_zone("UTC"),
    )
    fx_rates = reference.fx_rates.select(
        reference_version=version,
        currency="currency",
        quote="quote",
        rate="rate",
        effective_from="effective_from",
    )
    frames = {
        "roster_accounts": (accounts, ACCOUNTS_SCHEMA),
        "roster_join_codes": (codes, JOIN_CODES_SCHEMA),
        "roster_enrollments": (enrollments, ENROLLMENTS_SCHEMA),
        "roster_memberships": (memberships, MEMBERSHIPS_SCHEMA),
        "fx_rates": (fx_rates, FX_RATES_SCHEMA),
    }
    return RosterRows(
        reference.version,
        {name: frame.to_arrow().cast(schema) for name, (frame, schema) in frames.items()},
    )


def _with_tenants(roster: Roster) -> pl.DataFrame:
    """The memberships with the tenant each belongs to (see the module docstring)."""
    members = roster.memberships
    pairs = members.select("client_id", "reseller_id").unique()
    resellers = roster.accounts.filter(pl.col("scope") == Scope.RESELLER.value)
    clients = roster.accounts.filter(pl.col("scope") == Scope.CLIENT.value)
    candidates = pl.concat(
        [
            roster.enrollments.filter(pl.col("reseller_id").is_not_null()).select(
                "client_id", "reseller_id", "tenant_id", rank=pl.lit(0)
            ),
            pairs.join(
                resellers.select("tenant_id", reseller_id="account_id"), on="reseller_id"
            ).select("client_id", "reseller_id", "tenant_id", rank=pl.lit(1)),
            pairs.join(clients.select("tenant_id", client_id="account_id"), on="client_id").select(
                "client_id", "reseller_id", "tenant_id", rank=pl.lit(2)
            ),
            pairs.join(
                roster.join_codes.filter(pl.col("reseller_id").is_not_null()).select(
                    "tenant_id", "reseller_id"
                ),
                on="reseller_id",
            ).select("client_id", "reseller_id", "tenant_id", rank=pl.lit(3)),
        ]
    )
    chosen = (
        candidates.sort("rank", "tenant_id")
        .unique(["client_id", "reseller_id"], keep="first")
        .select("client_id", "reseller_id", "tenant_id")
    )
    return members.join(
        chosen, on=["client_id", "reseller_id"], how="left", maintain_order="left"
    ).with_columns(pl.col("tenant_id").fill_null(""))


def write_roster(query: Query, insert: Insert, rows: RosterRows, loaded_at: datetime) -> bool:
    """Write a version's roster and record it as loaded at ``loaded_at``; False: nothing to do.

    A version written before (its load recorded) is not written again; if it is the current
    one nothing changes at all, else only its load is recorded (a swap back to it). The tables
    are written before the load: a crash in between leaves a version nobody reads, written
    again (the same keys, kept once) the next time.
    """
    loaded = query(_LOADED_SQL, {"version": rows.version}).column("n")[0].as_py()
    if loaded:
        current = query(_CURRENT_SQL, None).column("reference_version").to_pylist()
        if current == [rows.version]:
            return False
    else:
        for name in ROSTER_TABLES:
            if rows.rows(name):
                insert(name, rows.tables[name])
    at = pa.array([loaded_at], _INSTANT)
    insert(LOADS_TABLE, pa.Table.from_arrays([pa.array([rows.version]), at], schema=LOADS_SCHEMA))
    return True


def current_version(store: CallHistoryStore) -> str | None:
    """The reference version of the current roster (None before any was written)."""
    found = store.query(_CURRENT_SQL).column("reference_version").to_pylist()
    return found[0] if found else None


# -- the pages --------------------------------------------------------------------------------

PAGE_COLUMNS = (
    "tenant_id",
    "reseller_id",
    "name",
    "company",
    "email",
    "clients",
    "online",
    "balance",
    "calls",
    "billing_type",
    "status",
    "flag",
)
JOIN_CODE_COLUMNS = ("tenant_id", "code", "reseller", "reseller_name", "clients", "current_clients")


def resellers_page(store: CallHistoryStore, tenant: str | None = None) -> list[dict[str, Any]]:
    """The Resellers page, one dict per reseller; ``balance`` maps currency to Decimal."""
    source = "tenant_resellers_page(tenant = {tenant:String})" if tenant else "resellers_page"
    sql = f"SELECT {', '.join(PAGE_COLUMNS)} FROM {source} ORDER BY tenant_id, reseller_id"
    table = store.query(sql, {"tenant": tenant} if tenant else None)
    rows = table.to_pylist() if table.num_columns else []
    for row in rows:
        row["balance"] = dict(sorted(row["balance"] or []))
    return rows


def join_codes_page(
    store: CallHistoryStore, tenant: str | None = None, *, clients: bool = False
) -> list[dict[str, Any]]:
    """The Join Codes page, one dict per code; with ``clients``, the enrolled ``client_ids``."""
    columns = [*JOIN_CODE_COLUMNS, *(["client_ids"] if clients else [])]
    source = "tenant_join_codes_page(tenant = {tenant:String})" if tenant else "join_codes_page"
    sql = f"SELECT {', '.join(columns)} FROM {source} ORDER BY tenant_id, code"
    table = store.query(sql, {"tenant": tenant} if tenant else None)
    return table.to_pylist() if table.num_columns else []


def render_page(
    rows: list[dict[str, Any]], columns: list[str], fmt: str, *, empty: str = "(none)"
) -> str:
    """``table``, ``json`` or ``csv``: decimals exact (strings in JSON), lists and maps in one cell.

    In JSON ``balance`` is an object of currency -> decimal string and ``client_ids`` an array;
    in a table or CSV they are one cell (``12.500000 EUR; 3.000000 USD``, ids joined by spaces).
    A table without rows ends with the line ``empty``.
    """
    if fmt == "json":
        return json.dumps([{c: _json(row[c]) for c in columns} for row in rows], indent=2)
    cells = [[_text(row[c]) for c in columns] for row in rows]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(cells)
        return out.getvalue().rstrip("\n")
    if fmt != "table":
        msg = f"unknown format {fmt!r}: use table, json or csv"
        raise ValueError(msg)
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    if not cells:
        lines.append(empty)
    return "\n".join(lines)


def _json(value: object) -> object:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json(v) for v in value]
    return value


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return "; ".join(f"{_text(v)} {k}" for k, v in value.items())
    if isinstance(value, list):
        return " ".join(_text(v) for v in value)
    return str(value)
