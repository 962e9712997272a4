"""Statements per account and currency, live or frozen by a period close.

Every statement is a view of one ledger of **booked items**, each with an instant and a signed
amount (as the balance moves: a call leg's amount, minus a payment, an adjustment's
difference):

- a live call leg or payment (call history's current row of each CDR, tombstones skipped;
  ``payments``) whose instant is in an open period, booked at its own instant;
- every item frozen by a close still in effect (``statement_items``);
- a **pending adjustment** for each item of a closed period whose live amount differs from what
  was booked for it there (frozen at close, plus adjustments frozen in later closes): the
  difference, booked at the start of the first open period (the month after the closed chain,
  in the account's time zone). A re-rating, a corrected CDR moved into or out of a closed
  period, a backdated payment: all are found by this one comparison, whatever wrote them, so
  nothing hooks the writers and recomputing is idempotent and crash-safe.

The sum of all booked items of an account equals its live balance (``balances``): each
pending adjustment is exactly the live amount minus what closes froze. A statement over a window
[start, end) (in the account's zone) is: opening = items before start; calls, billed seconds,
amount (per destination too), payments, adjustments = items in the window; closing = opening +
amount - payments + adjustments. A closed period's statement is read back as frozen, with its
SHA-256 digest, whatever changed since.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pipeline.rating.columns import LEG_NAMES
from pipeline.sinks.contracts import CallHistoryStore
from pipeline.storage.periods import (
    BEGINNING,
    ClosedChain,
    local_midnight,
    month_bounds,
    query_instant,
)

_ZERO = "CAST(0, 'Decimal(38, 6)')"
_ZONE_INDEX = "indexOf({zones:Array(String)}, if(z.timezone = '', 'UTC', z.timezone))"


def _at(array: str) -> str:
    """The instant at the zone index ``zi`` of a parameter array of instants (UTC text)."""
    return f"toDateTime64({{{array}:Array(String)}}[zi], 6, 'UTC')"


_ZONES_SQL = """
SELECT scope, account_id, any(timezone) AS timezone
FROM roster_accounts_current
WHERE tenant_id = {tenant:String}
GROUP BY scope, account_id
"""

# The booked items of one tenant (see the module docstring), with each item's zone index zi.
# Parameters: tenant; zones (every zone in use, 'UTC' included); close_ids (closes in effect);
# closed_labels (closed months, oldest first); closed_starts (per zone, the start of each closed
# month, the first one at the beginning of time: len(zones) * len(closed_labels) values);
# closed_end (per zone, the end of the last closed month: where the first open period starts).
BOOKED_SQL = f"""
WITH
zoned AS ({_ZONES_SQL}),
items AS (
    SELECT 'call' AS kind, cdr_id AS item_id, leg.1 AS scope, leg.2 AS account_id,
           assumeNotNull(leg.3) AS currency, ifNull(leg.5, '') AS destination,
           ifNull(leg.6, 0) AS billed_seconds,
           CAST(assumeNotNull(leg.4), 'Decimal(38, 6)') AS amount,
           start_time AS instant
    FROM call_history FINAL
    ARRAY JOIN [
        ('customer', customer_id, customer_currency, customer_amount, customer_destination,
         customer_billed_seconds),
        ('client', client_id, client_currency, client_amount, client_destination,
         client_billed_seconds),
        ('reseller', ifNull(reseller_id, ''), reseller_currency, reseller_amount,
         reseller_destination, reseller_billed_seconds)
    ] AS leg
    WHERE tenant_id = {{tenant:String}} AND status != 'superseded' AND leg.4 IS NOT NULL
    UNION ALL
    SELECT 'payment', payment_id,
           multiIf(kind = 'customer_payment_in', 'customer', kind = 'client_payout_out', 'client',
                   'reseller'),
           account_id, currency, '', toInt64(0), -CAST(amount, 'Decimal(38, 6)'), recorded_at
    FROM payments FINAL
    WHERE tenant_id = {{tenant:String}}
),
live AS (
    SELECT i.kind AS kind, i.item_id AS item_id, i.scope AS scope, i.account_id AS account_id,
           i.currency AS currency, i.destination AS destination,
           i.billed_seconds AS billed_seconds, i.amount AS amount, i.instant AS instant,
           {_ZONE_INDEX} AS zi,
           if(i.instant < {_at("closed_end")},
              {{closed_labels:Array(String)}}[arrayCount(
                  s -> toDateTime64(s, 6, 'UTC') <= i.instant,
                  arraySlice({{closed_starts:Array(String)}},
                             (zi - 1) * length({{closed_labels:Array(String)}}) + 1,
                             length({{closed_labels:Array(String)}})))],
              '') AS belongs
    FROM items AS i
    LEFT JOIN zoned AS z ON i.scope = z.scope AND i.account_id = z.account_id
),
frozen AS (
    SELECT kind, item_kind, item_id, scope, account_id, currency, belongs_to, instant,
           destination, billed_seconds, amount, old_amount, new_amount
    FROM statement_items FINAL
    WHERE tenant_id = {{tenant:String}} AND has({{close_ids:Array(String)}}, close_id)
),
pending AS (
    SELECT p.item_kind AS item_kind, p.item_id AS item_id, p.scope AS scope,
           p.account_id AS account_id, p.currency AS currency, p.belongs_to AS belongs_to,
           p.old_amount AS old_amount, p.new_amount AS new_amount,
           toDateTime64({{closed_end:Array(String)}}[{_ZONE_INDEX}], 6, 'UTC') AS instant
    FROM (
        SELECT item_kind, item_id, scope, account_id, currency, belongs_to,
               sum(frozen_amount) AS old_amount, sum(live_amount) AS new_amount
        FROM (
            SELECT kind AS item_kind, item_id, scope, account_id, currency,
                   belongs AS belongs_to, {_ZERO} AS frozen_amount, amount AS live_amount
            FROM live WHERE belongs != ''
            UNION ALL
            SELECT item_kind, item_id, scope, account_id, currency, belongs_to, amount, {_ZERO}
            FROM frozen
        )
        GROUP BY item_kind, item_id, scope, account_id, currency, belongs_to
        HAVING old_amount != new_amount
    ) AS p
    LEFT JOIN zoned AS z ON p.scope = z.scope AND p.account_id = z.account_id
),
booked AS (
    SELECT kind, kind AS item_kind, item_id, scope, account_id, currency, '' AS belongs_to,
           instant, destination, billed_seconds, amount, {_ZERO} AS old_amount,
           {_ZERO} AS new_amount
    FROM live WHERE belongs = ''
    UNION ALL
    SELECT kind, item_kind, item_id, scope, account_id, currency, belongs_to, instant,
           destination, billed_seconds, amount, old_amount, new_amount
    FROM frozen
    UNION ALL
    SELECT 'adjustment', item_kind, item_id, scope, account_id, currency, belongs_to, instant, '',
           toInt64(0), new_amount - old_amount, old_amount, new_amount
    FROM pending
),
windowed AS (
    SELECT b.kind AS kind, b.item_kind AS item_kind, b.item_id AS item_id, b.scope AS scope,
           b.account_id AS account_id, b.currency AS currency, b.belongs_to AS belongs_to,
           b.instant AS instant, b.destination AS destination,
           b.billed_seconds AS billed_seconds, b.amount AS amount, b.old_amount AS old_amount,
           b.new_amount AS new_amount, {_ZONE_INDEX} AS zi,
           {_at("window_start")} AS window_start, {_at("window_end")} AS window_end
    FROM booked AS b
    LEFT JOIN zoned AS z ON b.scope = z.scope AND b.account_id = z.account_id
)
"""

# Per account and currency, the lines of its statement over the window: 'opening' (everything
# before it), 'call' per destination, 'payment', 'adjustment' per adjusted item.
_LINES_SQL = f"""{BOOKED_SQL}
SELECT scope, account_id, currency,
       if(instant < window_start, 'opening', kind) AS line,
       if(line = 'call', destination, '') AS destination_name,
       if(line = 'adjustment', item_kind, '') AS adjusted_kind,
       if(line = 'adjustment', item_id, '') AS adjusted_id,
       if(line = 'adjustment', belongs_to, '') AS adjusted_period,
       count() AS items, sum(billed_seconds) AS billed_seconds, sum(amount) AS amount,
       sum(old_amount) AS old_amount, sum(new_amount) AS new_amount
