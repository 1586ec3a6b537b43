DROP TABLE credit_holds;
