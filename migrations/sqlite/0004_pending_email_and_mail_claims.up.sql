-- A change of email is pending until the link mailed to the new address is followed; the
-- current address stays active and verified meanwhile.
ALTER TABLE users ADD COLUMN pending_email TEXT;

-- Who holds a claimed outbox message: only the holder may mark it sent or failed.
ALTER TABLE mail_outbox ADD COLUMN claim_token TEXT;
