//! Credits: balance, add, use, history (DESIGN §5, endpoints 14–17).

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{page_limit, ErrorBody};
use crate::caller::{ClientInfo, ReadCaller};
use crate::domain::{json_int, Credits};
use crate::error::AppError;
use crate::extract::{AppJson, AppQuery, Caller};
use crate::services::credits::{self, Change};
use crate::services::reads;
use crate::state::AppState;
use crate::store::{CreditKind, CreditTransaction};

static IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/credits/balance", get(balance))
        .route("/credits/add", post(add))
        .route("/credits/use", post(use_credits))
        .route("/credits/transactions", get(transactions))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccountQuery {
    /// Admins and internal services: whose balance.
    user_id: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct BalanceResponse {
    user_id: i64,
    #[schema(value_type = f64, example = 10.5)]
    balance: Credits,
    updated_at: DateTime<Utc>,
    /// What active holds reserve.
    #[schema(value_type = f64, example = 5.0)]
    held: f64,
    /// balance − held: what /credits/use and new holds can take.
    #[schema(value_type = f64, example = 5.5)]
    available: f64,
    /// The soonest-expiring grant's remainder; null while no credits expire.
    next_expiry: Option<NextExpiry>,
}

#[derive(Serialize, ToSchema)]
pub struct NextExpiry {
    #[schema(value_type = f64)]
    amount: f64,
    expires_at: DateTime<Utc>,
}

#[utoipa::path(get, path = "/credits/balance", tag = "credits", params(AccountQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = BalanceResponse),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Another user's balance", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn balance(
    State(state): State<AppState>,
    caller: ReadCaller,
    query: Result<AppQuery<AccountQuery>, AppError>,
) -> Result<Json<BalanceResponse>, AppError> {
    let AppQuery(query) = match query {
        Ok(query) => query,
        Err(bad) => return Err(reads::refuse_after_check(&state, &caller, bad).await),
    };
    // One statement: the session check joined with the balance and its holds.
    let found = reads::balance(&state, &caller, query.user_id).await?;
    let held = found.held;
    Ok(Json(BalanceResponse {
        user_id: found.user_id,
        balance: Credits::from_cents(found.cents),
        updated_at: found.updated_at,
        held: Credits::from_cents(held).as_f64(),
        available: Credits::from_cents(found.cents - held).as_f64(),
        next_expiry: None,
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct CreditRequest {
    /// A number or a decimal string; > 0, at most 2 decimals, at most 1e12.
    #[schema(value_type = f64, example = 10.5)]
    amount: Credits,
    /// Idempotency key per user and transaction type.
    #[schema(min_length = 1, max_length = 255)]
    reference_id: Option<String>,
    #[schema(min_length = 1, max_length = 1000)]
    description: Option<String>,
    /// Admins and internal services: whose credits (any whole number: `7` or `7.0`).
    #[serde(default, deserialize_with = "json_int::optional")]
    #[schema(value_type = Option<i64>)]
    user_id: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct TransactionResponse {
    id: i64,
    user_id: i64,
    #[schema(value_type = f64)]
    amount: Credits,
    transaction_type: String,
    reference_id: Option<String>,
    description: Option<String>,
    created_at: DateTime<Utc>,
    /// The balance right after this transaction.
    #[schema(value_type = f64)]
    new_balance: Credits,
}

impl From<CreditTransaction> for TransactionResponse {
    fn from(t: CreditTransaction) -> Self {
        Self {
            id: t.id,
            user_id: t.user_id,
            amount: Credits::from_cents(t.amount),
            transaction_type: t.transaction_type,
            reference_id: t.reference_id,
            description: t.description,
            created_at: t.created_at,
            new_balance: Credits::from_cents(t.balance_after),
        }
    }
}

async fn apply(
    state: &AppState,
    caller: &Caller,
    client: &ClientInfo,
    req: CreditRequest,
    kind: CreditKind,
) -> Result<Response, AppError> {
    let user_id = credits::account_of(caller, req.user_id, "body")?;
    let change = Change {
        user_id,
        kind,
        amount: req.amount,
        reference_id: req.reference_id,
        description: req.description,
    };
    let applied = credits::apply(state, change, client).await?;
    let mut response = Json(TransactionResponse::from(applied.transaction)).into_response();
    if applied.replayed {
        response.headers_mut().insert(
            IDEMPOTENT_REPLAYED.clone(),
            HeaderValue::from_static("true"),
        );
    }
    Ok(response)
}

/// Adds credits. Admins (default: themself) and internal services only.
#[utoipa::path(post, path = "/credits/add", tag = "credits", request_body = CreditRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = TransactionResponse, description = "Applied, or replayed (header Idempotent-Replayed: true)"),
        (status = 400, description = "The balance cannot hold this much (`balance_overflow`); nothing changed", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Plain users may not add", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "reference_id reused with another amount", body = ErrorBody),
        (status = 422, description = "Invalid amount"),
    ))]
async fn add(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: Caller,
    AppJson(req): AppJson<CreditRequest>,
) -> Result<Response, AppError> {
    credits::may_add(&caller)?;
    apply(&state, &caller, &client, req, CreditKind::Added).await
}

/// Spends credits. The balance never goes below zero.
#[utoipa::path(post, path = "/credits/use", tag = "credits", request_body = CreditRequest,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = TransactionResponse, description = "Applied, or replayed (header Idempotent-Replayed: true)"),
        (status = 400, description = "Insufficient credits (nothing changed)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "reference_id reused with another amount", body = ErrorBody),
        (status = 422, description = "Invalid amount"),
    ))]
async fn use_credits(
    State(state): State<AppState>,
    client: ClientInfo,
    caller: Caller,
    AppJson(req): AppJson<CreditRequest>,
) -> Result<Response, AppError> {
    apply(&state, &caller, &client, req, CreditKind::Used).await
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    #[serde(default)]
    #[param(value_type = i64, minimum = 0, maximum = 4294967295_i64, default = 0)]
    skip: u32,
    #[param(minimum = 1, maximum = 100, default = 50)]
    limit: Option<i64>,
    user_id: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct HistoryResponse {
    transactions: Vec<TransactionResponse>,
    total_count: i64,
}

/// Newest first.
#[utoipa::path(get, path = "/credits/transactions", tag = "credits", params(HistoryQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = HistoryResponse),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "skip < 0 or limit outside 1..100"),
    ))]
async fn transactions(
    State(state): State<AppState>,
    caller: ReadCaller,
    query: Result<AppQuery<HistoryQuery>, AppError>,
) -> Result<Json<HistoryResponse>, AppError> {
    let checked = query.and_then(|AppQuery(query)| Ok((page_limit(query.limit)?, query)));
    let (limit, query) = match checked {
        Ok(checked) => checked,
        Err(bad) => return Err(reads::refuse_after_check(&state, &caller, bad).await),
    };
    // One statement: the session check joined with the page and the total.
    let page = reads::history(&state, &caller, query.user_id, i64::from(query.skip), limit).await?;
    Ok(Json(HistoryResponse {
        transactions: page.transactions.into_iter().map(Into::into).collect(),
        total_count: page.total_count,
    }))
}
