//! Administration: find accounts, change their flags, read anyone's activity.

use axum::extract::{Path, State};
use axum::routing::{get, patch};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::identities::IdentityResponse;
use super::sessions::{activity_page, ActivityPage};
use super::{page_limit, ErrorBody};
use crate::caller::ClientInfo;
use crate::error::AppError;
use crate::extract::{Admin, AppJson, AppQuery};
use crate::services::admin as admin_service;
use crate::state::AppState;
use crate::store::{User, UserFlags};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/users", get(list_users))
        .route("/admin/users/{username}", patch(update_user))
        .route("/admin/activity", get(activity))
        .route(
            "/admin/users/{username}/mfa",
            axum::routing::delete(reset_mfa),
        )
}

#[derive(Serialize, ToSchema)]
pub struct MfaResetResponse {
    message: String,
    /// False when the account had no second factor (nothing changed).
    removed: bool,
}

/// Removes every second factor of an account (a user who lost the app and the recovery
/// codes); audited with the admin's id, and the user is mailed.
#[utoipa::path(delete, path = "/admin/users/{username}/mfa", tag = "admin",
    params(("username" = String, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = MfaResetResponse),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn reset_mfa(
    State(state): State<AppState>,
    client: ClientInfo,
    Admin(admin): Admin,
    Path(username): Path<String>,
) -> Result<Json<MfaResetResponse>, AppError> {
    let target = crate::services::account::account_named(&state, &username).await?;
    let removed =
        crate::services::mfa::admin_reset(&state, admin.user.id, &target, &client).await?;
    let message = if removed {
        "Two-step verification removed"
    } else {
        "The account had no two-step verification"
    };
    Ok(Json(MfaResetResponse {
        message: message.into(),
        removed,
    }))
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
    /// Linked sign-in providers.
    identities: Vec<IdentityResponse>,
}

/// The accounts with their linked identities (one query for all of them).
async fn with_identities(
    state: &AppState,
    users: Vec<User>,
) -> Result<Vec<AdminUserResponse>, AppError> {
    let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
    let identities = state.store.identities_of_users(&ids).await?;
    Ok(users
        .into_iter()
        .map(|u| {
            let id = u.id;
            let mut response = AdminUserResponse::from(u);
            response.identities = identities
                .iter()
                .filter(|i| i.user_id == id)
                .cloned()
                .map(Into::into)
                .collect();
            response
        })
        .collect())
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
            identities: Vec::new(),
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
    let (users, total_count) = admin_service::list_users(
        &state,
        query.search.as_deref(),
        i64::from(query.skip),
        limit,
    )
    .await?;
    Ok(Json(UsersPage {
        users: with_identities(&state, users).await?,
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
    let updated = admin_service::update_flags(&state, &admin, &username, flags, &client).await?;
    let mut updated = with_identities(&state, vec![updated]).await?;
    updated.pop().map(Json).ok_or_else(AppError::user_not_found)
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
