DROP TABLE credit_transactions;
DROP TABLE credit_balances;
