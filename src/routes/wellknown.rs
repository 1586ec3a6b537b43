//! What verifiers find by themselves from the issuer URL (DESIGN §13): the JWKS and the
//! OpenID discovery document.

use axum::http::{header, HeaderValue};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::services::signing_keys::alg_name;
use crate::state::AppState;
use axum::extract::State;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route(
            "/.well-known/openid-configuration",
            get(openid_configuration),
        )
}

/// A JSON Web Key Set (RFC 7517).
#[derive(Serialize, ToSchema)]
pub struct Jwks {
    /// The next, current and previous public keys (`kid`, `kty`, `alg`, `use: "sig"` and
    /// the key's own fields); empty under HS*.
    #[schema(value_type = Vec<Object>)]
    keys: Vec<Value>,
}

#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "tokens",
    responses(
        (status = 200, description = "Public signing keys; Cache-Control: public, max-age=300", body = Jwks),
        (status = 429, body = super::ErrorBody),
    ))]
async fn jwks(
    State(state): State<AppState>,
) -> ([(header::HeaderName, HeaderValue); 1], Json<Value>) {
    (
        [(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        )],
        Json(state.tokens.jwks()),
    )
}

/// The OpenID Connect discovery fields a JWT middleware needs.
#[derive(Serialize, ToSchema)]
pub struct OpenIdConfiguration {
    issuer: String,
    jwks_uri: String,
    introspection_endpoint: String,
    /// The configured ALGORITHM.
    id_token_signing_alg_values_supported: Vec<String>,
    introspection_endpoint_auth_methods_supported: Vec<String>,
    token_endpoint: String,
    grant_types_supported: Vec<String>,
    response_types_supported: Vec<String>,
    subject_types_supported: Vec<String>,
    claims_supported: Vec<String>,
}

#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "tokens",
    responses(
        (status = 200, body = OpenIdConfiguration),
        (status = 429, body = super::ErrorBody),
    ))]
async fn openid_configuration(
    State(state): State<AppState>,
) -> (
    [(header::HeaderName, HeaderValue); 1],
    Json<OpenIdConfiguration>,
) {
    let issuer = state.tokens.issuer().to_owned();
    let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    (
        [(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        )],
        Json(OpenIdConfiguration {
            jwks_uri: format!("{issuer}/.well-known/jwks.json"),
            introspection_endpoint: format!("{issuer}/oauth/introspect"),
            token_endpoint: format!("{issuer}/auth/login"),
            id_token_signing_alg_values_supported: vec![
                alg_name(state.tokens.algorithm()).to_owned()
            ],
            introspection_endpoint_auth_methods_supported: strings(&["api_key"]),
            grant_types_supported: strings(&["password", "refresh_token"]),
            response_types_supported: strings(&["token"]),
            subject_types_supported: strings(&["public"]),
            claims_supported: strings(&[
                "iss",
                "aud",
                "sub",
                "sid",
                "jti",
                "iat",
                "exp",
                "username",
                "is_admin",
                "email_verified",
                "aal",
                "amr",
            ]),
            issuer,
        }),
    )
}
