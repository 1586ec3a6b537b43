//! Sign in with Google and other OpenID Connect providers (DESIGN §10): the providers
//! list, starting an authorization, and its callback. The flow itself is in
//! `services::identity`, shared with the web pages.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::{header, request::Parts, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ErrorBody;
use crate::caller::{ClientInfo, CurrentUser};
use crate::error::AppError;
use crate::extract::{AppJson, OptionalJson};
use crate::services::auth::TokenPair;
use crate::services::identity::{self, Completion, Intent};
use crate::state::AppState;

/// Longest `code` or `state` accepted (real ones are far shorter).
const MAX_PARAM_CHARS: usize = 2048;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/providers", get(providers))
        .route("/auth/oauth/{provider}/authorize", post(authorize))
        .route("/auth/oauth/{provider}/callback", post(callback))
}

/// The bearer's account when an Authorization header is sent; what went wrong otherwise.
/// Login does not need one (and ignores a stale one); linking does.
pub struct OptionalBearer(Option<Result<CurrentUser, AppError>>);

impl FromRequestParts<AppState> for OptionalBearer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Ok(Self(None));
        }
        Ok(Self(Some(
            CurrentUser::from_request_parts(parts, state).await,
        )))
    }
}

impl OptionalBearer {
    fn required(self) -> Result<CurrentUser, AppError> {
        self.0
            .unwrap_or_else(|| Err(AppError::unauthorized("Not authenticated")))
    }
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Serialize, ToSchema)]
pub struct ProviderInfo {
    /// Used in the paths below, e.g. `google`.
    name: String,
    display_name: String,
}

/// The sign-in providers this service is configured with.
#[utoipa::path(get, path = "/auth/providers", tag = "oauth",
    responses(
        (status = 200, body = [ProviderInfo]),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
async fn providers(State(state): State<AppState>) -> Json<Vec<ProviderInfo>> {
    Json(
        state
            .identity
            .all()
            .iter()
            .map(|p| ProviderInfo {
                name: p.config.name.clone(),
                display_name: p.config.display_name.clone(),
            })
            .collect(),
    )
}

#[derive(Deserialize, ToSchema, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IntentName {
    /// Sign in (or sign up).
    #[default]
    Login,
    /// Link the provider's identity to the bearer's (verified) account.
    Link,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeRequest {
    /// One of the configured redirect URIs (exact match); the provider's default when absent.
    #[schema(max_length = 2048)]
    redirect_uri: Option<String>,
    #[serde(default)]
    intent: IntentName,
}

#[derive(Serialize, ToSchema)]
pub struct AuthorizeResponse {
    /// Send the browser here.
    authorization_url: String,
    /// Comes back with the code; valid once, for 10 minutes.
    state: String,
}

/// Starts a sign-in (or, with `intent: "link"` and a verified user's bearer token, a link).
#[utoipa::path(post, path = "/auth/oauth/{provider}/authorize", tag = "oauth",
    params(("provider" = String, Path, description = "A name from GET /auth/providers")),
    request_body(content = Option<AuthorizeRequest>, description = "Optional; login by default"),
    security((), ("bearer" = [])),
    responses(
        (status = 200, body = AuthorizeResponse),
        (status = 400, description = "redirect_uri not allowed (`invalid_redirect_uri`)", body = ErrorBody),
        (status = 401, description = "Link without a valid bearer token", body = ErrorBody),
        (status = 403, description = "Link by an unverified account", body = ErrorBody),
        (status = 404, description = "Unknown provider (`provider_not_found`)", body = ErrorBody),
        (status = 422, description = "Malformed body"),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "The provider cannot be reached (`provider_unavailable`)", body = ErrorBody),
    ))]
