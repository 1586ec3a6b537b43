//! What second factors need from a database: the authenticator (TOTP) of an account, its
//! recovery codes and the pending second steps of logins. Implemented for both backends
//! in `sql/mfa.rs`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TotpRow {
    pub user_id: i64,
    /// Base32. Never logged.
    pub secret: String,
    pub created_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
    /// The last accepted RFC 6238 time step.
    pub last_step: Option<i64>,
}

#[async_trait]
pub trait MfaStore: Send + Sync + 'static {
    async fn totp_of(&self, user_id: i64) -> StoreResult<Option<TotpRow>>;
    /// Starts (or restarts) an unconfirmed enrollment; false when a confirmed one exists.
    async fn begin_totp(&self, user_id: i64, secret: &str, now: DateTime<Utc>)
        -> StoreResult<bool>;
    /// Confirms the pending enrollment at `step` and replaces the recovery codes, in one
    /// transaction; false when there was no pending enrollment.
    async fn confirm_totp(
        &self,
        user_id: i64,
        step: i64,
        code_hashes: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Records `step` as used when it is later than the last used one: false means a replay.
    async fn use_totp_step(&self, user_id: i64, step: i64) -> StoreResult<bool>;
    /// Removes the authenticator and the recovery codes; false when there was none.
    async fn remove_totp(&self, user_id: i64) -> StoreResult<bool>;
    async fn replace_recovery_codes(
        &self,
        user_id: i64,
        code_hashes: &[String],
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Marks the code used; false when it is unknown, used, or another account's.
    async fn use_recovery_code(
        &self,
        user_id: i64,
        code_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    async fn recovery_codes_left(&self, user_id: i64) -> StoreResult<i64>;
    /// Saves a pending second step, and drops the expired ones.
    async fn save_mfa_token(
        &self,
        token_hash: &str,
        user_id: i64,
        first_factor: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// The account of a pending, unexpired second step, and its first step's method.
    async fn mfa_token_user(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(i64, String)>>;
    /// Removes the pending second step: true for exactly one caller.
    async fn consume_mfa_token(&self, token_hash: &str) -> StoreResult<bool>;
}
