//! Holds (DESIGN §15): POST /credits/holds, capture, release, and their reads. Same
//! callers as /credits/use: one's own account, or admin/internal naming `user_id`.

use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::credits::TransactionResponse;
use super::{page_limit, ErrorBody};
use crate::caller::ClientInfo;
use crate::domain::{json_int, Credits};
use crate::error::AppError;
use crate::extract::{AppJson, AppQuery, Caller};
use crate::services::credits::{self, holds};
use crate::state::AppState;
use crate::store::{now, CreditHold};

static IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/credits/holds", post(create_hold).get(list_holds))
        .route("/credits/holds/{id}", get(get_hold))
        .route("/credits/holds/{id}/capture", post(capture_hold))
        .route("/credits/holds/{id}/release", post(release_hold))
}

#[derive(Deserialize, ToSchema)]
pub struct HoldRequest {
    /// A number or a decimal string; > 0, at most 2 decimals, at most 1e12.
    #[schema(value_type = f64, example = 5.0)]
    amount: Credits,
    /// Idempotency key of the hold (per user); also the reference_id of its capture.
    #[schema(min_length = 1, max_length = 255)]
    reference_id: String,
    /// How long the hold lasts unless captured or released.
    #[serde(default, deserialize_with = "json_int::optional")]
    #[schema(value_type = Option<i64>, minimum = 60, maximum = 604800, default = 3600)]
    ttl_seconds: Option<i64>,
    #[schema(min_length = 1, max_length = 1000)]
    description: Option<String>,
    /// Admins and internal services: whose credits.
    #[serde(default, deserialize_with = "json_int::optional")]
    #[schema(value_type = Option<i64>)]
    user_id: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct HoldResponse {
    id: i64,
    user_id: i64,
    #[schema(value_type = f64)]
    amount: Credits,
    /// `held`, `captured`, `released` or `expired` (a hold past expires_at is `expired`
    /// at once, whether or not the background job marked it yet).
    status: String,
    reference_id: String,
    description: Option<String>,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    /// Set once captured (may be 0).
    #[schema(value_type = Option<f64>)]
    captured_amount: Option<f64>,
    /// The `credit_used` row of the capture (none for a capture of 0).
    transaction_id: Option<i64>,
    /// When it was captured, released or marked expired.
    settled_at: Option<DateTime<Utc>>,
}

impl From<CreditHold> for HoldResponse {
    fn from(h: CreditHold) -> Self {
        Self {
            status: h.status_at(now()).to_owned(),
            id: h.id,
            user_id: h.user_id,
            amount: Credits::from_cents(h.amount),
            reference_id: h.reference_id,
            description: h.description,
            created_at: h.created_at,
            expires_at: h.expires_at,
            captured_amount: h.captured_amount.map(|c| Credits::from_cents(c).as_f64()),
            transaction_id: h.transaction_id,
            settled_at: h.settled_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CreatedHold {
    #[serde(flatten)]
    hold: HoldResponse,
    /// What can still be spent right after this hold (balance − held).
    #[schema(value_type = f64)]
    available: f64,
}

fn replayed(mut response: Response, replayed: bool) -> Response {
    if replayed {
        response.headers_mut().insert(
            IDEMPOTENT_REPLAYED.clone(),
            HeaderValue::from_static("true"),
        );
    }
    response
}

/// Reserves credits for work priced afterwards.
#[utoipa::path(post, path = "/credits/holds", tag = "credits", request_body = HoldRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 201, body = CreatedHold, description = "Held"),
        (status = 200, body = CreatedHold, description = "Replayed (header Idempotent-Replayed: true); nothing changed"),
        (status = 400, description = "`insufficient_credits`: available does not cover it; nothing held", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "A plain user naming another user_id", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "reference_id used for a hold of another amount", body = ErrorBody),
        (status = 422, description = "Invalid amount, ttl_seconds outside 60..604800, missing reference_id"),
    ))]
async fn create_hold(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: Caller,
    AppJson(req): AppJson<HoldRequest>,
) -> Result<Response, AppError> {
    let user_id = credits::account_of(&caller, req.user_id, "body")?;
    let held = holds::create(
        &state.store,
        holds::HoldRequest {
            user_id,
            amount: req.amount.cents(),
            reference_id: req.reference_id,
            ttl_seconds: req.ttl_seconds,
            description: req.description,
        },
        &client,
    )
    .await?;
    let status = if held.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let body = CreatedHold {
        hold: held.hold.into(),
        available: Credits::from_cents(held.available).as_f64(),
    };
    Ok(replayed(
        (status, Json(body)).into_response(),
        held.replayed,
    ))
}

/// A capture amount: like a credit amount, but 0 is allowed (the work cost nothing).
pub struct CaptureAmount(i64);

impl<'de> Deserialize<'de> for CaptureAmount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        let zero = match &value {
            serde_json::Value::Number(n) => n.as_f64() == Some(0.0),
            serde_json::Value::String(s) => matches!(s.as_str(), "0" | "0.0" | "0.00"),
            _ => false,
        };
        if zero {
            return Ok(Self(0));
        }
        Credits::deserialize(value)
            .map(|c| Self(c.cents()))
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Deserialize, ToSchema)]
pub struct CaptureRequest {
    /// What the work cost: 0 ≤ amount ≤ the hold, at most 2 decimals.
    #[schema(value_type = f64, minimum = 0, example = 3.2)]
    amount: CaptureAmount,
    #[schema(min_length = 1, max_length = 1000)]
    description: Option<String>,
    /// Admins and internal services: whose hold.
    #[serde(default, deserialize_with = "json_int::optional")]
    #[schema(value_type = Option<i64>)]
    user_id: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct CaptureResponse {
    hold: HoldResponse,
    /// The `credit_used` row (reference_id = the hold's); null for a capture of 0.
    transaction: Option<TransactionResponse>,
    #[schema(value_type = f64)]
    new_balance: f64,
}

/// Settles a hold for what the work cost; the rest comes back.
#[utoipa::path(post, path = "/credits/holds/{id}/capture", tag = "credits", request_body = CaptureRequest,
    params(("id" = i64, Path, description = "The hold")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = CaptureResponse, description = "Captured, or the same capture replayed (header Idempotent-Replayed: true)"),
        (status = 400, description = "`capture_exceeds_hold`, or `insufficient_credits` when a refund took the balance below it; nothing changed", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "No such hold of this user", body = ErrorBody),
        (status = 409, description = "`hold_not_active` (released or expired), or captured before with another amount", body = ErrorBody),
        (status = 422, description = "Invalid amount"),
    ))]
