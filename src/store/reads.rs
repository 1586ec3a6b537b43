//! Authenticated reads in ONE statement each (DESIGN §8): the caller's session and user are
//! read together with the data the request serves, so a read costs one round trip to the
//! database. The store only fetches; the rules (live session, the token's own user, active
//! account, who may read whose data) are applied by the services to what comes back.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{CreditTransaction, Session, StoreResult, User};

/// The caller's session with its user, as read alongside the data: `None` when no session
/// was asked for (an internal service) or there is no such session (or user).
pub type CallerRow = Option<(Session, User)>;

/// GET /auth/me?user_id=: the caller and the user looked at.
#[derive(Debug)]
pub struct UserRead {
    pub caller: CallerRow,
    pub user: Option<User>,
}

/// GET /credits/balance: the caller and the account's balance.
#[derive(Debug)]
pub struct BalanceRead {
    pub caller: CallerRow,
    /// `None` when there is no such user.
    pub account: Option<AccountBalance>,
}

#[derive(Debug)]
pub struct AccountBalance {
    pub user_created_at: DateTime<Utc>,
    /// `(cents, updated_at)`; `None` while the user never had credits.
    pub balance: Option<(i64, DateTime<Utc>)>,
    /// Cents reserved by the account's active (unexpired) holds.
    pub held: i64,
}

/// GET /credits/transactions: the caller and one page of the account's ledger.
#[derive(Debug)]
pub struct HistoryRead {
    pub caller: CallerRow,
    pub account_exists: bool,
    /// Newest first.
    pub transactions: Vec<CreditTransaction>,
    /// All of the account's ledger rows, not only this page's.
    pub total_count: i64,
}

/// GET /auth/sessions: the caller and their user's live sessions.
#[derive(Debug)]
pub struct SessionsRead {
    pub caller: CallerRow,
    /// Live (unrevoked, unexpired) sessions of the caller's user, newest first.
    pub sessions: Vec<Session>,
}

/// POST /auth/refresh: the session a refresh token belongs to, with its user.
#[derive(Debug)]
pub struct RefreshRead {
    pub session: Session,
    pub user: User,
    /// `Some(when)` if the token was rotated away (a retired token), `None` if current.
    pub retired_at: Option<DateTime<Utc>>,
}

/// One statement per authenticated read. `session_id` is the caller's session (from a
/// verified access token), or `None` for internal services.
#[async_trait]
pub trait ReadStore: Send + Sync + 'static {
    async fn read_user(&self, session_id: &str, user_id: i64) -> StoreResult<UserRead>;
    /// `own`: the account is the session's own (the caller named no other), which lets
    /// the statement find it through the session.
    async fn read_balance(
        &self,
        session_id: Option<&str>,
        user_id: i64,
        own: bool,
    ) -> StoreResult<BalanceRead>;
    async fn read_transactions(
        &self,
        session_id: Option<&str>,
        user_id: i64,
        skip: i64,
        limit: i64,
    ) -> StoreResult<HistoryRead>;
    async fn read_live_sessions(
        &self,
        session_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<SessionsRead>;
    /// The session whose current or retired refresh token has this hash, with its user.
    async fn read_refresh(&self, token_hash: &str) -> StoreResult<Option<RefreshRead>>;
}
