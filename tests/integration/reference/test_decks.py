"""What an operator checks before publishing: ``decks diff`` and ``decks simulate``.

The simulation is checked against doing it for real: re-rating the same window with ``rerate``
moves the totals per tenant, leg and currency by exactly the changes ``simulate`` reported, and
the per-customer margins add up to the same revenue and cost.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pipeline.cli import main
from pipeline.sinks.embedded import EmbeddedStore
from pipeline.storage.reports import LEG_TOTALS_SQL
from pipeline.synthetic import NetworkSpec, write_network
from tests.reference_rater import LEG_COLUMNS, LEGS, V2_LEG_COLUMNS, rate_reference

WINDOW = ("2026-03-01T00:00:00Z", "2026-03-18T00:00:00Z")


def _edit_deck(plans: Path, plan_id: str) -> dict[str, str]:
    """Raise five rates, drop two rows, add a prefix and schedule a change; return what changed."""
    path = plans / "decks" / f"{plan_id}.csv"
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows[:5]:
        row["rate"] = str(Decimal(row["rate"]) + Decimal("0.01"))
    removed = rows[-2:]
    rows = rows[:-2]
    rows.append(
        {**rows[0], "prefix": "99999", "effective_from": "2026-03-15T00:00:00Z", "rate": "0.2"}
        | {"effective_until": ""}
    )
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return {
        "raised": rows[0]["prefix"],
        "removed": removed[0]["prefix"],
        "removed_rate": removed[0]["rate"],
    }


def _totals(store_dir: Path) -> dict[tuple[str, str, str], Decimal]:
    with EmbeddedStore(store_dir).open() as store:
        rows = store.query(LEG_TOTALS_SQL).to_pylist()
    return {(r["tenant_id"], r["leg"], r["currency"]): Decimal(r["amount"]) for r in rows}


def test_diff_names_added_removed_and_changed_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    network = write_network(
        NetworkSpec(seed=71, cdrs=100, prefixes_per_plan=80), old, tmp_path / "c.jsonl"
    )
    shutil.copytree(old, new)
    edits = _edit_deck(new, network.plan_ids[0])
    assert main(["decks", "diff", str(old), str(new), "--format", "json"]) == 0
    rows: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    kinds = defaultdict(list)
    for row in rows:
        assert row["plan_id"] == network.plan_ids[0]  # no other deck changed
        kinds[row["change"]].append(row)
    assert len(kinds["changed"]) == 5
    assert len(kinds["removed"]) == 2
    assert [r["prefix"] for r in kinds["added"]] == ["99999"]
    raised = next(r for r in kinds["changed"] if r["prefix"] == edits["raised"])
    assert Decimal(raised["new_rate"]) - Decimal(raised["old_rate"]) == Decimal("0.01")
    gone = next(r for r in kinds["removed"] if r["prefix"] == edits["removed"])
    assert Decimal(gone["old_rate"]) == Decimal(edits["removed_rate"])
    assert gone["new_rate"] is None
    assert kinds["added"][0]["new_rate"] == "0.200000000"

    # The same folders compared with themselves: nothing.
    assert main(["decks", "diff", str(old), str(old)]) == 0
    assert "0 added, 0 removed, 0 changed" in capsys.readouterr().out


def test_simulate_reports_what_rerating_then_moves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plans, cdrs, store = tmp_path / "plans", tmp_path / "cdrs.jsonl", tmp_path / "store"
    network = write_network(NetworkSpec(seed=72, cdrs=4_000, prefixes_per_plan=120), plans, cdrs)
    new = tmp_path / "new"
    shutil.copytree(plans, new)
    for plan_id in network.plan_ids[:3]:
        _edit_deck(new, plan_id)
    out = tmp_path / "rated.parquet"
    assert main(["rate", "--plans", str(plans), "--cdrs", str(cdrs), "--out", str(out),
                 "--store", str(store)]) == 0  # fmt: skip
    capsys.readouterr()
    before = _totals(store)

    window = ["--from", WINDOW[0], "--to", WINDOW[1]]
    simulate = ["decks", "simulate", "--plans", str(new), "--store", str(store), *window]
    assert main([*simulate, "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert _totals(store) == before  # a simulation writes nothing
    assert report["changed_cdrs"] > 0

    for tenant in network.tenant_ids:
        rerate = ["rerate", "--store", str(store), "--plans", str(new), "--tenant", tenant]
        assert main([*rerate, *window]) == 0
    capsys.readouterr()
    after = _totals(store)

    simulated = {
        (r["tenant_id"], r["leg"], r["currency"]): Decimal(r["change"]) for r in report["leg"]
    }
    moved = {
        key: after.get(key, Decimal(0)) - before.get(key, Decimal(0))
        for key in set(before) | set(after)
    }
    assert any(moved.values())
    for key in set(moved) | set(simulated):
        assert moved.get(key, Decimal(0)) == simulated.get(key, Decimal(0)), key

    # Per customer, destination and reseller the changes add up to the per-leg ones.
    for dimension in ("customer", "destination", "reseller"):
        revenue: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        cost: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for row in report[dimension]:
            group = (row["tenant_id"], row["currency"])
            revenue[group] += Decimal(row["revenue_change"])
            cost[group] += Decimal(row["cost_change"])
            assert Decimal(row["margin_change"]) == Decimal(row["revenue_change"]) - Decimal(
                row["cost_change"]
            )
        for (tenant, currency), amount in revenue.items():
            assert amount == simulated.get((tenant, "customer", currency), Decimal(0))
        for (tenant, currency), amount in cost.items():
            assert amount == simulated.get((tenant, "client", currency), Decimal(0)) + (
                simulated.get((tenant, "reseller", currency), Decimal(0))
            )

    # After the real re-rating, simulating the same data again moves nothing.
    assert main([*simulate, "--format", "json", "--by", "leg"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["changed_cdrs"] == 0
    assert all(Decimal(row["change"]) == 0 for row in again["leg"])


def _shift_bands(plans: Path) -> int:
    """Peak (or day) starts at 09:00 instead of 08:00: 08:00-09:00 joins the band before it."""
    path = plans / "time_bands.csv"
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    shifted = 0
    for row in rows:
        for edge in ("start", "end"):
            if row[edge] == "08:00":
                row[edge] = "09:00"
                shifted += 1
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return shifted


def test_a_band_change_rerates_as_the_reference_rater_rates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tariff v2: moving a band edge re-rates the window's calls, and only those, correctly."""
    plans, cdrs, store = tmp_path / "plans", tmp_path / "cdrs.jsonl", tmp_path / "store"
    spec = NetworkSpec(
        seed=73, cdrs=4_000, prefixes_per_plan=120, price_shape=True, origins_and_bands=True
    )
    network = write_network(spec, plans, cdrs)
    new = tmp_path / "new"
    shutil.copytree(plans, new)
    assert _shift_bands(new) > 0
    assert main(["rate", "--plans", str(plans), "--cdrs", str(cdrs), "--out",
                 str(tmp_path / "rated.parquet"), "--store", str(store)]) == 0  # fmt: skip
    capsys.readouterr()
    before = _totals(store)
    window = ["--from", WINDOW[0], "--to", WINDOW[1]]
    simulate = ["decks", "simulate", "--plans", str(new), "--store", str(store), *window]
    assert main([*simulate, "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for tenant in network.tenant_ids:
        rerate = ["rerate", "--store", str(store), "--plans", str(new), "--tenant", tenant]
        assert main([*rerate, *window]) == 0
    export = tmp_path / "export.parquet"
    assert main(["export", "--store", str(store), "--out", str(export)]) == 0
    capsys.readouterr()

    lines = cdrs.read_text().split("\n")
    old_rating, new_rating = rate_reference(plans, lines).rows, rate_reference(new, lines).rows
    columns = [f"{leg}_{c}" for leg in LEGS for c in (*LEG_COLUMNS, *V2_LEG_COLUMNS)]
    start, end = (pl.Series([t]).str.to_datetime(time_zone="UTC")[0] for t in WINDOW)
    moved_bands = 0
    for row in pl.read_parquet(export).to_dicts():
        inside = start <= row["start_time"] < end
        want = (new_rating if inside else old_rating)[row["cdr_id"]]
        assert {c: row[c] for c in columns} == {c: want[c] for c in columns}, row["cdr_id"]
        old_band = old_rating[row["cdr_id"]]["customer_band"]
        moved_bands += inside and old_band != want["customer_band"]
    assert moved_bands > 0  # calls between 08:00 and 09:00 local changed band

    after = _totals(store)
    simulated = {
        (r["tenant_id"], r["leg"], r["currency"]): Decimal(r["change"]) for r in report["leg"]
    }
    for key in set(before) | set(after) | set(simulated):
        moved = after.get(key, Decimal(0)) - before.get(key, Decimal(0))
        assert moved == simulated.get(key, Decimal(0)), key
