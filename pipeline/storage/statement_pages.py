"""Statements rendered for people: aligned text, JSON, CSV, and a printable HTML page.

The HTML page is self-contained (inline CSS, no script, no external URL) so an operator can
print it or send it as a file; every value is escaped. Money is printed exactly as stored (six
decimals), instants RFC 3339 in UTC with the account's time zone named.
"""

from __future__ import annotations

import csv
import html
import io
import json
from typing import Any

import pyarrow as pa

from pipeline.storage.reports import format_table

SUMMARY_COLUMNS = (
    "scope",
    "account_id",
    "currency",
    "period",
    "status",
    "timezone",
    "opening",
    "calls",
    "billed_minutes",
    "amount",
    "payments",
    "adjustments",
    "closing",
)
CSV_COLUMNS = (
    "record",
    "tenant_id",
    "scope",
    "account_id",
    "currency",
    "period",
    "from",
    "to",
    "timezone",
    "status",
    "opening",
    "calls",
    "billed_seconds",
    "billed_minutes",
    "amount",
    "payments",
    "adjustments",
    "closing",
    "digest",
    "destination",
    "adjusted_kind",
    "adjusted_id",
    "adjusted_period",
    "old_amount",
    "new_amount",
)
# What a positive balance means, per scope (balance = amount - payments, docs/balances.md).
BALANCE_MEANING = {
    "customer": "owed by the customer to the operator",
    "client": "owed by the operator to the VMGateClient",
    "reseller": "owed by the operator to the reseller",
}


def render_statements(statements: list[dict[str, Any]], fmt: str) -> str:
    """``table``, ``json``, ``csv`` or ``html``."""
    if fmt == "json":
        return json.dumps(statements, indent=2, ensure_ascii=False)
    if fmt == "csv":
        return _csv(statements)
    if fmt == "html":
        return html_page(statements)
    if fmt != "table":
        msg = f"unknown format {fmt!r}: use table, json, csv or html"
        raise ValueError(msg)
    return _text(statements)


def _text(statements: list[dict[str, Any]]) -> str:
    summary = pa.Table.from_pylist(
        [{c: str(s[c]) for c in SUMMARY_COLUMNS} for s in statements],
        schema=pa.schema([(c, pa.string()) for c in SUMMARY_COLUMNS]),
    )
    parts = [format_table(summary)]
    destinations = [
        {"scope": s["scope"], "account_id": s["account_id"], "currency": s["currency"]}
        | {k: d[k] for k in ("destination", "calls", "billed_seconds", "billed_minutes", "amount")}
        for s in statements
        for d in s["destinations"]
    ]
    if destinations:
        parts.append(format_table(pa.Table.from_pylist(destinations), "\nper destination"))
    adjustments = [
        {"scope": s["scope"], "account_id": s["account_id"], "currency": s["currency"]}
        | {k: a[k] for k in ("kind", "id", "period", "old_amount", "new_amount", "difference")}
        for s in statements
        for a in s["adjustment_items"]
    ]
    if adjustments:
        parts.append(format_table(pa.Table.from_pylist(adjustments), "\nadjustments"))
    digests = [s for s in statements if s.get("digest")]
    if digests:
        rows = [{k: s[k] for k in ("scope", "account_id", "currency", "digest")} for s in digests]
        parts.append(format_table(pa.Table.from_pylist(rows), "\nclosed statements (sha256)"))
    return "\n".join(parts)


