-- When an account last authenticated (NULL: not since it was created), so accounts that were
-- never used again can expire.
ALTER TABLE users ADD COLUMN last_seen_at BIGINT;
-- Rooms a user created recently (the per-user room quota).
CREATE INDEX group_sessions_by_host ON group_sessions (host_user_id, created_at);
-- What the expiry of unused accounts looks up per account (see storage::users::delete_unused).
CREATE INDEX exposures_by_user ON exposures (user_id);
CREATE INDEX group_members_by_user ON group_members (user_id);
CREATE INDEX group_events_by_actor ON group_events (actor_user_id);
CREATE INDEX experiment_assignments_by_user ON experiment_assignments (user_id);
