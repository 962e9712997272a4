"""The longest-prefix index of every plan's deck, with effective dating.

Prefixes and callees are digit strings of at most :data:`MAX_DIGITS` digits. Each is encoded as
``int(s.ljust(15, "0")) * 16 + len(s)``, an int64 whose numeric order is the strings'
lexicographic order. Every distinct encoding over all plans gets a rank, and each (plan,
prefix) pair the key ``plan * stride + rank``: one sorted array for all plans. For a callee
``q`` of a plan, the rightmost key ``<= (plan, q)`` is found with two ``searchsorted`` calls
(the rank of ``q``, then the key), for the whole batch at once whatever the mix of plans; it is
the plan's greatest prefix ``p <= q``. Every deck prefix that ``q`` starts with is an ancestor
of ``p`` in the prefix tree (or ``p`` itself), so walking ``p``'s ancestors (at most 15 steps,
vectorised over the batch) and stopping at the first that is a prefix of ``q`` and effective at
the start time gives the longest effective match. Each prefix's rows are flattened into
disjoint validity segments at build time, the later ``effective_from`` winning where rows of one
prefix overlap.

Queries are searched in sorted order: on a deck of a million prefixes (8 MB per array, more than
the CPU caches) a sorted batch of searches runs several times faster than the same searches in
arrival order, and the walk then gathers from nearby positions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from pipeline.prefix_trie.intervals import IntervalIndex

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
Ints = npt.NDArray[np.integer[Any]]
MAX_DIGITS = 15
_POW10 = np.array([10**k for k in range(MAX_DIGITS + 1)], dtype=np.int64)


def padded_digits(digits: pl.Expr) -> pl.Expr:
    """Digit strings (1-15 ASCII digits) as integers padded with zeros to 15 digits.

    ``"012"`` gives ``12 * 10**12``: the digits' value times a power of ten, without building
    padded texts. Only for texts known to be digits (``"+12"`` would give a number too).
    """
    return digits.cast(pl.Int64, strict=False) * pl.lit(10, pl.Int64).pow(
        MAX_DIGITS - digits.str.len_bytes().cast(pl.Int64)
    )


def encoded_digits(digits: pl.Expr) -> pl.Expr:
    """The index encoding of digit strings (1-15 ASCII digits): ``padded * 16 + length``.

    Two texts have the same encoding exactly when they are the same text.
    """
    return padded_digits(digits) * 16 + digits.str.len_bytes().cast(pl.Int64)


def encode_digits(digits: pl.Series) -> tuple[I64, I64]:
    """Return (value padded to 15 digits, length) for a Series of digit strings (1-15 digits)."""
    frame = pl.DataFrame({"d": digits}).select(
        padded=padded_digits(pl.col("d")),
        length=pl.col("d").str.len_bytes().cast(pl.Int64),
    )
    return frame["padded"].to_numpy(), frame["length"].to_numpy()


@dataclass(frozen=True, eq=False)
class DeckRows:
    """Every deck row of every plan, as parallel arrays; a row's position is its global row id."""

    plan: Ints  # index of the row's plan
    prefix: pl.Series  # digit strings
    effective_from: I64  # epoch microseconds
    effective_until: I64  # epoch microseconds, exclusive (OPEN_END_US when open)


