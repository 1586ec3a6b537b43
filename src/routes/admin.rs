//! Administration: find accounts, change their flags, read anyone's activity.

use axum::extract::{Path, State};
use axum::routing::{get, patch};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::sessions::{activity_page, ActivityPage};
use super::{page_limit, ErrorBody};
use crate::caller::ClientInfo;
use crate::error::AppError;
use crate::extract::{Admin, AppJson, AppQuery};
use crate::services::{account, audit};
use crate::state::AppState;
use crate::store::{User, UserFlags};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/users", get(list_users))
        .route("/admin/users/{username}", patch(update_user))
        .route("/admin/activity", get(activity))
}

#[derive(Serialize, ToSchema)]
pub struct AdminUserResponse {
    id: i64,
    username: String,
    email: String,
    is_admin: bool,
    is_active: bool,
    is_verified: bool,
    created_at: DateTime<Utc>,
}

impl From<User> for AdminUserResponse {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            username: u.username,
            email: u.email,
            is_admin: u.is_admin,
            is_active: u.is_active,
            is_verified: u.is_verified,
            created_at: u.created_at,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsersQuery {
    #[serde(default)]
    #[param(value_type = i64, minimum = 0, maximum = 4294967295_i64, default = 0)]
    skip: u32,
    #[param(minimum = 1, maximum = 100, default = 50)]
    limit: Option<i64>,
    /// A fragment of the username or email (case-insensitive).
    search: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct UsersPage {
    users: Vec<AdminUserResponse>,
    total_count: i64,
}

/// Accounts, newest first, optionally filtered.
#[utoipa::path(get, path = "/admin/users", tag = "admin", params(UsersQuery), security(("bearer" = [])),
    responses(
        (status = 200, body = UsersPage),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 422, description = "Bad paging"),
    ))]
async fn list_users(
    State(state): State<AppState>,
    _admin: Admin,
    AppQuery(query): AppQuery<UsersQuery>,
) -> Result<Json<UsersPage>, AppError> {
    let limit = page_limit(query.limit)?;
    let search = query
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    if search.is_some_and(|s| s.chars().count() > 254) {
        return Err(AppError::validation(
            "query",
            "search",
            "At most 254 characters",
            "value_error",
        ));
    }
    let (users, total_count) = state
        .store
        .list_users(search, i64::from(query.skip), limit)
        .await?;
    Ok(Json(UsersPage {
        users: users.into_iter().map(Into::into).collect(),
        total_count,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    is_admin: Option<bool>,
    /// false deactivates: no login, and live sessions stop working at once.
    is_active: Option<bool>,
    is_verified: Option<bool>,
}

/// Changes an account's flags.
#[utoipa::path(patch, path = "/admin/users/{username}", tag = "admin", request_body = UpdateUserRequest,
    params(("username" = String, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = AdminUserResponse),
        (status = 400, description = "An admin cannot demote or deactivate themself", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "No flag given, or not booleans"),
    ))]
async fn update_user(
    State(state): State<AppState>,
    client: ClientInfo,
    Admin(admin): Admin,
    Path(username): Path<String>,
    AppJson(req): AppJson<UpdateUserRequest>,
) -> Result<Json<AdminUserResponse>, AppError> {
    let flags = UserFlags {
        is_admin: req.is_admin,
        is_active: req.is_active,
        is_verified: req.is_verified,
    };
    if flags.is_admin.is_none() && flags.is_active.is_none() && flags.is_verified.is_none() {
        return Err(AppError::validation(
            "body",
            "",
            "Give at least one of is_admin, is_active, is_verified",
            "missing",
        ));
    }
    let target = account::account_named(&state, &username).await?;
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
    let activity = audit::activity(audit::ADMIN_UPDATE, Some(target.id), &client, details);
    let updated = state
        .store
        .update_user_flags(target.id, &flags, &activity)
        .await?
        .ok_or_else(AppError::user_not_found)?;
    Ok(Json(updated.into()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AdminActivityQuery {
    /// Only this user's events; all users' when absent.
    user_id: Option<i64>,
    #[serde(default)]
    #[param(value_type = i64, minimum = 0, maximum = 4294967295_i64, default = 0)]
    skip: u32,
    #[param(minimum = 1, maximum = 100, default = 50)]
    limit: Option<i64>,
}

/// Anyone's security events, newest first.
#[utoipa::path(get, path = "/admin/activity", tag = "admin", params(AdminActivityQuery), security(("bearer" = [])),
    responses(
        (status = 200, body = ActivityPage),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 422, description = "Bad paging"),
    ))]
async fn activity(
    State(state): State<AppState>,
    _admin: Admin,
    AppQuery(query): AppQuery<AdminActivityQuery>,
) -> Result<Json<ActivityPage>, AppError> {
    Ok(Json(
        activity_page(&state, query.user_id, query.skip, query.limit).await?,
    ))
}
