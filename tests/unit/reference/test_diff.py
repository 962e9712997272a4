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


_BANDS = (
    "plan_id,band,weekdays,start,end\n"
    "P,peak,mon-fri,08:00,20:00\n"
    "P,offpeak,mon-fri,00:00,08:00\n"
    "P,offpeak,mon-fri,20:00,24:00\n"
    "P,offpeak,sat-sun,00:00,24:00\n"
)


def _banded(root: Path, name: str, rows: list[dict[str, str]]) -> FolderPlanFiles:
    write_plans(
        root / name, [plan("P", "customer")], {"P": rows}, [association("customer", "c", "P")]
    )
    (root / name / "time_bands.csv").write_text(_BANDS)
    (root / name / "origin_groups.csv").write_text("tenant_id,group,prefix\nt1,EEA,49\n")
    return FolderPlanFiles(root / name)


def test_rows_differing_in_origin_or_band_are_rows_of_their_own(tmp_path: Path) -> None:
    old = _banded(
        tmp_path,
        "old",
        [
            deck_row("49", "0.02", band="peak"),
            deck_row("49", "0.01", band="offpeak"),
            deck_row("49", "0.04"),
        ],
    )
    new = _banded(
        tmp_path,
        "new",
        [
            deck_row("49", "0.03", band="peak"),  # changed
            deck_row("49", "0.01", band="offpeak"),  # unchanged
            deck_row("49", "0.04"),  # unchanged: the any-time row is not the peak row
            deck_row("49", "0.005", origin="EEA", band="offpeak"),  # added
        ],
    )
    rows = {(r["origin"], r["band"], r["change"]): r for r in diff_decks(old, new).rows.to_pylist()}
    assert set(rows) == {(None, "peak", "changed"), ("EEA", "offpeak", "added")}
    changed = rows[(None, "peak", "changed")]
    assert (changed["old_rate"], changed["new_rate"]) == (Decimal("0.02"), Decimal("0.03"))
    added = rows[("EEA", "offpeak", "added")]
    assert (added["old_rate"], added["new_rate"]) == (None, Decimal("0.005"))
