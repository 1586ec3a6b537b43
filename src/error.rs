//! The one place where errors become HTTP responses.
//!
//! Every handler returns `Result<_, AppError>`; `IntoResponse` below renders the contract's
//! shapes (DESIGN §5): `{"detail": "...", "code": "..."}` for ordinary errors and the
//! FastAPI-compatible list for 422s. Internal errors are logged and never leak to clients.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::json;

use crate::store::StoreError;

/// One entry of a 422 body, shaped like FastAPI's so existing clients keep working.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FieldError {
    pub loc: Vec<String>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: String,
}

impl FieldError {
    /// `location` is "body", "query" or "path"; `field` may be empty for the whole body.
    pub fn new(location: &str, field: &str, msg: impl Into<String>, kind: &str) -> Self {
        let mut loc = vec![location.to_owned()];
        if !field.is_empty() {
            loc.extend(field.split('.').map(str::to_owned));
        }
        Self {
            loc,
            msg: msg.into(),
            kind: kind.to_owned(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    #[error("{detail}")]
    Unauthorized { code: &'static str, detail: String },
    #[error("{detail}")]
    Forbidden { code: &'static str, detail: String },
    #[error("{detail}")]
    NotFound { code: &'static str, detail: String },
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("{detail}")]
    TooManyRequests {
        detail: String,
        retry_after_secs: u64,
    },
    #[error("service unavailable")]
    Unavailable,
    /// The disk under the database is full: writes refused until space returns (503).
    #[error("storage full")]
    StorageFull,
    /// A feature that is switched off by configuration (503 with its own code).
    #[error("{detail}")]
    Disabled { code: &'static str, detail: String },
    /// An upstream service (Stripe) failed or refused: 502, with our words, not theirs.
    #[error("{detail}")]
    BadGateway { code: &'static str, detail: String },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    pub fn validation(location: &str, field: &str, msg: impl Into<String>, kind: &str) -> Self {
        Self::Validation(vec![FieldError::new(location, field, msg, kind)])
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            detail: detail.into(),
        }
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::Unauthorized {
            code: "unauthorized",
            detail: detail.into(),
        }
    }

    /// The answer to any token that does not grant access, whatever the reason:
    /// telling reasons apart would help an attacker probe.
    pub fn invalid_token() -> Self {
        Self::unauthorized("Could not validate credentials")
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::Forbidden {
            code: "forbidden",
            detail: detail.into(),
        }
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::NotFound {
            code: "not_found",
            detail: detail.into(),
        }
    }

    pub fn user_not_found() -> Self {
        Self::not_found("User not found")
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            detail: detail.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable | Self::StorageFull | Self::Disabled { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::BadGateway { .. } => StatusCode::BAD_GATEWAY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::UsernameTaken => {
                Self::conflict("username_taken", "Username already registered")
            }
            StoreError::EmailTaken => Self::conflict("email_taken", "Email already registered"),
            StoreError::IdentityTaken => Self::conflict(
                "identity_in_use",
                "This sign-in identity is linked to another account",
            ),
            StoreError::DuplicateReference => Self::conflict(
                "idempotency_conflict",
                "reference_id was already used for another transaction",
            ),
            StoreError::PlanTaken => Self::conflict(
                "plan_exists",
                "A plan with this id or stripe_price_id already exists",
            ),
            StoreError::MissingReference => Self::user_not_found(),
            StoreError::BalanceOverflow => Self::bad_request(
                "balance_overflow",
                "The balance cannot hold this many credits",
            ),
            StoreError::InvalidData(e) => {
                tracing::warn!(error = %e, "the database refused a value");
                Self::validation(
                    "body",
                    "",
                    "A value cannot be stored (text with NUL characters, or a number out of range)",
                    "value_error",
                )
            }
            StoreError::LastAdmin => Self::conflict(
                "last_admin",
                "The only active admin cannot be removed; make another admin first",
            ),
            StoreError::Unavailable(e) => {
                tracing::error!(error = %e, "database unavailable");
                Self::Unavailable
            }
            StoreError::StorageFull(e) => {
                tracing::error!(error = %e, "database storage full: writes refused");
                Self::StorageFull
            }
            StoreError::Other(e) => Self::Internal(e.into()),
        }
    }
}

/// Renders `{"detail", "code"}` with a status; used by the JSON 404/405/413 fallbacks too.
pub fn error_body(status: StatusCode, code: &str, detail: &str) -> Response {
    (status, Json(json!({ "detail": detail, "code": code }))).into_response()
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        match self {
            Self::Validation(errors) => (
                status,
                Json(json!({ "detail": errors, "code": "validation_error" })),
            )
                .into_response(),
            Self::BadRequest { code, detail }
            | Self::Forbidden { code, detail }
            | Self::NotFound { code, detail }
            | Self::Conflict { code, detail }
            | Self::Disabled { code, detail }
            | Self::BadGateway { code, detail } => error_body(status, code, &detail),
            Self::Unauthorized { code, detail } => {
                let mut response = error_body(status, code, &detail);
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                response
            }
            Self::PayloadTooLarge => {
                error_body(status, "payload_too_large", "Request body too large")
            }
            Self::TooManyRequests {
                detail,
                retry_after_secs,
            } => {
                let mut response = error_body(status, "rate_limited", &detail);
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after_secs.max(1)),
                );
                response
            }
            // Retry-After: a failover or a restart is over in seconds; a client retrying
            // with the same reference_id is never charged twice.
            Self::Unavailable => with_retry_after(
                error_body(
                    status,
                    "service_unavailable",
                    "Service temporarily unavailable",
                ),
                UNAVAILABLE_RETRY_SECS,
            ),
            Self::StorageFull => with_retry_after(
                error_body(
                    status,
                    "storage_full",
                    "Storage is full: changes are refused until space is freed; reads still work",
                ),
                STORAGE_FULL_RETRY_SECS,
            ),
            Self::Internal(err) => {
                // The chain goes to the log (inside the request's span, so with its id);
                // the client learns nothing about internals.
                tracing::error!(error = ?err, "internal error");
                error_body(status, "internal_error", "Internal server error")
            }
        }
    }
}

/// Seconds a client should wait after a 503 of a database that dropped or is switching.
const UNAVAILABLE_RETRY_SECS: u64 = 1;
/// Space comes back by an operator's hand: retry less eagerly.
const STORAGE_FULL_RETRY_SECS: u64 = 30;

fn with_retry_after(mut response: Response, secs: u64) -> Response {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}
