"""The variant lookup by table (issue 17) gives what the binary search over the keys gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.reference.loader import load_plans_folder
from pipeline.synthetic import NetworkSpec, write_network


def test_the_table_agrees_with_the_search(tmp_path: Path) -> None:
    spec = NetworkSpec(seed=3, cdrs=10, prefixes_per_plan=40, origins_and_bands=True)
    write_network(spec, tmp_path / "plans", tmp_path / "cdrs.jsonl")
    terms = load_plans_folder(tmp_path / "plans").origins_and_bands
    assert terms is not None
    assert terms._variant_table is not None
    rng = np.random.default_rng(5)
    count = 20_000
    plan = rng.integers(-1, spec.plans + 2, count)
    origin = rng.integers(0, terms.groups, count)
    band = rng.integers(0, terms.bands, count)
    by_table = terms.variant_of(plan, origin, band)
    terms.__dict__["_variant_table"] = None  # the binary search
    by_search = terms.variant_of(plan, origin, band)
    assert (by_table >= 0).any()
    np.testing.assert_array_equal(by_table, by_search)
