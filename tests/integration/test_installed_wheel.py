"""The package as a user installs it: a wheel in a fresh venv, used from another folder.

The wheel is built from this checkout and installed (without its dependencies, which come from
the test environment's site-packages through a path file, so nothing is downloaded) into a new
venv; the commands then run from a folder outside the checkout. The DDL must come with the
wheel (package data): nothing may be read from the checkout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from decimal import Decimal
from pathlib import Path

from tests.builders import cdr, deck_row, simple_reference

ROOT = Path(__file__).resolve().parents[2]
_LIMIT_S = 600.0


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VMGATE_SCHEMAS")}
    env.pop("CLICKHOUSE_URL", None)
    done = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=_LIMIT_S,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def test_a_wheel_in_a_fresh_venv_rates_into_a_store_and_answers_balances(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(ROOT)],
        tmp_path,
    )
    [wheel] = dist.glob("vmgate_rating-*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)], tmp_path)
    site = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path
    ).stdout.strip()
    # The dependencies (polars, chdb, ...) from this environment; a path line in a .pth file
    # does not run that folder's own .pth files, so this checkout's editable hook stays out.
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    work = tmp_path / "elsewhere"
    work.mkdir()
    located = _run([str(python), "-c", "import pipeline; print(pipeline.__file__)"], work)
    assert located.stdout.strip().startswith(str(venv)), located.stdout
    assert "COMMAND" in _run([str(python), "-m", "pipeline.cli", "--help"], work).stdout

    simple_reference(work / "plans", [deck_row("44", "0.0600", connection_fee="0.01")])
    calls = [cdr(cdr_id=f"c{i}", duration_ms=30_000 * (i + 1)) for i in range(5)]
    (work / "cdrs.jsonl").write_text("".join(json.dumps(c) + "\n" for c in calls))
    tool = str(venv / "bin" / "vmgate-rating")
    _run([tool, "rate", "--plans", "plans", "--cdrs", "cdrs.jsonl", "--out", "out.parquet",
          "--store", "store"], work)  # fmt: skip
    balances = json.loads(
        _run([tool, "balances", "--store", "store", "--format", "json"], work).stdout
    )
    # 0.01 + 0.06 * 30 s / 60 per 30 s of a call: 0.04, 0.07, 0.10, 0.13, 0.16.
    assert [(b["scope"], b["account_id"], Decimal(b["amount"])) for b in balances] == [
        ("customer", "cust", Decimal("0.50"))
    ]
