//! Billing for verified users and internal services (DESIGN §9): checkout, portal,
//! subscription, payment methods; and the admins' list of received Stripe events.

use axum::extract::{Path, State};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{page_limit, ErrorBody, MessageResponse};
use crate::caller::ClientInfo;
use crate::domain::json_int;
use crate::error::AppError;
use crate::extract::{Admin, AppQuery, BillingCaller, BillingQuery, NamesUser};
use crate::services::billing;
use crate::state::AppState;
use crate::store::{BillingEventRecord, BillingSubscription};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/billing/checkout", post(checkout))
        .route("/billing/portal", post(portal))
        .route("/billing/subscription", get(subscription))
        .route("/billing/subscription/cancel", post(cancel_subscription))
        .route("/billing/payment-methods", get(payment_methods))
        .route(
            "/billing/payment-methods/{id}",
            delete(detach_payment_method),
        )
        .route("/admin/billing/events", get(events))
}

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"plan_id": "starter"}))]
pub struct CheckoutRequest {
    #[schema(example = "starter")]
    plan_id: String,
    /// Internal services: for whom (any whole number: `7` or `7.0`).
    #[serde(default, deserialize_with = "json_int::optional")]
    #[schema(value_type = Option<i64>)]
    user_id: Option<i64>,
}

impl NamesUser for CheckoutRequest {
    fn user_id(&self) -> Option<i64> {
        self.user_id
    }
}

#[derive(Serialize, ToSchema)]
pub struct CheckoutResponse {
    /// Send the user here (Stripe Checkout).
    checkout_url: String,
    session_id: String,
}

/// A Stripe Checkout Session for a plan.
#[utoipa::path(post, path = "/billing/checkout", tag = "billing", request_body = CheckoutRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = CheckoutResponse),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Email not verified, or another user", body = ErrorBody),
        (status = 404, description = "Unknown or inactive plan, or unknown user", body = ErrorBody),
        (status = 409, description = "A subscription is already active", body = ErrorBody),
        (status = 422, description = "Invalid body"),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 502, description = "Stripe failed or refused", body = ErrorBody),
        (status = 503, description = "Billing disabled (billing_disabled)", body = ErrorBody),
    ))]
pub async fn checkout(
    State(state): State<AppState>,
    client: ClientInfo,
    account: BillingCaller<CheckoutRequest>,
) -> Result<Json<CheckoutResponse>, AppError> {
    let done = billing::checkout(&state, account.user_id, &account.body.plan_id, &client).await?;
    Ok(Json(CheckoutResponse {
        checkout_url: done.checkout_url,
        session_id: done.session_id,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct PortalResponse {
    /// The Stripe billing portal; it returns to FRONTEND_URL.
    url: String,
}

/// A Stripe billing portal session.
#[utoipa::path(post, path = "/billing/portal", tag = "billing", params(BillingQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = PortalResponse),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "No Stripe customer yet", body = ErrorBody),
        (status = 422, description = "Invalid query"),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 502, description = "Stripe failed or refused", body = ErrorBody),
        (status = 503, description = "Billing disabled (billing_disabled)", body = ErrorBody),
    ))]
pub async fn portal(
    State(state): State<AppState>,
    account: BillingCaller,
) -> Result<Json<PortalResponse>, AppError> {
    Ok(Json(PortalResponse {
        url: billing::portal(&state, account.user_id).await?,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct SubscriptionResponse {
    plan_id: Option<String>,
    /// Stripe's status: active, trialing, past_due, canceled, …
    status: String,
    current_period_end: Option<DateTime<Utc>>,
    cancel_at_period_end: bool,
}

impl From<BillingSubscription> for SubscriptionResponse {
    fn from(s: BillingSubscription) -> Self {
        Self {
            plan_id: s.plan_id,
            status: s.status,
            current_period_end: s.current_period_end,
            cancel_at_period_end: s.cancel_at_period_end,
        }
    }
}

/// The current (else the latest) subscription.
#[utoipa::path(get, path = "/billing/subscription", tag = "billing", params(BillingQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = SubscriptionResponse),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "No subscription", body = ErrorBody),
        (status = 422, description = "Invalid query"),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "Billing disabled (billing_disabled)", body = ErrorBody),
    ))]
pub async fn subscription(
    State(state): State<AppState>,
    account: BillingCaller,
) -> Result<Json<SubscriptionResponse>, AppError> {
    billing::current_subscription(&state, account.user_id)
        .await?
        .map(|s| Json(s.into()))
        .ok_or_else(|| AppError::not_found("No subscription"))
}

