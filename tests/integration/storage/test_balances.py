"""Balances, payments, billing overview and re-rating, against an independent reference.

Each test drives the command line as an operator would and compares `balances --format json`
with balances computed here from the reference rater (tests/reference_rater.py) and the
payments recorded, to the last decimal.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main
from pipeline.sinks.embedded import EmbeddedStore
from pipeline.storage.balances import billing_overview, refresh_balances
from pipeline.synthetic import NetworkSpec, write_network
from tests.reference_rater import LEGS, rate_reference

Key = tuple[str, str, str, str]
SCOPE_OF_KIND = {
    "customer_payment_in": "customer",
    "client_payout_out": "client",
    "reseller_payout_out": "reseller",
}


def _expected(
    rows: dict[str, dict[str, Any]], payments: list[dict[str, str]]
) -> dict[Key, dict[str, str]]:
    amount: dict[Key, Decimal] = defaultdict(Decimal)
    paid: dict[Key, Decimal] = defaultdict(Decimal)
    accounts = {"customer": "customer_id", "client": "client_id", "reseller": "reseller_id"}
    for row in rows.values():
        for leg in LEGS:
            if row[f"{leg}_amount"] is not None:
                key = (row["tenant_id"], leg, row[accounts[leg]], row[f"{leg}_currency"])
                amount[key] += row[f"{leg}_amount"]
    for payment in payments:
        key = (
            payment["tenant"],
            SCOPE_OF_KIND[payment["kind"]],
            payment["account"],
            payment["currency"],
        )
        paid[key] += Decimal(payment["amount"])
    return {
        key: {
            "amount": str(amount[key].quantize(Decimal("0.000001"))),
            "payments": str(paid[key].quantize(Decimal("0.000001"))),
            "balance": str((amount[key] - paid[key]).quantize(Decimal("0.000001"))),
        }
        for key in set(amount) | set(paid)
    }


def _balances(store: Path, capsys: pytest.CaptureFixture[str]) -> dict[Key, dict[str, str]]:
    capsys.readouterr()
    assert main(["balances", "--store", str(store), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    return {
        (r["tenant_id"], r["scope"], r["account_id"], r["currency"]): {
            "amount": r["amount"],
            "payments": r["payments"],
            "balance": r["balance"],
        }
        for r in rows
    }


def _rate(plans: Path, cdrs: Path, store: Path, tmp: Path) -> None:
    out = tmp / f"rated-{datetime.now(UTC).timestamp()}.parquet"
    args = ["rate", "--plans", str(plans), "--cdrs", str(cdrs), "--out", str(out)]
    assert main([*args, "--store", str(store)]) == 0


def _correct_deck(plans: Path, plan_id: str) -> None:
    """Raise every rate of a deck by 10% plus 0.000123 (a correction an operator makes)."""
    path = plans / "decks" / f"{plan_id}.csv"
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        rate = Decimal(row["rate"]) * Decimal("1.1") + Decimal("0.000123")
        row["rate"] = str(rate.quantize(Decimal("0.000000001")))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_duplicates_payments_and_rerating_keep_balances_exact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plans, cdrs, store = tmp_path / "plans", tmp_path / "cdrs.jsonl", tmp_path / "store"
    network = write_network(NetworkSpec(seed=41, cdrs=6_000, prefixes_per_plan=300), plans, cdrs)
    lines = cdrs.read_text().split("\n")
    _rate(plans, cdrs, store, tmp_path)
    reference: dict[str, dict[str, Any]] = rate_reference(plans, lines).rows
    assert _balances(store, capsys) == _expected(reference, [])

    tenant = network.tenant_ids[0]
    reseller = network.paid_reseller_ids[0]
    customer = next(r["customer_id"] for r in reference.values() if r["tenant_id"] == tenant)
    client = next(r["client_id"] for r in reference.values() if r["tenant_id"] == tenant)
    currency_of: dict[tuple[str, str, str], str] = {
        (r["tenant_id"], "reseller", r["reseller_id"]): r["reseller_currency"]
        for r in reference.values()
        if r["reseller_currency"]
    }
    payments: list[dict[str, str]] = [
        {
            "id": "pay-1",
            "tenant": tenant,
            "kind": "customer_payment_in",
            "account": customer,
            "amount": "100.10",
            "currency": "EUR",
        },
        {
            "id": "pay-2",
            "tenant": tenant,
            "kind": "client_payout_out",
            "account": client,
            "amount": "12.000001",
            "currency": "USD",
        },
        {
            "id": "pay-3",
            "tenant": tenant,
            "kind": "reseller_payout_out",
            "account": reseller,
            "amount": "7.5",
            "currency": currency_of[(tenant, "reseller", reseller)],
        },
        {
            "id": "pay-4",
            "tenant": tenant,
            "kind": "customer_payment_in",
            "account": "prepaid-only",
            "amount": "3",
            "currency": "EUR",
        },
    ]
    for payment in [*payments, payments[2]]:  # the reseller payout recorded twice
        assert (
            main(
                [
                    "record-payment",
                    "--store",
                    str(store),
                    "--payment-id",
                    payment["id"],
                    "--tenant",
                    payment["tenant"],
                    "--kind",
                    payment["kind"],
                    "--account",
                    payment["account"],
                    "--amount",
                    payment["amount"],
                    "--currency",
                    payment["currency"],
                ]
            )
            == 0
        )
    assert _balances(store, capsys) == _expected(reference, payments)

    _rate(plans, cdrs, store, tmp_path)  # every CDR delivered again
    assert _balances(store, capsys) == _expected(reference, payments)

    corrected = tmp_path / "plans-corrected"
    shutil.copytree(plans, corrected)
    _correct_deck(corrected, network.plan_ids[0])
    _correct_deck(corrected, network.plan_ids[-1])
    start, end = "2026-03-10T00:00:00Z", "2026-03-20T12:00:00Z"
    window = (datetime(2026, 3, 10, tzinfo=UTC), datetime(2026, 3, 20, 12, tzinfo=UTC))
    rerate = [
        "rerate",
        "--store",
        str(store),
        "--plans",
        str(corrected),
        "--tenant",
        tenant,
        "--from",
        start,
        "--to",
        end,
    ]
    assert main(rerate) == 0
    first = capsys.readouterr().out
    assert "change +" in first
    after_once = _balances(store, capsys)
    assert main(rerate) == 0
    assert "change +0" in capsys.readouterr().out
    after_twice = _balances(store, capsys)
    assert after_once == after_twice

    corrected_rows: dict[str, dict[str, Any]] = rate_reference(corrected, lines).rows
    expected_rows = {
        cdr_id: (
            corrected_rows[cdr_id]
            if row["tenant_id"] == tenant and window[0] <= row["start_time"] < window[1]
            else row
        )
        for cdr_id, row in reference.items()
    }
    assert after_twice == _expected(expected_rows, payments)
    assert after_twice != _expected(reference, payments)  # the correction moved money


def test_preaggregated_and_live_sums_agree_as_data_changes(tmp_path: Path) -> None:
    plans, cdrs, store_dir = tmp_path / "plans", tmp_path / "cdrs.jsonl", tmp_path / "store"
    write_network(NetworkSpec(seed=42, cdrs=3_000, prefixes_per_plan=200), plans, cdrs)
    _rate(plans, cdrs, store_dir, tmp_path)
    with EmbeddedStore(store_dir) as store:
        live = store.query("SELECT * FROM balances ORDER BY ALL").to_pylist()
        fresh = store.query("SELECT count() AS n FROM balance_fresh_partitions").to_pylist()
        assert fresh == [{"n": 0}]
        summary = refresh_balances(store)
        assert summary.stored == summary.stale > 0
        assert store.query("SELECT * FROM balances ORDER BY ALL").to_pylist() == live
        assert refresh_balances(store).stale == 0  # nothing changed since
        overview = billing_overview(store).to_pylist()
    # A re-delivery of the whole file touches every partition: all stale, still exact.
    _rate(plans, cdrs, store_dir, tmp_path)
    with EmbeddedStore(store_dir) as store:
        stale = store.query("SELECT count() AS n FROM balance_fresh_partitions").to_pylist()
        assert stale == [{"n": 0}]
        assert store.query("SELECT * FROM balances ORDER BY ALL").to_pylist() == live
        refresh_balances(store)
        assert store.query("SELECT * FROM balances ORDER BY ALL").to_pylist() == live
        assert billing_overview(store).to_pylist() == overview


def test_rerating_with_unchanged_decks_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plans, cdrs, store = tmp_path / "plans", tmp_path / "cdrs.jsonl", tmp_path / "store"
    network = write_network(NetworkSpec(seed=43, cdrs=2_000, prefixes_per_plan=200), plans, cdrs)
    _rate(plans, cdrs, store, tmp_path)
    before = _balances(store, capsys)
    for tenant in network.tenant_ids:
        args = [
            "rerate",
            "--store",
            str(store),
            "--plans",
            str(plans),
            "--tenant",
            tenant,
            "--from",
            "2026-01-01T00:00:00Z",
            "--to",
            "2026-05-01T00:00:00Z",
        ]
        assert main(args) == 0
    out = capsys.readouterr().out
    assert "change +0" in out
    assert "change +0." not in out.replace("change +0.000000", "")
    assert _balances(store, capsys) == before


def test_bad_payments_are_refused_with_the_field_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    with EmbeddedStore(store) as opened:
        opened.migrate()
    base = [
        "record-payment",
        "--store",
        str(store),
        "--payment-id",
        "x",
        "--tenant",
        "t",
        "--account",
        "a",
    ]
    with pytest.raises(SystemExit) as refused:  # the command line refuses it before any store
        main([*base, "--kind", "refund", "--amount", "1", "--currency", "EUR"])
    assert refused.value.code == 2
    assert "invalid choice: 'refund'" in capsys.readouterr().err
    cases = [
        (["--kind", "customer_payment_in", "--amount", "-1", "--currency", "EUR"], "amount '-1'"),
        (["--kind", "customer_payment_in", "--amount", "0", "--currency", "EUR"], "greater than 0"),
        (
            ["--kind", "customer_payment_in", "--amount", "1.1234567", "--currency", "EUR"],
            "at most 6 decimal places",
        ),
        (["--kind", "customer_payment_in", "--amount", "1e3", "--currency", "EUR"], "amount '1e3'"),
        (["--kind", "customer_payment_in", "--amount", "1", "--currency", "XYZ"], "currency 'XYZ'"),
    ]
    for extra, message in cases:
        assert main([*base, *extra]) == 2
        assert message in capsys.readouterr().err
    assert main([*base, "--kind", "customer_payment_in", "--amount", "5", "--currency", "EUR"]) == 0
    assert main([*base, "--kind", "customer_payment_in", "--amount", "6", "--currency", "EUR"]) == 2
    assert "already recorded" in capsys.readouterr().err


def test_live_rating_and_rerating_at_once_stay_exact(tmp_path: Path) -> None:
    """Live writes (new CDRs and re-deliveries) race a re-rating of the same window.

    Decided rule: the later write wins, per CDR. Whatever the interleaving, every CDR has one
    current row, that row is entirely the rating of one reference-data version (no mix), the
    CDRs only the re-rating touched carry the corrected rating, and balances equal the sums of
    the current rows to the last decimal, pre-aggregated or not.
    """
    import threading

    import polars as pl

    from pipeline.rating.decode import decode_cdrs
    from pipeline.rating.engine import rate_batch
    from pipeline.reference.loader import load_plans_folder
    from pipeline.services.rerate import rerate_window
    from pipeline.sinks.clickhouse_server import ServerSettings, ServerStore
    from pipeline.testing.clickhouse_http import ChdbHttpServer

    plans, cdrs = tmp_path / "plans", tmp_path / "cdrs.jsonl"
    network = write_network(NetworkSpec(seed=44, cdrs=3_000, prefixes_per_plan=200), plans, cdrs)
    corrected = tmp_path / "plans-corrected"
    shutil.copytree(plans, corrected)
    for plan_id in network.plan_ids:
        _correct_deck(corrected, plan_id)
    old_ref, new_ref = load_plans_folder(plans), load_plans_folder(corrected)
    lines = [line.encode() for line in cdrs.read_text().splitlines() if line.strip()]
    before, live = lines[: len(lines) // 2], lines[len(lines) // 2 :]
    redelivered = before[::7]
    tenant = network.tenant_ids[0]

    def write(store: ServerStore, chunk: list[bytes]) -> None:
        decoded = decode_cdrs(chunk)
        store.write_call_history(rate_batch(decoded.good, old_ref, datetime.now(UTC)))

    with ChdbHttpServer(tmp_path / "clickhouse") as server:
        settings = ServerSettings.from_url(f"{server.url}/race")
        with ServerStore(settings) as store:
            store.migrate()
            write(store, before)
        errors: list[BaseException] = []

        def live_writer() -> None:
            try:
                with ServerStore(settings) as store:
                    for start in range(0, len(live), 100):
                        write(store, live[start : start + 100])
                        write(store, redelivered[start // 100 :: 15])
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        thread = threading.Thread(target=live_writer)
        thread.start()
        with ServerStore(settings) as store:
            rerate_window(
                store,
                new_ref,
                tenant,
                datetime(2026, 1, 1, tzinfo=UTC),
                datetime(2026, 6, 1, tzinfo=UTC),
            )
        thread.join()
        assert not errors, errors
        with ServerStore(settings) as store:
            current = pl.from_arrow(store.query("SELECT * FROM call_history_current"))
            live_balances = store.query("SELECT * FROM balances ORDER BY ALL").to_pylist()
            refresh_balances(store)
            stored_balances = store.query("SELECT * FROM balances ORDER BY ALL").to_pylist()
    assert isinstance(current, pl.DataFrame)

    text = [line.decode() for line in lines]
    expected = {
        old_ref.version: rate_reference(plans, text).rows,
        new_ref.version: rate_reference(corrected, text).rows,
    }
    valid = set(expected[old_ref.version])
    assert current["cdr_id"].n_unique() == current.height
    assert set(current["cdr_id"].to_list()) == valid
    redelivered_ids = {json.loads(line)["cdr_id"] for line in redelivered}
    for row in current.to_dicts():
        want = expected[row["reference_version"]][row["cdr_id"]]
        for leg in LEGS:
            assert row[f"{leg}_amount"] == want[f"{leg}_amount"], (row["cdr_id"], leg)
        if (
            row["tenant_id"] == tenant
            and row["cdr_id"] not in redelivered_ids
            and json.dumps(row["cdr_id"]).encode() in b"".join(before)
        ):
            assert row["reference_version"] == new_ref.version, row["cdr_id"]

    sums: dict[Key, Decimal] = defaultdict(Decimal)
    accounts = {"customer": "customer_id", "client": "client_id", "reseller": "reseller_id"}
    for row in current.to_dicts():
        for leg in LEGS:
            if row[f"{leg}_amount"] is not None:
                key = (row["tenant_id"], leg, row[accounts[leg]], row[f"{leg}_currency"])
                sums[key] += row[f"{leg}_amount"]
    assert stored_balances == live_balances
    assert {
        (b["tenant_id"], b["scope"], b["account_id"], b["currency"]): b["amount"]
        for b in stored_balances
    } == sums
