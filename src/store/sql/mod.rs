//! The SQL both backends share. It is valid in PostgreSQL and SQLite alike (`$n`
//! parameters, `RETURNING`, `TRUE`/`FALSE`). The `impl_*_store!` macros in the submodules
//! expand the same method bodies for each pool type, because sqlx's executors are concrete
//! per database and generic bounds over them would cost more clarity than a macro does.
//! Each backend supplies `reader()`/`writer()` pools and the few dialect-specific pieces.

mod accounts;
mod activity;
mod billing;
pub(in crate::store) mod billing_effects;
mod credits;
pub(in crate::store) mod holds;
mod identities;
mod lifecycle;
mod mail;
mod mfa;
mod reads;
mod sessions;
mod signing_keys;
mod webhooks;

pub(super) use accounts::impl_account_store;
pub(super) use activity::impl_activity_store;
pub(super) use billing::{impl_billing_store, EVENT_COLUMNS, PLAN_COLUMNS, SUBSCRIPTION_COLUMNS};
pub(super) use billing_effects::{clawback_target, PaymentRow};
pub(super) use credits::{impl_credit_store, LOCK_BALANCE};
pub(super) use identities::{impl_identity_store, insert_identity, IDENTITY_COLUMNS};
pub(super) use lifecycle::impl_lifecycle_store;
pub(super) use mail::impl_mail_store;
pub(super) use mfa::impl_mfa_store;
pub(super) use reads::{
    impl_read_store, READ_BALANCE, READ_LIVE_SESSIONS, READ_OWN_BALANCE, READ_REFRESH,
    READ_TRANSACTIONS, READ_USER, SESSION_WITH_USER,
};
pub(super) use sessions::impl_session_store;
pub(super) use signing_keys::{impl_signing_key_store, lost_race, SIGNING_KEY_COLUMNS};
pub(in crate::store) use webhooks::{
    claim_webhooks_sql, credit_events_cte, impl_webhook_store, insert_event, DELIVERY_COLUMNS,
    ENDPOINT_COLUMNS, FAN_OUT_EVENT,
};

pub(in crate::store) const USER_COLUMNS: &str =
    "id, username, email, password_hash, is_admin, is_active, is_verified, created_at, updated_at";

/// The columns of a `Session` row, each after `$prefix` (a table alias and a dot, or nothing).
macro_rules! session_columns {
    ($prefix:literal) => {
        concat!(
            $prefix,
            "id, ",
            $prefix,
            "user_id, ",
            $prefix,
            "refresh_token_hash, ",
            $prefix,
            "created_at, ",
            $prefix,
            "expires_at, ",
            $prefix,
            "last_seen_at, ",
            $prefix,
            "revoked_at, ",
            $prefix,
            "ip, ",
            $prefix,
            "user_agent, ",
            $prefix,
            "assurance, ",
            $prefix,
            "second_factor_at"
        )
    };
}

pub(in crate::store) const SESSION_COLUMNS: &str = session_columns!("");

/// Leases the due mail (unsent, due, not leased by a live worker); `$lock` is the
/// dialect's row-locking clause for the inner select.
macro_rules! claim_mail_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE mail_outbox SET locked_until = $2, claim_token = $4, attempts = attempts + 1 WHERE id IN (",
            "SELECT id FROM mail_outbox WHERE sent_at IS NULL AND next_attempt_at <= $1 ",
            "AND (locked_until IS NULL OR locked_until <= $1) ORDER BY id LIMIT $3 ",
            $lock,
            ") RETURNING id, recipient, subject, text_body, html_body, attempts"
        )
    };
}
pub(in crate::store) const CREDIT_COLUMNS: &str =
    "id, user_id, amount, transaction_type, reference_id, description, balance_after, created_at";

/// The signed effect of a ledger row on the balance.
macro_rules! ledger_delta {
    () => {
        "CASE WHEN t.transaction_type IN ('credit_used', 'refund') THEN -t.amount ELSE t.amount END"
    };
}

/// Balances that differ from the sum of their ledger, and ledgers without a balance row.
pub(in crate::store) const LEDGER_MISMATCHES: &str = concat!(
    "SELECT b.user_id, b.balance, CAST(COALESCE(SUM(",
    ledger_delta!(),
    "), 0) AS BIGINT) AS ledger_sum ",
    "FROM credit_balances b LEFT JOIN credit_transactions t ON t.user_id = b.user_id ",
    "GROUP BY b.user_id, b.balance ",
    "HAVING b.balance <> CAST(COALESCE(SUM(",
    ledger_delta!(),
    "), 0) AS BIGINT) ",
    "UNION ALL ",
    "SELECT t.user_id, CAST(0 AS BIGINT) AS balance, CAST(SUM(",
    ledger_delta!(),
    ") AS BIGINT) AS ledger_sum ",
    "FROM credit_transactions t ",
    "WHERE NOT EXISTS (SELECT 1 FROM credit_balances b WHERE b.user_id = t.user_id) ",
    "GROUP BY t.user_id ",
    "ORDER BY 1"
);

/// Marks a usable token used and returns it, in one statement: two concurrent uses of
/// the same token cannot both succeed.
pub(in crate::store) const CONSUME_TOKEN: &str = "UPDATE email_tokens SET used_at = $3 \
     WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3 \
     RETURNING id, user_id, purpose, email, created_at, expires_at, used_at";

macro_rules! insert_grant {
    ($conn:expr, $user_id:expr, $grant:expr) => {
        sqlx::query(
            "INSERT INTO email_tokens (user_id, purpose, token_hash, email, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind($user_id)
        .bind($grant.purpose.as_str())
        .bind(&$grant.token_hash)
        .bind(&$grant.email)
        .bind($grant.created_at)
        .bind($grant.expires_at)
        .execute($conn)
        .await?
    };
}

macro_rules! insert_mail {
    ($conn:expr, $mail:expr, $now:expr) => {
        sqlx::query(
            "INSERT INTO mail_outbox (recipient, subject, text_body, html_body, created_at, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(&$mail.recipient)
        .bind(&$mail.subject)
        .bind(&$mail.text_body)
        .bind(&$mail.html_body)
        .bind($now)
        .execute($conn)
        .await?
    };
}

/// Appends an audit row inside the caller's transaction. `$user_id` overrides the
/// activity's own (for rows whose user is known only inside the transaction).
macro_rules! insert_activity {
    ($conn:expr, $activity:expr, $user_id:expr) => {
        sqlx::query(
            "INSERT INTO user_activity (user_id, event, ip, user_agent, details, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind($user_id)
        .bind($activity.event)
        .bind(&$activity.ip)
        .bind(&$activity.user_agent)
        .bind(&$activity.details)
        .bind($activity.created_at)
        .execute($conn)
        .await?
    };
}

pub(super) use {claim_mail_sql, insert_activity, insert_grant, insert_mail};
