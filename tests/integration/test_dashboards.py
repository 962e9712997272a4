"""Every SQL query of every Grafana dashboard runs on the project's schema and returns rows.

The dashboards in ``deploy/grafana/dashboards`` are read as Grafana reads them; each ClickHouse
query (panel targets and template variables) is expanded as Grafana and the ClickHouse plugin
expand it (``tests/support/grafana.py``): the time range is the synthetic network's month, the
variables a tenant and currency of that data. It then runs on an embedded store that holds the
DDL of ``schemas/clickhouse`` and real rated rows, so a panel that names a column, view or
function that does not exist fails here, not in front of an operator.

The store holds every CDR twice (the file is rated twice, as a re-delivery would) and a few
payments, so the views' one-row-per-CDR reading is checked too: a revenue panel that read raw
``call_history`` would show twice the money.

Grafana pastes variable values into the SQL text, and a dashboard URL (``?var-tenant=...``) sets
any value. The store also holds a copy of one tenant's calls and payments under tenant ids that
are hostile values (quotes, backslashes, a newline, ``{tenant:String}``, a plugin macro, 10 KB,
non-ASCII), and every query is run with those values, with hostile values nobody has, and with
hostile currencies: each must run, show exactly the copied tenant's figures, or nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import polars as pl
import pytest

from pipeline.reference.loader import load_plans_folder
from pipeline.services.offline import rate_file
from pipeline.sinks.embedded import EmbeddedStore
from pipeline.storage.payments import Payment, record_payment
from pipeline.synthetic import NetworkSpec, write_network
from tests.support.grafana import (
    CLICKHOUSE_TYPE,
    Query,
    TimeRange,
    load_dashboards,
    panels,
    queries,
    render_sql,
)

#: Values a template variable can be given. Each must reach ClickHouse as one exact string.
HOSTILE = {
    "single quote": "'",
    "double quote": '"',
    "backslash": "\\",
    "backslash quote": "\\'",
    "trailing backslash": "tnt\\",
    "statement": "'; DROP TABLE x; --",
    "escaped quote and comment": "\\' OR 1 = 1 --",
    "newline": "a\n' OR 1 = 1\n",
    "query parameter": "{tenant:String}",
    "plugin macro": "$__timeFilter(start_time)",
    "percent-encoded text": "%27%5C",  # decoded once, so it stays these six characters
    "10 KB": ("\\'{}%\né" * 2_000)[:10_240],
    "empty": "",
    "non-ASCII": "Zürich-東京-🙂",
}

DASHBOARDS = load_dashboards()
CLICKHOUSE_QUERIES = [
    q
    for name, d in DASHBOARDS.items()
    for q in queries(name, d)
    if q.datasource_type == CLICKHOUSE_TYPE
]


@dataclass(frozen=True)
class Data:
    """The store and what the dashboards are rendered with."""

    store: EmbeddedStore
    window: TimeRange
    values: dict[str, str]
    latest: pl.DataFrame  # the rows of the latest rating, one per CDR
    payouts: Decimal  # reseller payouts recorded for values' tenant and currency
    copies: frozenset[str]  # tenant ids holding a copy of values' tenant's calls and payments


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Data]:
    folder = tmp_path_factory.mktemp("dashboards")
    plans, cdrs = folder / "plans", folder / "cdrs.jsonl"
    network = write_network(NetworkSpec(seed=11, cdrs=4_000, prefixes_per_plan=200), plans, cdrs)
    reference = load_plans_folder(plans)
    with EmbeddedStore(folder / "store") as store:
        store.migrate()
        for attempt in range(2):  # the second time is a re-delivery of every CDR
            rate_file(
                reference,
                cdrs,
                folder / f"rated-{attempt}.parquet",
                folder / f"rejected-{attempt}.jsonl",
                datetime.now(UTC),
                store=store,
            )
        latest = pl.read_parquet(folder / "rated-1.parquet")
        # A tenant and currency with all three legs, so every money panel has something to show.
        legs = latest.filter(
            pl.col("customer_currency").is_not_null()
            & (pl.col("customer_currency") == pl.col("client_currency"))
            & (pl.col("customer_currency") == pl.col("reseller_currency"))
        )
        row = legs.row(0, named=True)
        tenant, currency = row["tenant_id"], row["customer_currency"]
        payouts = _record_payments(store, row, network.month_start)
        _write_roster(store, row)
        # Merges would drop the raw duplicates test_money_panels_count_each_cdr_once counts;
        # the copies below add parts, which would start them. The views read FINAL anyway.
        store.execute("SYSTEM STOP MERGES call_history")
        store.execute("SYSTEM STOP MERGES payments")
        copies = frozenset(value for value in HOSTILE.values() if value)
        for copy in copies:
            _copy_tenant(store, tenant, copy)
        yield Data(
            store=store,
            window=TimeRange(network.month_start, network.month_end, timedelta(hours=6)),
            values={"tenant": tenant, "currency": currency},
            latest=latest,
            payouts=payouts,
            copies=copies,
        )


def _write_roster(store: EmbeddedStore, row: dict[str, Any]) -> None:
    """A roster for the money-alerts dashboard, loaded after the synthetic network's own.

    The chosen tenant's customer is prepaid, its client postpaid with a credit limit of 0.01
    and its reseller inactive (its calls are traffic through an inactive account).
    """
    accounts = [
        ("customer", row["customer_id"], "prepaid", None, row["customer_currency"], "active"),
        ("client", row["client_id"], "postpaid", "0.01", row["customer_currency"], "active"),
        ("reseller", row["reseller_id"], "prepaid", None, None, "inactive"),
    ]
    for scope, account, billing, limit, currency, status in accounts:
        store.execute(
            "INSERT INTO roster_accounts VALUES ('dashboards', {t:String}, {s:String}, "
            "{a:String}, {a:String}, '', '', {b:String}, {l:Nullable(Decimal(38, 9))}, "
            "{c:Nullable(String)}, {st:String}, '')",
            {"t": row["tenant_id"], "s": scope, "a": account, "b": billing, "l": limit}
            | {"c": currency, "st": status},
        )
    at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    store.execute(
        "INSERT INTO roster_loads VALUES ('dashboards', {at:DateTime64(6, 'UTC')})", {"at": at}
    )


def _copy_tenant(store: EmbeddedStore, tenant: str, copy: str) -> None:
    """Every raw row of ``tenant`` (duplicates included) again, under the tenant id ``copy``.

    The rows are chosen in a subquery: in the outer query's WHERE, ``tenant_id`` would already
    be the replaced value. ``optimize_on_insert = 0`` keeps the duplicates in the inserted block
    (by default the engine would replace them on insert, as a merge does).
    """
    parameters = {"tenant": tenant, "copy": copy}
    store.execute(
        "INSERT INTO call_history SETTINGS optimize_on_insert = 0"
        " SELECT * REPLACE ({copy:String} AS tenant_id)"
        " FROM (SELECT * FROM call_history WHERE tenant_id = {tenant:String})",
        parameters,
    )
    store.execute(
        "INSERT INTO payments SETTINGS optimize_on_insert = 0"
        " SELECT * REPLACE ({copy:String} AS tenant_id)"
        " FROM (SELECT * FROM payments WHERE tenant_id = {tenant:String})",
        parameters,
    )
    store.execute(
        "INSERT INTO roster_accounts"
        " SELECT * REPLACE ({copy:String} AS tenant_id)"
        " FROM (SELECT * FROM roster_accounts WHERE tenant_id = {tenant:String})",
        parameters,
    )
    counts = store.query(
        "SELECT tenant_id = {copy:String} AS is_copy, count() AS n FROM call_history"
        " WHERE tenant_id IN ({tenant:String}, {copy:String}) GROUP BY is_copy ORDER BY is_copy",
        parameters,
    ).to_pylist()
    assert [c["n"] for c in counts] == [counts[0]["n"]] * 2, counts


def _record_payments(store: EmbeddedStore, row: dict[str, Any], month_start: datetime) -> Decimal:
    when = (month_start + timedelta(days=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
    currency, tenant = row["customer_currency"], row["tenant_id"]
    payments = [
        ("pay-res-1", "reseller_payout_out", row["reseller_id"], "1.250000"),
        ("pay-res-2", "reseller_payout_out", row["reseller_id"], "0.000125"),
        ("pay-cli-1", "client_payout_out", row["client_id"], "2.5"),
        ("pay-cus-1", "customer_payment_in", row["customer_id"], "10"),
    ]
    for payment_id, kind, account, amount in payments:
        payment = Payment.parse(
            payment_id=payment_id,
            tenant_id=tenant,
            kind=kind,
            account_id=account,
            amount=amount,
            currency=currency,
            recorded_at=when,
            note="dashboard test",
        )
        record_payment(store, payment)
        record_payment(store, payment)  # recorded twice: still one payment
    return sum(
        (Decimal(amount) for _, kind, _, amount in payments if kind == "reseller_payout_out"),
        Decimal(0),
    )


def _run(data: Data, sql: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = data.store.query(
        render_sql(sql, data.values, data.window)
    ).to_pylist()
    return rows


def _query(dashboard: str, title: str) -> Query:
    """The single ClickHouse query of the panel with this title (its title as in the JSON)."""
    found = [
        q
        for q in CLICKHOUSE_QUERIES
        if q.dashboard == dashboard and q.where.split(" target ")[0].endswith(repr(title))
    ]
    assert len(found) == 1, (dashboard, title, [q.where for q in CLICKHOUSE_QUERIES])
    return found[0]


def test_the_dashboards_have_clickhouse_queries() -> None:
    by_dashboard = {q.dashboard for q in CLICKHOUSE_QUERIES}
    assert by_dashboard == {
        "traffic-revenue-cost.json",
        "owed-to-resellers.json",
        "unrated-rejected.json",
        "money-alerts.json",
    }
    assert len(CLICKHOUSE_QUERIES) >= 20


@pytest.mark.parametrize("query", CLICKHOUSE_QUERIES, ids=lambda q: f"{q.dashboard}: {q.where}")
def test_every_clickhouse_query_runs_and_returns_rows(data: Data, query: Query) -> None:
    sql = render_sql(query.text, data.values, data.window)
    assert "$" not in sql, sql
    rows = data.store.query(sql).to_pylist()
    assert rows, f"no rows for {query.dashboard} {query.where}:\n{sql}"
    if query.time_series:  # Grafana needs a time column to draw a time series
        columns = data.store.query(f"DESCRIBE TABLE ({sql})").to_pylist()
        assert columns[0]["name"] == "time", columns
        assert columns[0]["type"].startswith("DateTime"), columns


def test_variables_offer_the_tenants_and_currencies_of_the_data(data: Data) -> None:
    mine = data.latest.filter(pl.col("tenant_id") == data.values["tenant"])
    currencies = {
        c for leg in ("customer", "client", "reseller") for c in mine[f"{leg}_currency"] if c
    }
    tenants = set(data.latest["tenant_id"]) | data.copies
    expected = {"tenant": tenants, "currency": currencies}
    for name, dashboard in DASHBOARDS.items():
        for variable in dashboard["templating"]["list"]:
            options = {next(iter(r.values())) for r in _run(data, variable["query"])}
            assert options == expected[variable["name"]], (name, variable["name"], options)


def test_money_panels_count_each_cdr_once(data: Data) -> None:
    """The store holds every CDR twice; the panels must show the latest rating once."""
    tenant, currency = data.values["tenant"], data.values["currency"]
    mine = data.latest.filter(pl.col("tenant_id") == tenant)

    def total(leg: str) -> Decimal:
        rows = mine.filter(pl.col(f"{leg}_currency") == currency)[f"{leg}_amount"].to_list()
        return sum(rows, Decimal(0))

    raw = data.store.query(
        "SELECT count() AS n FROM call_history WHERE tenant_id = {t:String}", {"t": tenant}
    ).to_pylist()[0]["n"]
    assert raw == 2 * mine.height  # the duplicates are really there

    stat = _run(
        data, _query("traffic-revenue-cost.json", "Revenue, cost and margin (${currency})").text
    )
    assert stat == [
        {
            "revenue": total("customer"),
            "client_cost": total("client"),
            "reseller_cost": total("reseller"),
            "margin": total("customer") - total("client") - total("reseller"),
        }
    ]
    calls = _run(data, _query("traffic-revenue-cost.json", "Calls").text)
    assert calls[0]["calls"] == mine.height

    owed = _run(data, _query("owed-to-resellers.json", "Owed to resellers (${currency})").text)
    assert owed == [
        {
            "owed_to_resellers": total("reseller") - data.payouts,
            "reseller_total": total("reseller"),
            "reseller_payouts": data.payouts,
        }
    ]
    by_reseller = _run(
        data, _query("owed-to-resellers.json", "Owed to each reseller (${currency})").text
    )
    assert sum((r["owed"] for r in by_reseller), Decimal(0)) == total("reseller") - data.payouts
    assert all(isinstance(r["owed"], Decimal) for r in by_reseller)  # money stays decimal


def test_unrated_panels_match_call_history(data: Data) -> None:
    mine = data.latest.filter(
        (pl.col("tenant_id") == data.values["tenant"]) & (pl.col("status") == "unrated")
    )
    expected = dict(mine.group_by("unrated_reason").len().iter_rows())
    rows = _run(data, _query("unrated-rejected.json", "Unrated calls by reason").text)
    assert {r["reasons"]: r["calls"] for r in rows} == expected


def test_a_query_naming_a_column_that_does_not_exist_fails(data: Data) -> None:
    """The check above can fail: the same query with a misspelt column is refused."""
    query = _query("traffic-revenue-cost.json", "Revenue by customer (${currency})")
    assert "customer_amount" in query.text
    broken = query.text.replace("customer_amount", "customer_amount_eur")
    with pytest.raises(RuntimeError, match="customer_amount_eur"):
        _run(data, broken)


def test_every_panel_has_a_query() -> None:
    for name, dashboard in DASHBOARDS.items():
        for panel in panels(dashboard):
            if panel.get("type") == "row":
                continue
            assert panel.get("targets"), (name, panel.get("title"))
            assert all(
                (t.get("rawSql") or t.get("expr") or "").strip() for t in panel["targets"]
            ), (name, panel.get("title"))


def test_dashboard_sql_reads_only_deduplicated_sources() -> None:
    """Raw call_history holds every rating of a CDR: panels read the views or FINAL only."""
    for query in CLICKHOUSE_QUERIES:
        sql = " ".join(query.text.split())
        for table in ("call_history", "payments", "balance_partitions"):
            for match in _mentions(sql, table):
                assert match.endswith(" FINAL"), (query.dashboard, query.where, match)


def _mentions(sql: str, table: str) -> list[str]:
    return [
        m.group(0)
        for m in re.finditer(rf"\b(?:FROM|JOIN)\s+{table}\b(\s+FINAL)?", sql, flags=re.IGNORECASE)
    ]


# --- hostile variable values -------------------------------------------------------------------


_REFERENCE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def _variables(query: Query) -> set[str]:
    """The template variables a query names (not the plugin's ``$__`` macros)."""
    names = {next(n for n in m.groups() if n) for m in _REFERENCE.finditer(query.text)}
    return {name for name in names if not name.startswith("__")}


def _queries_using(variable: str) -> list[Query]:
    return [q for q in CLICKHOUSE_QUERIES if variable in _variables(q)]


def _query_id(query: Query) -> str:
    return f"{query.dashboard}: {query.where}"


Rows = list[dict[str, Any]]


@pytest.fixture(scope="module")
def baseline(data: Data) -> dict[tuple[str, str, str, str], Rows]:
    """Rows of a query for ordinary values, computed once: (dashboard, where, tenant, currency)."""
    return {}


def _rows(data: Data, query: Query, tenant: str, currency: str) -> Rows:
    """The query's rows for these values, in a stable order.

    The query runs as written (so it must run); a query that ends in ``LIMIT n`` runs again
    without it for the rows compared: rows that tie on the ORDER BY key may come in any order,
    and the LIMIT would then keep different ones for two tenants with the same calls.
    """
    values = {"tenant": tenant, "currency": currency}
    rows: Rows = data.store.query(render_sql(query.text, values, data.window)).to_pylist()
    unlimited = re.sub(r"\s+LIMIT\s+\d+\s*$", "", query.text)
    if unlimited != query.text:
        rows = data.store.query(render_sql(unlimited, values, data.window)).to_pylist()
    return sorted(rows, key=repr)


def _baseline_rows(
    data: Data,
    baseline: dict[tuple[str, str, str, str], Rows],
    query: Query,
    tenant: str,
    currency: str,
) -> Rows:
    key = (query.dashboard, query.where, tenant, currency)
    if key not in baseline:
        baseline[key] = _rows(data, query, tenant, currency)
    return baseline[key]


def test_the_hostile_checks_cover_every_query_with_a_variable() -> None:
    with_variables = [q for q in CLICKHOUSE_QUERIES if _variables(q)]
    assert set(map(id, _queries_using("tenant"))) == set(map(id, with_variables))
    assert len(_queries_using("currency")) >= 10
    # Only the tenant list itself has no variable.
    assert [q.where for q in CLICKHOUSE_QUERIES if not _variables(q)] == ["variable tenant"] * 4


@pytest.mark.parametrize("label", list(HOSTILE))
def test_a_hostile_value_reaches_clickhouse_as_the_exact_text(data: Data, label: str) -> None:
    """What the dashboards write for a variable is the value itself, byte for byte."""
    value = HOSTILE[label]
    bound = "decodeURLComponent('${tenant:percentencode}')"
    sql = render_sql(f"SELECT {bound} AS v", {"tenant": value}, data.window)
    literal = sql.removeprefix("SELECT decodeURLComponent('").removesuffix("') AS v")
    assert set(literal) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~%"
    )
    rows = data.store.query(
        f"SELECT v = {{value:String}} AS same, v FROM ({sql})", {"value": value}
    )
    assert rows.to_pylist() == [{"same": 1, "v": value}]


