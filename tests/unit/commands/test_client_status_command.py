"""``client-status --store``: the embedded engine keeps each client's newest status."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main
from pipeline.sinks.embedded import EmbeddedStore
from tests.unit.commands.test_usage_errors import refused


@pytest.fixture(autouse=True)
def _no_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KAFKA_BOOTSTRAP", "CLICKHOUSE_URL", "VMGATE_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def _status(store: Path, client: str, state: str, at: str, tenant: str = "tnt-01") -> int:
    where = ["--store", str(store), "--tenant", tenant, "--client", client]
    return main(["client-status", *where, f"--{state}", "--at", at])


def _table(store: Path) -> list[dict[str, Any]]:
    with EmbeddedStore(store) as opened:
        current: list[dict[str, Any]] = opened.query(
            "SELECT tenant_id, client_id, online, toString(at) AS at "
            "FROM client_status_current ORDER BY tenant_id, client_id"
        ).to_pylist()
    return current


def test_the_newest_status_wins_whatever_the_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    assert _status(store, "cl-1", "online", "2026-03-01T08:00:00Z") == 0
    assert "cl-1 of tenant tnt-01: online since 2026-03-01T08:00:00" in capsys.readouterr().out
    assert _status(store, "cl-1", "offline", "2026-03-01T09:30:00.5Z") == 0
    assert _status(store, "cl-2", "online", "2026-03-01T09:00:00Z") == 0
    # An older event delivered later changes nothing.
    assert _status(store, "cl-1", "online", "2026-03-01T09:00:00Z") == 0
    assert "cl-1 of tenant tnt-01: offline since 2026-03-01T09:30:00.5" in capsys.readouterr().out
    # The same event twice is one current row.
    assert _status(store, "cl-2", "online", "2026-03-01T09:00:00Z") == 0
    # Another tenant's client of the same id is its own client.
    assert _status(store, "cl-1", "online", "2026-03-01T07:00:00Z", tenant="tnt-02") == 0
    assert _table(store) == [
        {
            "tenant_id": "tnt-01",
            "client_id": "cl-1",
            "online": False,
            "at": "2026-03-01 09:30:00.500000",
        },
        {
            "tenant_id": "tnt-01",
            "client_id": "cl-2",
            "online": True,
            "at": "2026-03-01 09:00:00.000000",
        },
        {
            "tenant_id": "tnt-02",
            "client_id": "cl-1",
            "online": True,
            "at": "2026-03-01 07:00:00.000000",
        },
    ]


def test_a_file_of_events_is_stored_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events: list[dict[str, Any]] = [
        {
            "client_id": f"cl-{n % 4}",
            "tenant_id": "tnt-01",
            "online": n % 3 == 0,
            "at": f"2026-03-01T08:{n:02d}:00Z",
        }
        for n in range(12)
    ]
    file = tmp_path / "status.jsonl"
    lines = [json.dumps(e) for e in events]
    file.write_text("\n".join([lines[0], "", *lines[1:], lines[5]]) + "\n")  # blank, repeat
    store = tmp_path / "store"
    assert main(["client-status", "--store", str(store), "--file", str(file)]) == 0
    out = capsys.readouterr().out
    assert "stored 13 client status event(s)" in out
    newest = {e["client_id"]: e for e in events}  # later lines are later instants here
    want = [
        {
            "tenant_id": "tnt-01",
            "client_id": client,
            "online": newest[client]["online"],
            "at": newest[client]["at"].replace("T", " ").replace("Z", ".000000"),
        }
        for client in sorted(newest)
    ]
    assert _table(store) == want
    assert f"now {sum(1 for e in newest.values() if e['online'])} of these 4 client(s)" in out


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--tenant", "t", "--client", "c", "--online", "--at", "08:00"], ["--at", "'08:00'"]),
        (["--tenant", "", "--client", "c", "--online"], ["--tenant", "not an id"]),
        (["--tenant", "t", "--client", "c" * 257, "--online"], ["--client"]),
        (["--tenant", "t", "--client", "c", "--online", "--offline"], ["--offline"]),
        (["--tenant", "t", "--client", "c"], ["--online or --offline"]),
        (["--client", "c", "--online"], ["--tenant"]),
        (
            ["--tenant", "t", "--client", "c", "--online", "--at", "1999-12-31T00:00:00Z"],
            ["out_of_range:at"],
        ),
        (["--file", "{missing}"], ["--file", "not found"]),
        (["--file", "{bad}"], ["line 2: invalid:online", "line 3: not_json", "nothing recorded"]),
        (["--file", "{good}", "--tenant", "t"], ["--file replaces"]),
    ],
)
def test_bad_values_are_refused_in_one_line_and_nothing_is_stored(
    tmp_path: Path, argv: list[str], words: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    good = '{"client_id": "c", "tenant_id": "t", "online": true, "at": "2026-03-01T00:00:00Z"}'
    (tmp_path / "good.jsonl").write_text(good + "\n")
    (tmp_path / "bad.jsonl").write_text(
        "\n".join([good, good.replace("true", '"true"'), "{oops"]) + "\n"
    )
    paths = {name: str(tmp_path / f"{name}.jsonl") for name in ("missing", "bad", "good")}
    store = tmp_path / "store"
    line = refused(
        ["client-status", "--store", str(store), *(a.format(**paths) for a in argv)], capsys
    )
    for word in words:
        assert word.format(**paths) in line
    assert not store.exists()


def test_help_says_both_paths(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["client-status", "--help"])
    text = capsys.readouterr().out
    for words in ("--online", "--offline", "--at", "--file", "--store", "client-status.v1"):
        assert words in text
