"""One walk for decks whose rows name a caller origin and a time band (tariff v2).

A call's candidates are the rows effective at its start whose prefix starts the callee and
whose origin is the caller's group or "any" and whose band is the call's band or "any". The
winner is the longest prefix, then a row with an origin over one without, then one with a band
over one without (DESIGN.md section 8). :class:`VariantIndex` answers that in ONE walk per
call: the prefixes of all of a plan's rows form one tree (a :class:`DeckIndex` over plans),
and each (prefix, origin, band) that some row has keeps its own validity segments (the later
``effective_from`` winning within it, as a plain deck's prefix does). Walking up from the
longest prefix, the first prefix with an applicable segment wins, its variants tried in the
order of the rule: (origin, band), (origin, any), (any, band), (any, any).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

from pipeline.prefix_trie.deck_index import (
    I64,
    DeckIndex,
    DeckRows,
    Ints,
    _segments,
    encoded_digits,
)
from pipeline.prefix_trie.intervals import IntervalIndex


@dataclass(frozen=True, eq=False)
class VariantIndex:
    """Longest-prefix lookup with caller origins and time bands, in one walk per query."""

    tree: DeckIndex  # the prefixes of each plan's rows, whatever their origin and band
    codes: int  # variant codes 0..codes-1: origin * bands + band (0: any caller, any time)
    bands: int
    variant_keys: I64  # sorted: prefix id * codes + code, for every variant some row has
    segments: IntervalIndex  # variant position in variant_keys -> segments -> deck row
    # Per prefix id: where its variants start in variant_keys, and its code when it has just
    # one (-1 when several): most prefixes have one variant, found without a search.
    first_variant: I64
    only_code: npt.NDArray[np.int32]

    @classmethod
    def build(
        cls,
        rows: DeckRows,
        origin: Ints,
        band: Ints,
        n_plans: int,
        groups: int,
        bands: int,
    ) -> VariantIndex:
        """Index every deck row by (plan, prefix) and, within it, by its (origin, band)."""
        count = len(rows.plan)
        # The tree of prefixes: each (plan, prefix) once, so that no prefix has rows to resolve.
        pairs = pl.DataFrame({"plan": np.asarray(rows.plan, dtype=np.int64), "prefix": rows.prefix})
        pairs = pairs.unique()
        # The tree's [0, 1) validity intervals are never read: the walk resolves per variant.
        always = np.zeros(pairs.height, dtype=np.int64)
        tree = DeckIndex.build(
            DeckRows(pairs["plan"].to_numpy(), pairs["prefix"], always, always + 1), n_plans
        )
        del pairs
        encoded = pl.select(encoded_digits(pl.lit(rows.prefix))).to_series().to_numpy()
        node = tree.node_of(np.asarray(rows.plan, dtype=np.int64), encoded)
        codes = groups * bands
        key = node * codes + np.asarray(origin, dtype=np.int64) * bands + band
        order = np.argsort(key, kind="stable")  # by variant, then deck order
        sorted_key = key[order]
        new = np.ones(count, dtype=bool)
        new[1:] = sorted_key[1:] != sorted_key[:-1]
        first = np.flatnonzero(new)
        segments = _segments(order, first, rows.effective_from, rows.effective_until)
        variant_keys = sorted_key[first]
        nodes = len(tree.keys)
        first_variant = np.searchsorted(variant_keys, np.arange(nodes, dtype=np.int64) * codes)
        per_node = np.diff(np.append(first_variant, len(variant_keys)))
        last = max(len(variant_keys) - 1, 0)
        single_code = variant_keys[np.minimum(first_variant, last)] % max(codes, 1)
        only_code = np.where(per_node == 1, single_code, -1).astype(np.int32)
        return cls(tree, codes, bands, variant_keys, segments, first_variant, only_code)

    def lookup(
        self,
        plan: Ints,
        group: I64,
        band: I64,
        callee_padded: I64,
        callee_length: I64,
        times: I64,
    ) -> I64:
        """The winning deck row per query (-1: none).

        ``group`` and ``band`` are 0 where the call has none: it then matches only rows for any
        caller, or any time.
        """
        result = np.full(len(plan), -1, dtype=np.int64)
        if len(self.variant_keys) == 0:
            return result
        rows, node, row_plan = self.tree.start_nodes(plan, callee_padded, callee_length)
        group, band, times = group[rows], band[rows], times[rows]
        # The variants a query may use, best first; -1 where the call has no origin or band.
        tried = [
            np.where((group > 0) & (band > 0), group * self.bands + band, -1),
            np.where(group > 0, group * self.bands, -1),
            np.where(band > 0, band, -1),
            np.zeros(len(rows), dtype=np.int64),
        ]

        def resolve(nodes: I64, at: I64) -> I64:
            found = np.full(len(nodes), -1, dtype=np.int64)
            only = self.only_code[nodes]
            # A prefix with one variant: it applies if the query may use its code at all.
            one = np.flatnonzero(only >= 0)
            code, asked = only[one], at[one]
            usable = (tried[0][asked] == code) | (tried[1][asked] == code)
            usable |= (tried[2][asked] == code) | (tried[3][asked] == code)
            hit = one[usable]
            found[hit] = self.segments.lookup(self.first_variant[nodes[hit]], times[at[hit]])
            several = np.flatnonzero(only < 0)
            if len(several):
                found[several] = tried_in_order(nodes[several], at[several])
            return found

        def tried_in_order(nodes: I64, at: I64) -> I64:
            found = np.full(len(nodes), -1, dtype=np.int64)
            for code in tried:
                wanted = code[at]
                open_ = np.flatnonzero((found < 0) & (wanted >= 0))
                if len(open_) == 0:
                    continue
                key = nodes[open_] * self.codes + wanted[open_]
                position = np.searchsorted(self.variant_keys, key)
                position = np.minimum(position, len(self.variant_keys) - 1)
                held = self.variant_keys[position] == key
                ask = open_[held]
                found[ask] = self.segments.lookup(position[held], times[at[ask]])
            return found

        result[rows] = self.tree.walk(
            node, row_plan, callee_padded[rows], callee_length[rows], resolve
        )
        return result
