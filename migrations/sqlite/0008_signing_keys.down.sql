DROP INDEX signing_keys_one_per_state;
DROP TABLE signing_keys;
