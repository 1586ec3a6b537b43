//! The internal level alone: a configured X-API-Key (or `api-key`), nothing else.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::access::internal_key;
use crate::error::AppError;
use crate::state::AppState;

pub struct InternalService;

impl FromRequestParts<AppState> for InternalService {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if internal_key(parts, state)? {
            Ok(Self)
        } else {
            Err(AppError::unauthorized("An internal API key is required"))
        }
    }
}
