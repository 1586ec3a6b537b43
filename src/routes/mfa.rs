//! Second factors (DESIGN §14): the authenticator app, recovery codes, and the second
//! step of a login.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::NO_STORE;
use super::{ErrorBody, MessageResponse};
use crate::caller::{ClientInfo, CurrentUser};
use crate::domain::is_storable;
use crate::error::AppError;
use crate::extract::{AppJson, VerifiedUser};
use crate::services::auth::TokenPair;
use crate::services::mfa::{self, Factor, MfaStatus, RecoveryCodes, TotpEnrollment};
use crate::state::AppState;

/// Longest code or token read; anything longer is no valid one.
const MAX_CODE_CHARS: usize = 64;

/// Longer than any code or token we issue, or not storable text: no valid one.
fn readable(text: &str) -> bool {
    text.chars().count() <= MAX_CODE_CHARS && is_storable(text)
}

/// Exactly one of `code` and `recovery_code` (422 otherwise); one that cannot be valid is
/// the same 401 as a wrong one.
fn factor_of<'a>(
    code: Option<&'a str>,
    recovery_code: Option<&'a str>,
) -> Result<Factor<'a>, AppError> {
    let factor = match (code, recovery_code) {
        (Some(code), None) => Factor::Totp(code),
        (None, Some(code)) => Factor::RecoveryCode(code),
        _ => {
            return Err(AppError::validation(
                "body",
                "code",
                "Give exactly one of code and recovery_code",
                "value_error",
            ))
        }
    };
    if !readable(code.or(recovery_code).unwrap_or("")) {
        return Err(AppError::unauthorized("Invalid code"));
    }
    Ok(factor)
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/mfa", get(status))
        .route("/auth/mfa/totp/enroll", post(enroll))
        .route("/auth/mfa/totp/confirm", post(confirm))
        .route("/auth/mfa/totp", axum::routing::delete(remove))
        .route("/auth/mfa/recovery-codes", post(regenerate))
        .route("/auth/mfa/verify", post(verify))
        .route("/auth/mfa/step-up", post(step_up))
}

#[derive(Deserialize, ToSchema)]
pub struct StepUpRequest {
    /// A 6-digit authenticator code; give this or `recovery_code`.
    #[schema(min_length = 6, max_length = 6, pattern = "^[0-9]{6}$")]
    code: Option<String>,
    /// One of the recovery codes (used up); give this or `code`.
    #[schema(max_length = 64)]
    recovery_code: Option<String>,
}

#[derive(serde::Serialize, ToSchema)]
pub struct StepUpResponse {
    message: String,
    /// Until when this session may make the changes that need a recent second factor.
    valid_until: chrono::DateTime<chrono::Utc>,
}

/// Confirms a second factor on this session, for the changes that need a recent one
/// (password, email, deleting the account, removing a factor, new recovery codes, linking
/// a provider) within MFA_STEP_UP_MINUTES.
#[utoipa::path(post, path = "/auth/mfa/step-up", tag = "mfa", request_body = StepUpRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = StepUpResponse),
        (status = 400, description = "`mfa_not_active`: the account has no second factor", body = ErrorBody),
        (status = 401, description = "Wrong code, or not signed in", body = ErrorBody),
        (status = 422, description = "Both or neither of code and recovery_code"),
        (status = 429, description = "Too many failed attempts", body = ErrorBody),
    ))]
