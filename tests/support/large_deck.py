"""A plans folder with a deck of a million prefixes, for the memory and topic tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

PREFIXES = 1_000_000


def write_large_deck_folder(folder: Path) -> None:
    rng = np.random.default_rng(5)
    lengths = rng.integers(3, 12, PREFIXES * 2)
    digits = rng.integers(0, 10**11, PREFIXES * 2)
    prefixes = (
        pl.DataFrame({"d": digits, "n": lengths})
        .select(prefix=pl.col("d").cast(pl.String).str.zfill(11).str.slice(0, pl.col("n")))
        .unique(maintain_order=True)
        .head(PREFIXES)
    )
    assert prefixes.height == PREFIXES
    deck = prefixes.with_columns(
        destination=pl.lit("Somewhere"),
        rate=((pl.int_range(pl.len()) % 997) / 10_000 + 0.001).round(6).cast(pl.String),
        connection_fee=pl.lit(""),
        initial_increment=pl.lit("60"),
        subsequent_increment=pl.lit("6"),
        effective_from=pl.lit("2026-03-01T00:00:00Z"),
        effective_until=pl.lit(""),
    )
    (folder / "decks").mkdir(parents=True)
    deck.write_csv(folder / "decks" / "BIG.csv")
    (folder / "plans.csv").write_text(
        "plan_id,tenant_id,name,scope,currency,decimals,rounding\nBIG,t1,Big,customer,EUR,6,\n"
    )
    (folder / "associations.csv").write_text(
        "scope,account_id,plan_id,effective_from,effective_until\n"
        "customer,cust,BIG,2026-03-01T00:00:00Z,\n"
    )
    callees = prefixes.head(50_000)["prefix"].to_list()
    with (folder / "cdrs.jsonl").open("w") as out:
        for n, prefix in enumerate(callees):
            record = {
                "cdr_id": f"c{n}",
                "session_id": "s",
                "tenant_id": "t1",
                "customer_id": "cust",
                "client_id": "gw",
                "caller": "1",
                "callee": (prefix + "1234567")[:12],
                "start_time": "2026-03-10T12:00:00Z",
                "end_time": "2026-03-10T12:05:00Z",
                "duration_ms": 61_000,
            }
            out.write(json.dumps(record) + "\n")
