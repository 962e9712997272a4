"""Small builders for tests: a plans folder from Python rows, CDR messages, rating in one call."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from pipeline.rating.decode import decode_cdrs
from pipeline.rating.engine import rate_batch
from pipeline.rating.reference import ReferenceData
from pipeline.reference.loader import load_plans_folder

RATED_AT = datetime(2026, 4, 1, tzinfo=UTC)
MONTH = "2026-03-01T00:00:00Z"

PLAN_HEADER = ["plan_id", "tenant_id", "name", "scope", "currency", "decimals", "rounding"]
DECK_HEADER = [
    "prefix",
    "destination",
    "rate",
    "connection_fee",
    "initial_increment",
    "subsequent_increment",
    "effective_from",
    "effective_until",
]
ASSOCIATION_HEADER = ["scope", "account_id", "plan_id", "effective_from", "effective_until"]
MEMBERSHIP_HEADER = ["client_id", "reseller_id", "effective_from", "effective_until"]


def _write(path: Path, header: list[str], rows: Iterable[Mapping[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})


def deck_row(prefix: str, rate: str, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "prefix": prefix,
        "destination": extra.pop("destination", f"dest {prefix}"),
        "rate": rate,
        "connection_fee": "",
        "initial_increment": "",
        "subsequent_increment": "",
        "effective_from": MONTH,
        "effective_until": "",
    }
    row.update(extra)
    return row


def plan(plan_id: str, scope: str, currency: str = "EUR", **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "plan_id": plan_id,
        "tenant_id": extra.pop("tenant_id", "t1"),
        "name": plan_id,
        "scope": scope,
        "currency": currency,
        "decimals": "",
        "rounding": "",
    }
    row.update(extra)
    return row


def association(scope: str, account: str, plan_id: str, **extra: Any) -> dict[str, Any]:
    row = {
        "scope": scope,
        "account_id": account,
        "plan_id": plan_id,
        "effective_from": MONTH,
        "effective_until": "",
    }
    row.update(extra)
    return row


def membership(client: str, reseller: str, **extra: Any) -> dict[str, Any]:
    row = {
        "client_id": client,
        "reseller_id": reseller,
        "effective_from": MONTH,
        "effective_until": "",
    }
    row.update(extra)
    return row


def _header(base: list[str], rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """``base``, then any other column the rows use (tariff v2), in first-seen order."""
    header = list(base)
    for row in rows:
        header += [name for name in row if name not in header]
    return header


def write_plans(
    folder: Path,
    plans: list[dict[str, Any]],
    decks: Mapping[str, list[dict[str, Any]]],
    associations: list[dict[str, Any]] = (),  # type: ignore[assignment]
    memberships: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> Path:
    _write(folder / "plans.csv", _header(PLAN_HEADER, plans), plans)
    for plan_id, rows in decks.items():
        _write(folder / "decks" / f"{plan_id}.csv", _header(DECK_HEADER, rows), rows)
    _write(folder / "associations.csv", ASSOCIATION_HEADER, associations)
    _write(folder / "memberships.csv", MEMBERSHIP_HEADER, memberships)
    return folder


def cdr(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "cdr_id": "c-1",
        "session_id": "s-1",
        "tenant_id": "t1",
        "customer_id": "cust",
        "client_id": "gw",
        "reseller_id": None,
        "caller": "+4930111",
        "callee": "4420794612",
        "start_time": "2026-03-10T12:00:00Z",
        "answer_time": "2026-03-10T12:00:01Z",
        "end_time": "2026-04-30T00:00:00Z",  # after every start time the tests use
        "duration_ms": 60_000,
        "disposition": "ANSWERED",
        "sip_code": 200,
    }
    base.update(overrides)
    return base


def encode(records: Iterable[Mapping[str, Any]]) -> list[bytes]:
    return [json.dumps(r).encode() for r in records]


def rate_table(reference: ReferenceData, records: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Decode and rate into call-history rows; every record must be valid."""
    decoded = decode_cdrs(encode(records))
    assert decoded.rejected.height == 0, decoded.rejected.to_dicts()
    return rate_batch(decoded.good, reference, RATED_AT)


def rate(reference: ReferenceData, records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Decode and rate; every record must be valid."""
    frame = pl.from_arrow(rate_table(reference, records))
    assert isinstance(frame, pl.DataFrame)
    return frame.to_dicts()


def simple_reference(
    folder: Path,
    deck: list[dict[str, Any]],
    *,
    decimals: str = "",
    rounding: str = "",
    client_deck: list[dict[str, Any]] | None = None,
    reseller_deck: list[dict[str, Any]] | None = None,
    memberships: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> ReferenceData:
    """A customer plan ``P`` for customer ``cust`` (and optional client/reseller plans)."""
    plans = [plan("P", "customer", decimals=decimals, rounding=rounding)]
    decks = {"P": deck}
    associations = [association("customer", "cust", "P")]
    if client_deck is not None:
        plans.append(plan("C", "client"))
        decks["C"] = client_deck
        associations.append(association("client", "gw", "C"))
    if reseller_deck is not None:
        plans.append(plan("R", "reseller", currency="USD"))
        decks["R"] = reseller_deck
        associations.append(association("reseller", "res", "R"))
    write_plans(folder, plans, decks, associations, memberships)
    return load_plans_folder(folder)
