"""``statements`` and ``periods``: bad input refused in one line, exit status 2."""

from __future__ import annotations

import pytest

from pipeline.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["statements", "--tenant", "t1", "--period", "2026-13"], "is not a period YYYY-MM"),
        (["statements", "--tenant", "t1", "--from", "2026-03-01", "--to", "2026-3-9"], "date"),
        (
            ["statements", "--tenant", "t1", "--from", "2026-03-09", "--to", "2026-03-01"],
            "is not before --to",
        ),
        (["statements", "--tenant", "t1", "--format", "pdf"], "invalid choice"),
        (["periods", "close", "--tenant", "t1"], "--period"),
        (["periods", "reopen", "--tenant", "t1", "--period", "2026-03", "--reason", " "], "reason"),
        (["periods", "shut", "--tenant", "t1"], "invalid choice"),
    ],
)
def test_bad_input_is_refused_in_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    "extra",
    [[], ["--from", "2026-03-01"], ["--period", "2026-03", "--from", "2026-03-01"]],
)
def test_a_window_is_a_period_or_two_dates(
    extra: list[str], tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["statements", "--store", str(tmp_path), "--tenant", "t1", *extra]) == 2
    err = capsys.readouterr().err
    assert "--period" in err
    assert err.count("\n") == 1
