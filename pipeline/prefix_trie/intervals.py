"""Disjoint time intervals per integer key, looked up for whole arrays at once.

Used for associations (account -> plan), memberships (client -> reseller) and a deck prefix's
validity segments (prefix -> deck row). Intervals are half open, ``[start, end)``, in epoch
microseconds; within one key they must not overlap (the loaders refuse data where they would).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
Ints = npt.NDArray[np.integer[Any]]


@dataclass(frozen=True, eq=False)
class IntervalIndex:
    """Sorted, disjoint ``[start, end) -> value`` intervals grouped by key ``0..n_keys-1``.

    Positions and values are int32 (a deck of a million rows is indexed here, and each int64
    array of that size would cost 8 MB); keys, positions and values below ``2**31`` are the
    caller's to guarantee.
    """

    offsets: I32  # key k owns positions offsets[k]:offsets[k+1]
    starts: I64
    ends: I64
    values: I32
    search_steps: int  # binary-search rounds for the key with the most intervals

    @classmethod
    def build(cls, keys: Ints, starts: I64, ends: I64, values: Ints, n_keys: int) -> IntervalIndex:
        """Index intervals; the caller guarantees that intervals of one key do not overlap."""
        order = np.lexsort((starts, keys))
        counts = np.bincount(keys, minlength=n_keys) if len(keys) else np.zeros(n_keys, np.int64)
        offsets = np.zeros(n_keys + 1, dtype=np.int32)
        np.cumsum(counts, out=offsets[1:])
        return cls.from_sorted(
            offsets,
            np.ascontiguousarray(starts[order], dtype=np.int64),
            np.ascontiguousarray(ends[order], dtype=np.int64),
            np.ascontiguousarray(values[order], dtype=np.int32),
        )

    @classmethod
    def from_sorted(cls, offsets: I32, starts: I64, ends: I64, values: I32) -> IntervalIndex:
        """Index intervals already grouped by key and sorted by start within each key."""
        widest = int(np.diff(offsets).max()) if len(offsets) > 1 else 0
        return cls(offsets, starts, ends, values, search_steps=max(1, widest.bit_length() + 1))

    def lookup(self, keys: Ints, times: I64) -> I64:
        """Return, per row, the value of the interval of ``keys[i]`` containing ``times[i]``, or -1.

        A key of -1 (unknown account) gives -1. Keys with one interval (nearly every account,
        client and deck prefix) are checked directly; only the others are binary-searched.
        """
        result = np.full(len(keys), -1, dtype=np.int64)
        if len(keys) == 0 or len(self.starts) == 0:
            return result
        known = keys >= 0
        safe_keys = np.where(known, keys, 0)
        first = self.offsets[safe_keys]
        count = np.where(known, self.offsets[safe_keys + 1] - first, 0)
        single = np.flatnonzero(count == 1)
        if len(single):
            at = first[single]
            t = times[single]
            hit = (self.starts[at] <= t) & (t < self.ends[at])
            result[single[hit]] = self.values[at[hit]]
        several = np.flatnonzero(count > 1)
        if len(several):
            result[several] = self._search(first[several], count[several], times[several])
        return result

    def _search(self, first: I32, count: I32, times: I64) -> I64:
        """Binary search, all rows at once, for the interval of each row's key holding its time."""
        lo = first.astype(np.int64)
        hi = lo + count
        # The first interval starting after t, per row.
        for _ in range(self.search_steps):
            active = lo < hi
            if not active.any():
                break
            mid = (lo + hi) // 2
            mid_safe = np.minimum(mid, len(self.starts) - 1)
            go_right = active & (self.starts[mid_safe] <= times)
            lo = np.where(go_right, mid + 1, lo)
            hi = np.where(active & ~go_right, mid, hi)
        candidate = lo - 1
        has = candidate >= first
        safe = np.where(has, candidate, 0)
        hit = has & (self.ends[safe] > times)
        return np.where(hit, self.values[safe], -1).astype(np.int64)
