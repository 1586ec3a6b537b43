-- Outgoing webhooks (DESIGN §16): endpoints, the event outbox and one delivery per
-- (event, subscribed endpoint). Events are written in the transaction of the change they
-- report; deliveries are fanned out in the same statement batch.
CREATE TABLE webhook_endpoints (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    url                   TEXT NOT NULL,
    -- ",user.created,credits.transaction," or "*": matched with LIKE on both backends
    events                TEXT NOT NULL,
    description           TEXT,
    enabled               BOOLEAN NOT NULL DEFAULT TRUE,
    -- encrypted with a key derived from SECRET_KEY
    secret_enc            TEXT NOT NULL,
    old_secret_enc        TEXT,
    old_secret_expires_at TEXT,
    -- first failure since the last success (disabled after 5 days of it)
    failing_since         TEXT,
    disabled_reason       TEXT,
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL
);

CREATE TABLE webhook_events (
    id         TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX webhook_events_created ON webhook_events (created_at);

CREATE TABLE webhook_deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id         TEXT NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    endpoint_id      INTEGER NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    status           TEXT NOT NULL DEFAULT 'pending',
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_status_code INTEGER,
    last_error       TEXT,
    next_attempt_at  TEXT NOT NULL,
    locked_until     TEXT,
    claim_token      TEXT,
    created_at       TEXT NOT NULL,
    delivered_at     TEXT,
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