async fn authorize(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    bearer: OptionalBearer,
    OptionalJson(req): OptionalJson<AuthorizeRequest>,
) -> Result<Response, AppError> {
    let req = req.unwrap_or_default();
    identity::provider(&state, &provider)?;
    let intent = match req.intent {
        IntentName::Login => Intent::Login,
        IntentName::Link => {
            let current = bearer.required()?;
            if state.config.require_email_verification && !current.user.is_verified {
                return Err(AppError::Forbidden {
                    code: "email_not_verified",
                    detail: "Email not verified".into(),
                });
            }
            crate::services::step_up::require_recent_factor(&state, &current).await?;
            Intent::Link {
                user_id: current.user.id,
            }
        }
    };
    let started = identity::start(&state, &provider, req.redirect_uri.as_deref(), intent).await?;
    Ok(no_store(
        Json(AuthorizeResponse {
            authorization_url: started.authorization_url,
            state: started.state,
        })
        .into_response(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallbackRequest {
    /// The `code` the provider sent the browser back with.
    #[schema(min_length = 1, max_length = 2048)]
    code: String,
    /// The `state` it came back with.
    #[schema(min_length = 1, max_length = 2048)]
    state: String,
}

#[derive(Serialize, ToSchema)]
pub struct SignedInResponse {
    access_token: String,
    token_type: &'static str,
    refresh_token: String,
    expires_in: i64,
    /// True when this sign-in created the account.
    is_new_user: bool,
}

#[derive(Serialize, ToSchema)]
pub struct LinkedResponse {
    provider: String,
    email: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum CallbackResponse {
    SignedIn(SignedInResponse),
    Linked(LinkedResponse),
    /// The account has a second factor: finish with POST /auth/mfa/verify.
    MfaRequired(crate::services::mfa::MfaChallenge),
}

fn check_param(name: &str, value: &str) -> Result<(), AppError> {
    if value.is_empty() || value.chars().count() > MAX_PARAM_CHARS {
        return Err(AppError::validation(
            "body",
            name,
            format!("Must be 1 to {MAX_PARAM_CHARS} characters"),
            "value_error",
        ));
    }
    Ok(())
}

/// Completes the flow: a token pair for a login, the linked identity for a link.
#[utoipa::path(post, path = "/auth/oauth/{provider}/callback", tag = "oauth",
    params(("provider" = String, Path, description = "A name from GET /auth/providers")),
    request_body = CallbackRequest,
    security((), ("bearer" = [])),
    responses(
        (status = 200, body = CallbackResponse, description = "Login: a token pair and is_new_user (or, for an account with a second factor, the mfa_required answer of POST /auth/login); link: the identity"),
        (status = 400, description = "`invalid_state` (unknown, expired, used, other provider) or `oauth_failed` (code refused, ID token invalid, email not verified by the provider)", body = ErrorBody),
        (status = 401, description = "Link without a valid bearer token", body = ErrorBody),
        (status = 403, description = "Account disabled, link finished by another account, or unverified", body = ErrorBody),
        (status = 404, description = "Unknown provider", body = ErrorBody),
        (status = 409, description = "`identity_in_use`, `account_exists` (an unverified local account has the email) or `provider_already_linked`", body = ErrorBody),
        (status = 422, description = "Malformed body"),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 502, description = "The provider answered with an error", body = ErrorBody),
        (status = 503, description = "The provider cannot be reached", body = ErrorBody),
    ))]
async fn callback(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    client: ClientInfo,
    bearer: OptionalBearer,
    AppJson(req): AppJson<CallbackRequest>,
) -> Result<Response, AppError> {
    check_param("code", &req.code)?;
    check_param("state", &req.state)?;
    // A bad bearer matters only for a link; the service asks for it then.
    let caller = match bearer.0 {
        Some(Ok(current)) => Some(current),
        _ => None,
    };
    let done = identity::complete(
        &state,
        &provider,
        &req.code,
        &req.state,
        caller.as_ref(),
        &client,
    )
    .await?;
    let body = match done {
        Completion::SignedIn {
            tokens:
                TokenPair {
                    access_token,
                    token_type,
                    refresh_token,
                    expires_in,
                },
            is_new_user,
            ..
        } => CallbackResponse::SignedIn(SignedInResponse {
            access_token,
            token_type,
            refresh_token,
            expires_in,
            is_new_user,
        }),
        Completion::Linked { provider, email } => {
            CallbackResponse::Linked(LinkedResponse { provider, email })
        }
        Completion::MfaRequired(challenge) => CallbackResponse::MfaRequired(challenge),
    };
    Ok(no_store(Json(body).into_response()))
}
