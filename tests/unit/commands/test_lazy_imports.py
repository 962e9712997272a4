"""A command pays only for what it uses (issue 17): imports are checked in a fresh interpreter.

Building the parser (``--help`` of any command) imports no numpy, polars or pyarrow; ``rate``
without ``--store`` imports neither the ClickHouse engine nor a Kafka or ClickHouse client, nor
pandas (which ``pa.array`` on a numpy array or a list would pull in, ~0.2 s).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pipeline.commands.money import PAYMENT_KINDS
from pipeline.storage.payments import KINDS
from tests.builders import association, cdr, deck_row, plan, write_plans

_HEAVY_FOR_ANY_PARSER = ("numpy", "polars", "pyarrow", "pandas")
_NOT_FOR_RATE = ("chdb", "clickhouse_connect", "confluent_kafka", "pandas")
_REPO = Path(__file__).resolve().parents[3]


def _loaded_after(code: str) -> set[str]:
    """Top-level packages in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    script = (
        code
        + "\nimport sys, json\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=_REPO
    )
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def test_building_the_parser_imports_no_data_library() -> None:
    loaded = _loaded_after("import pipeline.cli\npipeline.cli.build_parser()")
    assert not loaded & set(_HEAVY_FOR_ANY_PARSER), loaded & set(_HEAVY_FOR_ANY_PARSER)


def test_rate_without_a_store_imports_no_engine_and_no_client(tmp_path: Path) -> None:
    plans = write_plans(
        tmp_path / "plans",
        [plan("P", "customer")],
        {"P": [deck_row("44", "0.0100")]},
        [association("customer", "cust", "P")],
    )
    cdrs = tmp_path / "cdrs.jsonl"
    lines = [json.dumps(cdr(cdr_id=f"c{i}")) for i in range(3)]
    cdrs.write_text("\n".join([*lines, "not json"]) + "\n")
    out = tmp_path / "out.parquet"
    argv = ["rate", "--plans", str(plans), "--cdrs", str(cdrs), "--out", str(out), "--json"]
    loaded = _loaded_after(f"import pipeline.cli\nassert pipeline.cli.main({argv!r}) == 0")
    assert out.exists()
    assert not loaded & set(_NOT_FOR_RATE), loaded & set(_NOT_FOR_RATE)


def test_the_parser_offers_every_payment_kind() -> None:
    assert tuple(KINDS) == PAYMENT_KINDS
