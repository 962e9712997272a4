"""Disjoint time intervals per integer key, looked up for whole arrays at once.

Used for associations (account -> plan), memberships (client -> reseller) and a deck prefix's
validity segments (prefix -> deck row). Intervals are half open, ``[start, end)``, in epoch
microseconds; within one key they must not overlap (the loaders refuse data where they would).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class IntervalIndex:
    """Sorted, disjoint ``[start, end) -> value`` intervals grouped by key ``0..n_keys-1``."""

    offsets: I64  # key k owns positions offsets[k]:offsets[k+1]
    starts: I64
    ends: I64
    values: I64
    search_steps: int

    @classmethod
    def build(cls, keys: I64, starts: I64, ends: I64, values: I64, n_keys: int) -> IntervalIndex:
        """Index intervals; the caller guarantees that intervals of one key do not overlap."""
        order = np.lexsort((starts, keys))
        sorted_keys = keys[order]
        counts = (
            np.bincount(sorted_keys, minlength=n_keys) if len(keys) else np.zeros(n_keys, np.int64)
        )
        offsets = np.zeros(n_keys + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        widest = int(counts.max()) if len(counts) else 0
        return cls(
            offsets=offsets,
            starts=np.ascontiguousarray(starts[order], dtype=np.int64),
            ends=np.ascontiguousarray(ends[order], dtype=np.int64),
            values=np.ascontiguousarray(values[order], dtype=np.int64),
            search_steps=max(1, widest.bit_length() + 1),
        )

    def lookup(self, keys: I64, times: I64) -> I64:
        """Return, per row, the value of the interval of ``keys[i]`` containing ``times[i]``, or -1.

        A key of -1 (unknown account) gives -1.
        """
        result = np.full(len(keys), -1, dtype=np.int64)
        if len(keys) == 0 or len(self.starts) == 0:
            return result
        known = keys >= 0
        safe_keys = np.where(known, keys, 0)
        first = self.offsets[safe_keys]
        lo = first.copy()
        hi = np.where(known, self.offsets[safe_keys + 1], first)
        # Binary search for the first interval starting after t, per row, all rows at once.
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
        has = known & (candidate >= first)
        safe = np.where(has, candidate, 0)
        hit = has & (self.ends[safe] > times)
        result[hit] = self.values[safe[hit]]
        return result