/// Cancels the active subscription at the end of its period.
#[utoipa::path(post, path = "/billing/subscription/cancel", tag = "billing", params(BillingQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = SubscriptionResponse),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "No active subscription", body = ErrorBody),
        (status = 422, description = "Invalid query"),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 502, description = "Stripe failed or refused", body = ErrorBody),
        (status = 503, description = "Billing disabled (billing_disabled)", body = ErrorBody),
    ))]
pub async fn cancel_subscription(
    State(state): State<AppState>,
    account: BillingCaller,
    client: ClientInfo,
) -> Result<Json<SubscriptionResponse>, AppError> {
    let sub = billing::cancel_subscription(&state, account.user_id, &client).await?;
    Ok(Json(sub.into()))
}

#[derive(Serialize, ToSchema)]
pub struct PaymentMethodResponse {
    id: String,
    brand: Option<String>,
    last4: Option<String>,
    exp_month: Option<i64>,
    exp_year: Option<i64>,
    is_default: bool,
}

/// The caller's cards on file at Stripe.
#[utoipa::path(get, path = "/billing/payment-methods", tag = "billing", params(BillingQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = Vec<PaymentMethodResponse>),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "Invalid query"),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 502, description = "Stripe failed or refused", body = ErrorBody),
        (status = 503, description = "Billing disabled (billing_disabled)", body = ErrorBody),
    ))]
pub async fn payment_methods(
    State(state): State<AppState>,
    account: BillingCaller,
) -> Result<Json<Vec<PaymentMethodResponse>>, AppError> {
    let cards = billing::payment_methods(&state, account.user_id).await?;
    Ok(Json(
        cards
            .into_iter()
            .map(|c| PaymentMethodResponse {
                id: c.id,
                brand: c.brand,
                last4: c.last4,
                exp_month: c.exp_month,
                exp_year: c.exp_year,
                is_default: c.is_default,
            })
            .collect(),
    ))
}

/// Detaches one of the caller's own payment methods (anyone else's: 404).
#[utoipa::path(delete, path = "/billing/payment-methods/{id}", tag = "billing",
    params(("id" = String, Path, description = "Stripe payment method id"), BillingQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = MessageResponse),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "Not the caller's payment method", body = ErrorBody),
        (status = 422, description = "Invalid query"),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 502, description = "Stripe failed or refused", body = ErrorBody),
        (status = 503, description = "Billing disabled (billing_disabled)", body = ErrorBody),
    ))]
pub async fn detach_payment_method(
    State(state): State<AppState>,
    account: BillingCaller,
    client: ClientInfo,
    Path(id): Path<String>,
) -> Result<Json<MessageResponse>, AppError> {
    billing::detach_payment_method(&state, account.user_id, &id, &client).await?;
    Ok(Json(MessageResponse::new("Payment method removed")))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// applied, duplicate, ignored or unmatched.
    #[param(pattern = "^(applied|duplicate|ignored|unmatched)$")]
    outcome: Option<String>,
    #[serde(default)]
    #[param(value_type = i64, minimum = 0, maximum = 4294967295_i64, default = 0)]
    skip: u32,
    #[param(minimum = 1, maximum = 100, default = 50)]
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct BillingEventResponse {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    outcome: String,
    user_id: Option<i64>,
    detail: Option<String>,
    /// Stripe's `created` (unix seconds).
    created: i64,
    received_at: DateTime<Utc>,
}

impl From<BillingEventRecord> for BillingEventResponse {
    fn from(e: BillingEventRecord) -> Self {
        Self {
            id: e.id,
            event_type: e.event_type,
            outcome: e.outcome,
            user_id: e.user_id,
            detail: e.detail,
            created: e.stripe_created,
            received_at: e.received_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct BillingEventsPage {
    events: Vec<BillingEventResponse>,
    total_count: i64,
}

/// Stripe events received, newest first.
#[utoipa::path(get, path = "/admin/billing/events", tag = "billing", params(EventsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = BillingEventsPage),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 422, description = "Unknown outcome or bad paging"),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn events(
    State(state): State<AppState>,
    _admin: Admin,
    AppQuery(query): AppQuery<EventsQuery>,
) -> Result<Json<BillingEventsPage>, AppError> {
    let limit = page_limit(query.limit)?;
    if let Some(outcome) = query.outcome.as_deref() {
        if !matches!(outcome, "applied" | "duplicate" | "ignored" | "unmatched") {
            return Err(AppError::validation(
                "query",
                "outcome",
                "outcome must be applied, duplicate, ignored or unmatched",
                "value_error",
            ));
        }
    }
    let (events, total_count) = state
        .store
        .billing_events(query.outcome.as_deref(), i64::from(query.skip), limit)
        .await?;
    Ok(Json(BillingEventsPage {
        events: events.into_iter().map(Into::into).collect(),
        total_count,
    }))
}
