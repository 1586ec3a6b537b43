-- The audit trail, and every retired refresh token (so reuse of any rotated token, not
-- only the last one, is recognised and revokes its session).

CREATE TABLE user_activity (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    -- no foreign key: the trail outlives a deleted account
    user_id    INTEGER,
    event      TEXT NOT NULL,
    ip         TEXT,
    user_agent TEXT,
    -- a small JSON object; never a secret
    details    TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL
);
CREATE INDEX user_activity_user_id_idx ON user_activity (user_id, id);

CREATE TABLE retired_refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    retired_at TEXT NOT NULL
);
CREATE INDEX retired_refresh_tokens_session_id_idx ON retired_refresh_tokens (session_id);

DROP INDEX sessions_previous_refresh_hash_idx;
ALTER TABLE sessions DROP COLUMN previous_refresh_hash;
ALTER TABLE sessions DROP COLUMN rotated_at;