pub async fn step_up(
    State(state): State<AppState>,
    client: ClientInfo,
    current: CurrentUser,
    AppJson(req): AppJson<StepUpRequest>,
) -> Result<Json<StepUpResponse>, AppError> {
    let factor = factor_of(req.code.as_deref(), req.recovery_code.as_deref())?;
    let valid_until = crate::services::step_up::step_up(&state, &current, factor, &client).await?;
    Ok(Json(StepUpResponse {
        message: "Two-step verification confirmed".into(),
        valid_until,
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct CodeRequest {
    /// The 6-digit code the authenticator app shows.
    #[schema(min_length = 6, max_length = 6, pattern = "^[0-9]{6}$")]
    code: String,
}

#[derive(Deserialize, ToSchema)]
pub struct VerifyRequest {
    /// From the login answer.
    #[schema(max_length = 64)]
    mfa_token: String,
    /// A 6-digit authenticator code; give this or `recovery_code`.
    #[schema(min_length = 6, max_length = 6, pattern = "^[0-9]{6}$")]
    code: Option<String>,
    /// One of the recovery codes; give this or `code`.
    #[schema(max_length = 64)]
    recovery_code: Option<String>,
}

/// Starts setting up an authenticator app (a new secret each call until confirmed).
#[utoipa::path(post, path = "/auth/mfa/totp/enroll", tag = "mfa", security(("bearer" = [])),
    responses(
        (status = 200, body = TotpEnrollment),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Email not verified", body = ErrorBody),
        (status = 409, description = "An authenticator app is already active", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn enroll(
    State(state): State<AppState>,
    VerifiedUser(current): VerifiedUser,
) -> Result<
    (
        [(axum::http::HeaderName, axum::http::HeaderValue); 2],
        Json<TotpEnrollment>,
    ),
    AppError,
> {
    Ok((NO_STORE, Json(mfa::enroll(&state, &current.user).await?)))
}

/// Confirms the authenticator with a code; answers the recovery codes, shown once.
#[utoipa::path(post, path = "/auth/mfa/totp/confirm", tag = "mfa", security(("bearer" = [])),
    request_body = CodeRequest,
    responses(
        (status = 200, body = RecoveryCodes),
        (status = 400, description = "`invalid_code`: wrong code or nothing to confirm", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Email not verified", body = ErrorBody),
        (status = 422, description = "Missing or malformed fields"),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn confirm(
    State(state): State<AppState>,
    client: ClientInfo,
    VerifiedUser(current): VerifiedUser,
    AppJson(req): AppJson<CodeRequest>,
) -> Result<
    (
        [(axum::http::HeaderName, axum::http::HeaderValue); 2],
        Json<RecoveryCodes>,
    ),
    AppError,
> {
    let codes = mfa::confirm(&state, &current.user, &req.code, &client).await?;
    Ok((NO_STORE, Json(codes)))
}

/// Which factors the caller's account has.
#[utoipa::path(get, path = "/auth/mfa", tag = "mfa", security(("bearer" = [])),
    responses(
        (status = 200, body = MfaStatus),
        (status = 401, body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn status(
    State(state): State<AppState>,
    current: CurrentUser,
) -> Result<Json<MfaStatus>, AppError> {
    Ok(Json(mfa::status(&state, &current.user).await?))
}

/// Removes the authenticator app and the recovery codes.
#[utoipa::path(delete, path = "/auth/mfa/totp", tag = "mfa", security(("bearer" = [])),
    responses(
        (status = 200, body = MessageResponse),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Email not verified, or `mfa_step_up_required`: no second factor on this session in the last MFA_STEP_UP_MINUTES", body = ErrorBody),
        (status = 404, description = "No authenticator app is set up", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn remove(
    State(state): State<AppState>,
    client: ClientInfo,
    VerifiedUser(current): VerifiedUser,
) -> Result<Json<MessageResponse>, AppError> {
    crate::services::step_up::require_recent_factor(&state, &current).await?;
    mfa::remove(&state, &current.user, &client).await?;
    Ok(Json(MessageResponse::new("Authenticator app removed")))
}

/// New recovery codes; the old ones stop working.
#[utoipa::path(post, path = "/auth/mfa/recovery-codes", tag = "mfa", security(("bearer" = [])),
    responses(
        (status = 200, body = RecoveryCodes),
        (status = 400, description = "`mfa_not_active`: no authenticator app", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Email not verified, or `mfa_step_up_required`", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn regenerate(
    State(state): State<AppState>,
    client: ClientInfo,
    VerifiedUser(current): VerifiedUser,
) -> Result<
    (
        [(axum::http::HeaderName, axum::http::HeaderValue); 2],
        Json<RecoveryCodes>,
    ),
    AppError,
> {
    crate::services::step_up::require_recent_factor(&state, &current).await?;
    let codes = mfa::regenerate_recovery_codes(&state, &current.user, &client).await?;
    Ok((NO_STORE, Json(codes)))
}

/// The second step of a login: the mfa_token and a code (or recovery code) give the pair.
#[utoipa::path(post, path = "/auth/mfa/verify", tag = "mfa", request_body = VerifyRequest,
    responses(
        (status = 200, body = TokenPair),
        (status = 401, description = "Wrong code, or an unknown, expired or used mfa_token", body = ErrorBody),
        (status = 422, description = "Missing fields, or both or neither of code and recovery_code"),
        (status = 429, description = "Too many failed attempts", body = ErrorBody),
    ))]
pub async fn verify(
    State(state): State<AppState>,
    client: ClientInfo,
    AppJson(req): AppJson<VerifyRequest>,
) -> Result<
    (
        [(axum::http::HeaderName, axum::http::HeaderValue); 2],
        Json<TokenPair>,
    ),
    AppError,
> {
    let factor = factor_of(req.code.as_deref(), req.recovery_code.as_deref())?;
    if !readable(&req.mfa_token) {
        return Err(AppError::unauthorized("Invalid code"));
    }
    Ok((
        NO_STORE,
        Json(mfa::verify(&state, &req.mfa_token, factor, &client).await?),
    ))
}
