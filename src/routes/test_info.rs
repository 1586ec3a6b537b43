//! `GET /test-info`: non-secret facts about this instance that test tooling needs to pick
//! its path (is verification required, which backend, are limits on). The original service
//! had an endpoint of this name for its test suite; what it returned is not known, so this
//! answers only facts a client could find out by trying. Absent (404) in production.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::ErrorBody;
use crate::config::{Environment, PasswordScheme};
use crate::error::AppError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/test-info", get(test_info))
}

#[derive(Serialize, ToSchema)]
pub struct TestInfo {
    /// `development` (this route does not exist in production).
    #[schema(example = "development")]
    environment: &'static str,
    version: &'static str,
    /// `sqlite` or `postgres`.
    backend: &'static str,
    /// Whether the "verified user" endpoints need a verified email.
    email_verification_required: bool,
    /// `bcrypt` or `argon2id`: the hash new passwords get.
    password_hash: &'static str,
    /// Whether mail goes to SMTP (`smtp`) or to files under the data directory (`file`).
    mail_transport: &'static str,
    /// Requests per minute and client IP on /auth/* (0: off).
    rate_limit_auth_per_minute: u32,
    /// Requests per minute and client IP elsewhere (0: off).
    rate_limit_default_per_minute: u32,
    access_token_expire_minutes: i64,
    /// Whether internal-service keys are configured (the keys themselves are never shown).
    internal_api_keys_configured: bool,
    /// Whether rate-limit counters are shared through Redis.
    redis_configured: bool,
}

/// Facts about this instance for test tooling; 404 when ENVIRONMENT=production.
#[utoipa::path(get, path = "/test-info", tag = "health",
    responses(
        (status = 200, body = TestInfo),
        (status = 404, description = "ENVIRONMENT=production", body = ErrorBody),
    ))]
async fn test_info(State(state): State<AppState>) -> Result<Json<TestInfo>, AppError> {
    let config = &state.config;
    if config.environment == Environment::Production {
        return Err(AppError::not_found("Not Found"));
    }
    Ok(Json(TestInfo {
        environment: "development",
        version: env!("CARGO_PKG_VERSION"),
        backend: state.store.backend(),
        email_verification_required: config.require_email_verification,
        password_hash: match config.password_hash {
            PasswordScheme::Bcrypt => "bcrypt",
            PasswordScheme::Argon2id => "argon2id",
        },
        mail_transport: if config.mail.smtp.is_some() {
            "smtp"
        } else {
            "file"
        },
        rate_limit_auth_per_minute: config.rate_limit_auth_per_minute,
        rate_limit_default_per_minute: config.rate_limit_default_per_minute,
        access_token_expire_minutes: config.access_token_expire_minutes,
        internal_api_keys_configured: !config.internal_api_keys.is_empty(),
        redis_configured: config.redis_url.is_some(),
    }))
}
