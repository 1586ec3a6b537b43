//! Plans (DESIGN §9): the public list and the admin endpoints that create and change them.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, patch};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ErrorBody;

pub(super) mod schema;
use crate::domain::{json_int, Credits, JsonInt};
use crate::error::AppError;
use crate::extract::{Admin, AppJson};
use crate::services::billing::plans::{self, NewPlan, PlanChanges, PlanInterval, PlanKind};
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
    #[schema(value_type = PlanKind)]
    kind: String,
    /// Credits the plan buys (per period for subscriptions).
    #[schema(value_type = f64, example = 100.0)]
    credits: Credits,
    /// Price in the currency's minor units (cents).
    price: i64,
    currency: String,
    /// `month` or `year` for subscriptions, else null.
    #[schema(value_type = Option<PlanInterval>)]
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

/// A new plan. `interval` is required for subscriptions and absent (or null) for one-time
/// plans.
// The kind/interval rule and the credits' number-or-string form are added to the document
// in schema.rs: a derive cannot say them.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePlan {
    /// Slug: 1-64 lowercase letters, digits, `_` or `-`; fixed once created.
    #[schema(
        pattern = "^[a-z0-9_-]{1,64}$",
        min_length = 1,
        max_length = 64,
        example = "starter"
    )]
    id: String,
    /// Shown to buyers: 1-100 characters, not all whitespace; stored trimmed.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"\S",
        example = "100 credits"
    )]
    name: String,
    kind: PlanKind,
    /// Credits the plan buys (per period for subscriptions): > 0, at most 2 decimals.
    #[schema(value_type = f64, example = 100.0)]
    credits: Credits,
    /// Price in the currency's minor units (cents), a whole number 0 to 99999999
    /// (`646` and `646.0` are the same integer).
    #[schema(value_type = i64, minimum = 0, maximum = 99_999_999, example = 900)]
    price: JsonInt,
    /// ISO 4217 code, any case; stored lowercased.
    #[schema(
        pattern = "^[A-Za-z]{3}$",
        min_length = 3,
        max_length = 3,
        example = "usd"
    )]
    currency: String,
    /// Required for subscriptions; absent or null for one-time plans.
    interval: Option<PlanInterval>,
    /// The Stripe Price this plan sells; unique.
    #[schema(
        pattern = "^[A-Za-z0-9_-]{1,255}$",
        min_length = 1,
        max_length = 255,
        example = "price_123"
    )]
    stripe_price_id: String,
    /// Offered in `GET /plans`; true when absent or null.
    active: Option<bool>,
}

impl From<CreatePlan> for NewPlan {
    fn from(r: CreatePlan) -> Self {
        Self {
            id: r.id,
            name: r.name,
            kind: r.kind,
            credits: r.credits,
            price: r.price.0,
            currency: r.currency,
            interval: r.interval,
            stripe_price_id: r.stripe_price_id,
            active: r.active.unwrap_or(true),
        }
    }
}

/// `PATCH /admin/plans/{id}`: the fields to change, at least one not null (null leaves a
/// field as it is). The id is the path's and cannot change. `kind: "one_time"` clears the
/// interval; whether `interval`, or `kind: "subscription"` alone, fits depends on the stored
/// plan (400 `plan_kind_conflict` when it does not).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePlan {
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    name: Option<String>,
    kind: Option<PlanKind>,
    #[schema(value_type = Option<f64>, example = 100.0)]
    credits: Option<Credits>,
    /// Minor units, a whole number 0 to 99999999.
    #[serde(default, deserialize_with = "json_int::optional")]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 99_999_999)]
    price: Option<i64>,
    #[schema(pattern = "^[A-Za-z]{3}$", min_length = 3, max_length = 3)]
    currency: Option<String>,
    /// Subscriptions only.
    interval: Option<PlanInterval>,
    #[schema(pattern = "^[A-Za-z0-9_-]{1,255}$", min_length = 1, max_length = 255)]
    stripe_price_id: Option<String>,
    /// `false` retires the plan.
    active: Option<bool>,
}

impl From<UpdatePlan> for PlanChanges {
    fn from(r: UpdatePlan) -> Self {
        Self {
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
#[utoipa::path(post, path = "/admin/plans", tag = "billing", request_body = CreatePlan,
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
    AppJson(req): AppJson<CreatePlan>,
) -> Result<(StatusCode, Json<PlanResponse>), AppError> {
    let plan = plans::create(&state, req.into()).await?;
    Ok((StatusCode::CREATED, Json(plan.into())))
}

/// Changes a plan; `active: false` retires it (plans are never deleted).
#[utoipa::path(patch, path = "/admin/plans/{id}", tag = "billing", request_body = UpdatePlan,
    params(("id" = String, Path, description = "Plan id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = PlanResponse),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 400, description = "The change does not fit the stored plan's kind (plan_kind_conflict)", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Duplicate stripe_price_id", body = ErrorBody),
        (status = 422, description = "Invalid fields, or none given"),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn update_plan(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
    AppJson(req): AppJson<UpdatePlan>,
) -> Result<Json<PlanResponse>, AppError> {
    Ok(Json(plans::update(&state, &id, req.into()).await?.into()))
}
