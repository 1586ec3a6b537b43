//! RFC 7662 introspection of our access tokens: the signature, then the session, exactly
//! as our own routes check them (strongly consistent).

use crate::error::AppError;
use crate::services::auth::live_session;
use crate::services::tokens::Claims;
use crate::state::AppState;
use crate::store::User;

/// `None`: the token is not active (garbage, expired, revoked session, deleted or
/// deactivated user). A database that cannot answer is an error, not "inactive".
pub async fn introspect(state: &AppState, token: &str) -> Result<Option<(Claims, User)>, AppError> {
    let Some(claims) = state.tokens.verify_access(token).await else {
        return Ok(None);
    };
    match live_session(state, &claims).await {
        Ok((_, user)) => Ok(Some((claims, user))),
        Err(AppError::Unauthorized { .. }) => Ok(None),
        Err(other) => Err(other),
    }
}
