//! Outgoing webhook endpoints, managed by admins (DESIGN §16).

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ErrorBody, MessageResponse};
use crate::error::AppError;
use crate::extract::{Admin, AppJson, AppQuery};
use crate::state::AppState;
use crate::store::{WebhookDelivery, WebhookEndpoint};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/webhooks", get(list_endpoints).post(create_endpoint))
        .route(
            "/admin/webhooks/{id}",
            get(get_endpoint)
                .patch(update_endpoint)
                .delete(delete_endpoint),
        )
        .route("/admin/webhooks/{id}/rotate-secret", post(rotate_secret))
        .route("/admin/webhooks/{id}/deliveries", get(deliveries))
        .route(
            "/admin/webhooks/{id}/deliveries/{delivery_id}/retry",
            post(retry_delivery),
        )
        .route("/admin/webhooks/{id}/test", post(send_test))
}

#[derive(Serialize, ToSchema)]
pub struct EndpointResponse {
    id: i64,
    url: String,
    /// Subscribed event types, or `["*"]`.
    events: Vec<String>,
    description: Option<String>,
    enabled: bool,
    /// Why the service disabled it (5 days of failures), if it did.
    disabled_reason: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// Only in the answer to creation: `whsec_` + base64; never shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl From<WebhookEndpoint> for EndpointResponse {
    fn from(e: WebhookEndpoint) -> Self {
        Self {
            events: e.event_types(),
            id: e.id,
            url: e.url,
            description: e.description,
            enabled: e.enabled,
            disabled_reason: e.disabled_reason,
            created_at: e.created_at,
            updated_at: e.updated_at,
            secret: None,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpointRequest {
    /// `https://` (or `http://` outside production); must not point at a private network.
    #[schema(max_length = 2048)]
    url: String,
    /// Event types (see the README's catalogue) or `["*"]`.
    #[schema(min_items = 1, max_items = 12)]
    events: Vec<String>,
    #[schema(max_length = 500)]
    description: Option<String>,
}

/// Registers an endpoint; the answer carries its signing secret, this once.
#[utoipa::path(post, path = "/admin/webhooks", tag = "webhooks", request_body = CreateEndpointRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, body = EndpointResponse),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 422, description = "Bad URL (scheme, private address), unknown event type"),
    ))]
async fn create_endpoint(
    State(state): State<AppState>,
    _admin: Admin,
    AppJson(req): AppJson<CreateEndpointRequest>,
) -> Result<(StatusCode, Json<EndpointResponse>), AppError> {
    let created = state
        .webhooks
        .create(&req.url, &req.events, req.description.as_deref())
        .await?;
    let mut body = EndpointResponse::from(created.endpoint);
    body.secret = Some(created.secret);
    Ok((StatusCode::CREATED, Json(body)))
}

/// Every endpoint (never their secrets).
#[utoipa::path(get, path = "/admin/webhooks", tag = "webhooks", security(("bearer" = [])),
    responses(
        (status = 200, body = [EndpointResponse]),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
    ))]
async fn list_endpoints(
    State(state): State<AppState>,
    headers: HeaderMap,
    admin: Result<Admin, AppError>,
) -> Result<Response, AppError> {
    if let Err(e) = admin {
        // A person who typed the address (a browser, no token): the admin page.
        let browser = !headers.contains_key(header::AUTHORIZATION)
            && headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|accept| accept.contains("text/html"));
        if browser && state.config.web.enabled {
            return Ok(Redirect::to("/admin/webhooks/manage").into_response());
        }
        return Err(e);
    }
    let all = state.webhooks.endpoints().await?;
    let body: Vec<EndpointResponse> = all.into_iter().map(Into::into).collect();
    Ok(Json(body).into_response())
}

#[utoipa::path(get, path = "/admin/webhooks/{id}", tag = "webhooks", params(("id" = i64, Path)),
    security(("bearer" = [])),
    responses(
        (status = 200, body = EndpointResponse),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn get_endpoint(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<EndpointResponse>, AppError> {
    let id = super::path_id(&id)?;
    Ok(Json(state.webhooks.endpoint(id).await?.into()))
}

/// `null` clears the description; absent leaves it.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEndpointRequest {
    #[schema(max_length = 2048)]
    url: Option<String>,
    #[schema(min_items = 1, max_items = 12)]
    events: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 500)]
    description: Option<Option<String>>,
    /// false stops deliveries (they wait); true resumes them.
    enabled: Option<bool>,
}

#[utoipa::path(patch, path = "/admin/webhooks/{id}", tag = "webhooks", params(("id" = i64, Path)),
    request_body = UpdateEndpointRequest, security(("bearer" = [])),
    responses(
        (status = 200, body = EndpointResponse),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "Bad URL or event type"),
    ))]