FROM windowed
WHERE instant < window_end
  AND ({{scope:String}} = '' OR scope = {{scope:String}})
  AND ({{account:String}} = '' OR account_id = {{account:String}})
GROUP BY scope, account_id, currency, line, destination_name, adjusted_kind, adjusted_id,
         adjusted_period
"""

# What a close of {period} freezes: the items booked in its window (and, for the first close,
# everything before it: the opening balance has its items too).
FREEZE_SQL = f"""
INSERT INTO statement_items
    (tenant_id, period, close_id, kind, item_kind, item_id, scope, account_id, currency,
     belongs_to, instant, destination, billed_seconds, amount, old_amount, new_amount)
{BOOKED_SQL}
SELECT {{tenant:String}}, {{period:String}}, {{close_id:String}}, kind, item_kind, item_id, scope,
       account_id, currency, if(kind = 'adjustment', belongs_to, {{period:String}}), instant,
       destination, billed_seconds, amount, old_amount, new_amount
FROM windowed
WHERE instant < window_end AND ({{first:UInt8}} = 1 OR instant >= window_start)
"""

_STORE_SQL = """
INSERT INTO closed_statements
    (tenant_id, period, close_id, scope, account_id, currency, opening, amount, payments,
     adjustments, closing, document, digest)
VALUES ({tenant:String}, {period:String}, {close_id:String}, {scope:String}, {account:String},
        {currency:String}, {opening:Decimal(38, 6)}, {amount:Decimal(38, 6)},
        {payments:Decimal(38, 6)}, {adjustments:Decimal(38, 6)}, {closing:Decimal(38, 6)},
        {document:String}, {digest:String})
