//! Ending login sessions on the owner's request: one, or all of them. The API and the web
//! pages both call these, so the rules and the audit trail are the same for both.

use serde_json::json;

use crate::caller::{ClientInfo, CurrentUser};
use crate::domain::is_storable;
use crate::error::AppError;
use crate::services::audit;
use crate::state::AppState;

/// Ends one of the caller's own sessions (possibly the current one); 404 for any other id.
pub async fn revoke(
    state: &AppState,
    current: &CurrentUser,
    session_id: &str,
    client: &ClientInfo,
) -> Result<(), AppError> {
    // No session id holds a NUL; PostgreSQL could not even look one up.
    if !is_storable(session_id) {
        return Err(AppError::not_found("Session not found"));
    }
    let activity = audit::activity(
        audit::SESSION_REVOKE,
        Some(current.user.id),
        client,
        json!({ "session_id": session_id }),
    );
    if !state
        .store
        .revoke_session(current.user.id, session_id, &activity)
        .await?
    {
        return Err(AppError::not_found("Session not found"));
    }
    Ok(())
}

/// Ends every session of the caller, the current one included; returns how many ended.
pub async fn revoke_all(
    state: &AppState,
    current: &CurrentUser,
    client: &ClientInfo,
) -> Result<u64, AppError> {
    let activity = audit::activity(
        audit::SESSION_REVOKE,
        Some(current.user.id),
        client,
        json!({ "all": true }),
    );
    Ok(state
        .store
        .revoke_all_sessions(current.user.id, &activity)
        .await?)
}
