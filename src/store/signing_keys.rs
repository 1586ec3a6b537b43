//! What the token signer needs from a database: the shared signing keys (DESIGN §13).
//! Implemented for both backends in `sql/signing_keys.rs`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;

/// One row of `signing_keys`. `private_key_enc` is ciphertext; nothing here is secret in
/// the clear.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SigningKeyRow {
    pub kid: String,
    pub alg: String,
    pub state: String,
    pub public_jwk: String,
    pub private_key_enc: String,
    pub created_at: DateTime<Utc>,
    pub activated_at: Option<DateTime<Utc>>,
    pub deactivated_at: Option<DateTime<Utc>>,
    pub retired_at: Option<DateTime<Utc>>,
    pub hs_accepted_until: Option<DateTime<Utc>>,
}

/// A key to insert: made and encrypted by the service.
#[derive(Debug, Clone)]
pub struct NewSigningKey {
    pub kid: String,
    pub alg: String,
    pub public_jwk: String,
    pub private_key_enc: String,
}

/// How the set of keys changes. Each is one transaction guarded by the `current` key the
/// caller saw: when another instance changed the keys first, nothing is changed and the
/// answer is `false` (the caller re-reads).
#[derive(Debug, Clone)]
pub enum KeyChange {
    /// First keys of a run of asymmetric signing (a new install, a switch from HS* or to
    /// another algorithm): the seen current becomes previous, the unused next is retired.
    /// `hs_accepted_until` is stored when sessions are live (tokens signed with
    /// SECRET_KEY may still be in use).
    Start {
        current: NewSigningKey,
        next: NewSigningKey,
        hs_accepted_until: DateTime<Utc>,
    },
    /// next → current, current → previous, a new next.
    Rotate { next: NewSigningKey },
    /// Under HS*: current → previous (verified until it retires), next → retired.
    Stop,
}

#[async_trait]
pub trait SigningKeyStore: Send + Sync {
    /// Every key, oldest first (retired ones too: the table stays small).
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRow>>;

    /// Applies `change` if the current key is still `seen_current` (None: there is none).
    async fn change_signing_keys(
        &self,
        seen_current: Option<&str>,
        change: &KeyChange,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Previous keys that stopped signing at or before `cutoff` become retired.
    async fn retire_signing_keys(
        &self,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<u64>;
}
