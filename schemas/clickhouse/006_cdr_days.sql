-- Corrected CDRs that move to another day (a cdr_id published again with another start_time).
--
-- (001 says a CDR's start_time never changes; a correction can change it.)
-- call_history replaces versions only within a partition (a day of start_time), so a version
-- in another day's partition stays current there, and everything that reads a partition on
-- its own (the per-partition balance sums, a start_time window on servers before 26.3, a
-- re-rating of that window) would still count it. The invariant kept by the writers
-- (pipeline/sinks/moved_cdrs.py): only one partition holds a CDR's live versions; an older
-- version in another day is hidden there by a tombstone, a row with status 'superseded', NULL
-- legs, start_time at midnight of that day and a rated_at 1 microsecond before the version
-- that replaces it (it wins within the old partition and loses across partitions).
--
-- cdr_days is the writers' key index: per CDR key and day, the rated_at of that partition's
-- current row and whether it is a tombstone. Narrow and unpartitioned, so it merges into few
-- parts and a batch's keys are looked up without touching call_history. key is
-- cityHash64(tenant_id, cdr_id), call history's sharding key: on a cluster a key's rows live on
-- the shard that holds the CDR.
CREATE TABLE IF NOT EXISTS cdr_days
(
    key UInt64,
    day Date,
    rated_at DateTime64(6, 'UTC'),
    superseded Bool
)
ENGINE = ReplacingMergeTree(rated_at)
ORDER BY (key, day)
SETTINGS index_granularity = 256;

-- Backfill from the call history already stored: the current row of each CDR in each day
-- (FINAL within each partition). The migration step then writes the tombstones that CDRs
-- already moved by the old write path are missing (the balances refresh does on a cluster).
INSERT INTO cdr_days (key, day, rated_at, superseded)
SELECT cityHash64(tenant_id, cdr_id), toDate(start_time), rated_at, status = 'superseded'
FROM call_history FINAL
SETTINGS do_not_merge_across_partitions_select_final = 1;

-- Call history as operators read it: one current row per CDR, never a tombstone. (005's
-- reseller_call_history needs no change: a tombstone has no reseller_id, so no reseller's row
-- is ever one, and a reseller's column grants do not include status.)
CREATE OR REPLACE VIEW call_history_current AS
SELECT *, ifNull(reseller_id, 'Direct') AS reseller, reseller_amount AS reseller_cost
FROM call_history FINAL
WHERE status != 'superseded';
