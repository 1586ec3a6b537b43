//! Administration of the signing keys: list and rotate (DESIGN §13).

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::ErrorBody;
use crate::error::AppError;
use crate::extract::Admin;
use crate::services::signing_keys::KeyInfo;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/keys", get(list_keys))
        .route("/admin/keys/rotate", post(rotate_keys))
}

#[derive(Serialize, ToSchema)]
pub struct KeyList {
    /// Every key, oldest first; never a private part.
    keys: Vec<KeyInfo>,
}

#[utoipa::path(get, path = "/admin/keys", tag = "admin", security(("bearer" = [])),
    responses(
        (status = 200, body = KeyList),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 429, body = ErrorBody),
    ))]
async fn list_keys(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<KeyList>, AppError> {
    Ok(Json(KeyList {
        keys: state.tokens.signing_keys().list().await?,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct Rotated {
    /// The key that signs from now on (the former next key).
    current_kid: String,
    keys: Vec<KeyInfo>,
}

#[utoipa::path(post, path = "/admin/keys/rotate", tag = "admin", security(("bearer" = [])),
    responses(
        (status = 200, description = "next → current, current → previous, a new next", body = Rotated),
        (status = 400, description = "ALGORITHM is HS*: there are no keys to rotate", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 409, description = "`rotation_in_progress`: another rotation changed the keys at the same time", body = ErrorBody),
        (status = 429, body = ErrorBody),
    ))]
async fn rotate_keys(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<Rotated>, AppError> {
    if !crate::services::signing_keys::is_asymmetric(state.tokens.algorithm()) {
        return Err(AppError::BadRequest {
            code: "no_signing_keys",
            detail:
                "ALGORITHM is HS*: tokens are signed with SECRET_KEY, there are no keys to rotate"
                    .into(),
        });
    }
    let current_kid = match state.tokens.signing_keys().rotate().await {
        Ok(kid) => kid,
        Err(e) if e.is::<crate::services::signing_keys::RotationBusy>() => {
            return Err(AppError::Conflict {
                code: "rotation_in_progress",
                detail: "Another rotation changed the keys at the same time; try again".into(),
            })
        }
        Err(e) => return Err(e.into()),
    };
    state.tokens.reload().await?;
    Ok(Json(Rotated {
        current_kid,
        keys: state.tokens.signing_keys().list().await?,
    }))
}
