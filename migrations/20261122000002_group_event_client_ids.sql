-- The client's id for the operation that produced an event, so a retried operation (after a
-- reconnect, or a restart) is acknowledged with its original seq instead of applied twice.
ALTER TABLE group_events ADD COLUMN client_msg_id TEXT;
