//! `BillingCaller`: whose billing a request acts on, for every `/billing/*` route. A verified
//! user acts on their own account; an internal service names the user in `user_id` (in the
//! query, or in the JSON body for routes that take one, e.g. checkout).
//!
//! Rejections come in one order on every route: 401 (no valid credentials), 422 (a malformed
//! query or body), 503 `billing_disabled` (no Stripe key), then 403 / 422 from the account
//! rules (`services::billing::account_of`).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{AppJson, AppQuery, Caller};
use crate::error::AppError;
use crate::services::billing;
use crate::state::AppState;

/// The account to bill, and the parsed JSON body (`B`) on routes that take one.
pub struct BillingCaller<B = ()> {
    pub user_id: i64,
    pub body: B,
}

/// A billing request body that can name the user (internal callers must).
pub trait NamesUser {
    fn user_id(&self) -> Option<i64>;
}

/// The query of the routes without a body (also what the document lists for them).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BillingQuery {
    /// Internal services: whose billing.
    user_id: Option<i64>,
}

fn account(
    state: &AppState,
    caller: &Caller,
    requested: Option<i64>,
    location: &str,
) -> Result<i64, AppError> {
    billing::stripe(state)?;
    billing::account_of(state, caller, requested, location)
}

/// Routes without a body: the user is named by the `user_id` query parameter.
impl FromRequestParts<AppState> for BillingCaller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let AppQuery(query) = AppQuery::<BillingQuery>::from_request_parts(parts, state).await?;
        let user_id = account(state, &caller, query.user_id, "query")?;
        Ok(Self { user_id, body: () })
    }
}

/// Routes with a JSON body: the user is named by the body's `user_id`. Takes the body, so it
/// comes last among a handler's arguments.
impl<B> FromRequest<AppState> for BillingCaller<B>
where
    B: DeserializeOwned + NamesUser + Send,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let caller = Caller::from_request_parts(&mut parts, state).await?;
        let AppJson(body) =
            AppJson::<B>::from_request(Request::from_parts(parts, body), state).await?;
        let user_id = account(state, &caller, body.user_id(), "body")?;
        Ok(Self { user_id, body })
    }
}