async fn update_endpoint(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
    AppJson(req): AppJson<UpdateEndpointRequest>,
) -> Result<Json<EndpointResponse>, AppError> {
    let id = super::path_id(&id)?;
    let updated = state
        .webhooks
        .update(
            id,
            req.url.as_deref(),
            req.events.as_deref(),
            req.description.as_ref().map(|d| d.as_deref()),
            req.enabled,
        )
        .await?;
    Ok(Json(updated.into()))
}

#[utoipa::path(delete, path = "/admin/webhooks/{id}", tag = "webhooks", params(("id" = i64, Path)),
    security(("bearer" = [])),
    responses(
        (status = 200, body = MessageResponse),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn delete_endpoint(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<MessageResponse>, AppError> {
    let id = super::path_id(&id)?;
    state.webhooks.delete(id).await?;
    Ok(Json(MessageResponse::new("Webhook endpoint deleted")))
}

#[derive(Serialize, ToSchema)]
pub struct SecretResponse {
    /// The new secret; the previous one keeps signing alongside for 24 hours.
    secret: String,
}

#[utoipa::path(post, path = "/admin/webhooks/{id}/rotate-secret", tag = "webhooks",
    params(("id" = i64, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = SecretResponse),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn rotate_secret(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<SecretResponse>, AppError> {
    let id = super::path_id(&id)?;
    Ok(Json(SecretResponse {
        secret: state.webhooks.rotate(id).await?,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// pending, delivered or failed.
    status: Option<String>,
    #[param(minimum = 1, maximum = 100, default = 50)]
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryResponse {
    id: i64,
    event_id: String,
    event_type: String,
    /// pending, delivered or failed.
    status: String,
    attempts: i64,
    last_status_code: Option<i64>,
    last_error: Option<String>,
    next_attempt_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    delivered_at: Option<DateTime<Utc>>,
}

impl From<WebhookDelivery> for DeliveryResponse {
    fn from(d: WebhookDelivery) -> Self {
        Self {
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type,
            status: d.status,
            attempts: d.attempts,
            last_status_code: d.last_status_code,
            last_error: d.last_error,
            next_attempt_at: d.next_attempt_at,
            created_at: d.created_at,
            delivered_at: d.delivered_at,
        }
    }
}

/// The endpoint's deliveries, newest first.
#[utoipa::path(get, path = "/admin/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = i64, Path), DeliveriesQuery), security(("bearer" = [])),
    responses(
        (status = 200, body = [DeliveryResponse]),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "Unknown status or bad limit"),
    ))]
async fn deliveries(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
    AppQuery(query): AppQuery<DeliveriesQuery>,
) -> Result<Json<Vec<DeliveryResponse>>, AppError> {
    let id = super::path_id(&id)?;
    let limit = super::page_limit(query.limit)?;
    if let Some(s) = &query.status {
        if !["pending", "delivered", "failed"].contains(&s.as_str()) {
            return Err(AppError::validation(
                "query",
                "status",
                "status must be pending, delivered or failed",
                "value_error",
            ));
        }
    }
    state.webhooks.endpoint(id).await?;
    let rows = state
        .store
        .deliveries(id, query.status.as_deref(), limit)
        .await?;
    Ok(Json(rows.into_iter().map(Into::into).collect()))
}

#[utoipa::path(post, path = "/admin/webhooks/{id}/deliveries/{delivery_id}/retry", tag = "webhooks",
    params(("id" = i64, Path), ("delivery_id" = i64, Path)), security(("bearer" = [])),
    responses(
        (status = 202, body = MessageResponse),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn retry_delivery(
    State(state): State<AppState>,
    _admin: Admin,
    Path((id, delivery_id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<MessageResponse>), AppError> {
    let (id, delivery_id) = (super::path_id(&id)?, super::path_id(&delivery_id)?);
    state.webhooks.retry(id, delivery_id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(MessageResponse::new("Delivery queued")),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct TestEventResponse {
    message: String,
    /// The `webhook-id` the test event arrives with.
    event_id: String,
}

/// Queues a `webhook.test` event for this endpoint only.
#[utoipa::path(post, path = "/admin/webhooks/{id}/test", tag = "webhooks", params(("id" = i64, Path)),
    security(("bearer" = [])),
    responses(
        (status = 202, body = TestEventResponse),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn send_test(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<TestEventResponse>), AppError> {
    let id = super::path_id(&id)?;
    let event_id = state.webhooks.send_test(id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(TestEventResponse {
            message: "Test event queued".into(),
            event_id,
        }),
    ))
}
