-- A room's log ends at its highest seq, which the (group_id, seq) key finds: the counter that
-- repeated it put one more B-tree leaf at a random place into every room operation's write
-- (docs/BENCHMARKS.md). Appends now read the end and insert after it with the room locked
-- (src/storage/writer.rs).
ALTER TABLE group_sessions DROP COLUMN last_seq;