async fn capture_hold(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: Caller,
    Path(id): Path<String>,
    AppJson(req): AppJson<CaptureRequest>,
) -> Result<Response, AppError> {
    let id = super::path_id(&id)?;
    let user_id = credits::account_of(&caller, req.user_id, "body")?;
    let captured = holds::capture(
        &state.store,
        user_id,
        id,
        req.amount.0,
        req.description,
        &client,
    )
    .await?;
    let body = CaptureResponse {
        hold: captured.hold.into(),
        transaction: captured.transaction.map(Into::into),
        new_balance: Credits::from_cents(captured.balance).as_f64(),
    };
    Ok(replayed(Json(body).into_response(), captured.replayed))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HoldAccountQuery {
    /// Admins and internal services: whose hold.
    user_id: Option<i64>,
}

/// Gives a hold's credits back. Idempotent.
#[utoipa::path(post, path = "/credits/holds/{id}/release", tag = "credits",
    params(("id" = i64, Path, description = "The hold"), HoldAccountQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = HoldResponse, description = "Released (now or before)"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`hold_captured`, or `hold_not_active` for an expired hold", body = ErrorBody),
        (status = 422, description = "Invalid user_id"),
    ))]
async fn release_hold(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: Caller,
    Path(id): Path<String>,
    AppQuery(query): AppQuery<HoldAccountQuery>,
) -> Result<Json<HoldResponse>, AppError> {
    let id = super::path_id(&id)?;
    let user_id = credits::account_of(&caller, query.user_id, "query")?;
    let hold = holds::release(&state.store, user_id, id, &client).await?;
    Ok(Json(hold.into()))
}

#[utoipa::path(get, path = "/credits/holds/{id}", tag = "credits",
    params(("id" = i64, Path, description = "The hold"), HoldAccountQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = HoldResponse),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "No such hold of this user", body = ErrorBody),
        (status = 422, description = "Invalid user_id"),
    ))]
async fn get_hold(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    AppQuery(query): AppQuery<HoldAccountQuery>,
) -> Result<Json<HoldResponse>, AppError> {
    let id = super::path_id(&id)?;
    let user_id = credits::account_of(&caller, query.user_id, "query")?;
    Ok(Json(holds::get(&*state.store, user_id, id).await?.into()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HoldsQuery {
    /// `held`, `captured`, `released` or `expired`.
    status: Option<String>,
    #[serde(default)]
    #[param(value_type = i64, minimum = 0, maximum = 4294967295_i64, default = 0)]
    skip: u32,
    #[param(minimum = 1, maximum = 100, default = 50)]
    limit: Option<i64>,
    user_id: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct HoldsResponse {
    holds: Vec<HoldResponse>,
    total_count: i64,
}

/// Newest first.
#[utoipa::path(get, path = "/credits/holds", tag = "credits", params(HoldsQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = HoldsResponse),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "Unknown status, skip < 0 or limit outside 1..100"),
    ))]
async fn list_holds(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(query): AppQuery<HoldsQuery>,
) -> Result<Json<HoldsResponse>, AppError> {
    let limit = page_limit(query.limit)?;
    if let Some(status) = query.status.as_deref() {
        if !["held", "captured", "released", "expired"].contains(&status) {
            return Err(AppError::validation(
                "query",
                "status",
                "status must be held, captured, released or expired",
                "value_error",
            ));
        }
    }
    let user_id = credits::account_of(&caller, query.user_id, "query")?;
    let (rows, total_count) = holds::list(
        &*state.store,
        user_id,
        query.status.as_deref(),
        i64::from(query.skip),
        limit,
    )
    .await?;
    Ok(Json(HoldsResponse {
        holds: rows.into_iter().map(Into::into).collect(),
        total_count,
    }))
}
