//! The access levels of DESIGN §5 as extractors: a handler that takes `VerifiedUser`
//! cannot run for anyone else.

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::{header, request::Parts, HeaderMap};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::caller::{AccessClaims, Caller, ClientInfo, CurrentUser, ReadCaller};
use crate::error::AppError;
use crate::protection::middleware::ClientIp;
use crate::services::auth::authenticate;
use crate::state::AppState;
use crate::telemetry::RequestUser;

/// Headers that carry an internal service key; `api-key` is what the original's clients send.
const API_KEY_HEADERS: [&str; 2] = ["x-api-key", "api-key"];
const MAX_USER_AGENT_CHARS: usize = 512;

fn bearer_token(headers: &HeaderMap) -> Result<&str, AppError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '));
    match value {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(AppError::unauthorized("Not authenticated")),
    }
}

/// A verified bearer token, its session not checked yet: for reads that check the session
/// in the same statement as their data (`services::reads`).
impl FromRequestParts<AppState> for AccessClaims {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers)?;
        let claims = state
            .tokens
            .verify_access(token)
            .await
            .ok_or_else(AppError::invalid_token)?;
        Ok(Self {
            user_id: claims.user_id().ok_or_else(AppError::invalid_token)?,
            session_id: claims.sid,
            acting_user: parts.extensions.get::<RequestUser>().cloned(),
        })
    }
}

impl FromRequestParts<AppState> for ReadCaller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if internal_key(parts, state)? {
            return Ok(Self::Internal);
        }
        AccessClaims::from_request_parts(parts, state)
            .await
            .map(Self::User)
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers)?;
        let current = authenticate(state, token).await?;
        // The access log names the user the request acted as.
        if let Some(slot) = parts.extensions.get::<RequestUser>() {
            slot.set(current.user.id);
        }
        Ok(current)
    }
}

/// Authenticated and, when REQUIRE_EMAIL_VERIFICATION is on, with a verified address.
pub struct VerifiedUser(pub CurrentUser);

impl FromRequestParts<AppState> for VerifiedUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let current = CurrentUser::from_request_parts(parts, state).await?;
        crate::services::account::ensure_verified(state, &current)?;
        Ok(Self(current))
    }
}

/// An authenticated administrator.
pub struct Admin(pub CurrentUser);

impl FromRequestParts<AppState> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let current = CurrentUser::from_request_parts(parts, state).await?;
        if !current.is_admin() {
            return Err(AppError::forbidden("Admin privileges required"));
        }
        Ok(Self(current))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if internal_key(parts, state)? {
            return Ok(Self::Internal);
        }
        CurrentUser::from_request_parts(parts, state)
            .await
            .map(Self::User)
    }
}

/// Whether the request comes from an internal service: `true` for a configured key, a 401
/// for any other key (a request that sends a key is judged by the key alone, never by a
/// bearer token it may also carry), `false` when it sends none.
pub(crate) fn internal_key(parts: &Parts, state: &AppState) -> Result<bool, AppError> {
    match API_KEY_HEADERS
        .iter()
        .find_map(|name| parts.headers.get(*name))
    {
        Some(key) if key_matches(key.as_bytes(), state) => Ok(true),
        Some(_) => Err(AppError::unauthorized("Invalid API key")),
        None => Ok(false),
    }
}

/// Compares digests, so the comparison takes the same time whatever the key's length or
/// content, and checks every configured key without stopping early.
fn key_matches(presented: &[u8], state: &AppState) -> bool {
    let presented = Sha256::digest(presented);
    state
        .config
        .internal_api_keys
        .iter()
        .fold(false, |found, key| {
            let candidate = Sha256::digest(key.expose().as_bytes());
            found | bool::from(candidate.ct_eq(&presented))
        })
}

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // The rate limiter resolved the client behind trusted proxies; else the peer.
        let ip = parts
            .extensions
            .get::<ClientIp>()
            .map(|ClientIp(ip)| ip.to_string())
            .or_else(|| {
                parts
                    .extensions
                    .get::<ConnectInfo<std::net::SocketAddr>>()
                    .map(|ConnectInfo(addr)| addr.ip().to_string())
            });
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(MAX_USER_AGENT_CHARS).collect());
        Ok(Self { ip, user_agent })
    }
}
