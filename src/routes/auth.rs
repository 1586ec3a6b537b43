//! Registration, login, token refresh, logout and the caller's own profile.

use axum::extract::State;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ErrorBody, MessageResponse};
use crate::caller::{AccessClaims, ClientInfo, CurrentUser, ReadCaller};
use crate::domain::{is_storable, Email, Password, Username};
use crate::error::AppError;
use crate::extract::{AppJson, AppQuery, JsonOrForm};
use crate::services::auth::{self, TokenPair};
use crate::services::reads;
use crate::state::AppState;
use crate::store::User;

/// Headers of every response that carries tokens: no cache may keep it (RFC 6749 §5.1).
pub const NO_STORE: [(HeaderName, HeaderValue); 2] = [
    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    (header::PRAGMA, HeaderValue::from_static("no-cache")),
];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
        .route("/auth/refresh", post(refresh))
        .route("/auth/logout", post(logout))
        .route("/auth/me", get(me))
}

#[derive(Deserialize, ToSchema)]
pub struct RegisterRequest {
    #[schema(value_type = String, example = "alice", min_length = 3, max_length = 32, pattern = "^[A-Za-z0-9_.-]{3,32}$")]
    username: Username,
    #[schema(value_type = String, format = Email, max_length = 254, example = "alice@example.com")]
    email: Email,
    #[schema(value_type = String, min_length = 8, example = "correct horse battery")]
    password: Password,
}

#[derive(Serialize, ToSchema)]
pub struct RegisterResponse {
    message: &'static str,
    username: String,
    access_token: String,
    token_type: &'static str,
    refresh_token: String,
    expires_in: i64,
}

/// Creates an account, signs it in, and mails a verification link.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 201, body = RegisterResponse),
        (status = 409, description = "Username or email taken", body = ErrorBody),
        (status = 422, description = "Invalid input"),
    ))]
async fn register(
    State(state): State<AppState>,
    client: ClientInfo,
    AppJson(req): AppJson<RegisterRequest>,
) -> Result<
    (
        StatusCode,
        [(HeaderName, HeaderValue); 2],
        Json<RegisterResponse>,
    ),
    AppError,
> {
    let (user, tokens) =
        auth::register(&state, req.username, req.email, req.password, &client).await?;
    let body = RegisterResponse {
        message: "User registered successfully",
        username: user.username,
        access_token: tokens.access_token,
        token_type: tokens.token_type,
        refresh_token: tokens.refresh_token,
        expires_in: tokens.expires_in,
    };
    Ok((StatusCode::CREATED, NO_STORE, Json(body)))
}

/// OAuth2 password form (`username`, `password`) or the same as JSON; `username` may be the email.
#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    username: Option<String>,
    /// Accepted instead of `username` in JSON bodies.
    email: Option<String>,
    password: String,
}

#[utoipa::path(post, path = "/auth/login", tag = "auth",
    request_body(content(
        (LoginRequest = "application/x-www-form-urlencoded"),
        (LoginRequest = "application/json"),
    )),
    responses(
        (status = 200, description = "The token pair, or (second factor on the account) the mfa challenge and no token", body = auth::LoginOutcome),
        (status = 401, description = "Incorrect username or password", body = ErrorBody),
        (status = 403, description = "Account disabled", body = ErrorBody),
        (status = 422, description = "Missing fields"),
    ))]
async fn login(
    State(state): State<AppState>,
    client: ClientInfo,
    JsonOrForm(req): JsonOrForm<LoginRequest>,
) -> Result<([(HeaderName, HeaderValue); 2], Json<auth::LoginOutcome>), AppError> {
    let identifier = req
        .username
        .or(req.email)
        .ok_or_else(|| AppError::validation("body", "username", "Field required", "missing"))?;
    // Text with NUL can be no account's name or password (registration refuses it, and
    // PostgreSQL cannot even compare it): the ordinary answer, without asking the store.
    if !is_storable(&identifier) || !is_storable(&req.password) {
        return Err(AppError::unauthorized("Incorrect username or password"));
    }
    Ok((
        NO_STORE,
        Json(auth::login(&state, &identifier, &req.password, &client).await?),
    ))
}

/// Either a refresh token, or (as the original service accepted) an unexpired access token.
#[derive(Deserialize, ToSchema)]
pub struct RefreshRequest {
    refresh_token: Option<String>,
    token: Option<String>,
}

#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, body = TokenPair),
        (status = 401, description = "Invalid, expired or revoked token", body = ErrorBody),
        (status = 422, description = "No token given"),
    ))]
async fn refresh(
    State(state): State<AppState>,
    client: ClientInfo,
    AppJson(req): AppJson<RefreshRequest>,
) -> Result<([(HeaderName, HeaderValue); 2], Json<TokenPair>), AppError> {
    let pair = match (req.refresh_token, req.token) {
        (Some(refresh_token), _) => auth::refresh(&state, &refresh_token, &client).await?,
        // A JWT has three dot-separated parts; anything else is taken for a refresh token.
        (None, Some(token)) if token.split('.').count() == 3 => {
            auth::refresh_with_access_token(&state, &token).await?
        }
        (None, Some(token)) => auth::refresh(&state, &token, &client).await?,
        (None, None) => {
            return Err(AppError::validation(
                "body",
                "refresh_token",
                "Field required",
                "missing",
            ))
        }
    };
    Ok((NO_STORE, Json(pair)))
}

/// Ends the session of the presented token, on every instance at once.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = MessageResponse), (status = 401, body = ErrorBody)))]
async fn logout(
    State(state): State<AppState>,
    client: ClientInfo,
    current: CurrentUser,
) -> Result<Json<MessageResponse>, AppError> {
    auth::logout(&state, &current, &client).await?;
    Ok(Json(MessageResponse::new("Successfully logged out")))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MeQuery {
    /// Admins only: look at another user.
    user_id: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct MeResponse {
    id: i64,
    username: String,
    email: String,
    is_admin: bool,
    is_verified: bool,
    created_at: DateTime<Utc>,
}

impl From<User> for MeResponse {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            username: u.username,
            email: u.email,
            is_admin: u.is_admin,
            is_verified: u.is_verified,
            created_at: u.created_at,
        }
    }
}

#[utoipa::path(get, path = "/auth/me", tag = "auth", params(MeQuery), security(("bearer" = [])),
    responses(
        (status = 200, body = MeResponse),
        (status = 401, body = ErrorBody),
        (status = 403, description = "user_id given by a non-admin", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn me(
    State(state): State<AppState>,
    claims: AccessClaims,
    query: Result<AppQuery<MeQuery>, AppError>,
) -> Result<Json<MeResponse>, AppError> {
    let AppQuery(query) = match query {
        Ok(query) => query,
        Err(bad) => {
            let caller = ReadCaller::User(claims);
            return Err(reads::refuse_after_check(&state, &caller, bad).await);
        }
    };
    // One statement: the session check, with the other user when one is named.
    let user = reads::profile(&state, &claims, query.user_id).await?;
    Ok(Json(user.into()))
}
