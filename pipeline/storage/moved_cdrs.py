"""Corrected CDRs that move to another day: the key index ``cdr_days`` and tombstones.

Call history is ``ReplacingMergeTree(rated_at)`` partitioned by day of ``start_time``, and a
ReplacingMergeTree replaces rows only within a partition. A CDR published again with another
start day (a correction) lands in another partition, and the older version stays current in
its old day's partition: every read that prunes partitions before FINAL (the per-partition
balance sums, a ``start_time`` window on servers before 26.3, a re-rating of that window)
would still see it. So the store keeps one invariant:

    **only one partition holds a CDR's live versions**; an older version that sits in another
    day's partition is hidden there by a **tombstone**: a row with the CDR's ids, ``status =
    'superseded'``, every leg NULL, ``start_time`` at midnight of that day and a ``rated_at``
    one microsecond before the version that replaces it, so that within the old partition it
    beats every older version and across partitions it loses to the current one.

Readers skip tombstones (``status != 'superseded'``); their amounts are NULL, so sums ignore
them anyway. ``cdr_days`` (``schemas/clickhouse/006_cdr_days.sql``) records, per CDR key
(``cityHash64(tenant_id, cdr_id)``, call history's sharding key) and day, the ``rated_at`` of
that partition's current row and whether it is a tombstone: what a writer needs to know where
a CDR's live version is, without touching call history.

:func:`write` is the write path of both stores: last row per CDR within the batch, one lookup
of the batch's keys in ``cdr_days``, then one INSERT of the rows and their tombstones, then
the batch's ``cdr_days`` rows. A crash between the two INSERTs leaves call history right and
``cdr_days`` behind; the batch is redelivered (offsets are committed after the write), looked
up against the same ``cdr_days`` and written again: the same tombstones again, harmless.
:func:`repair` is the safety net run before balances are stored: two raters writing the same
CDR from two Kafka partitions at the same moment both miss the other's row in ``cdr_days``;
repair finds keys with two live days and writes the missing tombstones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from string import Template

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.rating.columns import CALL_HISTORY_SCHEMA

SUPERSEDED = "superseded"
_TIME = pa.timestamp("us", tz="UTC")
_DAY_US = 86_400_000_000
_KEY_CHUNK = 4_000  # keys per repair query: an Array(UInt64) parameter stays under 128 KiB

CDR_DAYS_SCHEMA = pa.schema(
    [
        pa.field("key", pa.uint64(), nullable=False),
        pa.field("day", pa.date32(), nullable=False),
        pa.field("rated_at", _TIME, nullable=False),
        pa.field("superseded", pa.bool_(), nullable=False),
    ]
)
# What the lookup is sent: the batch's CDR ids, with their row position.
IDS_SCHEMA = pa.schema(
    [
        pa.field("position", pa.uint32(), nullable=False),
        pa.field("tenant_id", pa.string(), nullable=False),
        pa.field("cdr_id", pa.string(), nullable=False),
    ]
)
IDS_STRUCTURE = "position UInt32, tenant_id String, cdr_id String"
# Copied from the version a tombstone stands for (the row's ids); every other column is fixed
# (times, duration, status, rated_at) or NULL.
_TOMBSTONE_COPIED = frozenset(
    {
        "cdr_id",
        "session_id",
        "tenant_id",
        "customer_id",
        "client_id",
        "caller",
        "callee",
        "reference_version",
    }
)

# Per batch row: its key and every cdr_days row of that key (NULLs when the key is new).
# ``$ids`` is the table of the batch's ids: ``Python(ids)`` on the embedded engine, the
# external table ``ids`` sent with the query on a server. cdr_days is read without FINAL:
# the few rows per key are resolved in :func:`plan` (latest per day, a tombstone winning a tie,
# which is what a merge keeps: the tombstone is always inserted after what it hides). ``$in``
# is ``GLOBAL IN`` on a server, which may be a cluster: cdr_days is then Distributed and the set
# must be built where ``ids`` exists (the node the query came to) and sent to the shards; the
# embedded engine uses a plain ``IN`` (GLOBAL costs it ~50 ms per 50,000 keys at 10M rows).
KNOWN_DAYS_SQL = Template("""
SELECT b.position AS position, b.key AS key, k.day AS day, k.rated_at AS rated_at,
       k.superseded AS superseded
