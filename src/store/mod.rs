//! Persistence. The `Store` trait is everything the services need from a database;
//! `PgStore` and `SqliteStore` implement it. The SQL the two dialects share lives once,
//! in the `impl_*_store!` macros of `sql/`; each backend adds only what differs
//! (connection setup, migrations, row locking, the atomic credit change). `open.rs`
//! picks the backend by the URL's scheme.

mod billing_models;
pub mod connect_error;
mod credit_batch;
pub(crate) mod fault;
mod holds;
mod identities;
mod mfa;
mod models;
mod open;
mod pg_failover;
pub mod pg_hosts;
mod postgres;
mod reads;
mod signing_keys;
mod sql;
mod sqlite;
mod wait;
mod webhooks;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use billing_models::*;
pub use credit_batch::{BatchCredit, BatchOutcome};
pub use holds::*;
pub use identities::*;
pub use mfa::*;
pub use models::*;
pub use open::{connect, connect_and_migrate};
pub use postgres::PgStore;
pub use reads::*;
pub use signing_keys::*;
pub use sqlite::{unapplied_migrations as sqlite_unapplied_migrations, SqliteStore};
pub use webhooks::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("username already taken")]
    UsernameTaken,
    #[error("email already taken")]
    EmailTaken,
    /// The provider identity is linked already (to this or another account).
    #[error("identity already linked")]
    IdentityTaken,
    /// The idempotency key (user, type, reference_id) is already in the ledger.
    #[error("reference already used")]
    DuplicateReference,
    /// A plan with this id or Stripe price already exists.
    #[error("plan id or stripe_price_id already used")]
    PlanTaken,
    /// A row the change refers to (a user) no longer exists.
    #[error("referenced row missing")]
    MissingReference,
    /// PostgreSQL refused a value (SQLSTATE class 22, "data exception": text with NUL, a
    /// number out of range, ...). The input is at fault, so it is a 4xx, not a 500; the
    /// edges refuse such input before it gets here, this is the net below them.
    #[error("value refused by the database: {0}")]
    InvalidData(sqlx::Error),
    /// A grant would take a balance past what 64 bits hold; nothing was changed.
    #[error("the balance cannot hold this many credits")]
    BalanceOverflow,
    /// The last active admin cannot be removed (nobody could administer the service).
    #[error("the last active admin cannot be removed")]
    LastAdmin,
    /// The database could not be reached or timed out; answered 503, not 500.
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    /// The volume under SQLite is full (SQLITE_FULL): writes wait for space, reads go on.
    #[error("storage full: {0}")]
    StorageFull(sqlx::Error),
    #[error(transparent)]
    Other(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &err {
            if db.is_unique_violation() {
                // Postgres names the constraint; SQLite names the column in the message.
                let what = db
                    .constraint()
                    .map(str::to_owned)
                    .unwrap_or_else(|| db.message().to_owned());
                if what.contains("identities") {
                    return Self::IdentityTaken;
                }
                if what.contains("plans") {
                    return Self::PlanTaken;
                }
                if what.contains("username_key") {
                    return Self::UsernameTaken;
                }
                if what.contains("email") {
                    return Self::EmailTaken;
                }
                if what.contains("reference") {
                    return Self::DuplicateReference;
                }
            }
            if db.is_foreign_key_violation() {
                return Self::MissingReference;
            }
            // The server refused or dropped the connection (connection exceptions, shutdown,
            // too many connections, a database that does not accept connections): the
            // database is down for us, which is a 503, not a 500.
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            if code.starts_with("22") {
                return Self::InvalidData(err);
            }
            if let Some(kind) = fault::classify(&code, db.message()) {
                return kind.into_error(err);
            }
            let refused = code.starts_with("08")
                || matches!(
                    code.as_str(),
                    "57P01" | "57P02" | "57P03" | "53300" | "3D000"
                )
                || (code == "55000"
                    && db.message().contains("not currently accepting connections"));
            if refused {
                return Self::Unavailable(err);
            }
        }
        match err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => {
                // The connection broke under the request (reset, killed server): maybe a
                // failover; the watcher of a multi-host pool looks at once.
                pg_failover::report_trouble();
                Self::Unavailable(err)
            }
            other => Self::Other(other),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Everything the services need from a database: one trait per area, implemented by
/// both backends.
pub trait Store:
    AccountStore
    + SessionStore
    + LifecycleStore
    + MailStore
    + CreditStore
    + HoldStore
    + ActivityStore
    + BillingStore
    + IdentityStore
    + MfaStore
    + ReadStore
    + SigningKeyStore
    + PoolStore
    + WebhookStore
{
}

impl<T> Store for T where
    T: AccountStore
        + SessionStore
        + LifecycleStore
        + MailStore
        + CreditStore
        + HoldStore
        + ActivityStore
        + BillingStore
        + IdentityStore
        + MfaStore
        + ReadStore
        + SigningKeyStore
        + PoolStore
        + WebhookStore
{
}

/// Connection pool state, for the metrics sampler.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolConnections {
    /// Open connections (idle + in use).
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

pub trait PoolStore: Send + Sync + 'static {
    fn pool_connections(&self) -> PoolConnections;
    /// `host:port` writes go to, when DATABASE_URL lists several hosts (failover).
    fn primary_host(&self) -> Option<String> {
        None
    }
}

