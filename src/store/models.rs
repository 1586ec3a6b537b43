//! Rows and inputs exchanged with the store.

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub is_admin: bool,
    pub is_active: bool,
    pub is_verified: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub username_key: String,
    pub email: String,
    pub password_hash: String,
    pub is_admin: bool,
    pub is_verified: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Session {
    pub id: String,
    pub user_id: i64,
    pub refresh_token_hash: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// How its sign-in was proved, as stored: aal then the amr methods ("aal2 pwd otp").
    pub assurance: String,
    /// When it last proved a second factor (its sign-in or a step-up).
    pub second_factor_at: Option<DateTime<Utc>>,
}

impl Session {
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub user_id: i64,
    pub refresh_token_hash: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub assurance: String,
    pub second_factor_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    VerifyEmail,
    ResetPassword,
    /// Sent to a pending new address; completes the change.
    ChangeEmail,
    /// Sent to the current address when a change is pending; cancels it.
    CancelEmailChange,
}

impl TokenPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
            Self::ChangeEmail => "change_email",
            Self::CancelEmailChange => "cancel_email_change",
        }
    }
}

/// A requested change of email: both grants carry the NEW address (the change they
/// confirm or cancel); the mails go to the new and the current address.
#[derive(Debug, Clone)]
pub struct EmailChange {
    pub confirm: TokenGrant,
    pub cancel: TokenGrant,
    pub mail: Vec<OutgoingMail>,
}

/// What one pruning pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub sessions: u64,
    pub email_tokens: u64,
    pub activities: u64,
    /// Outbox rows sent more than `SENT_MAIL_KEPT_DAYS` ago (their bodies were wiped at
    /// sending; only recipient, subject and times were left).
    pub sent_mail: u64,
}

/// How long a sent message's row stays in the outbox (for an operator asking "was it sent?").
pub const SENT_MAIL_KEPT_DAYS: i64 = 7;

/// A one-time token to record: only its hash is stored.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub purpose: TokenPurpose,
    pub token_hash: String,
    pub email: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EmailToken {
    pub id: i64,
    pub user_id: i64,
    pub purpose: String,
    pub email: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

/// A message to put in the outbox, rendered already.
#[derive(Debug, Clone)]
pub struct OutgoingMail {
    pub recipient: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QueuedMail {
    pub id: i64,
    pub recipient: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    pub attempts: i64,
}

#[derive(Debug, Clone)]
pub struct MigrationStatus {
    pub version: i64,
    pub description: String,
    pub applied: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditKind {
    Added,
    Used,
    /// Credits bought with a one-time Stripe payment.
    Purchase,
    /// Credits taken back after a refund or dispute (may take the balance below zero).
    Refund,
    /// Credits of a paid subscription period.
    SubscriptionGrant,
}

impl CreditKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "credit_added",
            Self::Used => "credit_used",
            Self::Purchase => "purchase",
            Self::Refund => "refund",
            Self::SubscriptionGrant => "subscription_grant",
        }
    }

    /// Whether this kind takes credits away (and so may fail for lack of them).
    pub fn debits(self) -> bool {
        matches!(self, Self::Used | Self::Refund)
    }
}

/// A change to apply to a balance, with its ledger row.
#[derive(Debug, Clone)]
pub struct NewCredit {
    pub user_id: i64,
    pub kind: CreditKind,
    /// Cents, positive.
    pub amount: i64,
    pub reference_id: Option<String>,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CreditTransaction {
    pub id: i64,
    pub user_id: i64,
    pub amount: i64,
    pub transaction_type: String,
    pub reference_id: Option<String>,
    pub description: Option<String>,
    pub balance_after: i64,
    pub created_at: DateTime<Utc>,
}

/// A user whose ledger does not sum to their balance.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LedgerMismatch {
    pub user_id: i64,
    pub balance: i64,
    pub ledger_sum: i64,
}

/// Admin changes to an account; `None` leaves a flag as it is.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct UserFlags {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_admin: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_active: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_verified: Option<bool>,
}

/// A row of the audit trail to write. `created_at` is also the time of the change it
/// records. `details` is a small JSON object and never holds a secret.
#[derive(Debug, Clone)]
pub struct Activity {
    pub user_id: Option<i64>,
    pub event: &'static str,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActivityRecord {
    pub id: i64,
    pub user_id: Option<i64>,
    pub event: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: String,
    pub created_at: DateTime<Utc>,
}
