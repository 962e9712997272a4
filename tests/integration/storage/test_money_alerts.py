"""Money alerts (011_money_alerts.sql, pipeline/storage/alerts.py) on a hand-built network, both
store paths.

Every call lasts one minute on decks without connection fees, so each leg costs exactly its
deck's rate; the expected alerts are computed here from the calls, the rates, the roster and the
payments (:func:`_expected`), independently of the SQL, and compared row by row and to the last
decimal. Each kind has a case that fires and a control that does not:

- prepaid credit low: cust-pre-low (paid 2.00, rated 1.00) fires; cust-pre-ok (paid 50.00) not;
  res-a, a prepaid reseller paid 0.10 ahead, fires once its earnings exceed the advance.
- postpaid over limit: cust-post-over (owed 0.90, limit 0.75) fires; cust-post-ok (limit 100)
  and cust-post-free (no limit) do not.
- cost spike: cust-spike (three quiet hours in a week, then 2.00 in the last hour) fires over a
  median of zero; cust-steady (0.20 every hour) and cust-small (0.20, below the minimum) do not.
- negative margin: France (revenue 0.20 against 0.15 + 0.10 per call via gw-1 and res-a) fires;
  UK does not; Germany is not compared for its call whose client leg is in USD, and its EUR
  call alone has a positive margin.
- inactive traffic: gw-2 (client) and res-z (reseller) carry calls in the window; cust-gone is
  inactive but its call is older than the window.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main
from pipeline.reference.loader import load_plans_folder
from pipeline.services.offline import rate_file
from pipeline.sinks.contracts import CallHistoryStore
from pipeline.storage.alerts import COLUMNS, KINDS, AlertThresholds, money_alerts
from pipeline.storage.payments import Payment, record_payment
from tests.builders import association, cdr, deck_row, membership, plan, write_plans
from tests.support.stores import PATHS, open_path, unique_database

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
LAST_HOUR = datetime(2026, 3, 10, 11, 0, tzinfo=UTC)
RATED_AT = datetime(2026, 4, 1, tzinfo=UTC)

# plan -> prefix -> rate per minute (a one-minute call costs exactly this)
DECKS = {
    "PC": {"44": "0.50", "33": "0.20", "49": "0.30"},
    "PC2": {"44": "0.50"},
    "PG": {"44": "0.10", "33": "0.15", "49": "0.05"},
    "PGU": {"44": "0.10", "33": "0.10", "49": "1.00"},
    "PR": {"44": "0.05", "33": "0.10", "49": "0.02"},
}
PLAN_OF = {  # (tenant, scope, account) -> plan; currency: PGU is USD, the others EUR
    ("t1", "client", "gw-1"): "PG",
    ("t1", "client", "gw-2"): "PG",
    ("t1", "client", "gw-z"): "PG",
    ("t1", "client", "gw-usd"): "PGU",
    ("t1", "reseller", "res-a"): "PR",
    ("t1", "reseller", "res-z"): "PR",
}
RESELLER_OF = {"gw-1": "res-a", "gw-z": "res-z"}
DESTINATIONS = {"44": "UK", "33": "France", "49": "Germany"}
CALLEE = {"44": "442079460000", "33": "33142270000", "49": "4930123456"}

ACCOUNTS = """\
tenant_id,scope,account_id,name,company,email,billing_type,credit_limit,currency,status,timezone
t1,customer,cust-pre-low,Pre Low,,,prepaid,,EUR,active,
t1,customer,cust-pre-ok,Pre Ok,,,prepaid,,EUR,active,
t1,customer,cust-post-over,Post Over,,,postpaid,0.75,EUR,active,
t1,customer,cust-post-ok,Post Ok,,,postpaid,100,EUR,active,
t1,customer,cust-post-free,Post Free,,,postpaid,,,active,
t1,customer,cust-spike,Spike,,,postpaid,,,active,
t1,customer,cust-steady,Steady,,,postpaid,,,active,
t1,customer,cust-busy,Busy,,,postpaid,,,active,
t1,customer,cust-small,Small,,,postpaid,,,active,
t1,customer,cust-ger,Germany,,,postpaid,,,active,
t1,customer,cust-gone,Gone,,,postpaid,,,inactive,
t1,client,gw-1,Gateway 1,,,postpaid,,,active,
t1,client,gw-2,Gateway 2,,,postpaid,,,inactive,
t1,client,gw-z,Gateway Z,,,postpaid,,,active,
t1,client,gw-usd,Gateway USD,,,postpaid,,,active,
t1,reseller,res-a,Anna,,anna@a.example,prepaid,,EUR,active,
t1,reseller,res-z,Zed,,zed@z.example,postpaid,,,inactive,
t2,customer,cust-t2,Other,,,prepaid,,EUR,active,
"""
PAYMENTS = [  # (tenant, kind, account, amount)
    ("t1", "customer_payment_in", "cust-pre-low", "2.00"),
    ("t1", "customer_payment_in", "cust-pre-ok", "50.00"),
    ("t1", "customer_payment_in", "cust-post-over", "0.10"),
    ("t1", "reseller_payout_out", "res-a", "0.10"),
]


@dataclass(frozen=True)
class Call:
    cdr_id: str
    tenant: str
    customer: str
    client: str
    prefix: str
    start: datetime


def _calls() -> list[Call]:
    out: list[Call] = []

    def add(customer: str, client: str, prefix: str, start: datetime, tenant: str = "t1") -> None:
        out.append(Call(f"c{len(out):04d}", tenant, customer, client, prefix, start))

    day = datetime(2026, 3, 9, 9, 0, tzinfo=UTC)
    add("cust-pre-low", "gw-1", "44", day)
    add("cust-pre-low", "gw-1", "44", day + timedelta(minutes=1))
    add("cust-pre-ok", "gw-1", "44", day + timedelta(minutes=2))
    add("cust-post-over", "gw-1", "44", day - timedelta(days=1))
    add("cust-post-over", "gw-1", "44", day - timedelta(days=1, minutes=-1))
    add("cust-post-ok", "gw-1", "44", day - timedelta(days=1, minutes=-5))
    for hours in (49, 73, 121):  # three quiet hours in the trailing week, then a spike
        add("cust-spike", "gw-1", "44", LAST_HOUR - timedelta(hours=hours, minutes=-10))
    for minute in (10, 20, 30, 40):
        add("cust-spike", "gw-1", "44", LAST_HOUR + timedelta(minutes=minute))
    for hours in range(169):  # every hour of the trailing week and the last hour
        add("cust-steady", "gw-1", "33", LAST_HOUR - timedelta(hours=hours, minutes=-5))
    # Busy in 100 of the 168 hours (0.50, then 1.00 an hour): over all 168 hours, zeros
    # included, the median is 0.50 and 2.00 in the last hour is a spike; over its busy hours
    # alone the median would be 1.00 and it would not be.
    for hours in range(1, 101):
        for n in range(1 if hours <= 50 else 2):
            add("cust-busy", "gw-1", "44", LAST_HOUR - timedelta(hours=hours, minutes=-20 - n))
    for minute in (15, 25, 35, 45):
        add("cust-busy", "gw-1", "44", LAST_HOUR + timedelta(minutes=minute))
    add("cust-small", "gw-2", "33", LAST_HOUR + timedelta(minutes=20))
    add("cust-ger", "gw-usd", "49", NOW - timedelta(hours=2))
    add("cust-ger", "gw-2", "49", NOW - timedelta(hours=2, minutes=-5))
    add("cust-post-free", "gw-z", "44", NOW - timedelta(hours=3))
    add("cust-gone", "gw-1", "44", NOW - timedelta(days=3))
    add("cust-t2", "gw-9", "44", NOW - timedelta(days=2), tenant="t2")
    return out


CALLS = _calls()


def _write_network(folder: Path) -> Path:
    plans = [
        plan("PC", "customer"),
        plan("PC2", "customer", tenant_id="t2"),
        plan("PG", "client"),
        plan("PGU", "client", currency="USD"),
        plan("PR", "reseller"),
    ]
    decks = {
        name: [deck_row(p, r, destination=DESTINATIONS[p]) for p, r in rows.items()]
        for name, rows in DECKS.items()
    }
    customers = sorted({(c.tenant, c.customer) for c in CALLS})
    associations = [
        association("customer", c, "PC2" if t == "t2" else "PC") for t, c in customers
    ] + [association(scope, account, p) for (_, scope, account), p in PLAN_OF.items()]
    members = [membership(client, reseller) for client, reseller in RESELLER_OF.items()]
    write_plans(folder, plans, decks, associations, members)
    (folder / "accounts.csv").write_text(ACCOUNTS, encoding="utf-8")
    return folder


def _write_cdrs(path: Path) -> Path:
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    lines = [
        json.dumps(
            cdr(
                cdr_id=c.cdr_id,
                session_id=f"s-{c.cdr_id}",
                tenant_id=c.tenant,
                customer_id=c.customer,
                client_id=c.client,
                callee=CALLEE[c.prefix],
                start_time=c.start.strftime(stamp),
                answer_time=(c.start + timedelta(seconds=1)).strftime(stamp),
            )
        )
        for c in CALLS
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- the expected alerts, from the calls, the rates, the roster and the payments -------------


@dataclass(frozen=True)
class Leg:
    tenant: str
    scope: str
    account: str
    currency: str
    amount: Decimal
    start: datetime


def _legs(call: Call) -> list[Leg]:
    customer_plan = "PC2" if call.tenant == "t2" else "PC"
    out = [
        Leg(
            call.tenant,
            "customer",
            call.customer,
            "EUR",
            Decimal(DECKS[customer_plan][call.prefix]),
            call.start,
        )
    ]
    reseller = RESELLER_OF.get(call.client)
    for scope, account in (("client", call.client), ("reseller", reseller)):
        deck = PLAN_OF.get((call.tenant, scope, account)) if account else None
        if deck is not None and account is not None:
            currency = "USD" if deck == "PGU" else "EUR"
            amount = Decimal(DECKS[deck][call.prefix])
            out.append(Leg(call.tenant, scope, account, currency, amount, call.start))
    return out


def _accounts() -> list[dict[str, str]]:
    lines = ACCOUNTS.splitlines()
    header = lines[0].split(",")
    return [dict(zip(header, line.split(","), strict=True)) for line in lines[1:]]


def _expected(thresholds: AlertThresholds, tenant: str | None = None) -> list[dict[str, Any]]:
    legs = [leg for call in CALLS for leg in _legs(call)]
    rated: dict[tuple[str, str, str, str], Decimal] = defaultdict(Decimal)
    paid: dict[tuple[str, str, str, str], Decimal] = defaultdict(Decimal)
    for leg in legs:
        rated[leg.tenant, leg.scope, leg.account, leg.currency] += leg.amount
    scope_of = {"customer_payment_in": "customer", "reseller_payout_out": "reseller"}
    for t, kind, account, amount in PAYMENTS:
        paid[t, scope_of[kind], account, "EUR"] += Decimal(amount)
    out: list[dict[str, Any]] = []
    none: dict[str, Any] = {"window_start": None, "window_end": None}
    for kind in KINDS:
        found: list[dict[str, Any]] = []
        for a in _accounts():
            key = (a["tenant_id"], a["scope"], a["account_id"])
            currencies = (
                [a["currency"]]
                if a["currency"]
                else sorted({k[3] for k in (*rated, *paid) if k[:3] == key})
            )
            for currency in currencies:
                owed = rated[(*key, currency)] - paid[(*key, currency)]
                row: dict[str, Any] = {"tenant_id": key[0], "scope": key[1], "subject": key[2]}
                row |= {"currency": currency, **none}
                prepaid = a["billing_type"] == "prepaid"
                if (
                    kind == "prepaid_credit_low"
                    and prepaid
                    and -owed < thresholds.prepaid_threshold
                ):
                    found.append(
                        {**row, "figure": -owed, "threshold": thresholds.prepaid_threshold}
                    )
                limit = a["credit_limit"] and a["billing_type"] == "postpaid"
                if kind == "postpaid_over_limit" and limit and owed > Decimal(a["credit_limit"]):
                    found.append({**row, "figure": owed, "threshold": Decimal(a["credit_limit"])})
        if kind == "cost_spike":
            found = _expected_spikes(legs, thresholds)
        if kind == "negative_margin":
            found = _expected_margins(thresholds)
        if kind == "inactive_traffic":
            found = _expected_inactive(legs, thresholds)
        found = [{"kind": kind, **r} for r in found if tenant is None or r["tenant_id"] == tenant]
        order = ("customer", "client", "reseller", "destination")
        found.sort(
            key=lambda r: (
                r["tenant_id"],
                order.index(r["scope"]),
                r["subject"],
                r["currency"] or "",
            )
        )
        out += found
    return out


def _expected_spikes(legs: list[Leg], thresholds: AlertThresholds) -> list[dict[str, Any]]:
    last_end = NOW.replace(minute=0, second=0, microsecond=0)
    last_start = last_end - timedelta(hours=1)
    first = last_start - timedelta(hours=thresholds.spike_hours)
    hourly: dict[tuple[str, str, str, str], dict[datetime, Decimal]] = defaultdict(
        lambda: defaultdict(Decimal)
    )
    for leg in legs:
        if first <= leg.start < last_end:
            hour = leg.start.replace(minute=0, second=0, microsecond=0)
            hourly[leg.tenant, leg.scope, leg.account, leg.currency][hour] += leg.amount
    out = []
    for (tenant, scope, account, currency), hours in hourly.items():
        last = hours.get(last_start, Decimal(0))
        trailing = [
            hours.get(first + timedelta(hours=h), Decimal(0)) for h in range(thresholds.spike_hours)
        ]
        limit = thresholds.spike_k * statistics.median(trailing)
        if last >= thresholds.spike_minimum and last > limit:
            out.append(
                {
                    "tenant_id": tenant,
                    "scope": scope,
                    "subject": account,
                    "currency": currency,
                    "figure": last,
                    "threshold": limit,
                    "window_start": last_start,
                    "window_end": last_end,
                }
            )
    return out


def _expected_margins(thresholds: AlertThresholds) -> list[dict[str, Any]]:
    start = NOW - timedelta(hours=thresholds.window_hours)
    revenue: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    cost: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for call in CALLS:
        legs = _legs(call)
        if not start <= call.start < NOW or len({leg.currency for leg in legs}) > 1:
            continue  # outside the window, or legs in more than one currency: not compared
        key = (call.tenant, DESTINATIONS[call.prefix])
        revenue[key] += legs[0].amount
        cost[key] += sum((leg.amount for leg in legs[1:]), Decimal(0))
    return [
        {
            "tenant_id": t,
            "scope": "destination",
            "subject": d,
            "currency": "EUR",
            "figure": revenue[t, d],
            "threshold": cost[t, d],
            "window_start": start,
            "window_end": NOW,
        }
        for t, d in revenue
        if revenue[t, d] < cost[t, d]
    ]


def _expected_inactive(legs: list[Leg], thresholds: AlertThresholds) -> list[dict[str, Any]]:
    start = NOW - timedelta(hours=thresholds.window_hours)
    inactive = {
        (a["tenant_id"], a["scope"], a["account_id"])
        for a in _accounts()
        if a["status"] == "inactive"
    }
    counts: dict[tuple[str, str, str], int] = defaultdict(int)
    for call in CALLS:
        if not start <= call.start < NOW:
            continue
        touched = [("customer", call.customer), ("client", call.client)]
        if call.client in RESELLER_OF:
            touched.append(("reseller", RESELLER_OF[call.client]))
        for scope, account in touched:
            if (call.tenant, scope, account) in inactive:
                counts[call.tenant, scope, account] += 1
    return [
        {
            "tenant_id": t,
            "scope": s,
            "subject": a,
            "currency": None,
            "figure": Decimal(n),
            "threshold": Decimal(0),
            "window_start": start,
            "window_end": NOW,
        }
        for (t, s, a), n in counts.items()
    ]


# -- the store ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Network:
    store: CallHistoryStore
    url: str | None
    database: str


@pytest.fixture(scope="module", params=PATHS)
def network(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Network]:
    root = tmp_path_factory.mktemp(f"alerts-{request.param}")
    _write_network(root / "plans")
    _write_cdrs(root / "cdrs.jsonl")
    database = unique_database()
    with open_path(request.param, root, database) as path:
        store = path.store
        store.migrate()
        summary = rate_file(
            load_plans_folder(root / "plans"),
            root / "cdrs.jsonl",
            root / "out.parquet",
            root / "dlq.jsonl",
            RATED_AT,
            store=store,
        )
        assert summary.rated == len(CALLS), summary
        for number, (tenant, kind, account, amount) in enumerate(PAYMENTS):
            record_payment(
                store,
                Payment.parse(
                    payment_id=f"pay-{number}",
                    tenant_id=tenant,
                    kind=kind,
                    account_id=account,
                    amount=amount,
                    currency="EUR",
                ),
            )
        yield Network(store, path.server.url if path.server else None, database)


def _subjects(rows: list[dict[str, Any]], kind: str) -> set[str]:
    return {r["subject"] for r in rows if r["kind"] == kind}


def test_each_kind_fires_on_its_case_and_not_on_its_control(network: Network) -> None:
    rows = money_alerts(network.store, NOW)
    assert _subjects(rows, "prepaid_credit_low") == {"cust-pre-low", "res-a", "cust-t2"}
    assert _subjects(rows, "postpaid_over_limit") == {"cust-post-over"}
    assert "cust-spike" in _subjects(rows, "cost_spike")
    assert not {"cust-steady", "cust-small"} & _subjects(rows, "cost_spike")
    assert _subjects(rows, "negative_margin") == {"France"}
    assert _subjects(rows, "inactive_traffic") == {"gw-2", "res-z"}
    by_subject = {(r["kind"], r["subject"]): r for r in rows}
    low = by_subject["prepaid_credit_low", "cust-pre-low"]
    assert (low["figure"], low["threshold"], low["currency"]) == (
        Decimal("1.00"),
        Decimal(10),
        "EUR",
    )
    over = by_subject["postpaid_over_limit", "cust-post-over"]
    assert (over["figure"], over["threshold"]) == (Decimal("0.90"), Decimal("0.75"))
    spike = by_subject["cost_spike", "cust-spike"]
    assert (spike["figure"], spike["threshold"]) == (Decimal("2.00"), Decimal(0))
    busy = by_subject["cost_spike", "cust-busy"]
    assert (busy["figure"], busy["threshold"]) == (Decimal("2.00"), Decimal("1.50"))
    assert (spike["window_start"], spike["window_end"]) == (
        LAST_HOUR,
        LAST_HOUR + timedelta(hours=1),
    )


@pytest.mark.parametrize(
    "thresholds",
    [
        AlertThresholds(),
        AlertThresholds(
            prepaid_threshold=Decimal("1.000001"),
            spike_k=Decimal("1.5"),
            spike_minimum=Decimal("0.2"),
            spike_hours=4,
            window_hours=48,
        ),
        AlertThresholds(
            prepaid_threshold=Decimal("-5"),
            spike_k=Decimal("0.333333333"),
            spike_minimum=Decimal(0),
            spike_hours=169,
            window_hours=1,
        ),
    ],
    ids=["defaults", "even-window", "odd-window"],
)
def test_every_alert_row_to_the_last_decimal(network: Network, thresholds: AlertThresholds) -> None:
    rows = money_alerts(network.store, NOW, thresholds)
    expected = _expected(thresholds)
    assert [r["kind"] for r in rows] == [r["kind"] for r in expected]
    for got, want in zip(rows, expected, strict=True):
        assert list(got) == list(COLUMNS)
        assert got == {c: want[c] for c in COLUMNS}
        assert all(isinstance(got[c], Decimal) for c in ("figure", "threshold"))


def test_a_tenant_sees_its_own_alerts(network: Network) -> None:
    t2 = money_alerts(network.store, NOW, tenant="t2")
    assert t2 == _expected(AlertThresholds(), tenant="t2")
    assert [(r["kind"], r["subject"]) for r in t2] == [("prepaid_credit_low", "cust-t2")]
    assert money_alerts(network.store, NOW, tenant="t3") == []
    assert money_alerts(network.store, NOW, tenant="t1") == _expected(AlertThresholds(), "t1")


def test_the_command_prints_the_alerts_and_exits_1(
    network: Network, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if network.url is None:
        pytest.skip("one embedded engine per process: the command runs on the server path")
    monkeypatch.setenv("CLICKHOUSE_URL", network.url)
    monkeypatch.setenv("VMGATE_DATABASE", network.database)
    now = ["--now", "2026-03-10T12:30:00Z"]
    assert main(["alerts", *now, "--format", "json"]) == 1
    printed = json.loads(capsys.readouterr().out)
    expected = _expected(AlertThresholds())
    assert [(r["kind"], r["subject"]) for r in printed] == [
        (r["kind"], r["subject"]) for r in expected
    ]
    low = next(r for r in printed if r["subject"] == "cust-pre-low")
    assert (low["figure"], low["threshold"], low["currency"]) == ("1.000000", "10.000000", "EUR")
    margin = next(r for r in printed if r["kind"] == "negative_margin")
    assert margin["window_start"] == "2026-03-09T12:30:00Z"
    # A threshold flag and a setting from the environment change what fires.
    monkeypatch.setenv("VMGATE_ALERT_PREPAID_THRESHOLD", "0.5")
    assert main(["alerts", *now, "--tenant", "t2", "--format", "csv"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split(",") == list(COLUMNS)
    assert [line.split(",")[:6] for line in lines[1:]] == [
        ["prepaid_credit_low", "t2", "customer", "cust-t2", "EUR", "-0.500000"]
    ]
    assert main(["alerts", *now, "--tenant", "t2", "--prepaid-threshold", "-1"]) == 0
    assert "(no alerts)" in capsys.readouterr().out
    assert main(["alerts", *now, "--tenant", "t3"]) == 0
    with pytest.raises(SystemExit, match="2"):
        main(["alerts", "--now", "yesterday"])
