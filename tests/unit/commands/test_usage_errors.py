"""What a user typed wrong is refused in one line with exit status 2, never with a traceback.

Every subcommand and every option that takes a count, a port, a duration, an RFC 3339 instant,
a window, a path that must exist or one of a few words is run with a bad value through the real
command line (``main``, and a few through a real process).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import main
from tests.builders import cdr, deck_row, simple_reference

REPO = Path(__file__).resolve().parents[3]
FROM, TO = "2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z"


@pytest.fixture(autouse=True)
def _no_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Embedded store, no Kafka, no settings file: what a user has before any setup."""
    for name in ("CLICKHOUSE_URL", "KAFKA_BOOTSTRAP", "VMGATE_CONFIG"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def paths(tmp_path: Path) -> dict[str, str]:
    """Placeholders for the argument lists: a real plans folder, CDR file and store folder."""
    simple_reference(tmp_path / "plans", [deck_row("44", "0.01")])
    (tmp_path / "cdrs.jsonl").write_text(json.dumps(cdr()) + "\n")
    (tmp_path / "store").mkdir()
    return {
        "plans": str(tmp_path / "plans"),
        "cdrs": str(tmp_path / "cdrs.jsonl"),
        "store": str(tmp_path / "store"),
        "out": str(tmp_path / "out.parquet"),
        "missing": str(tmp_path / "missing"),
    }


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the command line; assert exit 2 and exactly one line on stderr; return it."""
    try:
        status = main(argv)
    except SystemExit as exit_:
        status = exit_.code  # type: ignore[assignment]
    captured = capsys.readouterr()
    assert status == 2, captured
    assert "Traceback" not in captured.err
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("vmgate-rating")
    return lines[0]


RATE = ["rate", "--plans", "{plans}", "--cdrs", "{cdrs}", "--out", "{out}"]
RUN = ["run", "--store", "{store}", "--plans", "{plans}"]
HISTORY = ["call-history", "--store", "{store}"]
RERATE = ["rerate", "--store", "{store}", "--plans", "{plans}", "--tenant", "t1"]
SIMULATE = ["decks", "simulate", "--store", "{store}", "--plans", "{plans}"]
CONVERT = [
    "decks", "convert", "--input", "{cdrs}", "--profile", "{cdrs}", "--plans", "{plans}",
    "--plan", "P",
]  # fmt: skip
PAYMENT = ["record-payment", "--store", "{store}", "--payment-id", "p1", "--tenant", "t1",
           "--kind", "customer_payment_in", "--account", "a", "--amount", "1",
           "--currency", "EUR"]  # fmt: skip
WINDOW = ["--from", FROM, "--to", TO]

# (argv, words the one line must hold: the option and the value refused)
BAD_NUMBERS = {
    "rate-batch-size-0": ([*RATE, "--batch-size", "0"], ["--batch-size", "'0'", "1 or more"]),
    "rate-batch-size-negative": ([*RATE, "--batch-size", "-5"], ["--batch-size", "'-5'"]),
    "rate-jobs-0": ([*RATE, "--jobs", "0"], ["--jobs", "'0'"]),
    "rate-jobs-text": ([*RATE, "--jobs", "two"], ["--jobs", "'two'"]),
    "run-batch-size-0": ([*RUN, "--batch-size", "0"], ["--batch-size", "'0'"]),
    "run-metrics-port-0": ([*RUN, "--metrics-port", "0"], ["--metrics-port", "1 to 65535"]),
    "run-metrics-port-too-big": ([*RUN, "--metrics-port", "70000"], ["--metrics-port", "70000"]),
    "run-exit-when-idle-negative": (
        [*RUN, "--exit-when-idle", "-1"],
        ["--exit-when-idle", "'-1'", "seconds"],
    ),
    "run-exit-when-idle-nan": ([*RUN, "--exit-when-idle", "nan"], ["--exit-when-idle", "'nan'"]),
    "setup-replication-factor-0": (
        ["setup", "--no-kafka", "--store", "{store}", "--replication-factor", "0"],
        ["--replication-factor", "'0'"],
    ),
    "call-history-limit-negative": ([*HISTORY, "--limit", "-1"], ["--limit", "'-1'", "0 or more"]),
    "call-history-limit-fraction": ([*HISTORY, "--limit", "1.5"], ["--limit", "'1.5'"]),
    "demo-cdrs-0": (["demo", "--dir", "{missing}", "--cdrs", "0"], ["--cdrs", "'0'"]),
    "demo-cdrs-negative": (["demo", "--dir", "{missing}", "--cdrs", "-3"], ["--cdrs", "'-3'"]),
}

BAD_INSTANTS = {
    "call-history-from": ([*HISTORY, "--from", "yesterday"], ["--from", "'yesterday'", "RFC 3339"]),
    "call-history-to": ([*HISTORY, "--to", "2026-13-01T00:00:00Z"], ["--to", "'2026-13-01"]),
    "call-history-no-zone": ([*HISTORY, "--from", "2026-03-01T00:00:00"], ["--from", "RFC 3339"]),
    "rerate-from": ([*RERATE, "--from", "March", "--to", TO], ["--from", "'March'"]),
    "rerate-to": ([*RERATE, "--from", FROM, "--to", "2026-03-02"], ["--to", "'2026-03-02'"]),
    "simulate-from": ([*SIMULATE, "--from", "x", "--to", TO], ["--from", "'x'"]),
    "simulate-to": ([*SIMULATE, "--from", FROM, "--to", "y"], ["--to", "'y'"]),
    "record-payment-recorded-at": ([*PAYMENT, "--recorded-at", "now"], ["--recorded-at", "'now'"]),
}

EMPTY_WINDOWS = {
    "call-history-reversed": (
        [*HISTORY, "--from", TO, "--to", FROM],
        ["vmgate-rating call-history: ", f"--from {TO} is not before --to {FROM}"],
    ),
    "call-history-equal": (
        [*HISTORY, "--from", FROM, "--to", "2026-03-01T01:00:00+01:00"],
        [f"--from {FROM} is not before --to {FROM}"],
    ),
    "rerate-reversed": (
        [*RERATE, "--from", TO, "--to", FROM],
        ["vmgate-rating rerate: ", "--from", "--to"],
    ),
    "simulate-reversed": (
        [*SIMULATE, "--from", TO, "--to", FROM],
        ["vmgate-rating decks simulate: ", "--from", "--to"],
    ),
}

MISSING_PATHS = {
    "rate-plans": (
        ["rate", "--plans", "{missing}", "--cdrs", "{cdrs}", "--out", "{out}"],
        ["--plans", "not found"],
    ),
    "rate-plans-is-a-file": (
        ["rate", "--plans", "{cdrs}", "--cdrs", "{cdrs}", "--out", "{out}"],
        ["--plans", "is not a folder"],
    ),
    "rate-cdrs": (
        ["rate", "--plans", "{plans}", "--cdrs", "{missing}", "--out", "{out}"],
        ["--cdrs", "not found"],
    ),
    "produce-cdrs": (["produce", "--cdrs", "{missing}"], ["--cdrs", "not found"]),
    "run-plans": (["run", "--plans", "{missing}"], ["--plans", "not found"]),
    "rerate-plans": (
        ["rerate", "--plans", "{missing}", "--tenant", "t1", *WINDOW],
        ["--plans", "not found"],
    ),
    "decks-import-plans": (["decks", "import", "--plans", "{missing}"], ["--plans", "not found"]),
    "decks-diff-old": (["decks", "diff", "{missing}", "{plans}"], ["argument old", "not found"]),
    "decks-diff-new": (["decks", "diff", "{plans}", "{missing}"], ["argument new", "not found"]),
    "decks-simulate-plans": (
        ["decks", "simulate", "--plans", "{missing}", *WINDOW],
        ["--plans", "not found"],
    ),
    "decks-convert-input": (
        [*CONVERT[:3], "{missing}", *CONVERT[4:]],
        ["--input", "not found"],
    ),
    "decks-convert-profile": (
        [*CONVERT[:5], "{missing}", *CONVERT[6:]],
        ["--profile", "not found"],
    ),
    "decks-notify-old": (
        [
            "decks",
            "notify",
            "--old",
            "{missing}",
            "--new",
            "{plans}",
            "--plan",
            "P",
            "--out",
            "{out}.csv",
        ],
        ["--old", "not found"],
    ),
    "config-file": (["--config", "{missing}", "config", "show"], ["--config", "not found"]),
    "export-store": (
        ["export", "--store", "{missing}", "--out", "{out}"],
        ["--store", "not found"],
    ),
    "balances-store": (["balances", "--store", "{missing}"], ["--store", "not found"]),
    "call-history-store": (["call-history", "--store", "{missing}"], ["--store", "not found"]),
    "billing-overview-store": (["billing-overview", "--store", "{missing}"], ["--store"]),
    "record-payment-store": (
        [*PAYMENT[:2], "{missing}", *PAYMENT[3:]],
        ["--store", "not found"],
    ),
    "rerate-store": (
        ["rerate", "--store", "{missing}", "--plans", "{plans}", "--tenant", "t1", *WINDOW],
        ["--store", "not found"],
    ),
    "decks-simulate-store": (
        ["decks", "simulate", "--store", "{missing}", "--plans", "{plans}", *WINDOW],
        ["--store", "not found"],
    ),
}

UNKNOWN_WORDS = {
    "balances-scope": (["balances", "--scope", "nobody"], ["--scope", "'nobody'"]),
    "balances-format": (["balances", "--format", "xml"], ["--format", "'xml'"]),
    "call-history-format": (["call-history", "--format", "xml"], ["--format", "'xml'"]),
    "billing-overview-format": (["billing-overview", "--format", "xls"], ["--format", "'xls'"]),
    "decks-diff-format": (["decks", "diff", "{plans}", "{plans}", "--format", "x"], ["--format"]),
    "decks-simulate-by": ([*SIMULATE, *WINDOW, "--by", "planet"], ["--by", "'planet'"]),
    "decks-simulate-format": ([*SIMULATE, *WINDOW, "--format", "pdf"], ["--format", "'pdf'"]),
    "decks-convert-mode": ([*CONVERT, "--mode", "merge"], ["--mode", "'merge'"]),
    "decks-convert-notice-days": ([*CONVERT, "--notice-days", "-1"], ["--notice-days", "'-1'"]),
    "decks-convert-notified-at": ([*CONVERT, "--notified-at", "soon"], ["--notified-at", "'soon'"]),
    "decks-notify-out": (
        [
            "decks",
            "notify",
            "--old",
            "{plans}",
            "--new",
            "{plans}",
            "--plan",
            "P",
            "--out",
            "a.pdf",
        ],
        ["--out", ".csv or .xlsx"],
    ),
    "record-payment-kind": (
        [*PAYMENT[:8], "refund", *PAYMENT[9:]],
        ["--kind", "'refund'", "customer_payment_in"],
    ),
    "log-format": (["--log-format", "xml", "config", "show"], ["--log-format", "'xml'"]),
    "config-action": (["config", "edit"], ["'edit'", "show"]),
    "command": (["rates"], ["'rates'", "call-history"]),
}


def _cases(*tables: dict[str, tuple[list[str], list[str]]]) -> list[object]:
    return [
        pytest.param(argv, words, id=name)
        for table in tables
        for name, (argv, words) in table.items()
    ]


@pytest.mark.parametrize(
    ("argv", "words"),
    _cases(BAD_NUMBERS, BAD_INSTANTS, EMPTY_WINDOWS, MISSING_PATHS, UNKNOWN_WORDS),
)
def test_refused_in_one_line(
    argv: list[str],
    words: list[str],
    paths: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = refused([arg.format(**paths) for arg in argv], capsys)
    for word in words:
        assert word.format(**paths) in line


def test_nothing_is_written_when_an_option_is_refused(
    paths: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    refused([arg.format(**paths) for arg in [*RATE, "--jobs", "0", "--store", "{missing}"]], capsys)
    assert not Path(paths["out"]).exists()
    assert not Path(paths["missing"]).exists()


def test_good_values_at_the_bounds_are_accepted(
    paths: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*(a.format(**paths) for a in HISTORY), "--limit", "0", *WINDOW]) == 0
    assert main([*(a.format(**paths) for a in RATE), "--batch-size", "1", "--jobs", "1"]) == 0
    capsys.readouterr()


def _process(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(REPO)},
    )


def test_python_m_pipeline_cli_runs() -> None:
    # The __main__ block used to run before the helpers defined below it: NameError.
    done = _process("-m", "pipeline.cli", "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: vmgate-rating")


def test_a_negative_limit_reaches_no_engine(paths: dict[str, str]) -> None:
    # It used to reach the engine as a query parameter and come back as a ChdbError traceback.
    done = _process("-m", "pipeline", "call-history", "--store", paths["store"], "--limit", "-1")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "vmgate-rating call-history: error: argument --limit: '-1' is not a whole number of 0 or "
        "more (see vmgate-rating call-history --help)"
    ]