/// Users, emailed tokens and the schema itself. Methods that change something
/// security-relevant take the `Activity` to record in the same transaction.
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    fn backend(&self) -> &'static str;
    async fn ping(&self) -> StoreResult<()>;

    async fn migrate_up(&self) -> anyhow::Result<()>;
    /// Reverts the newest `steps` applied migrations; returns their versions.
    async fn migrate_down(&self, steps: usize) -> anyhow::Result<Vec<i64>>;
    async fn migration_status(&self) -> anyhow::Result<Vec<MigrationStatus>>;

    // ---- users
    /// Creates the user, and in the same transaction the grant, the mail and the activity.
    async fn create_user(
        &self,
        user: &NewUser,
        grant: Option<&TokenGrant>,
        mail: &[OutgoingMail],
        activity: &Activity,
    ) -> StoreResult<User>;
    async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>>;
    async fn user_by_username(&self, username_key: &str) -> StoreResult<Option<User>>;
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    /// `identifier` is a lowercased username or email.
    async fn user_by_login(&self, identifier: &str) -> StoreResult<Option<User>>;
    /// Replaces the hash without touching sessions (old hashes upgraded at login), only if
    /// it is still `current_hash`: of concurrent logins one replaces it, and a password
    /// changed meanwhile is never overwritten. Records `activity` with the replacement.
    async fn upgrade_password_hash(
        &self,
        user_id: i64,
        current_hash: &str,
        new_hash: &str,
        activity: &Activity,
    ) -> StoreResult<bool>;
    /// Changes the password and revokes every session but `keep_session`.
    async fn change_password(
        &self,
        user_id: i64,
        hash: &str,
        keep_session: &str,
        activity: &Activity,
    ) -> StoreResult<()>;
    /// `false` when there is no such user; `LastAdmin` (nothing deleted) when it is the
    /// only active admin.
    async fn delete_user(&self, user_id: i64, activity: &Activity) -> StoreResult<bool>;
    /// Makes `user` an admin: creates it verified, or promotes the account with that username.
    async fn upsert_admin(&self, user: &NewUser) -> StoreResult<(User, bool)>;
    /// Admin search by username or email fragment; newest first, with the total.
    async fn list_users(
        &self,
        search: Option<&str>,
        skip: i64,
        limit: i64,
    ) -> StoreResult<(Vec<User>, i64)>;
    /// Applies the given flags; `None` if the user does not exist.
    async fn update_user_flags(
        &self,
        user_id: i64,
        flags: &UserFlags,
        activity: &Activity,
    ) -> StoreResult<Option<User>>;

    // ---- emailed tokens
    /// Records a new token (and its mail) for a user.
    async fn grant_token(
        &self,
        user_id: i64,
        grant: &TokenGrant,
        mail: &[OutgoingMail],
        activity: Option<&Activity>,
    ) -> StoreResult<()>;
    async fn latest_token_created_at(
        &self,
        user_id: i64,
        purpose: TokenPurpose,
    ) -> StoreResult<Option<DateTime<Utc>>>;
    /// Marks a verification token used, if unused and unexpired, and the user verified if
    /// the token's address is still theirs. `None` if the token is not usable.
    async fn verify_email(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
        activity: &Activity,
    ) -> StoreResult<Option<bool>>;
    /// In one transaction: consumes the reset token, sets the password, voids every other reset
    /// token of the user and revokes all their sessions. `None` if the token is not usable.
    async fn reset_password(
        &self,
        token_hash: &str,
        new_hash: &str,
        activity: &Activity,
    ) -> StoreResult<Option<i64>>;
}

