//! `POST /webhooks/stripe`: authenticated by Stripe's signature over the raw body, not
//! by a token, and not rate limited per IP (DESIGN §9). Its bound is on bytes instead: the
//! body is read only after the header checks pass and its size is reserved from a budget
//! shared by all connections (`services::billing::intake`).

use axum::body::{to_bytes, Body};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::ErrorBody;
use crate::error::AppError;
use crate::services::billing::{intake, webhook};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/webhooks/stripe", post(stripe_webhook))
}

#[derive(Serialize, ToSchema)]
pub struct WebhookResponse {
    received: bool,
    /// applied, duplicate, ignored or unmatched.
    outcome: String,
}

/// Receives a Stripe event (header `Stripe-Signature`).
#[utoipa::path(post, path = "/webhooks/stripe", tag = "billing",
    request_body(content = String, content_type = "application/json", description = "The raw Stripe event, as signed"),
    params(("Stripe-Signature" = String, Header, description = "t=<unix>,v1=<hex>[,v1=…]")),
    responses(
        (status = 200, body = WebhookResponse, description = "Applied, duplicate, ignored or unmatched"),
        (status = 400, description = "invalid_signature or invalid_payload", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 429, description = "The bytes all deliveries may buffer at once are taken; retry (Retry-After)", body = ErrorBody),
        (status = 500, description = "Could not be stored; Stripe retries", body = ErrorBody),
        (status = 503, description = "Webhook not configured (billing_disabled) or database down", body = ErrorBody),
    ))]
pub async fn stripe_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<WebhookResponse>, AppError> {
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    // Everything that can be refused without the body is refused before it is read.
    webhook::check_before_body(&state, signature)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > intake::MAX_BODY_BYTES) {
        return Err(AppError::PayloadTooLarge);
    }
    // Room for the whole body (the maximum when its size is not declared) from the budget
    // all connections share; none now: Stripe retries later.
    let _room = state
        .webhook_intake
        .reserve(declared.unwrap_or(intake::MAX_BODY_BYTES))
        .ok_or_else(|| AppError::TooManyRequests {
            detail: "Too many webhook deliveries at once; retry shortly".into(),
            retry_after_secs: 1,
        })?;
    let limit = declared.unwrap_or(intake::MAX_BODY_BYTES);
    let body = match tokio::time::timeout(intake::BODY_DEADLINE, to_bytes(body, limit)).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => return Err(AppError::PayloadTooLarge),
        Err(_elapsed) => {
            return Err(AppError::bad_request(
                "body_timeout",
                "The request body did not arrive in time",
            ))
        }
    };
    let outcome = webhook::receive(&state, signature, &body).await?;
    Ok(Json(WebhookResponse {
        received: true,
        outcome: outcome.as_str().to_owned(),
    }))
}
