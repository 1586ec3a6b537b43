ALTER TABLE mail_outbox DROP COLUMN claim_token;
ALTER TABLE users DROP COLUMN pending_email;