@dataclass(frozen=True, eq=False)
class DeckIndex:
    """Longest-prefix lookup over all plans' decks; see the module docstring for how.

    Per (plan, prefix) pair it holds 24 bytes (key, parent, a segment offset) plus 20 per
    validity segment and 8 per distinct prefix: about 45 MB for a deck of a million prefixes.
    """

    plan_offsets: I64  # plan p owns prefix ids plan_offsets[p]:plan_offsets[p+1]
    encodings: I64  # every distinct encoded prefix over all plans, ascending
    keys: I64  # per prefix id: plan * (len(encodings) + 1) + rank of its encoding; ascending
    parent: I32  # longest shorter prefix of the same plan that this prefix starts with, or -1
    segments: IntervalIndex  # prefix id -> validity segments -> global deck row id

    @classmethod
    def build(cls, rows: DeckRows, n_plans: int) -> DeckIndex:
        """Build the index once per reference-data version."""
        # Encoded a slice at a time, and sorted in polars: its allocator reuses the memory the
        # deck's text columns just gave back, where numpy would take more from the system.
        encoded = pl.concat(
            [
                pl.select(encoded_digits(pl.lit(rows.prefix.slice(begin, _BLOCK)))).to_series()
                for begin in range(0, max(len(rows.prefix), 1), _BLOCK)
            ],
            rechunk=True,
        )
        encodings = encoded.unique().sort().to_numpy()
        stride = len(encodings) + 1
        row_key = rows.plan.astype(np.int64) * stride
        row_key += encoded.rank("dense").to_numpy()
        row_key -= 1
        del encoded
        order = np.argsort(row_key, kind="stable")  # rows by (plan, prefix), then file order
        sorted_key = row_key[order]
        del row_key
        new_key = np.ones(len(order), dtype=bool)
        new_key[1:] = sorted_key[1:] != sorted_key[:-1]
        first = np.flatnonzero(new_key)  # where each prefix's rows start in ``order``
        del new_key
        keys = sorted_key[first]
        del sorted_key
        plan_offsets = np.searchsorted(keys, np.arange(n_plans + 1, dtype=np.int64) * stride)
        parent = _parents(encodings, keys)
        segments = _segments(order, first, rows.effective_from, rows.effective_until)
        return cls(plan_offsets.astype(np.int64), encodings, keys, parent, segments)

    @property
    def prefix_count(self) -> int:
        """Number of distinct (plan, prefix) pairs indexed."""
        return len(self.keys)

    def lookup(self, plan: Ints, callee_padded: I64, callee_length: I64, times: I64) -> I64:
        """Return the global deck row id per row (-1: no plan or no effective prefix matches).

        Rows may mix any plans (the three legs of a batch can be looked up in one call); a plan
        of -1 gives -1.
        """
        result = np.full(len(plan), -1, dtype=np.int64)
        if len(self.keys) == 0:
            return result
        rows, node, row_plan = self.start_nodes(plan, callee_padded, callee_length)
        result[rows] = self._walk(
            node, row_plan, callee_padded[rows], callee_length[rows], times[rows]
        )
        return result

    def start_nodes(
        self, plan: Ints, callee_padded: I64, callee_length: I64
    ) -> tuple[I64, I64, I64]:
        """Where each query's walk starts: (query rows, prefix ids, plans).

        Only the queries whose plan has a prefix ``<= q`` are returned, with that greatest
        prefix.
        """
        rows = np.flatnonzero(plan >= 0)
        query = callee_padded[rows] * 16 + callee_length[rows]
        by_query = np.argsort(query)
        rows, query = rows[by_query], query[by_query]
        below = np.searchsorted(self.encodings, query, side="right") - 1
        del query
        # Sorted within each plan already: a stable sort by plan alone (a radix sort for 16-bit
        # integers) puts the keys in order.
        narrow = np.int16 if len(self.plan_offsets) <= np.iinfo(np.int16).max else np.int32
        by_plan = np.argsort(plan[rows].astype(narrow), kind="stable")
        rows, below = rows[by_plan], below[by_plan]
        row_plan = plan[rows].astype(np.int64)
        wanted = row_plan * (len(self.encodings) + 1) + below
        node = np.searchsorted(self.keys, wanted, side="right") - 1
        inside = node >= self.plan_offsets[row_plan]  # else no prefix of the plan is <= q
        return rows[inside], node[inside], row_plan[inside]

    def prefix_encoding(self, node: I64, plan: I64) -> I64:
        """The encoded prefix (``padded * 16 + length``) of prefix ids of the given plans."""
        encoded: I64 = self.encodings[self.keys[node] - plan * (len(self.encodings) + 1)]
        return encoded

    def node_of(self, plan: Ints, encoded: I64) -> I64:
        """The prefix id of each (plan, encoded prefix) that the index holds (else garbage)."""
        rank = np.searchsorted(self.encodings, encoded)
        return np.searchsorted(self.keys, plan.astype(np.int64) * (len(self.encodings) + 1) + rank)

    def _walk(self, node: I64, plan: I64, padded: I64, length: I64, times: I64) -> I64:
        """From each row's greatest prefix ``<= q`` up its ancestors to the first that applies."""
        return self.walk(
            node, plan, padded, length, lambda nodes, at: self.segments.lookup(nodes, times[at])
        )

    def walk(
        self,
        node: I64,
        plan: I64,
        padded: I64,
        length: I64,
        resolve: Callable[[I64, I64], I64],
    ) -> I64:
        """Walk each query from ``node`` up its ancestors to the first prefix that gives a row.

        At each prefix of the callee, ``resolve(prefix ids, query positions)`` gives the deck
        row that applies there, or -1 to go on to the next shorter prefix.
        """
        result = np.full(len(node), -1, dtype=np.int64)
        at = np.arange(len(node))
        for _ in range(MAX_DIGITS):  # a path holds at most one prefix of each length
            if len(node) == 0:
                break
            candidates = np.flatnonzero(
                starts_callee(self.prefix_encoding(node, plan), padded, length)
            )
            row = np.full(len(node), -1, dtype=np.int64)
            row[candidates] = resolve(node[candidates], at[candidates])
            found = row >= 0
            result[at[found]] = row[found]
            up = self.parent[node]
            keep = ~found & (up >= 0)
            node, plan, at = up[keep].astype(np.int64), plan[keep], at[keep]
            padded, length = padded[keep], length[keep]
        return result


