ALTER TABLE credit_balances DROP COLUMN held_soonest;
ALTER TABLE credit_balances DROP COLUMN held;
