-- Holds (DESIGN §15): credits reserved for work priced afterwards. A hold counts against
-- what can be spent while it is `held` and its expires_at is in the future; capturing it
-- writes one `credit_used` ledger row (reference_id = the hold's) for the captured part.

CREATE TABLE credit_holds (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id         INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    amount          BIGINT NOT NULL CONSTRAINT credit_holds_positive CHECK (amount > 0),
    -- held | captured | released | expired
    status          TEXT NOT NULL,
    reference_id    TEXT NOT NULL,
    description     TEXT,
    created_at      TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    captured_amount BIGINT,
    transaction_id  INTEGER REFERENCES credit_transactions (id) ON DELETE SET NULL,
    settled_at      TEXT,
    -- the idempotency key of hold creation
    CONSTRAINT credit_holds_reference_unique UNIQUE (user_id, reference_id)
);
CREATE INDEX credit_holds_user_idx ON credit_holds (user_id, id);
-- what counts as held, and what the expiry job looks for
CREATE INDEX credit_holds_active_idx ON credit_holds (expires_at) WHERE status = 'held';
