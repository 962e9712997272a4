"""The command line as a user runs it: arguments in, files and a summary out."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from pipeline.cli import main
from tests.builders import cdr, deck_row, simple_reference


def _files(tmp_path: Path) -> tuple[Path, Path]:
    simple_reference(tmp_path / "plans", [deck_row("44", "0.01")])
    lines = [
        json.dumps(cdr(cdr_id="a")),
        "",
        "this is not json",
        json.dumps(cdr(cdr_id="b", customer_id="nobody")),
        json.dumps(cdr(cdr_id="c", callee="4x")),
    ]
    cdrs = tmp_path / "cdrs.jsonl"
    cdrs.write_text("\n".join(lines) + "\n")
    return tmp_path / "plans", cdrs


def test_help_explains_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for command in ("rate", "export", "demo"):
        assert command in text
    with pytest.raises(SystemExit):
        main(["rate", "--help"])
    assert "--dlq" in capsys.readouterr().out


def test_rate_writes_parquet_dlq_and_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plans, cdrs = _files(tmp_path)
    out, dlq = tmp_path / "out.parquet", tmp_path / "dlq.jsonl"
    assert (
        main(
            [
                "rate",
                "--plans",
                str(plans),
                "--cdrs",
                str(cdrs),
                "--out",
                str(out),
                "--dlq",
                str(dlq),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "rated              1" in text
    assert "unrated            1" in text
    assert "customer:no_plan" in text
    assert "rejected           2" in text
    rated = pl.read_parquet(out)
    assert rated["cdr_id"].to_list() == ["a", "b"]
    assert rated.schema["customer_amount"] == pl.Decimal(38, 6)
    rejected = [json.loads(line) for line in dlq.read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in rejected] == [(3, "not_json"), (5, "invalid:callee")]
    assert rejected[0]["original"] == "this is not json"


def test_rate_json_summary_and_default_dlq(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plans, cdrs = _files(tmp_path)
    out = tmp_path / "out.parquet"
    assert (
        main(["rate", "--plans", str(plans), "--cdrs", str(cdrs), "--out", str(out), "--json"]) == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["rated"] == 1
    assert summary["rejected_by_reason"] == {"not_json": 1, "invalid:callee": 1}
    assert summary["lines_read"] == 5
    assert summary["blank_lines"] == 1
    assert Path(summary["dlq"]).read_text().count("\n") == 2


def test_bad_reference_data_is_refused_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plans, cdrs = _files(tmp_path)
    (plans / "decks" / "P.csv").write_text(
        "prefix,destination,rate,effective_from\n44,UK,-1,2026-03-01T00:00:00Z\n"
    )
    code = main(
        ["rate", "--plans", str(plans), "--cdrs", str(cdrs), "--out", str(tmp_path / "o.parquet")]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "decks/P.csv, line 2, column rate: '-1': negative" in err
    assert not (tmp_path / "o.parquet").exists()


def test_missing_cdr_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plans, _ = _files(tmp_path)
    # refused while parsing (tests/unit/commands/test_usage_errors.py)
    with pytest.raises(SystemExit) as done:
        main(
            [
                "rate",
                "--plans",
                str(plans),
                "--cdrs",
                str(tmp_path / "nope.jsonl"),
                "--out",
                str(tmp_path / "o.parquet"),
            ]
        )
    assert done.value.code == 2
    assert "nope.jsonl" in capsys.readouterr().err


def test_config_show_masks_secrets(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLICKHOUSE_URL", "http://rater:s3cret@ch:8123/vmgate")
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    assert main(["config", "show"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["kafka_bootstrap"] == "127.0.0.1:9092"
    assert shown["clickhouse_url"] == "***"
    assert shown["group_id"] == "raters"
