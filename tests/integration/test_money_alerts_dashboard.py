"""The money-alerts dashboard shows the alerts ``money_alerts`` raises, with the same figures.

``deploy/grafana/dashboards/money-alerts.json`` holds copies of the SQL of
``pipeline/storage/alerts.py`` with the default thresholds typed in. Each panel is rendered as
Grafana renders it (``tests/support/grafana.py``) with the time range Grafana would be given
for the alerts' "now": ending at "now" (the panels' ``$__toTime``) and as long as the default
alert window (their ``$__timeFilter``). It runs on a store of the synthetic network's roster
part, where every alert kind fires, and each panel's alerting rows must be exactly the alerts of
``money_alerts(..., AlertThresholds())`` of that kind: same accounts or destinations, same
figures and thresholds. A threshold changed on one side only fails here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeline.reference.loader import load_plans_folder
from pipeline.services.offline import rate_file
from pipeline.sinks.embedded import EmbeddedStore
from pipeline.storage.alerts import KINDS, AlertThresholds, money_alerts
from pipeline.storage.payments import Payment, record_payment
from pipeline.synthetic import NetworkSpec, RosterSummary, write_network
from tests.support.grafana import TimeRange, load_dashboards, panels, render_sql

Row = dict[str, Any]
Key = tuple[object, ...]

#: Per panel title: the alert kind it shows, which rows alert, and each alerting row as the
#: (scope, subject, currency, figure, threshold) of an alert.
PANELS: dict[str, tuple[str, Callable[[Row], bool], Callable[[Row], Key]]] = {
    "Prepaid credit (alert below 10)": (
        "prepaid_credit_low",
        lambda r: bool(r["low"]),
        lambda r: (r["scope"], r["account_id"], r["currency"], r["credit"], r["threshold"]),
    ),
    "Postpaid owed vs credit limit": (
        "postpaid_over_limit",
        lambda r: bool(r["over"]),
        lambda r: (r["scope"], r["account_id"], r["currency"], r["owed"], r["limit"]),
    ),
    "Last complete hour vs trailing median (k = 3, minimum 1)": (
        "cost_spike",
        lambda r: bool(r["spike"]),
        lambda r: (r["scope"], r["account_id"], r["currency"], r["last_cost"], r["threshold"]),
    ),
    "Margin per destination (lowest first)": (
        "negative_margin",
        lambda r: r["margin"] < 0,
        lambda r: ("destination", r["destination"], r["currency"], r["revenue"], r["cost"]),
    ),
    "Calls through inactive accounts": (
        "inactive_traffic",
        lambda r: True,
        lambda r: (r["scope"], r["account_id"], None, r["calls"], 0),
    ),
}


@dataclass(frozen=True)
class Alerting:
    store: EmbeddedStore
    now: datetime
    tenants: tuple[str, ...]
    roster: RosterSummary


@pytest.fixture(scope="module")
def alerting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alerting]:
    root = tmp_path_factory.mktemp("money-alerts-dashboard")
    spec = NetworkSpec(seed=7, prefixes_per_plan=400, cdrs=4_000, accounts=True)
    network = write_network(spec, root / "plans", root / "cdrs.jsonl")
    roster = network.roster
    assert roster is not None
    with EmbeddedStore(root / "store") as store:
        store.migrate()
        rate_file(
            load_plans_folder(network.plans_dir),
            network.cdrs_path,
            root / "out.parquet",
            root / "dlq.jsonl",
            datetime(2026, 4, 2, tzinfo=UTC),
            store=store,
        )
        for line in roster.payments_path.read_text(encoding="utf-8").splitlines():
            record_payment(store, Payment.parse(**json.loads(line)))
        yield Alerting(store, roster.alerts_now, network.tenant_ids, roster)


def _dashboard_panels() -> dict[str, str]:
    dashboard = load_dashboards()["money-alerts.json"]
    found = {}
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            found[panel["title"]] = target["rawSql"]
    return found


def test_every_panel_is_compared() -> None:
    assert set(_dashboard_panels()) == set(PANELS)
    assert sorted(kind for kind, _, _ in PANELS.values()) == sorted(KINDS)


def test_each_panel_shows_exactly_the_alerts_of_its_kind(alerting: Alerting) -> None:
    thresholds = AlertThresholds()
    window = TimeRange(
        alerting.now - timedelta(hours=thresholds.window_hours), alerting.now, timedelta(minutes=5)
    )
    sqls = _dashboard_panels()
    fired: set[str] = set()
    for tenant in alerting.tenants:
        alerts = money_alerts(alerting.store, alerting.now, thresholds, tenant)
        for title, (kind, alerts_here, key) in PANELS.items():
            sql = render_sql(sqls[title], {"tenant": tenant}, window)
            rows = alerting.store.query(sql).to_pylist()
            shown = sorted((key(r) for r in rows if alerts_here(r)), key=str)
            raised = sorted(
                (
                    (a["scope"], a["subject"], a["currency"], a["figure"], a["threshold"])
                    for a in alerts
                    if a["kind"] == kind
                ),
                key=str,
            )
            assert shown == raised, (tenant, title)
            if raised:
                fired.add(kind)
    assert fired == set(KINDS)  # every kind is compared on alerts that do fire


def test_the_network_raises_the_alerts_it_was_designed_for(alerting: Alerting) -> None:
    """The roster alerts fire for the designed accounts only; spike and margin at least there."""
    roster = alerting.roster
    alerts = money_alerts(alerting.store, alerting.now)
    subjects: dict[str, set[tuple[str, str]]] = {kind: set() for kind in KINDS}
    for alert in alerts:
        subjects[alert["kind"]].add((alert["tenant_id"], alert["subject"]))
    tenant = roster.tenant_id
    assert subjects["prepaid_credit_low"] == {(tenant, roster.prepaid_low_customer)}
    assert subjects["postpaid_over_limit"] == {(tenant, roster.over_limit_customer)}
    assert subjects["inactive_traffic"] == {(tenant, roster.inactive_reseller)}
    assert (tenant, roster.spike_customer) in subjects["cost_spike"]
    assert (tenant, roster.negative_margin_destination) in subjects["negative_margin"]
