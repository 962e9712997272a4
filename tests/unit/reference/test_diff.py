"""``decks diff``: a change of the price shape (tariff v2) is a change, shown old and new."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from pipeline.reference.diff import diff_decks
from pipeline.reference.files import FolderPlanFiles
from tests.builders import association, deck_row, plan, write_plans


def _folder(root: Path, name: str, **shape: str) -> FolderPlanFiles:
    write_plans(
        root / name,
        [plan("P", "customer")],
        {"P": [deck_row("44", "0.02"), deck_row("49", "0.03", **shape)]},
        [association("customer", "cust", "P")],
    )
    return FolderPlanFiles(root / name)


def test_a_price_shape_change_is_a_change(tmp_path: Path) -> None:
    old = _folder(tmp_path, "old")
    new = _folder(
        tmp_path, "new", initial_rate="0.05", grace_seconds="3", min_cost="0.01", max_cost="2"
    )
    diff = diff_decks(old, new)
    assert diff.counts() == {"added": 0, "removed": 0, "changed": 1}
    [row] = diff.rows.to_pylist()
    assert row["prefix"] == "49"
    assert (row["old_initial_rate"], row["new_initial_rate"]) == (Decimal("0.03"), Decimal("0.05"))
    assert (row["old_grace_seconds"], row["new_grace_seconds"]) == (0, 3)
    assert (row["old_min_cost"], row["new_min_cost"]) == (None, Decimal("0.01"))
    assert (row["old_max_cost"], row["new_max_cost"]) == (None, Decimal("2"))


def test_the_defaults_written_out_are_no_change(tmp_path: Path) -> None:
    old = _folder(tmp_path, "old")
    new = _folder(tmp_path, "new", initial_rate="0.03", grace_seconds="0")
    assert diff_decks(old, new).counts() == {"added": 0, "removed": 0, "changed": 0}
