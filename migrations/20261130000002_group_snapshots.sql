-- The latest snapshot of each group's folded state (src/groups/state.rs `Snapshot`), so that
-- loading a group reads it and the events after it instead of the whole log.
CREATE TABLE group_snapshots (
    group_id   TEXT PRIMARY KEY REFERENCES group_sessions (id),
    seq        BIGINT NOT NULL,
    state      TEXT NOT NULL,     -- JSON
    created_at BIGINT NOT NULL
);
