"""RFC 3339 texts of instants, in the precisions, zones and letter cases CDRs arrive in.

``render_column`` writes a whole column at once; ``render_one`` writes one instant the same way
(for a malformed line that needs an end just before its start).
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl

from pipeline.synthetic._clock import EPOCH, MICROS
from pipeline.synthetic._exprs import evaluate, when, zfill

OFFSETS_MIN: tuple[int, ...] = (60, 120, -300, 330, 540, 0, -180, 345)


STEP_US: tuple[int, ...] = tuple({0: MICROS, 3: 1000}.get(p, 1) for p in range(10))
_ZONE_SHIFT_US = np.array([0, *(m * 60 * MICROS for m in OFFSETS_MIN)], dtype=np.int64)
_ZONE_SUFFIX: tuple[str, ...] = (
    "Z",
    *(f"{'-' if m < 0 else '+'}{abs(m) // 60:02d}:{abs(m) % 60:02d}" for m in OFFSETS_MIN),
)


def render_one(us: int, precision: int, zone: int, lower: bool, nanos: int) -> str:
    """One RFC 3339 text of the UTC instant ``us``, written like ``render_column`` does."""
    local = EPOCH + timedelta(microseconds=us + int(_ZONE_SHIFT_US[zone]))
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if precision == 3:
        text += f".{local.microsecond // 1000:03d}"
    elif precision == 6:
        text += f".{local.microsecond:06d}"
    elif precision == 9:
        text += f".{local.microsecond:06d}{nanos:03d}"
    text += _ZONE_SUFFIX[zone]
    return text.replace("T", "t").replace("Z", "z") if lower else text


def render_column(
    g: np.random.Generator,
    us: np.ndarray,
    precision: np.ndarray,
    zone: np.ndarray,
    lower: np.ndarray,
) -> pl.Series:
    """RFC 3339 texts of UTC instants (microseconds); fewer fraction digits truncate."""
    local = us + _ZONE_SHIFT_US[zone]
    micro = local % MICROS
    # The fraction as an integer of ``precision`` digits; nanoseconds are noise to truncate.
    digits = np.select(
        [precision == 3, precision == 6, precision == 9],
        [micro // 1000, micro, micro * 1000 + g.integers(0, 1000, len(us))],
        0,
    )
    fraction = pl.concat_str(pl.lit("."), zfill(digits, pl.lit(pl.Series(precision))))
    text = evaluate(
        pl.concat_str(
            pl.lit(pl.Series(local)).cast(pl.Datetime("us")).dt.strftime("%Y-%m-%dT%H:%M:%S"),
            when(precision > 0, fraction, ""),
            pl.lit(pl.Series(_ZONE_SUFFIX).gather(zone)),
        )
    )
    rows = np.flatnonzero(lower).tolist()
    if rows:
        lowered = [str(text[i]).replace("T", "t").replace("Z", "z") for i in rows]
        text = text.scatter(rows, lowered)
    return text
