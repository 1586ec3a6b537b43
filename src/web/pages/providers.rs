//! Sign in (or link) with an OpenID Connect provider from the pages (DESIGN §10): a form
//! post starts `services::identity` and sends the browser to the provider; the provider
//! sends it back to GET /auth/callback/{provider}, which completes the flow, starts the
//! cookie session, and moves on to an address without the code and state.
//!
//! The state is also bound to this browser: its hash rides in a short-lived cookie set
//! when the flow starts, and the callback refuses a state the browser did not start (so a
//! link with someone else's code cannot sign a victim into the attacker's account).

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use axum::Form;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::forgery_check;
use crate::caller::ClientInfo;
use crate::error::AppError;
use crate::services::account;
use crate::services::identity::{self, oidc::Provider, Completion, Intent};
use crate::services::step_up;
use crate::services::tokens::hash_token;
use crate::state::AppState;
use crate::web::session::{self, cookie, cookie_name, Visitor};

/// Holds the hash of the state of the flow this browser started.
const OAUTH_COOKIE: &str = "auth_oauth";
/// Longest `code` or `state` accepted, as the API's callback.
const MAX_PARAM_CHARS: usize = 2048;

/// A provider the pages offer a button for.
#[derive(Serialize, Clone)]
pub struct ProviderButton {
    pub name: String,
    pub display_name: String,
}

/// Where the provider sends the browser back to for these pages: the page's own callback
/// at this service's address (PUBLIC_URL, else http://localhost:PORT), and only when it is
/// the provider's configured redirect URI or listed in ALLOWED_REDIRECT_URIS — the same
/// check the API applies to a client's `redirect_uri`.
fn page_redirect_uri(state: &AppState, provider: &Provider) -> Result<String, AppError> {
    let own = format!(
        "{}/auth/callback/{}",
        state.config.web.own_address(state.config.port),
        provider.config.name
    );
    identity::allowed_redirect_uri(state, provider, Some(own.as_str()))
}

/// The configured providers (GET /auth/providers's list) whose flow can return to these
/// pages.
pub fn buttons(state: &AppState) -> Vec<ProviderButton> {
    state
        .identity
        .all()
        .iter()
        .filter(|p| page_redirect_uri(state, p).is_ok())
        .map(|p| ProviderButton {
            name: p.config.name.clone(),
            display_name: p.config.display_name.clone(),
        })
        .collect()
}

/// The origins a provider button's form post may redirect to: each provider's issuer and,
/// once discovered, its authorization endpoint (see `web::csp_with_form_targets`).
pub async fn form_targets(state: &AppState) -> Vec<String> {
    let mut targets = Vec::new();
    for provider in state.identity.all() {
        targets.push(provider.config.issuer.clone());
        if provider.is_discovered() {
            if let Ok(metadata) = state.identity.metadata(provider).await {
                targets.push(metadata.authorization_endpoint.clone());
            }
        }
    }
    targets
}

/// A page with provider buttons, allowed to post them.
pub async fn allowing_provider_forms(state: &AppState, response: Response) -> Response {
    let targets = form_targets(state).await;
    crate::web::allow_form_targets(response, targets.iter().map(String::as_str))
}

/// Messages for the fixed keys the flow's failures are reported with (`?oauth_error=`):
/// never free text in a URL.
pub fn error_message(key: &str) -> Option<&'static str> {
    Some(match key {
        "invalid_state" => {
            "That sign-in attempt has expired or was already used. Please start again."
        }
        "cancelled" => "Sign-in was cancelled at the provider.",
        "oauth_failed" => {
            "The provider did not confirm the sign-in (it may not have shared a verified \
             email address). Try again, or sign in another way."
        }
        "account_exists" => {
            "An account with this email address exists, but its address is not verified yet. \
             Sign in with your password, verify the address, then link the provider from your \
             account page."
        }
        "identity_in_use" => "This provider account is already linked to another account.",
        "provider_already_linked" => {
            "Another account of this provider is linked already; unlink it first."
        }
        "account_disabled" => "This account is disabled.",
        "provider_unavailable" => {
            "The sign-in provider cannot be reached right now. Please try again in a moment."
        }
        "unknown_provider" => "This sign-in provider is not available.",
        "email_not_verified" => "Verify your email address before linking a provider.",
        "mfa_step_up_required" => {
            "Linking a provider needs a recent two-step verification: sign out, sign in again \
             with your code, then link it."
        }
        "link_refused" => "This link was started by another account. Please start again.",
        "failed" => "Something went wrong on our side. Please try again in a moment.",
        _ => return None,
    })
}

/// The key of a service error for `error_message`.
fn error_key(err: &AppError) -> &'static str {
    match err {
        AppError::BadRequest {
            code: "invalid_state",
            ..
        } => "invalid_state",
        AppError::BadRequest {
            code: "oauth_failed",
            ..
        } => "oauth_failed",
        AppError::Conflict {
            code: "account_exists",
            ..
        } => "account_exists",
        AppError::Conflict {
            code: "provider_already_linked",
            ..
        } => "provider_already_linked",
        AppError::Conflict { .. } => "identity_in_use",
        AppError::Forbidden {
            code: "account_disabled",
            ..
        } => "account_disabled",
        AppError::Forbidden {
            code: "email_not_verified",
            ..
        } => "email_not_verified",
        AppError::Forbidden {
            code: "mfa_step_up_required",
            ..
        } => "mfa_step_up_required",
        AppError::Forbidden { .. } | AppError::Unauthorized { .. } => "link_refused",
        AppError::Disabled { .. } | AppError::BadGateway { .. } => "provider_unavailable",
        AppError::NotFound { .. } => "unknown_provider",
        _ => "failed",
    }
}