FROM (SELECT position, cityHash64(tenant_id, cdr_id) AS key FROM $ids) AS b
LEFT JOIN
(
    SELECT key, day, rated_at, superseded
    FROM cdr_days
    WHERE key $in (SELECT cityHash64(tenant_id, cdr_id) FROM $ids)
) AS k ON b.key = k.key
SETTINGS join_use_nulls = 1
""")

# The live days of keys with more than one (FINAL: each day's current row, tombstone or not).
# The inner query is the safety net's cost: one pass over cdr_days (0.55 s at 10M rows here);
# with no such key (the normal case) the outer read is pruned to nothing by the empty set.
# GLOBAL IN: a subquery over a Distributed table inside a query over one is denied otherwise.
CONFLICTS_SQL = """
SELECT key, day, rated_at
FROM cdr_days FINAL
WHERE NOT superseded AND key GLOBAL IN
(
    SELECT key FROM cdr_days FINAL WHERE NOT superseded GROUP BY key HAVING count() > 1
)
"""
# The current rows of some keys in some days, one per (CDR, day): FINAL within each partition.
_VERSIONS_SQL = """
SELECT *, cityHash64(tenant_id, cdr_id) AS key
FROM call_history FINAL
WHERE toDate(start_time) IN {days:Array(Date)}
  AND cityHash64(tenant_id, cdr_id) IN {keys:Array(UInt64)}
  AND status != 'superseded'
