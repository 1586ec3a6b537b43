//! The sign-in identities linked to the caller's account: list and unlink (DESIGN §10).

use axum::extract::{Path, State};
use axum::routing::{delete, get};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{ErrorBody, MessageResponse};
use crate::caller::ClientInfo;
use crate::error::AppError;
use crate::extract::VerifiedUser;
use crate::services::identity;
use crate::state::AppState;
use crate::store::Identity;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/identities", get(list_identities))
        .route("/auth/identities/{provider}", delete(unlink_identity))
}

#[derive(Serialize, ToSchema)]
pub struct IdentityResponse {
    provider: String,
    /// The address the provider gave when the identity was linked.
    email: Option<String>,
    linked_at: DateTime<Utc>,
}

impl From<Identity> for IdentityResponse {
    fn from(i: Identity) -> Self {
        Self {
            provider: i.provider,
            email: i.email,
            linked_at: i.linked_at,
        }
    }
}

/// The caller's linked identities, oldest first.
#[utoipa::path(get, path = "/auth/identities", tag = "oauth", security(("bearer" = [])),
    responses(
        (status = 200, body = [IdentityResponse]),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Email not verified", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
async fn list_identities(
    State(state): State<AppState>,
    VerifiedUser(current): VerifiedUser,
) -> Result<Json<Vec<IdentityResponse>>, AppError> {
    let identities = identity::identities(&state, current.user.id).await?;
    Ok(Json(identities.into_iter().map(Into::into).collect()))
}

/// Unlinks the caller's identity at this provider; refused when it is the account's only
/// way to sign in (no password, no other identity).
#[utoipa::path(delete, path = "/auth/identities/{provider}", tag = "oauth",
    params(("provider" = String, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = MessageResponse),
        (status = 400, description = "`last_sign_in_method`", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Email not verified", body = ErrorBody),
        (status = 404, description = "No identity of this provider is linked (`identity_not_found`)", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
async fn unlink_identity(
    State(state): State<AppState>,
    client: ClientInfo,
    VerifiedUser(current): VerifiedUser,
    Path(provider): Path<String>,
) -> Result<Json<MessageResponse>, AppError> {
    identity::unlink(&state, &current, &provider, &client).await?;
    Ok(Json(MessageResponse::new("Identity unlinked")))
}
