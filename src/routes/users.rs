//! One account by name: read it, change its password or email, delete it.

use axum::extract::{Path, State};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ErrorBody, MessageResponse};
use crate::caller::ClientInfo;
use crate::domain::{Email, Password};
use crate::error::AppError;
use crate::extract::{AppJson, AppQuery, Caller, OptionalJson, VerifiedUser};
use crate::services::{account, email_change};
use crate::state::AppState;
use crate::store::User;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/users/{username}", get(get_user).delete(delete_user))
        .route("/auth/users/{username}/password", put(change_password))
        .route("/auth/users/{username}/email", put(change_email))
}

#[derive(Serialize, ToSchema)]
pub struct UserResponse {
    id: i64,
    username: String,
    email: String,
    is_admin: bool,
    is_verified: bool,
}

impl From<User> for UserResponse {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            username: u.username,
            email: u.email,
            is_admin: u.is_admin,
            is_verified: u.is_verified,
        }
    }
}

/// For the user themself, an admin, or an internal service (`X-API-Key`).
#[utoipa::path(get, path = "/auth/users/{username}", tag = "users",
    params(("username" = String, Path)), security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = UserResponse),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Another user's account", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
) -> Result<Json<UserResponse>, AppError> {
    let user = match caller {
        Caller::User(current) => account::target_account(&state, &current, &username, true).await?,
        Caller::Internal => account::account_named(&state, &username).await?,
    };
    Ok(Json(user.into()))
}

#[derive(Deserialize, ToSchema)]
pub struct ChangePasswordRequest {
    current_password: String,
    #[schema(value_type = String, min_length = 8)]
    new_password: Password,
}

/// Changes the caller's password; their other sessions end.
#[utoipa::path(put, path = "/auth/users/{username}/password", tag = "users", request_body = ChangePasswordRequest,
    params(("username" = String, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = MessageResponse),
        (status = 401, description = "Wrong current password", body = ErrorBody),
        (status = 403, description = "Another user's account, email not verified, or `mfa_step_up_required` (an account with a second factor, none on this session in the last MFA_STEP_UP_MINUTES)", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "Weak password"),
    ))]
async fn change_password(
    State(state): State<AppState>,
    client: ClientInfo,
    VerifiedUser(current): VerifiedUser,
    Path(username): Path<String>,
    AppJson(req): AppJson<ChangePasswordRequest>,
) -> Result<Json<MessageResponse>, AppError> {
    account::target_account(&state, &current, &username, false).await?;
    account::change_password(
        &state,
        &current,
        &req.current_password,
        &req.new_password,
        &client,
    )
    .await?;
    Ok(Json(MessageResponse::new("Password updated successfully")))
}

#[derive(Deserialize, ToSchema)]
pub struct ChangeEmailRequest {
    #[schema(value_type = String, format = Email, max_length = 254, example = "alice@example.org")]
    new_email: Email,
    current_password: String,
}

#[derive(Serialize, ToSchema)]
pub struct ChangeEmailResponse {
    message: &'static str,
    username: String,
    /// Still the current address: it stays in use until the new one is confirmed.
    email: String,
    /// The address waiting for confirmation through the link mailed to it.
    pending_email: String,
}

/// Asks to change the caller's address. The change completes when the link mailed to the
/// new address is followed; the current address is told, with a link that cancels it.
#[utoipa::path(put, path = "/auth/users/{username}/email", tag = "users", request_body = ChangeEmailRequest,
    params(("username" = String, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = ChangeEmailResponse),
        (status = 400, description = "Address taken or unchanged", body = ErrorBody),
        (status = 401, description = "Wrong current password", body = ErrorBody),
        (status = 403, description = "Another user's account, email not verified, or `mfa_step_up_required`", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "Not an email address"),
    ))]
async fn change_email(
    State(state): State<AppState>,
    client: ClientInfo,
    VerifiedUser(current): VerifiedUser,
    Path(username): Path<String>,
    AppJson(req): AppJson<ChangeEmailRequest>,
) -> Result<Json<ChangeEmailResponse>, AppError> {
    account::target_account(&state, &current, &username, false).await?;
    let pending_email = email_change::request_change(
        &state,
        &current,
        &req.new_email,
        &req.current_password,
        &client,
    )
    .await?;
    Ok(Json(ChangeEmailResponse {
        message:
            "Confirmation link sent to the new address; the change completes when it is opened.",
        username: current.user.username,
        email: current.user.email,
        pending_email,
    }))
}

#[derive(Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteRequest {
    /// Your password; not needed by an admin deleting another account.
    password: Option<String>,
}

/// Deletes the account (and with it its sessions). The password may come as `?password=`
/// (the original's form) or as a JSON body.
#[utoipa::path(delete, path = "/auth/users/{username}", tag = "users",
    params(("username" = String, Path), DeleteRequest), request_body(content = Option<DeleteRequest>),
    security(("bearer" = [])),
    responses(
        (status = 200, body = MessageResponse),
        (status = 401, description = "Wrong password", body = ErrorBody),
        (status = 403, description = "Not allowed, or `mfa_step_up_required` (deleting your own account with a second factor)", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The only active admin cannot delete their account (`last_admin`)", body = ErrorBody),
    ))]
async fn delete_user(
    State(state): State<AppState>,
    client: ClientInfo,
    VerifiedUser(current): VerifiedUser,
    Path(username): Path<String>,
    AppQuery(query): AppQuery<DeleteRequest>,
    OptionalJson(body): OptionalJson<DeleteRequest>,
) -> Result<Json<MessageResponse>, AppError> {
    let target = account::target_account(&state, &current, &username, true).await?;
    // The query wins (the original's form); a JSON body is the alternative.
    let password = query.password.or(body.and_then(|b| b.password));
    account::delete_account(&state, &current, &target, password.as_deref(), &client).await?;
    Ok(Json(MessageResponse::new("User deleted successfully")))
}
