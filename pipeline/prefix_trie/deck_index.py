"""The longest-prefix index of every plan's deck, with effective dating.

Prefixes and callees are digit strings of at most :data:`MAX_DIGITS` digits. Each is encoded as
``int(s.ljust(15, "0")) * 16 + len(s)``, an int64 whose numeric order is the strings'
lexicographic order. For a callee ``q``, the rightmost deck prefix ``p <= q`` is found with
``searchsorted``; every deck prefix that ``q`` starts with is an ancestor of ``p`` in the prefix
tree (or ``p`` itself), so walking ``p``'s ancestors (at most 15 steps, vectorised over the
batch) and stopping at the first that is a prefix of ``q`` and effective at the start time gives
the longest effective match. Each prefix's rows are flattened into disjoint validity segments at
build time, the later ``effective_from`` winning where rows of one prefix overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import numpy.typing as npt
import polars as pl

from pipeline.prefix_trie.intervals import IntervalIndex

I64 = npt.NDArray[np.int64]
MAX_DIGITS = 15
_POW10 = np.array([10**k for k in range(MAX_DIGITS + 1)], dtype=np.int64)


def encode_digits(digits: pl.Series) -> tuple[I64, I64]:
    """Return (value padded to 15 digits, length) for a Series of digit strings (1-15 digits)."""
    frame = pl.DataFrame({"d": digits}).select(
        padded=pl.col("d").str.pad_end(MAX_DIGITS, "0").cast(pl.Int64),
        length=pl.col("d").str.len_bytes().cast(pl.Int64),
    )
    return frame["padded"].to_numpy(), frame["length"].to_numpy()


@dataclass(frozen=True, eq=False)
class DeckRows:
    """Every deck row of every plan, as parallel arrays; a row's position is its global row id."""

    plan: I64  # index of the row's plan
    prefix: pl.Series  # digit strings
    effective_from: I64  # epoch microseconds
    effective_until: I64  # epoch microseconds, exclusive (OPEN_END_US when open)


@dataclass(frozen=True, eq=False)
class DeckIndex:
    """Longest-prefix lookup over all plans' decks; see the module docstring for how."""

    plan_offsets: I64  # plan p owns prefix ids plan_offsets[p]:plan_offsets[p+1]
    encoded: I64  # per prefix id, sorted within each plan
    value: I64  # the prefix as an integer (unpadded)
    length: I64
    parent: I64  # longest shorter prefix of the same plan that this prefix starts with, or -1
    segments: IntervalIndex  # prefix id -> validity segments -> global deck row id

    @classmethod
    def build(cls, rows: DeckRows, n_plans: int) -> DeckIndex:
        """Build the index once per reference-data version."""
        padded, length = encode_digits(rows.prefix)
        encoded = padded * 16 + length
        order = np.lexsort((encoded, rows.plan))
        plan_sorted = rows.plan[order]
        enc_sorted = encoded[order]
        new_key = np.ones(len(order), dtype=bool)
        if len(order):
            new_key[1:] = (plan_sorted[1:] != plan_sorted[:-1]) | (
                enc_sorted[1:] != enc_sorted[:-1]
            )
        prefix_id_sorted = np.cumsum(new_key) - 1
        prefix_of_row = np.empty(len(order), dtype=np.int64)
        prefix_of_row[order] = prefix_id_sorted

        firsts = order[new_key]
        uniq_plan = rows.plan[firsts]
        uniq_enc = encoded[firsts]
        uniq_len = length[firsts]
        uniq_value = padded[firsts] // _POW10[MAX_DIGITS - uniq_len]
        counts = (
            np.bincount(uniq_plan, minlength=n_plans)
            if len(firsts)
            else np.zeros(n_plans, np.int64)
        )
        plan_offsets = np.zeros(n_plans + 1, dtype=np.int64)
        np.cumsum(counts, out=plan_offsets[1:])

        parent = _parents(plan_offsets, uniq_enc, uniq_value, uniq_len)
        seg_keys, seg_starts, seg_ends, seg_rows = _segments(
            prefix_of_row, rows.effective_from, rows.effective_until
        )
        segments = IntervalIndex.build(seg_keys, seg_starts, seg_ends, seg_rows, len(firsts))
        return cls(plan_offsets, uniq_enc, uniq_value, uniq_len, parent, segments)

    @property
    def prefix_count(self) -> int:
        """Number of distinct (plan, prefix) pairs indexed."""
        return len(self.encoded)

    def lookup(self, plan: I64, callee_padded: I64, callee_length: I64, times: I64) -> I64:
        """Return the global deck row id per row (-1: no plan or no effective prefix matches)."""
        count = len(plan)
        current = np.full(count, -1, dtype=np.int64)
        if count == 0:
            return current
        query = callee_padded * 16 + callee_length
        order = np.argsort(plan, kind="stable")
        sorted_plan = plan[order]
        changes: I64 = np.flatnonzero(np.r_[True, sorted_plan[1:] != sorted_plan[:-1]])
        bounds = [*(int(c) for c in changes), count]
        for begin, end in pairwise(bounds):
            p = int(sorted_plan[begin])
            if p < 0:
                continue
            lo, hi = int(self.plan_offsets[p]), int(self.plan_offsets[p + 1])
            if lo == hi:
                continue
            rows = order[begin:end]
            pos = np.searchsorted(self.encoded[lo:hi], query[rows], side="right") - 1
            current[rows] = np.where(pos >= 0, pos + lo, -1)
        return self._walk(current, callee_padded, callee_length, times)

    def _walk(self, current: I64, padded: I64, length: I64, times: I64) -> I64:
        result = np.full(len(current), -1, dtype=np.int64)
        active = np.flatnonzero(current >= 0)
        for _ in range(MAX_DIGITS + 1):
            if len(active) == 0:
                break
            node = current[active]
            node_len = self.length[node]
            is_prefix = (node_len <= length[active]) & (
                padded[active] // _POW10[MAX_DIGITS - node_len] == self.value[node]
            )
            row = np.full(len(active), -1, dtype=np.int64)
            if is_prefix.any():
                row[is_prefix] = self.segments.lookup(node[is_prefix], times[active][is_prefix])
            found = row >= 0
            result[active[found]] = row[found]
            up = self.parent[node]
            keep = ~found & (up >= 0)
            current[active] = up
            active = active[keep]
        return result


