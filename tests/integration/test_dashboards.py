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
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
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
        yield Data(
            store=store,
            window=TimeRange(network.month_start, network.month_end, timedelta(hours=6)),
            values={"tenant": tenant, "currency": currency},
            latest=latest,
            payouts=payouts,
        )


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
    expected = {"tenant": set(data.latest["tenant_id"]), "currency": currencies}
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
