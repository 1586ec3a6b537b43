//! The browser's session: one cookie holding `<session id>.<refresh token>` of a row in the
//! sessions table, created by the same service call as an API login. Checking it is one
//! joined lookup (`auth::authenticate_session`), so every revocation applies at once.
//!
//! Before sign-in, a random "visitor" cookie binds the CSRF tokens of the public forms.

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};

use super::csrf::{self, Binding};
use crate::caller::CurrentUser;
use crate::config::Config;
use crate::error::AppError;
use crate::services::auth::{self, TokenPair};
use crate::services::tokens::new_opaque_token;
use crate::state::AppState;

/// The value of one cookie of the request, if sent.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `__Host-` cookies must be Secure, Path=/ and without Domain: the browser then refuses
/// them from any other origin or subdomain. Only possible over HTTPS.
pub fn cookie_name(config: &Config, base: &str) -> String {
    if config.web.https() {
        format!("__Host-{base}")
    } else {
        base.to_owned()
    }
}

fn cookie_header(config: &Config, name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
    let secure = if config.web.https() { "; Secure" } else { "" };
    let max_age = max_age.map_or(String::new(), |s| format!("; Max-Age={s}"));
    let line = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax{secure}{max_age}",
        cookie_name(config, name)
    );
    // Names and values are ours (hex, base64url, uuids): always valid header text.
    HeaderValue::from_str(&line).unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub fn set_cookie(config: &Config, name: &str, value: &str, max_age: i64) -> HeaderValue {
    cookie_header(config, name, value, Some(max_age))
}

pub fn clear_cookie(config: &Config, name: &str) -> HeaderValue {
    cookie_header(config, name, "", Some(0))
}

pub const SESSION_COOKIE: &str = "auth_session";
pub const VISITOR_COOKIE: &str = "auth_visitor";

/// The Set-Cookie for a session just started by `auth::login` / `auth::register`.
pub fn start(state: &AppState, pair: &TokenPair) -> Result<HeaderValue, AppError> {
    let claims = state
        .tokens
        .claims_of_fresh_token(&pair.access_token)
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("fresh access token did not decode")))?;
    let value = format!("{}.{}", claims.sid, pair.refresh_token);
    Ok(set_cookie(
        &state.config,
        SESSION_COOKIE,
        &value,
        state.config.session_lifetime().num_seconds(),
    ))
}

/// A signed-in browser: the user, the session, and the CSRF token of its forms.
pub struct SignedIn {
    pub current: CurrentUser,
    pub csrf: String,
}

impl SignedIn {
    pub fn csrf_ok(&self, state: &AppState, presented: &str) -> bool {
        csrf::token_matches(
            &state.config,
            &Binding::Session(&self.current.session_id),
            presented,
        )
    }
}

async fn signed_in(parts: &Parts, state: &AppState) -> Option<SignedIn> {
    let name = cookie_name(&state.config, SESSION_COOKIE);
    let (session_id, refresh) = cookie(&parts.headers, &name)?.split_once('.')?;
    let current = auth::authenticate_session(state, session_id, refresh)
        .await
        .ok()?;
    let csrf = csrf::token(&state.config, &Binding::Session(&current.session_id));
    Some(SignedIn { current, csrf })
}

/// Pages for signed-in users: anyone else is sent to the sign-in page (and a cookie
/// that no longer works is dropped).
impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match signed_in(parts, state).await {
            Some(found) => Ok(found),
            None => {
                let mut response = Redirect::to("/login").into_response();
                if cookie(&parts.headers, &cookie_name(&state.config, SESSION_COOKIE)).is_some() {
                    response.headers_mut().append(
                        header::SET_COOKIE,
                        clear_cookie(&state.config, SESSION_COOKIE),
                    );
                }
                Err(response)
            }
        }
    }
}

/// Public pages: maybe signed in; if not, a visitor cookie (created when missing) binds
/// the CSRF token of the page's form.
pub struct Visitor {
    pub signed_in: Option<SignedIn>,
    pub csrf: String,
    visitor_id: Option<String>,
    /// Set when the visitor cookie is new and must be sent with the response.
    pub set_cookie: Option<HeaderValue>,
}

impl Visitor {
    pub fn csrf_ok(&self, state: &AppState, presented: &str) -> bool {
        match (&self.signed_in, &self.visitor_id) {
            (Some(s), _) => s.csrf_ok(state, presented),
            (None, Some(id)) => {
                self.set_cookie.is_none()
                    && csrf::token_matches(&state.config, &Binding::Visitor(id), presented)
            }
            (None, None) => false,
        }
    }

    /// Attaches the new visitor cookie, if any, to a response.
    pub fn finish(&self, mut response: Response) -> Response {
        if let Some(cookie) = &self.set_cookie {
            response
                .headers_mut()
                .append(header::SET_COOKIE, cookie.clone());
        }
        response
    }
}

/// Visitor ids are ours: 43 base64url characters. Anything else is replaced.
fn valid_visitor_id(value: &str) -> bool {
    (32..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(found) = signed_in(parts, state).await {
            return Ok(Self {
                csrf: found.csrf.clone(),
                signed_in: Some(found),
                visitor_id: None,
                set_cookie: None,
            });
        }
        let name = cookie_name(&state.config, VISITOR_COOKIE);
        let (id, set_cookie) = match cookie(&parts.headers, &name).filter(|v| valid_visitor_id(v)) {
            Some(id) => (id.to_owned(), None),
            None => {
                let id = new_opaque_token();
                // A session cookie (no Max-Age): it only has to outlive filling in a form.
                let header = cookie_header(&state.config, VISITOR_COOKIE, &id, None);
                (id, Some(header))
            }
        };
        Ok(Self {
            csrf: csrf::token(&state.config, &Binding::Visitor(&id)),
            signed_in: None,
            visitor_id: Some(id),
            set_cookie,
        })
    }
}
