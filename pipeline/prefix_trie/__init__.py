"""Longest-prefix index over rate decks, with effective dating.

:class:`DeckIndex` answers, for a whole batch of (plan, normalised callee, start time) at once,
which deck row applies: the longest prefix of the callee among the plan's rows effective at the
start time, the later ``effective_from`` winning when one prefix is effective twice. It is built
once per reference-data version and read by any number of batches; lookups are numpy
``searchsorted`` over lexicographically encoded prefixes plus a walk up the prefix tree, with no
per-row Python. :class:`VariantIndex` does the same for decks whose rows name a caller origin
and a time band (tariff v2), in one walk per call.
"""

from pipeline.prefix_trie.deck_index import DeckIndex, DeckRows, encode_digits, encoded_digits
from pipeline.prefix_trie.intervals import IntervalIndex
from pipeline.prefix_trie.variants import VariantIndex

__all__ = [
    "DeckIndex",
    "DeckRows",
    "IntervalIndex",
    "VariantIndex",
    "encode_digits",
    "encoded_digits",
]
