"""The JSONL file of CDRs: valid chunks with the malformed lines put in their places."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import polars as pl

from pipeline.synthetic._accounts import Tenant
from pipeline.synthetic._cdrs import cdr_columns
from pipeline.synthetic._clock import Clock
from pipeline.synthetic._malformed import MALFORMED_KINDS, malformed_line
from pipeline.synthetic._spec import NetworkSpec

_CHUNK_ROWS = 100_000  # rows built at once: bounds memory, keeps the vectorised speed


def write_cdrs(
    spec: NetworkSpec, rng: random.Random, tenants: list[Tenant], clock: Clock, path: Path
) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Write ``spec.cdrs`` lines to ``path``; return the malformed 1-based lines and kinds."""
    n = spec.cdrs
    g = np.random.default_rng(rng.getrandbits(128))
    n_bad = min(n, round(n * spec.malformed_ratio))
    bad_positions = sorted(rng.sample(range(n), n_bad))
    kinds = [MALFORMED_KINDS[i % len(MALFORMED_KINDS)] for i in range(n_bad)]
    rng.shuffle(kinds)
    bad_kind = dict(zip(bad_positions, kinds, strict=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    ids: list[pl.Series] = []
    with path.open("wb") as fh:
        for first in range(0, n, _CHUNK_ROWS):
            size = min(_CHUNK_ROWS, n - first)
            cols = cdr_columns(g, size, tenants, clock)
            ids.append(cols.cdr_ids)
            local = [i - first for i in bad_positions if first <= i < first + size]
            lines = cols.lines
            if local:
                bad = [
                    malformed_line(rng, bad_kind[first + i], cols, i, clock.month_start)
                    for i in local
                ]
                lines = lines.scatter(local, bad)
            pl.DataFrame({"line": lines}).write_csv(
                fh, include_header=False, quote_style="never", line_terminator="\n"
            )
    if ids and pl.concat(ids).n_unique() != n:  # pragma: no cover - 122 random bits per id
        msg = "cdr_id collision; use another seed"
        raise RuntimeError(msg)
    return tuple(p + 1 for p in bad_positions), tuple(kinds)