# Each query runs with every hostile value in one test (an inner loop, not one test per pair):
# the same checks, without a test item and fixture lookup per pair. Every value is checked even
# when an earlier one fails, and the failure names each value that failed.


def _assert_every_value(query: Query, checks: dict[str, Callable[[], None]]) -> None:
    """Run the check of every hostile value; fail once, naming every value that failed."""
    failed = []
    for label, check in checks.items():
        try:
            check()
        except Exception as exc:  # an AssertionError, or the engine refusing the query
            failed.append(f"{label}: {type(exc).__name__}: {str(exc)[:2000]}")
    assert not failed, f"{_query_id(query)}\n" + "\n".join(failed)


@pytest.mark.parametrize("query", _queries_using("tenant"), ids=_query_id)
def test_a_tenant_named_by_a_hostile_value_sees_its_own_rows(
    data: Data, baseline: dict[tuple[str, str, str, str], Rows], query: Query
) -> None:
    """The copy under a hostile tenant id shows what the original shows: no more, no less."""
    tenant, currency = data.values["tenant"], data.values["currency"]
    original = _baseline_rows(data, baseline, query, tenant, currency)
    assert original  # the copied tenant has something to show in every query

    def check(value: str) -> None:
        assert _rows(data, query, value, currency) == original

    hostile = {label: value for label, value in HOSTILE.items() if value}
    assert len(hostile) == len(HOSTILE) - 1  # every value but the empty one names a copy
    _assert_every_value(query, {label: partial(check, v) for label, v in hostile.items()})


