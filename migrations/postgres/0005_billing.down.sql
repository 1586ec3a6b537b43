ALTER TABLE credit_balances ADD CONSTRAINT credit_balances_non_negative CHECK (balance >= 0);
DROP TABLE billing_events;
DROP TABLE payments;
DROP TABLE billing_subscriptions;
DROP TABLE billing_customers;
DROP TABLE plans;
