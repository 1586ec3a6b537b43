//! `POST /oauth/introspect` (RFC 7662) for the product's internal services.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ErrorBody;
use crate::error::AppError;
use crate::extract::{InternalService, JsonOrForm};
use crate::services::introspection::introspect as introspect_token;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/oauth/introspect", post(introspect))
}

#[derive(Deserialize, ToSchema)]
pub struct IntrospectRequest {
    /// An access token of ours.
    #[schema(max_length = 8192)]
    token: String,
    /// Accepted and ignored (RFC 7662 §2.1): only access tokens are introspected.
    #[allow(dead_code)]
    token_type_hint: Option<String>,
}

/// RFC 7662's answer: `{"active": false}` alone, or the token's facts.
#[derive(Serialize, ToSchema)]
pub struct Introspection {
    active: bool,
    #[serde(flatten)]
    #[schema(inline)]
    facts: Option<ActiveFacts>,
}

#[derive(Serialize, ToSchema)]
pub struct ActiveFacts {
    sub: String,
    username: String,
    sid: String,
    iss: String,
    aud: String,
    exp: i64,
    iat: i64,
    /// "aal1", or "aal2" after a second factor.
    aal: String,
    /// Always "access_token".
    token_type: &'static str,
}

#[utoipa::path(post, path = "/oauth/introspect", tag = "tokens",
    request_body(content = IntrospectRequest, content_type = "application/x-www-form-urlencoded",
        description = "RFC 7662 form `token=…` (JSON accepted too)"),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "`{\"active\": false}` for anything that is not a live token", body = Introspection),
        (status = 401, description = "No or wrong internal API key", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 422, description = "No token field"),
        (status = 429, body = ErrorBody),
        (status = 503, description = "The database cannot answer", body = ErrorBody),
    ))]
async fn introspect(
    State(state): State<AppState>,
    _internal: InternalService,
    JsonOrForm(req): JsonOrForm<IntrospectRequest>,
) -> Result<([(header::HeaderName, HeaderValue); 1], Json<Introspection>), AppError> {
    let facts = if req.token.len() > 8192 {
        None
    } else {
        introspect_token(&state, &req.token)
            .await?
            .map(|(claims, user)| ActiveFacts {
                sub: claims.sub,
                username: user.username,
                sid: claims.sid,
                iss: claims
                    .iss
                    .unwrap_or_else(|| state.tokens.issuer().to_owned()),
                aud: claims
                    .aud
                    .unwrap_or_else(|| state.config.jwt.audience.clone()),
                exp: claims.exp,
                iat: claims.iat,
                aal: claims.aal,
                token_type: "access_token",
            })
    };
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(Introspection {
            active: facts.is_some(),
            facts,
        }),
    ))
}
