"""The printable statement page: well-formed, self-contained, escaped, with the totals."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from pipeline.storage.statement_pages import render_statements
from pipeline.storage.statements import digest

_VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr", "source"}


def _statement(**overrides: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "tenant_id": "t1",
        "scope": "customer",
        "account_id": "<script>alert('x')</script> & Co",
        "currency": "EUR",
        "timezone": "Pacific/Auckland",
        "period": "2026-03",
        "from": "2026-02-28T11:00:00Z",
        "to": "2026-03-31T11:00:00Z",
        "opening": "10.000000",
        "calls": 3,
        "billed_seconds": 185,
        "billed_minutes": "3.08",
        "amount": "1.234567",
        "payments": "5.000000",
        "adjustments": "-0.100000",
        "closing": "6.134567",
        "destinations": [
            {
                "destination": 'UK "mobile" <EE>',
                "calls": 3,
                "billed_seconds": 185,
                "billed_minutes": "3.08",
                "amount": "1.234567",
            }
        ],
        "adjustment_items": [
            {
                "kind": "call",
                "id": "c-1",
                "period": "2026-02",
                "old_amount": "0.200000",
                "new_amount": "0.100000",
                "difference": "-0.100000",
            }
        ],
    }
    statement |= overrides
    statement["digest"] = digest(statement)
    statement["status"] = "closed"
    return statement


class _Checker(HTMLParser):
    """Every opened tag closed in order; text, attributes and URLs collected."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.text: list[str] = []
        self.tags: list[str] = []
        self.attributes: list[str] = []
        self.declarations: list[str] = []

    def handle_decl(self, decl: str) -> None:
        self.declarations.append(decl)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [f"{k}={v}" for k, v in attrs]
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _check(page: str) -> _Checker:
    checker = _Checker()
    checker.feed(page)
    checker.close()
    assert checker.problems == []
    assert checker.stack == []
    assert checker.declarations == ["DOCTYPE html"]
    return checker


def test_the_page_is_well_formed_self_contained_and_escaped() -> None:
    statements = [_statement(), _statement(scope="reseller", account_id="res", currency="USD")]
    page = render_statements(statements, "html")
    checker = _check(page)
    text = " ".join(checker.text)
    for figure in ("10.000000", "1.234567", "5.000000", "-0.100000", "6.134567", "3.08"):
        assert figure in text
    assert "Closing balance" in text
    assert "owed by the customer to the operator" in text
    assert "owed by the operator to the reseller" in text
    assert "<script>alert('x')</script> & Co" in text  # shown as text ...
    assert "script" not in checker.tags  # ... never as a tag
    assert 'UK "mobile" <EE>' in text
    assert statements[0]["digest"] in text
    assert checker.tags.count("section") == 2
    assert "style" in checker.tags
    for tag in ("link", "img", "script", "iframe", "object"):
        assert tag not in checker.tags
    assert not any(a.startswith(("href=", "src=")) for a in checker.attributes)
    assert "://" not in page
    assert "url(" not in page
    assert "@import" not in page


def test_no_statement_is_a_page_that_says_so() -> None:
    checker = _check(render_statements([], "html"))
    assert "No statement for this selection." in " ".join(checker.text)


def test_json_and_csv_carry_every_line() -> None:
    statement = _statement()
    assert json.loads(render_statements([statement], "json")) == [statement]
    rows = list(csv.DictReader(io.StringIO(render_statements([statement], "csv"))))
    assert [r["record"] for r in rows] == ["statement", "destination", "adjustment"]
    assert rows[0]["closing"] == "6.134567"
    assert rows[1]["amount"] == "1.234567"
    assert (rows[2]["adjusted_id"], rows[2]["amount"]) == ("c-1", "-0.100000")
    table = render_statements([statement], "table")
    assert "6.134567" in table
    assert "adjustments" in table.splitlines()


# `make test` installs Debian's chromium where it can (as root, as CI runs); there the browser
# is required, elsewhere a machine without it skips this test.
@pytest.mark.skipif(
    shutil.which("chromium") is None and not os.environ.get("CI"),
    reason="no headless Chromium installed (make browser installs it as root)",
)
def test_the_page_renders_in_headless_chromium(tmp_path: Path) -> None:
    page = tmp_path / "statement.html"
    page.write_text(render_statements([_statement()], "html"), encoding="utf-8")
    chromium = shutil.which("chromium")
    assert chromium is not None, "CI: make browser did not install chromium"
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        [chromium, *flags, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "6.134567" in dom
    assert "&lt;script&gt;" in dom
    pdf = tmp_path / "statement.pdf"
    subprocess.run(
        [chromium, *flags, f"--print-to-pdf={pdf}", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert pdf.read_bytes().startswith(b"%PDF")