SETTINGS do_not_merge_across_partitions_select_final = 1
"""

Lookup = Callable[[pa.Table], pa.Table]
Insert = Callable[[str, pa.Table], None]
Query = Callable[[str, dict[str, object]], pa.Table]


@dataclass(frozen=True)
class WritePlan:
    """What one write inserts: call-history rows (tombstones included) and cdr_days rows."""

    call_history: pa.Table
    cdr_days: pa.Table
    rows: int  # rows of the batch written (after the last-row-per-CDR rule and drops)
    tombstones: int
    dropped: int  # rows older than the CDR's live version in another day (they would lose)


def latest_per_cdr(batch: pa.Table) -> pa.Table:
    """The last row of each (tenant_id, cdr_id) in ``batch``, in input order.

    Two versions of one CDR in one batch would otherwise be written with the same rated_at;
    in two partitions both would count. Kafka delivers a key's messages in order, so the last
    is the latest.
    """
    frame = pl.from_arrow(batch.select(["tenant_id", "cdr_id"]))
    assert isinstance(frame, pl.DataFrame)
    keep = (
        frame.with_row_index("row")
        .unique(subset=["tenant_id", "cdr_id"], keep="last", maintain_order=True)
        .get_column("row")
    )
    if keep.len() == batch.num_rows:
        return batch
    return batch.take(pa.array(keep.sort().to_numpy()))


def lookup_ids(rows: pa.Table) -> pa.Table:
    """The ids the key lookup is sent: position, tenant_id, cdr_id."""
    positions = pa.array(np.arange(rows.num_rows, dtype=np.uint32))
    return pa.Table.from_arrays(
        [positions, rows.column("tenant_id"), rows.column("cdr_id")], schema=IDS_SCHEMA
    )


def write(batch: pa.Table, lookup: Lookup, insert: Insert) -> WritePlan:
    """Write a call-history batch with tombstones for CDRs that moved; return what was written.

    ``batch`` has the call-history schema (checked by the caller); ``lookup`` runs
    :data:`KNOWN_DAYS_SQL` for a table of :data:`IDS_SCHEMA`; ``insert`` inserts an Arrow
    table into a named table and returns once the store acknowledged it.
    """
    rows = latest_per_cdr(batch)
    result = plan(rows, lookup(lookup_ids(rows)))
    if result.call_history.num_rows:
        insert("call_history", result.call_history)
    if result.cdr_days.num_rows:
        # After call history: a crash between the two repeats only harmless tombstones.
        insert("cdr_days", result.cdr_days)
    return result


def plan(rows: pa.Table, known: pa.Table) -> WritePlan:
    """Decide, without I/O, what to insert for ``rows`` given their ``known`` cdr_days rows.

    ``known`` has one or more rows per position of ``rows`` (``position``, ``key``, ``day``,
    ``rated_at``, ``superseded``; the last three NULL for a key never seen). Per row, with the
    live days of its CDR in other partitions:

    - one of them newer than the row: the row is dropped (it would lose anyway);
    - one of them exactly as new (one ``rate`` run stamps every batch alike): the row is
      written one microsecond later, so the later write wins as it does within a partition;
    - each of them older: a tombstone goes into that day, at the row's rated_at minus 1 µs.
    """
    count = rows.num_rows
    new = pl.DataFrame(
        {
            "position": np.arange(count, dtype=np.uint32),
            "new_day": _days(rows.column("start_time")),
            "new_at": _micros(rows.column("rated_at")),
        }
    )
    frame = pl.from_arrow(
        pa.table(
            {
                "position": known.column("position").cast(pa.uint32()),
                "key": known.column("key").cast(pa.uint64()),
                "day": known.column("day").cast(pa.date32()).cast(pa.int32()),
                "rated_at": known.column("rated_at").cast(_TIME).cast(pa.int64()),
                "superseded": known.column("superseded").cast(pa.bool_()),
            }
        )
    )
    assert isinstance(frame, pl.DataFrame)
    keys = frame.select("position", "key").unique("position").sort("position")
    if keys.height != count:
        msg = f"key lookup answered {keys.height} of {count} rows"
        raise RuntimeError(msg)
    live = (
        frame.drop_nulls("day")
        .sort("position", "day", "rated_at", "superseded")
        .group_by("position", "day", maintain_order=True)
        .last()
        .filter(~pl.col("superseded"))
    )
    others = live.join(new, on="position").filter(pl.col("day") != pl.col("new_day"))
    newest = others.group_by("position").agg(pl.col("rated_at").max().alias("other_at"))
    decided = new.join(newest, on="position", how="left").with_columns(
        drop=pl.col("other_at").fill_null(-1) > pl.col("new_at"),
        at=pl.when(pl.col("other_at") == pl.col("new_at"))
        .then(pl.col("new_at") + 1)
        .otherwise(pl.col("new_at")),
    )
    kept = decided.filter(~pl.col("drop")).sort("position")
    graves = (
        others.select("position", "day")
        .join(kept.select("position", "at"), on="position")
        .with_columns(pl.col("at") - 1)
        .sort("position", "day")
    )
    kept_positions = kept.get_column("position").to_numpy()
    # Usually every row is kept: no copy of the batch then.
    kept_rows = rows if kept.height == count else rows.take(pa.array(kept_positions))
    bumped = kept.get_column("at").to_numpy()
    if not np.array_equal(bumped, kept.get_column("new_at").to_numpy()):
        index = kept_rows.schema.get_field_index("rated_at")
        kept_rows = kept_rows.set_column(index, kept_rows.field(index), _timestamps(bumped))
    grave_positions = pa.array(graves.get_column("position").to_numpy())
    grave_days = graves.get_column("day").to_numpy()
    grave_at = graves.get_column("at").to_numpy()
    stones = tombstones(rows.take(grave_positions), grave_days, grave_at)
    key_of = keys.get_column("key").to_numpy()
    days = pa.Table.from_arrays(
        [
            pa.array(
                np.concatenate(
                    [
                        key_of[kept_positions],
                        key_of[grave_positions.to_numpy()],
                    ]
                ),
                pa.uint64(),
            ),
            _dates(np.concatenate([kept.get_column("new_day").to_numpy(), grave_days])),
            _timestamps(np.concatenate([bumped, grave_at])),
            pa.array(np.concatenate([np.zeros(kept.height, bool), np.ones(graves.height, bool)])),
        ],
        schema=CDR_DAYS_SCHEMA,
    )
    return WritePlan(
        call_history=pa.concat_tables([kept_rows, stones]),
        cdr_days=days,
        rows=kept.height,
        tombstones=graves.height,
        dropped=count - kept.height,
    )


def tombstones(versions: pa.Table, days: np.ndarray, rated_at: np.ndarray) -> pa.Table:
    """Tombstones for ``versions`` (call-history rows), one per row, in ``days`` at ``rated_at``.

    ``days`` are days since 1970-01-01 (a partition of call history), ``rated_at`` microseconds.
    """
    count = versions.num_rows
    start = _timestamps(np.asarray(days, dtype=np.int64) * _DAY_US)
    columns: list[pa.Array | pa.ChunkedArray] = []
    for field in CALL_HISTORY_SCHEMA:
        if field.name in _TOMBSTONE_COPIED:
            columns.append(versions.column(field.name))
        elif field.name in ("start_time", "end_time"):
            columns.append(start)
        elif field.name == "duration_ms":
            columns.append(pa.array(np.zeros(count, np.int64)))
        elif field.name == "status":
            columns.append(pa.array([SUPERSEDED] * count, pa.string()))
        elif field.name == "rated_at":
            columns.append(_timestamps(np.asarray(rated_at, dtype=np.int64)))
        else:
            columns.append(pa.nulls(count, field.type))
    return pa.Table.from_arrays(columns, schema=CALL_HISTORY_SCHEMA)


def repair(query: Query, insert: Insert) -> int:
    """Write the tombstones missing for CDRs live in two days; return how many were written.

    Reads ``cdr_days`` whole (the cost of the safety net, see docs/balances.md); for the keys
    it finds (normally none) reads their current rows from the days involved and plans them as
    a write would: the latest version (a later day wins a tie of rated_at) keeps its place,
    written again one microsecond later only if another day holds a version exactly as new,
    and every other day gets a tombstone.
    """
    conflicts = query(CONFLICTS_SQL, {})
    if conflicts.num_rows == 0:
        return 0
    frame = pl.from_arrow(
        pa.table(
            {
                "key": conflicts.column("key").cast(pa.uint64()),
                "day": conflicts.column("day").cast(pa.date32()).cast(pa.int32()),
                "rated_at": conflicts.column("rated_at").cast(_TIME).cast(pa.int64()),
            }
        )
    )
    assert isinstance(frame, pl.DataFrame)
    winners = frame.sort("key", "rated_at", "day").group_by("key", maintain_order=True).last()
    written = 0
    keys = winners.get_column("key").to_list()
    for start in range(0, len(keys), _KEY_CHUNK):
        chunk = winners.slice(start, _KEY_CHUNK)
        days = sorted({str(d) for d in _dates(chunk.get_column("day").to_numpy()).to_pylist()})
        found = query(_VERSIONS_SQL, {"days": days, "keys": chunk.get_column("key").to_list()})
        if found.num_rows == 0:
            continue
        written += _repair_chunk(found, chunk, frame, insert)
    return written


def repair_after_migration(query: Query, insert: Insert, database: str) -> int:
    """:func:`repair`, once the migrations applied created ``cdr_days`` (the migration step's end).

    Migration 006 backfills ``cdr_days`` from the call history already stored; this writes the
    tombstones that CDRs moved by the old write path are missing. A schema folder without 006
    (an older copy) has no key index and nothing is done.
    """
    exists = query(
        "SELECT count() AS n FROM system.tables WHERE database = {db:String} AND name = 'cdr_days'",
        {"db": database},
    )
    return repair(query, insert) if exists.column("n")[0].as_py() else 0


def _repair_chunk(
    found: pa.Table, winners: pl.DataFrame, states: pl.DataFrame, insert: Insert
) -> int:
    """Plan and write the winners of ``winners`` found in ``found`` against ``states``."""
    index = pl.from_arrow(
        pa.table(
            {
                "key": found.column("key").cast(pa.uint64()),
                "day": _days(found.column("start_time")),
                "rated_at": _micros(found.column("rated_at")),
            }
        )
    )
    assert isinstance(index, pl.DataFrame)
    matched = (
        index.with_row_index("row")
        .join(winners, on=["key", "day", "rated_at"])
        .unique("key", keep="first")
        .sort("row")
    )
    if matched.height == 0:
        return 0  # the versions changed since cdr_days was read: the next refresh looks again
    rows = call_history_rows(found).take(pa.array(matched.get_column("row").to_numpy()))
    known = (
        matched.with_row_index("position")
        .select("position", "key")
        .join(states, on="key")
        .with_columns(superseded=pl.lit(value=False))
    )
    result = plan(
        rows,
        pa.table(
            {
                "position": known.get_column("position").to_arrow().cast(pa.uint32()),
                "key": known.get_column("key").to_arrow(),
                "day": _dates(known.get_column("day").to_numpy()),
                "rated_at": _timestamps(known.get_column("rated_at").to_numpy()),
                "superseded": known.get_column("superseded").to_arrow(),
            }
        ),
    )
    # The winners are stored already: write one again only where it moved 1 µs later.
    assert result.dropped == 0, "a winner is the latest version of its CDR"
    written = result.call_history.slice(0, result.rows)
    moved = pc.not_equal(written.column("rated_at"), rows.column("rated_at"))
    insert(
        "call_history",
        pa.concat_tables([written.filter(moved), result.call_history.slice(result.rows)]),
    )
    insert("cdr_days", result.cdr_days)
    return result.tombstones


def call_history_rows(table: pa.Table) -> pa.Table:
    """``table``'s call-history columns, in the schema's types (a query result has extras)."""
    return table.select(CALL_HISTORY_SCHEMA.names).cast(CALL_HISTORY_SCHEMA)


def _micros(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(column.cast(_TIME).cast(pa.int64()).to_numpy(zero_copy_only=False))


def _days(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return (_micros(column) // _DAY_US).astype(np.int32)


def _timestamps(micros: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(micros, dtype=np.int64)).cast(_TIME)


def _dates(days: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(days, dtype=np.int32)).cast(pa.date32())
