ALTER TABLE sessions ADD COLUMN rotated_at TEXT;
ALTER TABLE sessions ADD COLUMN previous_refresh_hash TEXT;
CREATE INDEX sessions_previous_refresh_hash_idx ON sessions (previous_refresh_hash);
DROP TABLE retired_refresh_tokens;
DROP TABLE user_activity;
