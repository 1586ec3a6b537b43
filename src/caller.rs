//! Who is calling and from where: plain facts about a request that services use and the
//! HTTP layer fills in (extractors in `extract/access.rs`). Lives below both, so neither
//! services nor routes import each other for it.

use crate::store::User;

/// Where a request came from, recorded with the sessions and audit rows it creates.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// An authenticated request: the user as stored now, and the session it belongs to.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub user: User,
    pub session_id: String,
    /// When this session last proved a second factor (sign-in or step-up), if ever.
    pub second_factor_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl CurrentUser {
    pub fn is_admin(&self) -> bool {
        self.user.is_admin
    }
}

/// Either an internal service (valid API key) or a signed-in user. A request that sends
/// an API key is judged by the key alone.
pub enum Caller {
    Internal,
    User(CurrentUser),
}

/// A bearer token whose signature and expiry were verified, but whose session was NOT
/// checked yet: reads check it in the same statement as their data (one round trip), and
/// only then is the request authenticated.
#[derive(Debug, Clone)]
pub struct AccessClaims {
    /// The token's subject.
    pub user_id: i64,
    /// The session the token belongs to.
    pub session_id: String,
    /// Told who the request acted as, once the session check passed (the access log).
    pub(crate) acting_user: Option<crate::telemetry::RequestUser>,
}

impl AccessClaims {
    /// Records the authenticated user for the access log.
    pub fn note_authenticated(&self, user_id: i64) {
        if let Some(slot) = &self.acting_user {
            slot.set(user_id);
        }
    }
}

/// [`Caller`] before the session check: an internal service (valid API key) or a verified
/// bearer token.
pub enum ReadCaller {
    Internal,
    User(AccessClaims),
}
