"""The generated inputs of a run: the realistic network (mixed and clean CDRs) and the 1M deck."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import JSON
from benchmarks.harness.config import RunConfig


@dataclass(frozen=True)
class RunInputs:
    """Every input of a run: where the generated files are, and what they hold.

    ``plans`` and ``big_plans`` are plans folders (DESIGN.md section 4), as the rater loads them.
    """

    plans: Path
    mixed: Path  # e2e_cdrs lines, 1% malformed; its first ``batch`` lines are the mixed batch
    clean: Path  # ``batch`` clean lines
    mixed_count: int
    malformed: int
    big_plans: Path
    big_cdrs: Path
    big_prefixes: int
    big_rows: int
    seconds: float  # spent generating them
    # The plans of ``clean`` with the whole tariff model v2 (zones, bands, holidays, origins,
    # price shape); the CDRs are the same. None in a record of a run from before v2.
    plans_v2: Path | None = None

    @classmethod
    def from_json(cls, fields: JSON) -> RunInputs:
        """From :func:`dataclasses.asdict` of one, written as JSON (paths as text)."""
        values: dict[str, Any] = {
            k: Path(v) if k in _PATHS and v is not None else v for k, v in fields.items()
        }
        return cls(**values)


_PATHS = {"plans", "mixed", "clean", "big_plans", "big_cdrs", "plans_v2"}


def generate_inputs(config: RunConfig, root: Path) -> RunInputs:
    """Write the networks and the big deck under ``root``."""
    from benchmarks.datagen import big_deck_network, network

    started = time.perf_counter()
    count = max(config.e2e_cdrs, config.batch)
    mixed = network(root / "mixed", count, 0.01)
    clean = network(root / "clean", config.batch, 0.0)
    clean_v2 = network(root / "clean-v2", config.batch, 0.0, tariff_v2=True)
    if clean_v2.cdrs.read_bytes() != clean.cdrs.read_bytes():
        msg = "the v2 network's CDRs differ from the v1 network's: the comparison is unfair"
        raise RuntimeError(msg)
    big = big_deck_network(root / "big", config.deck_prefixes, config.deck_cdrs)
    return RunInputs(
        plans=mixed.plans,
        mixed=mixed.cdrs,
        clean=clean.cdrs,
        mixed_count=count,
        malformed=mixed.malformed,
        big_plans=big.plans,
        big_cdrs=big.cdrs,
        big_prefixes=big.prefixes,
        big_rows=big.deck_rows,
        seconds=time.perf_counter() - started,
        plans_v2=clean_v2.plans,
    )
