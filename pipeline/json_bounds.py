"""Bounds on JSON from outside: how deeply a message nests, told without parsing it.

Recursive JSON parsers (the standard library's, msgspec's) overflow on deeply nested input;
:func:`nesting_depth` tells the depth first, with one regular expression and numpy, so callers
refuse such input before any parser sees it.
"""

from __future__ import annotations

import re

import numpy as np

_STRING_IN_JSON = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_OPEN = np.frombuffer(b"{[", dtype=np.uint8)
_CLOSE = np.frombuffer(b"}]", dtype=np.uint8)


def nesting_depth(message: bytes) -> int:
    """How deeply objects and arrays nest in ``message`` (brackets inside strings ignored).

    Works on any bytes and never raises; for text that is not JSON the number means little,
    and the caller's parser refuses that text anyway.
    """
    codes = np.frombuffer(_STRING_IN_JSON.sub(b"", message), dtype=np.uint8)
    steps = np.isin(codes, _OPEN).astype(np.int64) - np.isin(codes, _CLOSE).astype(np.int64)
    return int(np.cumsum(steps).max(initial=0))
