"""The roster files are optional, versioned with the folder, and travel with a publication."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import polars as pl
import pyarrow as pa
from polars.testing import assert_frame_equal

from pipeline.config import ReferenceTopics
from pipeline.rating.reference import ReferenceData
from pipeline.reference.files import FolderPlanFiles, PublishedPlanFiles
from pipeline.reference.loader import load_plans, load_plans_folder
from pipeline.reference.topics import Manifest, PublishedState, chunks_of, manifest_key
from tests.builders import association, cdr, deck_row, membership, plan, rate_table, write_plans

ROSTER = {
    "accounts.csv": (
        "tenant_id,scope,account_id,name,company,email,billing_type,credit_limit,currency,status\n"
        "t1,reseller,res,Reseller,Res Ltd,res@example.com,postpaid,250.75,EUR,inactive\n"
        "t1,client,gw,Gateway,,,postpaid,,,active\n"
    ),
    "join_codes.csv": "tenant_id,code,reseller_id\nt1,JOIN-RES,res\nt1,WALK-IN,\n",
    "enrollments.csv": (
        "client_id,join_code,enrolled_at\n"
        "gw,JOIN-RES,2026-03-10T00:00:00Z\n"
        "gw,WALK-IN,2026-03-20T00:00:00Z\n"
    ),
}
CALLS = [
    cdr(cdr_id=f"c{day}", start_time=f"2026-03-{day:02d}T12:00:00Z") for day in (2, 12, 22)
] + [cdr(cdr_id="member", client_id="gw2", start_time="2026-03-12T12:00:00Z")]


def _fixture(root: Path) -> Path:
    """A section-4 folder as the other tests build them: plans, decks, associations, memberships."""
    return write_plans(
        root,
        [plan("P", "customer"), plan("R", "reseller", currency="USD")],
        {"P": [deck_row("44", "0.01")], "R": [deck_row("44", "0.001")]},
        [association("customer", "cust", "P"), association("reseller", "res", "R")],
        [membership("gw2", "res")],
    )


def _section_4_version(folder: Path) -> str:
    """The content version as the loader digested a section-4 folder before the roster files.

    Written from the rule (each file's path, a NUL and its bytes, in reading order; a deck by its
    own digest), not by calling the loader.
    """
    digest = hashlib.sha256()
    plans = folder / "plans.csv"
    digest.update(b"plans.csv\0" + plans.read_bytes())
    for line in plans.read_text().splitlines()[1:]:
        deck = f"decks/{line.split(',')[0]}.csv"
        digest.update(hashlib.sha256(deck.encode() + b"\0" + (folder / deck).read_bytes()).digest())
    for name in ("associations.csv", "memberships.csv"):
        digest.update(name.encode() + b"\0" + (folder / name).read_bytes())
    return digest.hexdigest()[:16]


def test_a_folder_without_the_roster_files_keeps_its_version(tmp_path: Path) -> None:
    fixture = _fixture(tmp_path / "fixture")
    copy = Path(shutil.copytree(fixture, tmp_path / "copy"))
    before = load_plans_folder(fixture)
    assert before.version == _section_4_version(fixture)
    for name, text in ROSTER.items():
        (copy / name).write_text(text)
    assert load_plans_folder(copy).version != before.version
    for name in ROSTER:
        (copy / name).unlink()
    after = load_plans_folder(copy)
    assert after.version == before.version
    assert after.roster.accounts.is_empty()
    assert after.roster.join_codes.is_empty()
    assert after.roster.enrollments.is_empty()
    assert _bytes(rate_table(after, CALLS)) == _bytes(rate_table(before, CALLS))


def test_accounts_alone_change_the_version_but_no_rated_amount(tmp_path: Path) -> None:
    fixture = _fixture(tmp_path / "fixture")
    with_accounts = Path(shutil.copytree(fixture, tmp_path / "accounts"))
    (with_accounts / "accounts.csv").write_text(ROSTER["accounts.csv"])
    plain, listed = load_plans_folder(fixture), load_plans_folder(with_accounts)
    assert listed.version != plain.version
    assert (
        rate_table(listed, CALLS)
        .drop_columns("reference_version")
        .equals(rate_table(plain, CALLS).drop_columns("reference_version"))
    )


def test_a_publication_carries_the_roster_and_attributes_the_same(tmp_path: Path) -> None:
    folder = _fixture(tmp_path)
    for name, text in ROSTER.items():
        (folder / name).write_text(text)
    files = FolderPlanFiles(folder).all_files()
    assert set(ROSTER) <= set(files)
    from_folder = load_plans_folder(folder)
    # As a rater reassembles it from the topics: chunks and manifest in, files out.
    topics = ReferenceTopics()
    chunks, entries = chunks_of(from_folder.version, files, topics)
    state = PublishedState()
    for offset, chunk in enumerate(chunks):
        state.apply(chunk.topic, chunk.key, chunk.value, dict(chunk.headers), offset)  # type: ignore[arg-type]
    manifest = Manifest(from_folder.version, "2026-04-01T00:00:00Z", entries)
    state.apply(
        topics.rateplans, manifest_key(manifest.version), manifest.to_bytes(), {}, len(chunks)
    )
    assembled = state.assemble(manifest)
    assert isinstance(assembled, dict)
    assert assembled == files
    from_topics = load_plans(PublishedPlanFiles(assembled))
    assert from_topics.version == from_folder.version
    _same_roster(from_topics, from_folder)
    published = rate_table(from_topics, CALLS)
    assert published.equals(rate_table(from_folder, CALLS))
    assert published.column("reseller_id").to_pylist() == [None, "res", None, "res"]


def _same_roster(left: ReferenceData, right: ReferenceData) -> None:
    for name in ("accounts", "join_codes", "enrollments"):
        assert_frame_equal(getattr(left.roster, name), getattr(right.roster, name))
    assert not left.roster.accounts.is_empty()


def _bytes(table: pa.Table) -> bytes:
    """The table as Arrow IPC bytes: equal bytes, equal rows and types."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def test_the_roster_frames_have_their_schema_even_when_empty(tmp_path: Path) -> None:
    roster = load_plans_folder(_fixture(tmp_path)).roster
    assert roster.accounts.schema["credit_limit"] == pl.Decimal(38, 9)
    assert roster.enrollments.schema["enrolled_at"] == pl.Datetime("us", "UTC")
    assert roster.join_codes.columns == ["tenant_id", "code", "reseller_id"]
