-- The expiry of unused accounts asks whether a user ever acted in a room. Only the events that
-- make a user a member, or ask to be one, need the index: every other event's actor was a
-- member first (a joiner's own `member_joined`, an admitted user's `join_requested`, or the
-- host's row in group_members). Indexing every event put one more B-tree leaf at a random
-- place into every room operation's write.
DROP INDEX group_events_by_actor;
CREATE INDEX group_events_by_joiner ON group_events (actor_user_id)
    WHERE kind IN ('member_joined', 'join_requested');