def _csv(statements: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n", restval="")
    writer.writeheader()
    for s in statements:
        head = {c: s[c] for c in CSV_COLUMNS if c in s}
        writer.writerow({**head, "record": "statement"})
        key = {c: s[c] for c in ("tenant_id", "scope", "account_id", "currency", "period")}
        for d in s["destinations"]:
            writer.writerow({**key, "record": "destination", **d})
        for a in s["adjustment_items"]:
            writer.writerow(
                {
                    **key,
                    "record": "adjustment",
                    "adjusted_kind": a["kind"],
                    "adjusted_id": a["id"],
                    "adjusted_period": a["period"],
                    "old_amount": a["old_amount"],
                    "new_amount": a["new_amount"],
                    "amount": a["difference"],
                }
            )
    return out.getvalue().rstrip("\n")


_STYLE = """
body { font-family: Helvetica, Arial, sans-serif; font-size: 10pt; color: #111; margin: 2em; }
section { page-break-after: always; margin-bottom: 3em; }
h1 { font-size: 14pt; margin: 0 0 0.3em 0; }
h2 { font-size: 11pt; margin: 1.2em 0 0.3em 0; }
table { border-collapse: collapse; margin: 0.3em 0; }
th, td { border: 1px solid #999; padding: 0.2em 0.6em; }
th { background: #eee; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.total td { font-weight: bold; }
p.note { color: #444; font-size: 9pt; }
code { font-size: 8pt; word-break: break-all; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _rows(rows: list[list[object]], numeric_from: int) -> str:
    out = []
    for row in rows:
        cells = "".join(
            f'<td class="n">{_e(v)}</td>' if i >= numeric_from else f"<td>{_e(v)}</td>"
            for i, v in enumerate(row)
        )
        out.append(f"<tr>{cells}</tr>")
    return "".join(out)


def _head(names: list[str]) -> str:
    return "<tr>" + "".join(f"<th>{_e(n)}</th>" for n in names) + "</tr>"


def _section(s: dict[str, Any]) -> str:
    scope = s["scope"]
    title = f"Statement {s['period']}: {scope} {s['account_id']} ({s['currency']})"
    summary = [
        ["Opening balance", s["opening"]],
        ["Calls", s["calls"]],
        ["Billed minutes", s["billed_minutes"]],
        ["Amount", s["amount"]],
        ["Payments", s["payments"]],
        ["Adjustments", s["adjustments"]],
    ]
    closing = (
        f'<tr class="total"><td>Closing balance</td><td class="n">{_e(s["closing"])}</td></tr>'
    )
    parts = [
        "<section>",
        f"<h1>{_e(title)}</h1>",
        "<table>",
        _rows(
            [
                ["Tenant", s["tenant_id"]],
                ["Period", f"{s['from']} to {s['to']} (time zone {s['timezone']})"],
                ["Status", s["status"]],
            ],
            2,
        ),
        "</table>",
        "<h2>Summary</h2>",
        "<table>",
        _head(["", s["currency"]]),
        _rows(summary, 1),
        closing,
        "</table>",
        f'<p class="note">A positive balance is {_e(BALANCE_MEANING.get(scope, ""))}. '
        "Closing = opening + amount - payments + adjustments.</p>",
    ]
    if s["destinations"]:
        parts += [
            "<h2>Per destination</h2>",
            "<table>",
            _head(["Destination", "Calls", "Billed minutes", "Amount"]),
            _rows(
                [
                    [d["destination"], d["calls"], d["billed_minutes"], d["amount"]]
                    for d in s["destinations"]
                ],
                1,
            ),
            "</table>",
        ]
    if s["adjustment_items"]:
        parts += [
            "<h2>Adjustments to closed periods</h2>",
            "<table>",
            _head(["Period", "Item", "Id", "Old amount", "New amount", "Difference"]),
            _rows(
                [
                    [
                        a["period"],
                        a["kind"],
                        a["id"],
                        a["old_amount"],
                        a["new_amount"],
                        a["difference"],
                    ]
                    for a in s["adjustment_items"]
                ],
                3,
            ),
            "</table>",
        ]
    if s.get("digest"):
        parts.append(
            f'<p class="note">Closed statement, SHA-256 <code>{_e(s["digest"])}</code></p>'
        )
    parts.append("</section>")
    return "".join(parts)


def html_page(statements: list[dict[str, Any]]) -> str:
    """A printable page with one section per statement (no statement: a line saying so)."""
    body = "".join(_section(s) for s in statements) or "<p>No statement for this selection.</p>"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>Statements</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )
