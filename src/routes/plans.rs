//! Plans (DESIGN §9): the public list and the admin endpoints that create and change them.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, patch};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ErrorBody;
use crate::domain::Credits;
use crate::error::AppError;
use crate::extract::{Admin, AppJson};
use crate::services::billing::plans::{self, PlanFields};
use crate::state::AppState;
use crate::store::Plan;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/plans", get(list_plans))
        .route("/admin/plans", get(admin_list_plans).post(create_plan))
        .route("/admin/plans/{id}", patch(update_plan))
}

#[derive(Serialize, ToSchema)]
pub struct PlanResponse {
    id: String,
    name: String,
    /// `one_time` or `subscription`.
    kind: String,
    /// Credits the plan buys (per period for subscriptions).
    #[schema(value_type = f64, example = 100.0)]
    credits: Credits,
    /// Price in the currency's minor units (cents).
    price: i64,
    currency: String,
    /// `month` or `year` for subscriptions, else null.
    interval: Option<String>,
    stripe_price_id: String,
    active: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Plan> for PlanResponse {
    fn from(p: Plan) -> Self {
        Self {
            id: p.id,
            name: p.name,
            kind: p.kind,
            credits: Credits::from_cents(p.credits),
            price: p.price,
            currency: p.currency,
            interval: p.interval,
            stripe_price_id: p.stripe_price_id,
            active: p.active,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanRequest {
    /// Slug: 1-64 lowercase letters, digits, `_` or `-`. Required on create; fixed after.
    #[schema(pattern = "^[a-z0-9_-]{1,64}$", example = "starter")]
    id: Option<String>,
    #[schema(min_length = 1, max_length = 100)]
    name: Option<String>,
    #[schema(pattern = "^(one_time|subscription)$")]
    kind: Option<String>,
    /// > 0, at most 2 decimals.
    #[schema(value_type = Option<f64>, example = 100.0)]
    credits: Option<Credits>,
    /// Minor units (cents), 0 to 99999999.
    #[schema(minimum = 0, maximum = 99_999_999)]
    price: Option<i64>,
    /// ISO 4217 code.
    #[schema(pattern = "^[A-Za-z]{3}$", example = "usd")]
    currency: Option<String>,
    /// `month` or `year`; subscriptions only.
    #[schema(pattern = "^(month|year)$")]
    interval: Option<String>,
    /// The Stripe Price this plan sells; unique.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,255}$", example = "price_123")]
    stripe_price_id: Option<String>,
    active: Option<bool>,
}

impl From<PlanRequest> for PlanFields {
    fn from(r: PlanRequest) -> Self {
        Self {
            id: r.id,
            name: r.name,
            kind: r.kind,
            credits: r.credits,
            price: r.price,
            currency: r.currency,
            interval: r.interval,
            stripe_price_id: r.stripe_price_id,
            active: r.active,
        }
    }
}

/// Active plans, cheapest first.
#[utoipa::path(get, path = "/plans", tag = "billing",
    responses(
        (status = 200, body = Vec<PlanResponse>),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn list_plans(
    State(state): State<AppState>,
) -> Result<Json<Vec<PlanResponse>>, AppError> {
    let plans = plans::active_plans(&state).await?;
    Ok(Json(plans.into_iter().map(Into::into).collect()))
}

/// Every plan, active or not.
#[utoipa::path(get, path = "/admin/plans", tag = "billing", security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<PlanResponse>),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn admin_list_plans(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<Vec<PlanResponse>>, AppError> {
    let plans = plans::all_plans(&state).await?;
    Ok(Json(plans.into_iter().map(Into::into).collect()))
}

/// Creates a plan for a Stripe Price created in Stripe.
#[utoipa::path(post, path = "/admin/plans", tag = "billing", request_body = PlanRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, body = PlanResponse),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 409, description = "Duplicate id or stripe_price_id", body = ErrorBody),
        (status = 422, description = "Invalid fields"),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn create_plan(
    State(state): State<AppState>,
    _admin: Admin,
    AppJson(req): AppJson<PlanRequest>,
) -> Result<(StatusCode, Json<PlanResponse>), AppError> {
    let plan = plans::create(&state, req.into()).await?;
    Ok((StatusCode::CREATED, Json(plan.into())))
}

/// Changes a plan; `active: false` retires it (plans are never deleted).
#[utoipa::path(patch, path = "/admin/plans/{id}", tag = "billing", request_body = PlanRequest,
    params(("id" = String, Path, description = "Plan id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = PlanResponse),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Duplicate stripe_price_id", body = ErrorBody),
        (status = 422, description = "Invalid fields"),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn update_plan(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
    AppJson(req): AppJson<PlanRequest>,
) -> Result<Json<PlanResponse>, AppError> {
    Ok(Json(plans::update(&state, &id, req.into()).await?.into()))
}
