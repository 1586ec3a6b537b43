-- Second factors: an authenticator app (TOTP), recovery codes, and the pending second
-- step of a login.

-- One authenticator per account. Unconfirmed until the first correct code. The secret is
-- stored as given (base32) and never logged; last_step is the last accepted RFC 6238 time
-- step, so a code is accepted once.
CREATE TABLE mfa_totp (
    user_id      BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret       TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    confirmed_at TIMESTAMPTZ,
    last_step    BIGINT
);

-- Recovery codes, stored only as SHA-256, single use.
CREATE TABLE mfa_recovery_codes (
    code_hash  TEXT PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
);
CREATE INDEX mfa_recovery_codes_user_idx ON mfa_recovery_codes (user_id);

-- The second step of a login: 32 random bytes stored as SHA-256, single use, 5 minutes.
CREATE TABLE mfa_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX mfa_tokens_expires_at_idx ON mfa_tokens (expires_at);
