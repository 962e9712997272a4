"""``reconcile`` refuses bad options and bad files in what it prints, exit status 2."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.commands.reconcile import amount_tolerance, duration_tolerance, time_tolerance
from tests.support.carrier_cdrs import Layout, write_profile


@pytest.fixture(autouse=True)
def _no_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CLICKHOUSE_URL", "KAFKA_BOOTSTRAP", "VMGATE_CONFIG"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def argv(tmp_path: Path) -> list[str]:
    (tmp_path / "store").mkdir()
    (tmp_path / "cdrs.csv").write_text(
        "Call ID,CLI,Called Number,Call Start,Duration,Charge,Currency\n"
    )
    profile = write_profile(tmp_path / "profile.toml", Layout())
    store, cdrs = str(tmp_path / "store"), str(tmp_path / "cdrs.csv")
    return [
        "reconcile",
        "--store",
        store,
        "--client",
        "gw",
        "--input",
        cdrs,
        "--profile",
        str(profile),
    ]


def test_tolerances_read_exactly() -> None:
    assert time_tolerance("2s") == 2_000_000
    assert time_tolerance("1.5s") == 1_500_000
    assert time_tolerance("500ms") == 500_000
    assert time_tolerance("0s") == 0
    assert duration_tolerance("1s") == 1_000
    assert amount_tolerance("0.5%") == Fraction(1, 200)
    assert amount_tolerance("0.333333%") == Fraction(333_333, 100_000_000)


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--time-tolerance", "2", "not a tolerance like 2s"),
        ("--time-tolerance", "-1s", "not a tolerance like 2s"),
        ("--time-tolerance", "2 s", "not a tolerance like 2s"),
        ("--time-tolerance", "3601s", "at most 3600s"),
        ("--duration-tolerance", "1.0005s", "finer than a millisecond"),
        ("--amount-tolerance", "0.5", "not a percentage like 0.5%"),
        ("--amount-tolerance", "101%", "not a percentage like 0.5%"),
        ("--amount-tolerance", "1e-3%", "not a percentage like 0.5%"),
        ("--from", "2026-03-01", "not an RFC 3339 timestamp"),
        ("--format", "xml", "invalid choice"),
    ],
)
def test_a_bad_option_is_refused_in_one_line(
    argv: list[str], option: str, value: str, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*argv, f"{option}={value}"])

    assert exited.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"vmgate-rating reconcile: error: argument {option}: ")
    assert words in line


def test_missing_files_and_an_empty_window_are_refused(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for option in ("--input", "--profile"):
        bad = [*argv]
        bad[bad.index(option) + 1] = str(tmp_path / "nowhere")
        with pytest.raises(SystemExit) as exited:
            main(bad)
        assert exited.value.code == 2
        assert f"argument {option}: file " in capsys.readouterr().err
    window = ["--from", "2026-03-02T00:00:00Z", "--to", "2026-03-01T00:00:00Z"]
    with pytest.raises(SystemExit):
        main([*argv, *window])
    assert "is not before --to" in capsys.readouterr().err


def test_a_file_without_calls_needs_a_window(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.endswith("no calls in the file, so no window: give --from and --to")


def test_a_bad_row_is_named(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    cdrs = Path(argv[argv.index("--input") + 1])
    cdrs.write_text(
        "Call ID,CLI,Called Number,Call Start,Duration,Charge,Currency\n"
        "a,,4420794600,2026-03-10 08:30:15,sixty,0.06,EUR\n"
    )

    assert main(argv) == 2

    err = capsys.readouterr().err
    assert f"{cdrs}, line 2, column Duration: 'sixty': not a number of seconds" in err
