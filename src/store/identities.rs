//! What the sign-in providers need from a database: pending authorizations (state) and
//! the identities linked to accounts. Implemented for both backends in `sql/identities.rs`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Activity, NewUser, OutgoingMail, StoreResult, User};

/// An authorization in flight, keyed by the SHA-256 of its `state`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OAuthState {
    pub state_hash: String,
    pub provider: String,
    /// "login" or "link".
    pub intent: String,
    /// For "link": the account that asked.
    pub user_id: Option<i64>,
    pub nonce_hash: String,
    pub redirect_uri: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Identity {
    pub id: i64,
    pub provider: String,
    pub subject: String,
    pub user_id: i64,
    pub email: Option<String>,
    pub linked_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewIdentity {
    pub provider: String,
    pub subject: String,
    pub email: Option<String>,
    pub linked_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkOutcome {
    Linked,
    /// This identity was already linked to this account: nothing changed.
    AlreadyLinked,
    /// The identity belongs to another account.
    IdentityInUse,
    /// The account has another identity at this provider.
    ProviderAlreadyLinked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnlinkOutcome {
    Unlinked,
    NotLinked,
    /// No password and no other identity: the account would have no way to sign in.
    LastSignInMethod,
}

#[async_trait]
pub trait IdentityStore: Send + Sync + 'static {
    /// Records a pending authorization, and drops the expired ones.
    async fn save_oauth_state(&self, state: &OAuthState) -> StoreResult<()>;
    /// Removes and returns the pending authorization: a state can be used once.
    async fn take_oauth_state(&self, state_hash: &str) -> StoreResult<Option<OAuthState>>;
    async fn user_by_identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> StoreResult<Option<(Identity, User)>>;
    /// Oldest first.
    async fn identities_of(&self, user_id: i64) -> StoreResult<Vec<Identity>>;
    /// The identities of several accounts at once (admin listings).
    async fn identities_of_users(&self, user_ids: &[i64]) -> StoreResult<Vec<Identity>>;
    /// Links the identity to the account (with its activity) unless a rule forbids it.
    async fn link_identity(
        &self,
        user_id: i64,
        identity: &NewIdentity,
        activity: &Activity,
    ) -> StoreResult<LinkOutcome>;
    /// Creates an account signed up through a provider, with its identity, mail and
    /// activity rows, in one transaction.
    async fn create_user_with_identity(
        &self,
        user: &NewUser,
        identity: &NewIdentity,
        mail: &[OutgoingMail],
        activities: &[Activity],
    ) -> StoreResult<User>;
    /// Unlinks unless it is the account's last way to sign in (checked under a lock on the
    /// account, so concurrent unlinks cannot both pass).
    async fn unlink_identity(
        &self,
        user_id: i64,
        provider: &str,
        activity: &Activity,
    ) -> StoreResult<UnlinkOutcome>;
}