def starts_callee(encoded: I64, padded: I64, length: I64) -> npt.NDArray[np.bool_]:
    """Whether each encoded prefix starts its callee (given padded, with its length)."""
    prefix_length = encoded & 15
    prefix_padded = encoded >> 4
    # q starts with the prefix: q, padded like it, lies in [prefix, prefix + 10**rest)
    starts: npt.NDArray[np.bool_] = (
        (prefix_length <= length)
        & (padded >= prefix_padded)
        & (padded - prefix_padded < _POW10[MAX_DIGITS - prefix_length])
    )
    return starts


def _parents(encodings: I64, keys: I64) -> I32:
    """For each prefix, the id of the longest shorter prefix of the same plan it starts with."""
    parent = np.full(len(keys), -1, dtype=np.int32)
    if len(keys) < 2:
        return parent
    for begin in range(0, len(keys), _BLOCK):  # in blocks: the work arrays stay small
        block = slice(begin, begin + _BLOCK)
        parent[block] = _block_parents(encodings, keys, keys[block])
    return parent


_BLOCK = 1 << 17


def _block_parents(encodings: I64, keys: I64, block: I64) -> I32:
    """:func:`_parents` of the prefixes whose keys are ``block`` (a slice of ``keys``)."""
    parent = np.full(len(block), -1, dtype=np.int32)
    stride = len(encodings) + 1
    plan_base = block // stride * stride
    encoded = encodings[block - plan_base]
    length = (encoded & 15).astype(np.int8)
    padded = encoded >> 4
    del encoded
    searching = length > 1
    for shorter in range(int(length.max()) - 1, 0, -1):
        idx = np.flatnonzero(searching & (length > shorter))
        if len(idx) == 0:
            continue
        unit = _POW10[MAX_DIGITS - shorter]
        candidate = padded[idx] // unit * unit * 16 + shorter
        rank = np.minimum(np.searchsorted(encodings, candidate), len(encodings) - 1)
        known = encodings[rank] == candidate
        key = plan_base[idx] + rank
        pos = np.minimum(np.searchsorted(keys, key), len(keys) - 1)
        hit = known & (keys[pos] == key)
        parent[idx[hit]] = pos[hit]
        searching[idx[hit]] = False
    return parent


