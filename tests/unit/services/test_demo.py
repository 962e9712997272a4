"""``vmgate-rating demo`` as a new user runs it: the roster, join codes, FX and every alert."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from pipeline.storage.alerts import KINDS


def _section(text: str, title: str) -> list[str]:
    """The lines of the section starting with ``title``, up to the next blank line."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start + 1 : end]


def test_demo_shows_roster_join_codes_converted_overview_and_every_alert(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "demo", "--dir", str(folder), "--cdrs", "3000"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout

    with (folder / "plans" / "accounts.csv").open(newline="", encoding="utf-8") as fh:
        accounts = list(csv.DictReader(fh))
    inactive = [a["account_id"] for a in accounts if a["status"] == "inactive"]
    assert inactive
    page = _section(out, "Resellers (Management -> Resellers)")
    resellers = {a["account_id"] for a in accounts if a["scope"] == "reseller"}
    listed = {line.split()[1] for line in page[2:]}
    assert resellers <= listed
    for reseller in inactive:
        row = next(line for line in page if f" {reseller} " in line)
        assert row.rstrip().endswith("inactive, has traffic"), row

    codes = _section(out, "Join codes")
    with (folder / "plans" / "join_codes.csv").open(newline="", encoding="utf-8") as fh:
        direct = [c["code"] for c in csv.DictReader(fh) if not c["reseller_id"]]
    assert direct
    for code in direct:
        assert any(line.split()[1:3] == [code, "Direct"] for line in codes), code

    overview = _section(out, "Billing overview in EUR")
    header = overview[0].split()
    rows = [dict(zip(header, line.split(), strict=True)) for line in overview[2:]]
    converted = [r for r in rows if r["conversion"] == "converted"]
    assert converted
    assert {r["currency"] for r in converted} == {"EUR"}

    alerts = _section(out, "Money alerts at 2026-04-01T00:00:00Z")
    kinds = {line.split()[0] for line in alerts[2:]}
    assert kinds == set(KINDS)
    inactive_rows = [line.split() for line in alerts if line.startswith("inactive_traffic")]
    assert {row[3] for row in inactive_rows} >= set(inactive)
