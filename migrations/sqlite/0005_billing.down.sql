CREATE TABLE credit_balances_old (
    user_id    INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    balance    BIGINT NOT NULL CONSTRAINT credit_balances_non_negative CHECK (balance >= 0),
    updated_at TEXT NOT NULL
);
INSERT INTO credit_balances_old (user_id, balance, updated_at)
    SELECT user_id, balance, updated_at FROM credit_balances;
DROP TABLE credit_balances;
ALTER TABLE credit_balances_old RENAME TO credit_balances;
DROP TABLE billing_events;
DROP TABLE payments;
DROP TABLE billing_subscriptions;
DROP TABLE billing_customers;
DROP TABLE plans;
