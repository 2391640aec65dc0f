-- Spotify sign-in for hosts (src/spotify): logins in flight (the PKCE verifier waits here for
-- the callback, keyed by the random `state`, so any process can finish a login), each user's
-- tokens, and each room's exported playlist (a second export updates the same playlist).
CREATE TABLE spotify_logins (
    state      TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    verifier   TEXT NOT NULL,
    return_to  TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE spotify_accounts (
    user_id         TEXT PRIMARY KEY REFERENCES users (id),
    spotify_user_id TEXT NOT NULL,
    display_name    TEXT,
    access_token    TEXT NOT NULL,
    refresh_token   TEXT,
    expires_at      BIGINT NOT NULL,  -- ms since the epoch
    scopes          TEXT NOT NULL,
    -- `connected`, or `reconnect` once Spotify refused the refresh token (revoked, expired).
    status          TEXT NOT NULL,
    connected_at    BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE spotify_exports (
    group_id    TEXT PRIMARY KEY REFERENCES group_sessions (id),
    user_id     TEXT NOT NULL REFERENCES users (id),
    playlist_id TEXT NOT NULL,
    url         TEXT NOT NULL,
    exported_at BIGINT NOT NULL
);
