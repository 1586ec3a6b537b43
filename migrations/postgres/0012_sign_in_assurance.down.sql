ALTER TABLE sessions DROP COLUMN second_factor_at;
ALTER TABLE sessions DROP COLUMN assurance;
ALTER TABLE mfa_tokens DROP COLUMN first_factor;
