//! HTTP routes: one router per area, thin handlers that parse, call a service, shape the answer.

pub mod admin;
pub mod admin_webhooks;
pub mod auth;
pub mod billing;
pub mod credit_holds;
pub mod credits;
pub mod docs;
pub mod email_links;
pub mod health;
pub mod identities;
pub mod introspect;
pub mod metrics;
pub mod mfa;
pub mod oauth;
mod openapi_contract;
mod openapi_round_two;
pub mod plans;
pub mod sessions;
pub mod signing_keys;
pub mod test_info;
pub mod users;
pub mod webhooks;
pub mod wellknown;

use axum::Router;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::AppError;
use crate::state::AppState;

pub fn api() -> Router<AppState> {
    Router::new()
        .merge(auth::router())
        .merge(credits::router())
        .merge(credit_holds::router())
        .merge(email_links::router())
        .merge(users::router())
        .merge(health::router())
        .merge(metrics::router())
        .merge(sessions::router())
        .merge(admin::router())
        .merge(admin_webhooks::router())
        .merge(oauth::router())
        .merge(identities::router())
        .merge(mfa::router())
        .merge(plans::router())
        .merge(billing::router())
        .merge(webhooks::router())
        .merge(test_info::router())
        .merge(wellknown::router())
        .merge(introspect::router())
        .merge(signing_keys::router())
}

#[derive(Serialize, ToSchema)]
pub struct MessageResponse {
    message: String,
}

impl MessageResponse {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// The shape of every error but 422: a message and a stable snake_case code.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    detail: String,
    code: String,
}

/// Page sizes: 50 unless given; 1 to 100.
pub fn page_limit(limit: Option<i64>) -> Result<i64, AppError> {
    let limit = limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(AppError::validation(
            "query",
            "limit",
            "limit must be between 1 and 100",
            "value_error",
        ));
    }
    Ok(limit)
}

/// A numeric id from the path. Anything that is not one (a word, a number beyond i64) names
/// nothing that exists: 404, as an unknown id, not the 400 of a failed path extraction.
pub(crate) fn path_id(raw: &str) -> Result<i64, AppError> {
    raw.parse()
        .map_err(|_| AppError::not_found("No such resource"))
}