/// Back to the sign-in page (or, for a signed-in browser, its account page) with the
/// failure's message; the flow's cookie is dropped.
fn failed(state: &AppState, signed_in: bool, key: &str) -> Response {
    let page = if signed_in { "/account" } else { "/login" };
    let clear = session::clear_cookie(&state.config, OAUTH_COOKIE);
    (
        AppendHeaders([(header::SET_COOKIE, clear)]),
        Redirect::to(&format!("{page}?oauth_error={key}")),
    )
        .into_response()
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct StartForm {
    /// `login` (the sign-in and sign-up pages) or `link` (the account page).
    intent: String,
    csrf: String,
}

/// POST /auth/start/{provider}: starts the flow and sends the browser to the provider.
pub async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    visitor: Visitor,
    Path(provider_name): Path<String>,
    Form(form): Form<StartForm>,
) -> Response {
    if let Some(refused) = forgery_check(&state, &headers, visitor.csrf_ok(&state, &form.csrf)) {
        return refused;
    }
    let signed_in = visitor.signed_in.is_some();
    let intent = match (form.intent.as_str(), &visitor.signed_in) {
        ("link", Some(current)) => {
            if let Err(e) = account::ensure_verified(&state, &current.current) {
                return failed(&state, true, error_key(&e));
            }
            if let Err(e) = step_up::require_recent_factor(&state, &current.current).await {
                return failed(&state, true, error_key(&e));
            }
            Intent::Link {
                user_id: current.current.user.id,
            }
        }
        ("link", None) => return Redirect::to("/login").into_response(),
        _ => Intent::Login,
    };
    let redirect_uri = match identity::provider(&state, &provider_name)
        .and_then(|provider| page_redirect_uri(&state, provider))
    {
        Ok(uri) => uri,
        Err(_) => return failed(&state, signed_in, "unknown_provider"),
    };
    match identity::start(&state, &provider_name, Some(&redirect_uri), intent).await {
        Ok(started) => {
            let max_age = identity::STATE_MINUTES * 60;
            let bind = session::set_cookie(
                &state.config,
                OAUTH_COOKIE,
                &hash_token(&started.state),
                max_age,
            );
            let response = (
                AppendHeaders([(header::SET_COOKIE, bind)]),
                Redirect::to(&started.authorization_url),
            )
                .into_response();
            visitor.finish(response)
        }
        Err(e) => failed(&state, signed_in, error_key(&e)),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    /// Set by the provider when the user cancelled or it refused.
    error: Option<String>,
}

fn usable(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.is_empty() && v.chars().count() <= MAX_PARAM_CHARS)
}

/// GET /auth/callback/{provider}: where the provider sends the browser back. Completes
/// the flow and answers with a redirect, so the code and state leave the address bar at
/// once and never reach a page.
pub async fn callback(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    visitor: Visitor,
    Path(provider_name): Path<String>,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let signed_in = visitor.signed_in.as_ref();
    if let Some(error) = query.error.as_deref() {
        let key = if error == "access_denied" {
            "cancelled"
        } else {
            "oauth_failed"
        };
        return failed(&state, signed_in.is_some(), key);
    }
    let (Some(code), Some(oauth_state)) = (
        usable(query.code.as_deref()),
        usable(query.state.as_deref()),
    ) else {
        return failed(&state, signed_in.is_some(), "invalid_state");
    };
    let started_here =
        cookie(&headers, &cookie_name(&state.config, OAUTH_COOKIE)).is_some_and(|bound| {
            bool::from(bound.as_bytes().ct_eq(hash_token(oauth_state).as_bytes()))
        });
    if !started_here {
        return failed(&state, signed_in.is_some(), "invalid_state");
    }
    let done = identity::complete(
        &state,
        &provider_name,
        code,
        oauth_state,
        signed_in.map(|s| &s.current),
        &client,
    )
    .await;
    let clear = session::clear_cookie(&state.config, OAUTH_COOKIE);
    match done {
        Ok(Completion::SignedIn {
            tokens,
            is_new_user,
            ..
        }) => match session::start(&state, &tokens) {
            Ok(session_cookie) => {
                let to = if is_new_user {
                    "/account?notice=welcome_provider"
                } else {
                    "/account"
                };
                (
                    AppendHeaders([
                        (header::SET_COOKIE, clear),
                        (header::SET_COOKIE, session_cookie),
                    ]),
                    Redirect::to(to),
                )
                    .into_response()
            }
            Err(e) => failed(&state, signed_in.is_some(), error_key(&e)),
        },
        Ok(Completion::MfaRequired(challenge)) => {
            let prompt = super::mfa::prompt(&visitor, &challenge);
            let (mut parts, body) = prompt.into_parts();
            parts.headers.append(header::SET_COOKIE, clear);
            visitor.finish(Response::from_parts(parts, body))
        }
        Ok(Completion::Linked { .. }) => (
            AppendHeaders([(header::SET_COOKIE, clear)]),
            Redirect::to("/account?notice=identity_linked"),
        )
            .into_response(),
        Err(e) => failed(&state, signed_in.is_some(), error_key(&e)),
    }
}
