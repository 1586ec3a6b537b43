//! `POST /webhooks/stripe`: authenticated by Stripe's signature over the raw body, not
//! by a token, and not rate limited per IP (DESIGN §9).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::ErrorBody;
use crate::error::AppError;
use crate::services::billing::webhook;
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
        (status = 500, description = "Could not be stored; Stripe retries", body = ErrorBody),
        (status = 503, description = "Webhook not configured (billing_disabled) or database down", body = ErrorBody),
    ))]
pub async fn stripe_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WebhookResponse>, AppError> {
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    let outcome = webhook::receive(&state, signature, &body).await?;
    Ok(Json(WebhookResponse {
        received: true,
        outcome: outcome.as_str().to_owned(),
    }))
}
