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
