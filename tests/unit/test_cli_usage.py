"""What a user typed wrong is refused in one line with exit status 2, never with a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


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