/// Login sessions: what every access token and browser cookie is checked against.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Records that the live session `session_id` just proved a second factor (a step-up).
    async fn mark_second_factor(&self, session_id: &str, at: DateTime<Utc>) -> StoreResult<bool>;
    async fn create_session(
        &self,
        session: &NewSession,
        activity: Option<&Activity>,
    ) -> StoreResult<()>;
    /// The session and its user, for the per-request check (one indexed lookup).
    async fn session_with_user(&self, session_id: &str) -> StoreResult<Option<(Session, User)>>;
    /// Live and dead sessions of a user that have not expired or been revoked.
    async fn live_sessions(&self, user_id: i64, now: DateTime<Utc>) -> StoreResult<Vec<Session>>;
    /// Records activity on the session (callers write at most once per few minutes).
    async fn touch_session(&self, session_id: &str, now: DateTime<Utc>) -> StoreResult<()>;
    /// Rotates only if `current_hash` is still current (concurrent rotations have one
    /// winner); the replaced hash is kept as retired.
    async fn rotate_refresh_token(
        &self,
        session_id: &str,
        current_hash: &str,
        new_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Revokes one session if `user_id` owns it and it is not revoked yet.
    async fn revoke_session(
        &self,
        user_id: i64,
        session_id: &str,
        activity: &Activity,
    ) -> StoreResult<bool>;
    /// Revokes every live session of the user; returns how many.
    async fn revoke_all_sessions(&self, user_id: i64, activity: &Activity) -> StoreResult<u64>;
}

/// The account changes that need more than one step or a limit: pending email changes,
/// rate-limited mailed tokens, admin creation and promotion, and pruning of what can never
/// be used again.
#[async_trait]
pub trait LifecycleStore: Send + Sync + 'static {
    /// Records the token and its mail only if the user got fewer than `per_hour` tokens of
    /// this purpose in the last hour and none in the last `min_interval`; concurrent calls
    /// for one user are serialised on the user's row. `false`: limited, nothing recorded.
    async fn grant_token_limited(
        &self,
        user_id: i64,
        grant: &TokenGrant,
        mail: &[OutgoingMail],
        activity: &Activity,
        min_interval: chrono::Duration,
        per_hour: i64,
    ) -> StoreResult<bool>;
    /// Creates a verified admin; never touches an existing account (`UsernameTaken`).
    async fn create_admin(&self, user: &NewUser) -> StoreResult<User>;
    /// Makes the account an admin only if its email is `email`; `None` otherwise.
    async fn promote_admin(
        &self,
        username_key: &str,
        email: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<User>>;
    /// Makes `change.grant.email` the user's pending address (replacing any earlier one and
    /// voiding its links), with the confirm and cancel grants and their mails.
    async fn request_email_change(
        &self,
        user_id: i64,
        change: &EmailChange,
        activity: &Activity,
    ) -> StoreResult<()>;
    async fn pending_email(&self, user_id: i64) -> StoreResult<Option<String>>;
    /// Follows a confirm link: the pending address becomes the verified email, links sent
    /// to the old address stop working. `None` if the token or its pending change is gone;
    /// `EmailTaken` if someone took the address meanwhile.
    async fn confirm_email_change(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
        activity: &Activity,
    ) -> StoreResult<Option<i64>>;
    /// Follows a cancel link: the pending change is dropped with its links.
    async fn cancel_email_change(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
        activity: &Activity,
    ) -> StoreResult<bool>;
    /// Deletes what can never be used again (see `PruneReport`); audit rows only when
    /// `audit_before` is given. Safe to run on several instances at once.
    async fn prune(
        &self,
        now: DateTime<Utc>,
        audit_before: Option<DateTime<Utc>>,
    ) -> StoreResult<PruneReport>;
}