@pytest.mark.parametrize("query", _queries_using("tenant"), ids=_query_id)
def test_a_hostile_tenant_nobody_has_selects_nothing(
    data: Data, baseline: dict[tuple[str, str, str, str], Rows], query: Query
) -> None:
    """A hostile value naming no tenant (the real id with it appended) shows nothing."""
    currency = data.values["currency"]
    nothing = _baseline_rows(data, baseline, query, "no-such-tenant", currency)

    def check(value: str) -> None:
        absent = f"{data.values['tenant']}{value}" if value else value
        rows = _rows(data, query, absent, currency)
        assert rows == nothing
        # Aggregates over no rows: zeros, or no row at all.
        assert all(v in (0, None) for row in rows for v in row.values()), rows

    _assert_every_value(query, {label: partial(check, v) for label, v in HOSTILE.items()})


@pytest.mark.parametrize("query", _queries_using("currency"), ids=_query_id)
def test_a_hostile_currency_selects_no_money(
    data: Data, baseline: dict[tuple[str, str, str, str], Rows], query: Query
) -> None:
    """The real tenant with a hostile currency shows what it shows for a currency it has not."""
    tenant = data.values["tenant"]
    none = _baseline_rows(data, baseline, query, tenant, "XXX")

    def check(value: str) -> None:
        assert _rows(data, query, tenant, value) == none

    _assert_every_value(query, {label: partial(check, v) for label, v in HOSTILE.items()})


def test_the_sqlstring_form_let_a_value_out_of_its_literal(data: Data) -> None:
    """Why the dashboards changed: with ``${tenant:sqlstring}`` a backslash escapes the quote."""
    calls = _query("traffic-revenue-cost.json", "Calls").text
    old = calls.replace("decodeURLComponent('${tenant:percentencode}')", "${tenant:sqlstring}")
    assert old != calls
    values = {"tenant": HOSTILE["escaped quote and comment"], "currency": data.values["currency"]}
    sql = render_sql(old, values, data.window)
    leaked = data.store.query(sql).to_pylist()[0]["calls"]
    everyone = data.store.query("SELECT count() AS n FROM call_history_current").to_pylist()
    assert leaked == everyone[0]["n"] > 0  # every tenant's calls, and the time filter gone
    with pytest.raises(RuntimeError):  # a trailing backslash leaves the literal open
        data.store.query(render_sql(old, {**values, "tenant": "tnt\\"}, data.window))
