"""The valid CDR lines of one chunk, built column by column.

numpy draws and polars string expressions make 600,000 lines in seconds; only the few malformed
lines (``_malformed``) are made one at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipeline.synthetic._accounts import Tenant
from pipeline.synthetic._clock import MICROS, Clock, epoch_us
from pipeline.synthetic._exprs import evaluate, when, zfill
from pipeline.synthetic._timestamps import OFFSETS_MIN, STEP_US, render_column

_EDGE_DURATIONS_MS: tuple[int, ...] = (
    1,
    999,
    1000,
    1001,
    5999,
    6000,
    6001,
    30000,
    30001,
    36000,
    59999,
    60000,
    60001,
    120000,
)
_FAILED_DISPOSITIONS: tuple[tuple[str, int], ...] = (
    ("NO_ANSWER", 480),
    ("NO_ANSWER", 408),
    ("BUSY", 486),
    ("BUSY", 600),
    ("FAILED", 503),
    ("FAILED", 404),
    ("FAILED", 500),
    ("CANCELLED", 487),
)


def _hex_ids(g: np.random.Generator, n: int, nbytes: int, uuid4: bool) -> list[str]:
    raw = np.frombuffer(g.bytes(nbytes * n), dtype=np.uint8).reshape(n, nbytes).copy()
    if uuid4:  # version 4, RFC 4122 variant
        raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
        raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    text = raw.tobytes().hex()
    width = 2 * nbytes
    return [text[i : i + width] for i in range(0, width * n, width)]


def _per_tenant(
    g: np.random.Generator, t_idx: np.ndarray, groups: list[list[str]]
) -> tuple[np.ndarray, pl.Series]:
    """A uniform choice from the row's tenant's group: (index into the flat list, values)."""
    sizes = np.array([max(len(group), 1) for group in groups], dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    flat = [x for group in groups for x in (group or [""])]
    index = offsets[t_idx] + (g.random(len(t_idx)) * sizes[t_idx]).astype(np.int64)
    return index, pl.Series(flat, dtype=pl.String).gather(index)


@dataclass(frozen=True)
class CdrColumns:
    """The valid lines and what the malformed variants need to know about each row."""

    lines: pl.Series
    cdr_ids: pl.Series
    callee_digits: pl.Series
    start_us: np.ndarray
    precision: np.ndarray
    zone: np.ndarray
    lower: np.ndarray


def cdr_columns(g: np.random.Generator, n: int, tenants: list[Tenant], clock: Clock) -> CdrColumns:
    rand = g.random
    t_idx = g.integers(0, len(tenants), n)
    tenant_ids = pl.Series([t.tenant_id for t in tenants]).gather(t_idx)
    cdr_ids = pl.Series(_hex_ids(g, n, 16, uuid4=True), dtype=pl.String)
    session_ids = pl.Series(_hex_ids(g, n, 8, uuid4=False), dtype=pl.String)
    sbc = pl.Series(g.integers(1, 5, n))
    _, customers = _per_tenant(g, t_idx, [t.customer_draw for t in tenants])
    _, clients = _per_tenant(g, t_idx, [t.clients for t in tenants])
    _, resellers = _per_tenant(g, t_idx, [t.resellers for t in tenants])
    has_resellers = np.array([bool(t.resellers) for t in tenants])[t_idx]
    roll = rand(n)
    explicit = (roll < 0.05) & has_resellers
    reseller_part = when(
        explicit,
        pl.concat_str(pl.lit('"reseller_id": "'), pl.lit(resellers), pl.lit('", ')),
        when(roll < 0.5, '"reseller_id": null, ', ""),
    )
    caller = pl.concat_str(
        pl.lit(pl.Series(["+", "", "00"]).gather(g.integers(0, 3, n))),
        pl.lit(pl.Series(g.integers(10**9, 10**12, n))).cast(pl.String),
    )

    # Callee: a prefix of one of the tenant's decks, filled up to the country's length.
    pool_index, prefixes = _per_tenant(g, t_idx, [t.pool_prefixes for t in tenants])
    flat_lengths = np.array([x for t in tenants for x in (t.pool_lengths or [10])], dtype=np.int64)
    prefix_len = prefixes.str.len_chars().to_numpy().astype(np.int64)
    total = flat_lengths[pool_index]
    deep = prefix_len >= total
    total = np.where(deep, np.minimum(15, prefix_len + 1 + g.integers(0, 3, n)), total)
    extra = total - prefix_len
    roll = rand(n)
    unknown = roll < 0.003  # an unassigned country code: no deck carries it
    national = (roll >= 0.003) & (roll < 0.005)  # national format, leading 0: no deck either
    extra = np.where(unknown, 6 + g.integers(0, 5, n), extra)
    extra = np.where(national, 8 + g.integers(0, 3, n), extra)
    fill = g.integers(0, 10**extra)
    digits_expr = pl.concat_str(
        when(unknown, "999", when(national, "0", pl.lit(prefixes))),
        zfill(fill, pl.lit(pl.Series(extra))),
    )
    callee_digits = evaluate(digits_expr)
    d = pl.lit(callee_digits)
    roll = rand(n)
    callee = evaluate(
        pl.when(pl.lit(pl.Series(roll < 0.40)))
        .then(pl.concat_str(pl.lit("+"), d))
        .when(pl.lit(pl.Series(roll < 0.55)))
        .then(pl.concat_str(pl.lit("00"), d))
        .otherwise(d)
    )
    # A fifth of the callees in groups of 2, 3 or 4 digits with spaces and/or dashes.
    group = g.integers(2, 5, n)
    for k in (2, 3, 4):
        rows = np.flatnonzero((roll >= 0.80) & (group == k))
        if len(rows) == 0:
            continue
        part = pl.lit(callee_digits.gather(rows))
        spaced = evaluate(
            pl.concat_str([part.str.slice(j, k) for j in range(0, 15, k)], separator=" ")
        ).str.strip_chars_end(" ")
        dashed = spaced.str.replace_all(" ", "-", literal=True)
        style = roll[rows]
        written = evaluate(
            pl.when(pl.lit(pl.Series(style < 0.88)))
            .then(pl.concat_str(pl.lit("+"), pl.lit(spaced)))
            .when(pl.lit(pl.Series(style < 0.93)))
            .then(pl.concat_str(pl.lit("00 "), pl.lit(spaced)))
            .when(pl.lit(pl.Series(style < 0.98)))
            .then(pl.lit(dashed))
            .otherwise(
                pl.concat_str(pl.lit("+"), pl.lit(dashed.str.replace("-", " ", literal=True)))
            )
        )
        callee = callee.scatter(rows, written)

    # Times: mostly uniform in the month; some on, or 1 us / 1 ms / 1 s around, an instant.
    roll = rand(n)
    precision = np.select([roll < 0.45, roll < 0.75, roll < 0.95], [0, 3, 6], 9).astype(np.int64)
    month_start = epoch_us(clock.month_start)
    start = month_start + (rand(n) * (epoch_us(clock.month_end) - month_start)).astype(np.int64)
    start -= start % np.array(STEP_US, dtype=np.int64)[precision]
    targeted = rand(n) < 0.04
    delta = np.array([0, 0, -1, 1, -1000, -MICROS], dtype=np.int64)[g.integers(0, 6, n)]
    instants = np.array([epoch_us(x) for x in clock.instants], dtype=np.int64)
    start = np.where(targeted, instants[g.integers(0, len(instants), n)] + delta, start)
    fine = targeted & (np.abs(delta) == 1)
    precision = np.where(fine, np.where(rand(n) < 0.7, 6, 9), precision)
    precision = np.where(targeted & (delta == -1000) & (precision == 0), 3, precision)
    zone = np.where(rand(n) < 0.85, 0, 1 + g.integers(0, len(OFFSETS_MIN), n))
    lower = rand(n) < 0.01

    answered = rand(n) < 0.7
    roll = rand(n)
    edges = np.array(_EDGE_DURATIONS_MS, dtype=np.int64)[g.integers(0, len(_EDGE_DURATIONS_MS), n)]
    usual = np.clip(g.lognormal(11.0, 1.1, n).astype(np.int64), 1, 4 * 3600 * 1000)
    duration = np.where(roll < 0.15, edges, np.where(roll < 0.153, 0, usual))
    duration = np.where(answered, duration, 0)
    answer = start + (rand(n) * 20 * MICROS).astype(np.int64)
    ring_end = np.where(rand(n) < 0.05, start, start + (rand(n) * 45 * MICROS).astype(np.int64))
    end = np.where(answered, answer + duration * 1000 + g.integers(0, 1000, n), ring_end)
    start_text = render_column(g, start, precision, zone, lower)
    answer_text = render_column(g, answer, precision, zone, lower)
    end_text = render_column(g, end, precision, zone, lower)
    answer_part = when(
        answered,
        pl.concat_str(pl.lit('"answer_time": "'), pl.lit(answer_text), pl.lit('", ')),
        when(rand(n) < 0.6, '"answer_time": null, ', ""),
    )

    failed = g.integers(0, len(_FAILED_DISPOSITIONS), n) + 1
    outcome = np.where(answered, 0, failed)
    names = pl.Series(["ANSWERED", *(name for name, _ in _FAILED_DISPOSITIONS)]).gather(outcome)
    codes = np.array([200, *(code for _, code in _FAILED_DISPOSITIONS)], dtype=np.int64)[outcome]
    roll = rand(n)
    tail = when(
        roll < 0.03,
        "",  # neither disposition nor sip_code
        when(
            roll < 0.04,
            ', "disposition": null, "sip_code": null',
            pl.concat_str(
                pl.lit(', "disposition": "'),
                pl.lit(names),
                pl.lit('", "sip_code": '),
                pl.lit(pl.Series(codes)).cast(pl.String),
            ),
        ),
    )
    extras = when(
        rand(n) < 0.03,
        pl.concat_str(
            pl.lit(', "codec": "'),
            pl.lit(pl.Series(["PCMA", "PCMU", "G729", "opus"]).gather(g.integers(0, 4, n))),
            pl.lit('", "pdd_ms": '),
            pl.lit(pl.Series(g.integers(100, 8100, n))).cast(pl.String),
            pl.lit(', "trunk": {"id": "tr-'),
            pl.lit(pl.Series(g.integers(0, 100, n))).cast(pl.String),
            pl.lit('", "ip": "10.0.'),
            pl.lit(pl.Series(g.integers(0, 256, n))).cast(pl.String),
            pl.lit('.7"}, "tags": ["synthetic", "'),
            pl.lit(pl.Series(["peak", "offpeak"]).gather(g.integers(0, 2, n))),
            pl.lit('"], "x_vendor": null'),
        ),
        "",
    )
    line = pl.concat_str(
        pl.lit('{"cdr_id": "'),
        pl.lit(cdr_ids),
        pl.lit('", "session_id": "'),
        pl.lit(session_ids),
        pl.lit("@sbc"),
        pl.lit(sbc).cast(pl.String),
        pl.lit('.vmgate.example", "tenant_id": "'),
        pl.lit(tenant_ids),
        pl.lit('", "customer_id": "'),
        pl.lit(customers),
        pl.lit('", "client_id": "'),
        pl.lit(clients),
        pl.lit('", '),
        reseller_part,
        pl.lit('"caller": "'),
        caller,
        pl.lit('", "callee": "'),
        pl.lit(callee),
        pl.lit('", "start_time": "'),
        pl.lit(start_text),
        pl.lit('", '),
        answer_part,
        pl.lit('"end_time": "'),
        pl.lit(end_text),
        pl.lit('", "duration_ms": '),
        pl.lit(pl.Series(duration)).cast(pl.String),
        tail,
        extras,
        pl.lit("}"),
    )
    lines = evaluate(line)
    return CdrColumns(lines, cdr_ids, callee_digits, start, precision, zone, lower)
