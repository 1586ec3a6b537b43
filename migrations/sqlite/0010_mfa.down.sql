DROP TABLE mfa_tokens;
DROP TABLE mfa_recovery_codes;
DROP TABLE mfa_totp;
