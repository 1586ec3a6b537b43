-- The credits ledger. Amounts are integer cents. A balance row and its ledger rows
-- change together, in one statement or transaction; the ledger sums to the balance.

CREATE TABLE credit_balances (
    user_id    INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    balance    BIGINT NOT NULL CONSTRAINT credit_balances_non_negative CHECK (balance >= 0),
    updated_at TEXT NOT NULL
);

CREATE TABLE credit_transactions (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id          INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- always positive; the type says which way it moved the balance
    amount           BIGINT NOT NULL CONSTRAINT credit_transactions_positive CHECK (amount > 0),
    -- credit_added | credit_used (purchase | refund reserved for payments)
    transaction_type TEXT NOT NULL,
    reference_id     TEXT,
    description      TEXT,
    -- the balance right after this transaction
    balance_after    BIGINT NOT NULL,
    created_at       TEXT NOT NULL,
    -- idempotency key per (user, type); NULL references never collide
    CONSTRAINT credit_transactions_reference_unique UNIQUE (user_id, transaction_type, reference_id)
);
CREATE INDEX credit_transactions_user_id_idx ON credit_transactions (user_id, id);
