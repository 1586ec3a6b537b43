//! The flows that run through emailed links: verifying an address, resetting a password.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{ErrorBody, MessageResponse};
use crate::caller::{ClientInfo, CurrentUser};
use crate::domain::{Email, Password};
use crate::error::AppError;
use crate::extract::{AppJson, AppQuery};
use crate::services::{account, email_change};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/auth/verify-email",
            post(verify_email).get(verify_email_link),
        )
        .route("/auth/resend-verification", post(resend_verification))
        .route("/auth/password-reset-request", post(password_reset_request))
        .route("/auth/reset-password", post(reset_password))
        .route(
            "/auth/cancel-email-change",
            post(cancel_email_change).get(cancel_email_change_link),
        )
}

#[derive(Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenRequest {
    /// The token from the emailed link.
    token: String,
}

const VERIFIED: &str = "Email verified successfully";

#[utoipa::path(post, path = "/auth/verify-email", tag = "email", request_body = TokenRequest,
    responses((status = 200, body = MessageResponse), (status = 400, description = "Invalid or expired token", body = ErrorBody)))]
async fn verify_email(
    State(state): State<AppState>,
    client: ClientInfo,
    AppJson(req): AppJson<TokenRequest>,
) -> Result<Json<MessageResponse>, AppError> {
    account::verify_email(&state, &req.token, &client).await?;
    Ok(Json(MessageResponse::new(VERIFIED)))
}

/// The same as the POST, for a link clicked in a mail client.
#[utoipa::path(get, path = "/auth/verify-email", tag = "email", params(TokenRequest),
    responses((status = 200, body = MessageResponse), (status = 400, description = "Invalid or expired token", body = ErrorBody)))]
async fn verify_email_link(
    State(state): State<AppState>,
    client: ClientInfo,
    AppQuery(req): AppQuery<TokenRequest>,
) -> Result<Json<MessageResponse>, AppError> {
    account::verify_email(&state, &req.token, &client).await?;
    Ok(Json(MessageResponse::new(VERIFIED)))
}

/// Mails a new verification link (at most one a minute).
#[utoipa::path(post, path = "/auth/resend-verification", tag = "email", security(("bearer" = [])),
    responses(
        (status = 200, body = MessageResponse),
        (status = 400, description = "Already verified", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 429, description = "Sent recently; see Retry-After", body = ErrorBody),
    ))]
async fn resend_verification(
    State(state): State<AppState>,
    current: CurrentUser,
) -> Result<Json<MessageResponse>, AppError> {
    account::resend_verification(&state, &current).await?;
    Ok(Json(MessageResponse::new("Verification email sent")))
}

#[derive(Deserialize, ToSchema)]
pub struct ResetRequest {
    #[schema(value_type = String, format = Email, max_length = 254, example = "alice@example.com")]
    email: Email,
}

/// Always answers the same, whether or not the address has an account.
#[utoipa::path(post, path = "/auth/password-reset-request", tag = "email", request_body = ResetRequest,
    responses((status = 200, body = MessageResponse), (status = 422, description = "Not an email address")))]
async fn password_reset_request(
    State(state): State<AppState>,
    client: ClientInfo,
    AppJson(req): AppJson<ResetRequest>,
) -> Result<Json<MessageResponse>, AppError> {
    account::request_password_reset(&state, &req.email, &client).await?;
    Ok(Json(MessageResponse::new(
        "Password reset link sent to email if account exists",
    )))
}

#[derive(Deserialize, ToSchema)]
pub struct ResetPasswordRequest {
    token: String,
    #[schema(value_type = String, min_length = 8)]
    new_password: Password,
}

/// Sets a new password with a reset token. Every session of the account ends.
#[utoipa::path(post, path = "/auth/reset-password", tag = "email", request_body = ResetPasswordRequest,
    responses(
        (status = 200, body = MessageResponse),
        (status = 400, description = "Invalid, expired or used token", body = ErrorBody),
        (status = 422, description = "Weak password"),
    ))]
async fn reset_password(
    State(state): State<AppState>,
    client: ClientInfo,
    AppJson(req): AppJson<ResetPasswordRequest>,
) -> Result<Json<MessageResponse>, AppError> {
    account::reset_password(&state, &req.token, &req.new_password, &client).await?;
    Ok(Json(MessageResponse::new(
        "Password has been reset successfully",
    )))
}

const CANCELLED: &str = "Email change cancelled";

async fn cancel(state: &AppState, token: &str, client: &ClientInfo) -> Result<(), AppError> {
    if email_change::cancel(state, token, client).await? {
        Ok(())
    } else {
        Err(AppError::bad_request(
            "invalid_token",
            "Invalid or expired token",
        ))
    }
}

/// Cancels a pending change of email with the link mailed to the current address.
#[utoipa::path(post, path = "/auth/cancel-email-change", tag = "email", request_body = TokenRequest,
    responses((status = 200, body = MessageResponse), (status = 400, description = "Invalid, expired or used token", body = ErrorBody)))]
async fn cancel_email_change(
    State(state): State<AppState>,
    client: ClientInfo,
    AppJson(req): AppJson<TokenRequest>,
) -> Result<Json<MessageResponse>, AppError> {
    cancel(&state, &req.token, &client).await?;
    Ok(Json(MessageResponse::new(CANCELLED)))
}

/// The same as the POST, for a link clicked in a mail client.
#[utoipa::path(get, path = "/auth/cancel-email-change", tag = "email", params(TokenRequest),
    responses((status = 200, body = MessageResponse), (status = 400, description = "Invalid, expired or used token", body = ErrorBody)))]
async fn cancel_email_change_link(
    State(state): State<AppState>,
    client: ClientInfo,
    AppQuery(req): AppQuery<TokenRequest>,
) -> Result<Json<MessageResponse>, AppError> {
    cancel(&state, &req.token, &client).await?;
    Ok(Json(MessageResponse::new(CANCELLED)))
}
