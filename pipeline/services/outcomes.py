"""What became of rated batches: counts by outcome and reason, shared by every runner."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc


@dataclass
class Outcomes:
    """Rated, unrated (by failed leg) and rejected (by reason) CDRs, added up batch by batch."""

    rated: int = 0
    unrated: int = 0
    rejected: int = 0
    unrated_by_reason: Counter[str] = field(default_factory=Counter)
    rejected_by_reason: Counter[str] = field(default_factory=Counter)

    def add(self, table: pa.Table, rejected: pl.DataFrame) -> None:
        """Count a rated batch (call-history rows) and its rejected messages."""
        for item in pc.value_counts(table.column("status")).to_pylist():
            if item["values"] == "rated":
                self.rated += item["counts"]
            else:
                self.unrated += item["counts"]
        split = pc.split_pattern(table.column("unrated_reason"), ";")
        for item in pc.value_counts(pc.list_flatten(split)).to_pylist():
            if item["values"] is not None:
                self.unrated_by_reason[item["values"]] += item["counts"]
        self.rejected += rejected.height
        for reason, n in rejected["reason"].value_counts().iter_rows():
            self.rejected_by_reason[reason] += n

    def merge(self, other: Outcomes) -> None:
        """Add another tally into this one."""
        self.rated += other.rated
        self.unrated += other.unrated
        self.rejected += other.rejected
        self.unrated_by_reason.update(other.unrated_by_reason)
        self.rejected_by_reason.update(other.rejected_by_reason)