"""

_FROZEN_SQL = """
SELECT document, digest
FROM closed_statements FINAL
WHERE tenant_id = {tenant:String} AND period = {period:String} AND close_id = {close_id:String}
  AND ({scope:String} = '' OR scope = {scope:String})
  AND ({account:String} = '' OR account_id = {account:String})
ORDER BY indexOf(['customer', 'client', 'reseller'], scope), account_id, currency
"""


@dataclass(frozen=True)
class Window:
    """What a statement covers: a month (``2026-03``) or local dates [start, end)."""

    period: str | None = None
    start: date | None = None
    end: date | None = None

    @property
    def label(self) -> str:
        """The period, or ``start..end`` (end exclusive)."""
        return self.period or f"{self.start}..{self.end}"

    def bounds(self, zone: str) -> tuple[datetime, datetime]:
        """[start, end) in ``zone`` as UTC instants."""
        if self.period is not None:
            return month_bounds(self.period, zone)
        if self.start is None or self.end is None:
            msg = "a window is a period or a start and an end date"
            raise ValueError(msg)
        return local_midnight(self.start, zone), local_midnight(self.end, zone)


@dataclass(frozen=True)
class Zones:
    """The time zone of each account of a tenant (the current roster's; UTC when absent)."""

    of_account: dict[tuple[str, str], str]

    @property
    def names(self) -> list[str]:
        """Every zone in use, UTC first."""
        return ["UTC", *sorted(set(self.of_account.values()) - {"UTC"})]

    def of(self, scope: str, account: str) -> str:
        """The zone of one account."""
        return self.of_account.get((scope, account)) or "UTC"


def account_zones(store: CallHistoryStore, tenant: str) -> Zones:
    """The zones of the tenant's accounts in the current roster."""
    table = store.query(_ZONES_SQL, {"tenant": tenant})
    rows = table.to_pylist() if table.num_columns else []
    return Zones({(r["scope"], r["account_id"]): r["timezone"] or "UTC" for r in rows})


def booked_parameters(
    tenant: str, zones: Zones, chain: ClosedChain, window: Window
) -> dict[str, object]:
    """The parameters of :data:`BOOKED_SQL` for a tenant, its closed chain and a window."""
    names = zones.names
    starts: list[str] = []
    ends: list[str] = []
    for zone in names:
        bounds = [month_bounds(p, zone) for p in chain.periods]
        starts += [query_instant(BEGINNING if i == 0 else b[0]) for i, b in enumerate(bounds)]
        ends.append(query_instant(bounds[-1][1] if bounds else BEGINNING))
    windows = [window.bounds(zone) for zone in names]
    return {
        "tenant": tenant,
        "zones": names,
        "close_ids": list(chain.close_ids),
        "closed_labels": list(chain.periods),
        "closed_starts": starts,
        "closed_end": ends,
        "window_start": [query_instant(w[0]) for w in windows],
        "window_end": [query_instant(w[1]) for w in windows],
    }


def rfc3339(instant: datetime) -> str:
    """An instant as RFC 3339 in UTC (``2026-03-01T00:00:00Z``)."""
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def minutes(seconds: int) -> str:
    """Billed seconds as minutes, to two decimals (half up), for reading."""
    return str((Decimal(seconds) / 60).quantize(Decimal("0.01"), ROUND_HALF_UP))


def _money(value: Decimal) -> str:
    return format(value.quantize(Decimal("0.000001")), "f")


def live_statements(
    store: CallHistoryStore,
    tenant: str,
    window: Window,
    *,
    chain: ClosedChain,
    scope: str | None = None,
    account: str | None = None,
    zones: Zones | None = None,
) -> list[dict[str, Any]]:
    """The statements of every account over ``window``, from the booked items (see above).

    ``zones``: the tenant's :func:`account_zones`, when the caller has them already.
    """
    if zones is None:
        zones = account_zones(store, tenant)
    parameters = booked_parameters(tenant, zones, chain, window)
    parameters |= {"scope": scope or "", "account": account or ""}
    table = store.query(_LINES_SQL, parameters)
    lines = table.to_pylist() if table.num_columns else []
    grouped: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for line in lines:
        grouped.setdefault((line["scope"], line["account_id"], line["currency"]), []).append(line)
    order = sorted(grouped, key=lambda k: (LEG_NAMES.index(k[0]), k[1], k[2]))
    return [
        _statement(tenant, key, grouped[key], window, zones.of(key[0], key[1])) for key in order
    ]


def _statement(
    tenant: str,
    key: tuple[str, str, str],
    lines: list[dict[str, Any]],
    window: Window,
    zone: str,
) -> dict[str, Any]:
    scope, account, currency = key
    start, end = window.bounds(zone)

    def total(kind: str, column: str = "amount") -> Any:
        return sum((line[column] for line in lines if line["line"] == kind), Decimal(0))

    destinations = sorted(
        (line for line in lines if line["line"] == "call"), key=lambda x: x["destination_name"]
    )
    adjusted = sorted(
        (line for line in lines if line["line"] == "adjustment"),
        key=lambda x: (x["adjusted_period"], x["adjusted_kind"], x["adjusted_id"]),
    )
    opening = total("opening")
    amount = total("call")
    payments = -total("payment")
    adjustments = total("adjustment")
    billed = int(total("call", "billed_seconds"))
    return {
        "tenant_id": tenant,
        "scope": scope,
        "account_id": account,
        "currency": currency,
        "timezone": zone,
        "period": window.label,
        "from": rfc3339(start),
        "to": rfc3339(end),
        "opening": _money(opening),
        "calls": int(total("call", "items")),
        "billed_seconds": billed,
        "billed_minutes": minutes(billed),
        "amount": _money(amount),
        "payments": _money(payments),
        "adjustments": _money(adjustments),
        "closing": _money(opening + amount - payments + adjustments),
        "destinations": [
            {
                "destination": d["destination_name"],
                "calls": int(d["items"]),
                "billed_seconds": int(d["billed_seconds"]),
                "billed_minutes": minutes(int(d["billed_seconds"])),
                "amount": _money(d["amount"]),
            }
            for d in destinations
        ],
        "adjustment_items": [
            {
                "kind": a["adjusted_kind"],
                "id": a["adjusted_id"],
                "period": a["adjusted_period"],
                "old_amount": _money(a["old_amount"]),
                "new_amount": _money(a["new_amount"]),
                "difference": _money(a["amount"]),
            }
            for a in adjusted
        ],
    }


def canonical(document: dict[str, Any]) -> str:
    """The canonical serialisation a digest is taken of: sorted keys, no spaces, UTF-8 text."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(document: dict[str, Any]) -> str:
    """SHA-256 (hex) of a statement's canonical serialisation."""
    return hashlib.sha256(canonical(document).encode()).hexdigest()


def period_digest(statements: Iterable[dict[str, Any]]) -> str:
    """SHA-256 (hex) of a period's statements: their digests, one per line, in statement order."""
    lines = "".join(f"{digest(s)}\n" for s in statements)
    return hashlib.sha256(lines.encode()).hexdigest()


def freeze_items(
    store: CallHistoryStore,
    tenant: str,
    period: str,
    close_id: str,
    chain: ClosedChain,
    *,
    zones: Zones | None = None,
) -> None:
    """Store, under ``close_id``, every item booked in ``period`` (before it too, if first).

    ``zones``: the tenant's :func:`account_zones`, when the caller has them already.
    """
    if zones is None:
        zones = account_zones(store, tenant)
    parameters = booked_parameters(tenant, zones, chain, Window(period=period))
    parameters |= {"period": period, "close_id": close_id, "first": int(not chain.periods)}
    store.execute(FREEZE_SQL, parameters)


def store_statements(
    store: CallHistoryStore,
    tenant: str,
    period: str,
    close_id: str,
    statements: list[dict[str, Any]],
) -> None:
    """Store a close's statements with their canonical document and digest."""
    for statement in statements:
        store.execute(
            _STORE_SQL,
            {
                "tenant": tenant,
                "period": period,
                "close_id": close_id,
                "scope": statement["scope"],
                "account": statement["account_id"],
                "currency": statement["currency"],
                "opening": statement["opening"],
                "amount": statement["amount"],
                "payments": statement["payments"],
                "adjustments": statement["adjustments"],
                "closing": statement["closing"],
                "document": canonical(statement),
                "digest": digest(statement),
            },
        )


def frozen_statements(
    store: CallHistoryStore,
    tenant: str,
    period: str,
    close_id: str,
    *,
    scope: str | None = None,
    account: str | None = None,
) -> list[dict[str, Any]]:
    """A closed period's statements as frozen, each with its ``digest``."""
    table = store.query(
        _FROZEN_SQL,
        {
            "tenant": tenant,
            "period": period,
            "close_id": close_id,
            "scope": scope or "",
            "account": account or "",
        },
    )
    rows = table.to_pylist() if table.num_columns else []
    return [{**json.loads(r["document"]), "digest": r["digest"]} for r in rows]
