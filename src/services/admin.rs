//! What administrators do to other accounts: change their flags. The API and the admin
//! page share this, so an admin cannot lock themself out through either.

use crate::caller::{ClientInfo, CurrentUser};
use crate::error::AppError;
use crate::services::{account, audit};
use crate::state::AppState;
use crate::store::{User, UserFlags};

pub async fn update_flags(
    state: &AppState,
    admin: &CurrentUser,
    username: &str,
    flags: UserFlags,
    client: &ClientInfo,
) -> Result<User, AppError> {
    if flags.is_admin.is_none() && flags.is_active.is_none() && flags.is_verified.is_none() {
        return Err(AppError::validation(
            "body",
            "",
            "Give at least one of is_admin, is_active, is_verified",
            "missing",
        ));
    }
    let target = account::account_named(state, username).await?;
    if target.id == admin.user.id
        && (flags.is_admin == Some(false) || flags.is_active == Some(false))
    {
        // The last admin locking themself out would need database surgery to undo.
        return Err(AppError::bad_request(
            "cannot_change_self",
            "Admins cannot demote or deactivate themselves",
        ));
    }
    let details = serde_json::json!({ "changes": flags, "by": admin.user.id });
    let activity = audit::activity(audit::ADMIN_UPDATE, Some(target.id), client, details);
    state
        .store
        .update_user_flags(target.id, &flags, &activity)
        .await?
        .ok_or_else(AppError::user_not_found)
}

/// Accounts, newest first, optionally filtered by a fragment of the username or email.
pub async fn list_users(
    state: &AppState,
    search: Option<&str>,
    skip: i64,
    limit: i64,
) -> Result<(Vec<User>, i64), AppError> {
    let search = search.map(str::trim).filter(|s| !s.is_empty());
    if search.is_some_and(|s| s.chars().count() > MAX_SEARCH_CHARS) {
        return Err(AppError::validation(
            "query",
            "search",
            format!("At most {MAX_SEARCH_CHARS} characters"),
            "value_error",
        ));
    }
    Ok(state.store.list_users(search, skip, limit).await?)
}

pub const MAX_SEARCH_CHARS: usize = 254;
