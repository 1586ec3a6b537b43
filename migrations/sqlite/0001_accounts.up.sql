-- Accounts, login sessions, emailed one-time tokens and the mail outbox.
-- Timestamps are RFC 3339 text in UTC (what sqlx writes for chrono), which sorts in time order.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT NOT NULL,
    -- lowercased username: uniqueness and lookups ignore case
    username_key  TEXT NOT NULL CONSTRAINT users_username_key_unique UNIQUE,
    email         TEXT NOT NULL CONSTRAINT users_email_unique UNIQUE,
    password_hash TEXT NOT NULL,
    is_admin      BOOLEAN NOT NULL DEFAULT FALSE,
    is_active     BOOLEAN NOT NULL DEFAULT TRUE,
    is_verified   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

CREATE TABLE sessions (
    id                    TEXT PRIMARY KEY,
    user_id               INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- SHA-256 of the current refresh token, and of the one it replaced (reuse detection)
    refresh_token_hash    TEXT NOT NULL CONSTRAINT sessions_refresh_token_hash_unique UNIQUE,
    previous_refresh_hash TEXT,
    rotated_at            TEXT,
    created_at            TEXT NOT NULL,
    expires_at            TEXT NOT NULL,
    last_seen_at          TEXT NOT NULL,
    revoked_at            TEXT,
    ip                    TEXT,
    user_agent            TEXT
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_previous_refresh_hash_idx ON sessions (previous_refresh_hash);

CREATE TABLE email_tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL,
    token_hash TEXT NOT NULL CONSTRAINT email_tokens_token_hash_unique UNIQUE,
    -- the address the token was sent to; a verification only counts for that address
    email      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
);
CREATE INDEX email_tokens_user_purpose_idx ON email_tokens (user_id, purpose);

CREATE TABLE mail_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    text_body       TEXT NOT NULL,
    html_body       TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    locked_until    TEXT,
    sent_at         TEXT,
    last_error      TEXT
);
CREATE INDEX mail_outbox_due_idx ON mail_outbox (next_attempt_at) WHERE sent_at IS NULL;