/// The mail outbox.
#[async_trait]
pub trait MailStore: Send + Sync + 'static {
    /// Leases up to `limit` due messages for `lease` under the claim token `claim`;
    /// another worker cannot take them until the lease ends.
    async fn claim_due_mail(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: i64,
        claim: &str,
    ) -> StoreResult<Vec<QueuedMail>>;
    /// Extends the lease of a message before it is sent, if the claim is still ours and
    /// unexpired; `false` means another worker may have it now: do not send.
    async fn renew_mail_claim(
        &self,
        id: i64,
        claim: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> StoreResult<bool>;
    /// Records delivery and wipes the bodies (they may hold one-time links), if the claim
    /// is still ours.
    async fn mark_mail_sent(&self, id: i64, claim: &str, now: DateTime<Utc>) -> StoreResult<bool>;
    /// Schedules a retry, if the claim is still ours.
    async fn mark_mail_failed(
        &self,
        id: i64,
        claim: &str,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> StoreResult<bool>;
    async fn pending_mail_count(&self) -> StoreResult<i64>;
}

/// The credits ledger.
#[async_trait]
pub trait CreditStore: Send + Sync + 'static {
    /// `(balance in cents, updated_at)`; `None` while the user never had credits.
    async fn credit_balance(&self, user_id: i64) -> StoreResult<Option<(i64, DateTime<Utc>)>>;
    async fn credit_by_reference(
        &self,
        user_id: i64,
        kind: CreditKind,
        reference_id: &str,
    ) -> StoreResult<Option<CreditTransaction>>;
    /// Applies the change and writes its ledger row and activity atomically. `None` when a
    /// debit would take the balance below zero (nothing changes). `DuplicateReference`
    /// when the idempotency key is taken (nothing changes).
    async fn apply_credit(
        &self,
        credit: &NewCredit,
        activity: &Activity,
    ) -> StoreResult<Option<CreditTransaction>>;
    /// Group commit: applies changes of ONE user in one transaction, in order, under the
    /// lock of that user's balance row (created at zero if missing). Each change is
    /// decided as if it came alone (idempotency key, then the running balance) and keeps
    /// its own ledger and audit rows; one outcome per change. Nothing is written when any
    /// statement or the commit fails (the error is the whole batch's).
    async fn apply_credit_batch(
        &self,
        user_id: i64,
        batch: &[BatchCredit],
    ) -> StoreResult<Vec<BatchOutcome>>;
    /// Newest first, and the total count.
    async fn credit_transactions(
        &self,
        user_id: i64,
        skip: i64,
        limit: i64,
    ) -> StoreResult<(Vec<CreditTransaction>, i64)>;
    /// Every user whose ledger does not sum to their balance (empty when all is well).
    async fn ledger_mismatches(&self) -> StoreResult<Vec<LedgerMismatch>>;
}

/// Plans, Stripe customers and subscriptions, and webhook events with their effects.
#[async_trait]
pub trait BillingStore: Send + Sync + 'static {
    /// Ordered by price; only active ones when `active_only`.
    async fn plans(&self, active_only: bool) -> StoreResult<Vec<Plan>>;
    async fn plan_by_id(&self, id: &str) -> StoreResult<Option<Plan>>;
    /// `PlanTaken` when the id or the Stripe price is already a plan's.
    async fn create_plan(&self, plan: &Plan) -> StoreResult<Plan>;
    /// Replaces every field but id and created_at; `None` if there is no such plan.
    async fn update_plan(&self, plan: &Plan) -> StoreResult<Option<Plan>>;

    async fn stripe_customer_of(&self, user_id: i64) -> StoreResult<Option<String>>;
    /// Records the user's customer unless one is recorded already; returns the recorded one.
    async fn save_stripe_customer(
        &self,
        user_id: i64,
        customer_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<String>;
    /// Newest first.
    async fn subscriptions_of(&self, user_id: i64) -> StoreResult<Vec<BillingSubscription>>;
    /// Records what Stripe answered to a cancellation, so the subscription reads right
    /// before Stripe's `customer.subscription.updated` arrives (which then confirms it).
    async fn set_cancel_at_period_end(
        &self,
        subscription_id: &str,
        cancel: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Records the event id and applies its effect in ONE transaction; a known id changes
    /// nothing (`Duplicate`). Returns the outcome and the user it was matched to.
    async fn apply_stripe_event(
        &self,
        event: &IncomingEvent,
        effect: &EventEffect,
    ) -> StoreResult<(EventOutcome, Option<i64>)>;
    /// Newest first, and the total; all outcomes when `outcome` is `None`.
    async fn billing_events(
        &self,
        outcome: Option<&str>,
        skip: i64,
        limit: i64,
    ) -> StoreResult<(Vec<BillingEventRecord>, i64)>;
}

/// The audit trail.
#[async_trait]
pub trait ActivityStore: Send + Sync + 'static {
    /// Records an event that changes nothing else (a failed login).
    async fn record_activity(&self, activity: &Activity) -> StoreResult<()>;
    /// Newest first, and the total; all users when `user_id` is `None`.
    async fn activities(
        &self,
        user_id: Option<i64>,
        skip: i64,
        limit: i64,
    ) -> StoreResult<(Vec<ActivityRecord>, i64)>;
}

/// Current time at the precision both backends store (microseconds), so a value read back
/// equals the value written.
pub fn now() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}