def _segments(order: I64, first: I64, starts: I64, ends: I64) -> IntervalIndex:
    """Each prefix's validity segments; the later effective_from wins where its rows overlap.

    ``order`` lists the deck rows by prefix id and ``first[k]`` is where prefix ``k``'s rows
    start in it. A prefix with one row (nearly all) keeps it as its single segment; only
    prefixes with several rows are resolved row by row. The segments are written in key order,
    so the index needs no sort of its own.
    """
    n_keys = len(first)
    rows_per_key = np.diff(first, append=len(order))
    several = np.flatnonzero(rows_per_key > 1)
    # Two rows (a rate and its scheduled change, the usual case): worked out for all at once.
    pairs, paired = _pair_segments(several[rows_per_key[several] == 2], order, first, starts, ends)
    resolved: list[list[tuple[int, int, int, int]]] = []
    for key in np.setdiff1d(several, paired, assume_unique=True).tolist():
        group = order[first[key] : first[key] + rows_per_key[key]]
        group = group[np.argsort(starts[group], kind="stable")]
        resolved.append(_resolve(key, group, starts, ends))
    per_key = np.ones(n_keys, dtype=np.int32)
    per_key[several] = 0
    if resolved or len(pairs):
        listed = np.array([s for r in resolved for s in r], dtype=np.int64).reshape(-1, 4)
        block = np.concatenate([pairs, listed])
        block = block[np.argsort(block[:, 0], kind="stable")]  # by key, each key's in order
        np.add.at(per_key, block[:, 0], 1)
    else:
        block = np.zeros((0, 4), dtype=np.int64)
    del rows_per_key
    offsets = np.zeros(n_keys + 1, dtype=np.int32)
    np.cumsum(per_key, out=offsets[1:])
    total = int(offsets[-1])
    seg_starts = np.empty(total, dtype=np.int64)
    seg_ends = np.empty(total, dtype=np.int64)
    values = np.empty(total, dtype=np.int32)
    single = np.flatnonzero(per_key == 1)
    for begin in range(0, len(single), _BLOCK):  # in blocks: the work arrays stay small
        keys = single[begin : begin + _BLOCK]
        at = offsets[keys]
        row = order[first[keys]]
        seg_starts[at], seg_ends[at], values[at] = starts[row], ends[row], row
    if len(block):
        at = offsets[block[:, 0]] + _rank_within(block[:, 0])
        seg_starts[at], seg_ends[at], values[at] = block[:, 1], block[:, 2], block[:, 3]
    return IntervalIndex.from_sorted(offsets, seg_starts, seg_ends, values)


def _pair_segments(
    keys: I64, order: I64, first: I64, starts: I64, ends: I64
) -> tuple[npt.NDArray[np.int64], I64]:
    """The segments of prefixes with exactly two rows, as :func:`_resolve` gives them.

    Returns rows ``(key, left, right, row)`` in key order, each key's in time order, and the
    keys done; a key where a row's interval is empty is left to :func:`_resolve`. With the
    rows in effective_from order (the first of two equal ones first) the later one wins where
    both apply, so there are at most three segments: the first row until the second starts
    (or ends), the second row, and the first row again after the second ends.
    """
    a, b = order[first[keys]], order[first[keys] + 1]
    swap = starts[b] < starts[a]  # a stable sort by effective_from keeps a, b when equal
    one, two = np.where(swap, b, a), np.where(swap, a, b)
    s1, e1, s2, e2 = starts[one], ends[one], starts[two], ends[two]
    done = (e1 > s1) & (e2 > s2)
    keys, one, two = keys[done], one[done], two[done]
    s1, e1, s2, e2 = s1[done], e1[done], s2[done], e2[done]
    before_end = np.minimum(e1, s2)
    parts = [
        np.stack([keys, s1, before_end, one], axis=1)[s1 < before_end],
        np.stack([keys, s2, e2, two], axis=1),
        np.stack([keys, e2, e1, one], axis=1)[e1 > e2],
    ]
    segments = np.concatenate(parts).astype(np.int64)
    # In key order, each key's segments in time order (they do not overlap, so by left end).
    segments = segments[np.lexsort((segments[:, 1], segments[:, 0]))]
    return segments, keys


def _rank_within(keys: I64) -> I64:
    """For sorted ``keys``, each entry's position among the entries of the same key."""
    position = np.arange(len(keys), dtype=np.int64)
    starts_at = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return position - np.repeat(starts_at, np.diff(np.r_[starts_at, len(keys)]))


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
