-- Billing: plans sold through Stripe, each user's Stripe customer and subscriptions, the
-- payments that granted credits (so refunds find what to take back) and every webhook
-- event received (its id is the idempotency key of its effects).

CREATE TABLE plans (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('one_time', 'subscription')),
    -- credits in cents, like the ledger
    credits         BIGINT NOT NULL CHECK (credits > 0),
    -- price in the currency's minor units
    price           BIGINT NOT NULL CHECK (price >= 0),
    currency        TEXT NOT NULL,
    "interval"      TEXT CHECK ("interval" IN ('month', 'year')),
    stripe_price_id TEXT NOT NULL CONSTRAINT plans_stripe_price_id_unique UNIQUE,
    active          BOOLEAN NOT NULL DEFAULT TRUE,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

CREATE TABLE billing_customers (
    user_id            INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    stripe_customer_id TEXT NOT NULL CONSTRAINT billing_customers_stripe_id_unique UNIQUE,
    created_at         TEXT NOT NULL
);

CREATE TABLE billing_subscriptions (
    stripe_subscription_id TEXT PRIMARY KEY,
    user_id                INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    plan_id                TEXT REFERENCES plans (id),
    status                 TEXT NOT NULL,
    current_period_end     TEXT,
    cancel_at_period_end   BOOLEAN NOT NULL DEFAULT FALSE,
    -- `created` (unix seconds) of the newest event applied: older ones are ignored
    last_event_created     BIGINT NOT NULL,
    updated_at             TEXT NOT NULL
);
CREATE INDEX billing_subscriptions_user_idx ON billing_subscriptions (user_id);

CREATE TABLE payments (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id             INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- the checkout session (cs_…) or invoice (in_…) that paid: one grant per reference
    reference           TEXT NOT NULL CONSTRAINT payments_reference_unique UNIQUE,
    kind                TEXT NOT NULL,
    plan_id             TEXT REFERENCES plans (id),
    payment_intent      TEXT,
    charge_id           TEXT,
    amount              BIGINT NOT NULL,
    currency            TEXT NOT NULL,
    credits             BIGINT NOT NULL,
    amount_refunded     BIGINT NOT NULL DEFAULT 0,
    credits_clawed_back BIGINT NOT NULL DEFAULT 0,
    created_at          TEXT NOT NULL
);
CREATE INDEX payments_payment_intent_idx ON payments (payment_intent);
CREATE INDEX payments_charge_idx ON payments (charge_id);

CREATE TABLE billing_events (
    id             TEXT PRIMARY KEY,
    event_type     TEXT NOT NULL,
    -- applied | ignored | unmatched (duplicates are answered but not stored twice)
    outcome        TEXT NOT NULL,
    user_id        INTEGER REFERENCES users (id) ON DELETE SET NULL,
    detail         TEXT,
    stripe_created BIGINT NOT NULL,
    received_at    TEXT NOT NULL
);
CREATE INDEX billing_events_outcome_idx ON billing_events (outcome, received_at);

-- Refunds and disputes may take a balance below zero (spending still never does: a debit
-- requires balance >= amount). SQLite cannot drop a constraint: the table is rebuilt.
CREATE TABLE credit_balances_new (
    user_id    INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    balance    BIGINT NOT NULL,
    updated_at TEXT NOT NULL
);
INSERT INTO credit_balances_new (user_id, balance, updated_at)
    SELECT user_id, balance, updated_at FROM credit_balances;
DROP TABLE credit_balances;
ALTER TABLE credit_balances_new RENAME TO credit_balances;
