-- Sign in with OpenID Connect providers: pending authorizations and linked identities.

-- One row per authorization in flight: the state is the key (stored as its SHA-256), used
-- once (the callback deletes it), valid 10 minutes. The PKCE verifier is never stored: it
-- is derived from the state with the service's key, so any instance can finish the flow.
CREATE TABLE oauth_states (
    state_hash   TEXT PRIMARY KEY,
    provider     TEXT NOT NULL,
    -- 'login' or 'link'
    intent       TEXT NOT NULL,
    -- for 'link': the account that asked; only it may finish the flow
    user_id      INTEGER REFERENCES users (id) ON DELETE CASCADE,
    nonce_hash   TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL
);
CREATE INDEX oauth_states_expires_at_idx ON oauth_states (expires_at);

CREATE TABLE identities (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    provider  TEXT NOT NULL,
    -- the provider's `sub`: stable for the account at that provider
    subject   TEXT NOT NULL,
    user_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- the address the provider gave at linking (informational; matching is by subject)
    email     TEXT,
    linked_at TEXT NOT NULL,
    CONSTRAINT identities_provider_subject_unique UNIQUE (provider, subject),
    CONSTRAINT identities_user_provider_unique UNIQUE (user_id, provider)
);
