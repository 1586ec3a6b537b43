-- What an account's active holds reserve, kept on its balance row (DESIGN §15), so the
-- balance read is one index lookup again instead of summing the holds on every read.
-- Every transaction that creates, captures or releases a hold recomputes both columns
-- under the balance row's lock: held is the sum of the holds active at that moment and
-- held_soonest the earliest of their expiries (NULL: none). A read trusts held only while
-- held_soonest is in the future; once a counted hold may have expired, it sums the holds.
ALTER TABLE credit_balances ADD COLUMN held BIGINT NOT NULL DEFAULT 0;
ALTER TABLE credit_balances ADD COLUMN held_soonest TEXT;
-- Accounts holding credits when this runs: a soonest expiry in the past makes their reads
-- sum the holds (exact) until their next hold change writes the real values.
UPDATE credit_balances SET held_soonest = '1970-01-01T00:00:00+00:00'
 WHERE user_id IN (SELECT user_id FROM credit_holds WHERE status = 'held');