def _parents(plan_offsets: I64, encoded: I64, value: I64, length: I64) -> I64:
    """For each prefix, the id of the longest shorter prefix of the same plan it starts with."""
    parent = np.full(len(encoded), -1, dtype=np.int64)
    for p in range(len(plan_offsets) - 1):
        lo, hi = int(plan_offsets[p]), int(plan_offsets[p + 1])
        if hi - lo < 2:
            continue
        enc, val, ln = encoded[lo:hi], value[lo:hi], length[lo:hi]
        found = np.zeros(hi - lo, dtype=bool)
        for shorter in range(int(ln.max()) - 1, 0, -1):
            want = ~found & (ln > shorter)
            if not want.any():
                continue
            idx = np.flatnonzero(want)
            truncated = val[idx] // _POW10[ln[idx] - shorter]
            candidate = truncated * _POW10[MAX_DIGITS - shorter] * 16 + shorter
            pos = np.searchsorted(enc, candidate)
            pos_safe = np.minimum(pos, len(enc) - 1)
            hit = enc[pos_safe] == candidate
            parent[lo + idx[hit]] = lo + pos_safe[hit]
            found[idx[hit]] = True
    return parent


def _segments(prefix_of_row: I64, starts: I64, ends: I64) -> tuple[I64, I64, I64, I64]:
    """Flatten each prefix's rows into disjoint segments; the later effective_from wins overlaps.

    Prefixes with one row (nearly all) keep it as their single segment; only prefixes with
    several rows are resolved row by row.
    """
    counts = np.bincount(prefix_of_row) if len(prefix_of_row) else np.zeros(0, np.int64)
    single = counts[prefix_of_row] == 1
    row_ids = np.arange(len(prefix_of_row), dtype=np.int64)
    keys = [prefix_of_row[single]]
    seg_starts = [starts[single]]
    seg_ends = [ends[single]]
    seg_rows = [row_ids[single]]
    multi = np.flatnonzero(~single)
    if len(multi):
        extra: list[tuple[int, int, int, int]] = []
        multi = multi[np.lexsort((starts[multi], prefix_of_row[multi]))]
        groups = np.split(multi, np.flatnonzero(np.diff(prefix_of_row[multi])) + 1)
        for group in groups:
            extra.extend(_resolve(int(prefix_of_row[group[0]]), group, starts, ends))
        block = np.array(extra, dtype=np.int64).reshape(-1, 4)
        keys.append(block[:, 0])
        seg_starts.append(block[:, 1])
        seg_ends.append(block[:, 2])
        seg_rows.append(block[:, 3])
    return (
        np.concatenate(keys),
        np.concatenate(seg_starts),
        np.concatenate(seg_ends),
        np.concatenate(seg_rows),
    )


def _resolve(key: int, group: I64, starts: I64, ends: I64) -> list[tuple[int, int, int, int]]:
    """Disjoint segments for one prefix's rows (sorted by effective_from)."""
    bounds = sorted({int(starts[r]) for r in group} | {int(ends[r]) for r in group})
    out: list[tuple[int, int, int, int]] = []
    for left, right in pairwise(bounds):
        winner = -1
        for r in group:  # sorted by effective_from: the last covering row wins
            if starts[r] <= left < ends[r]:
                winner = int(r)
        if winner < 0:
            continue
        if out and out[-1][3] == winner and out[-1][2] == left:
            out[-1] = (key, out[-1][1], right, winner)
        else:
            out.append((key, left, right, winner))
    return out
