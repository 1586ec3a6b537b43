//! Signing up, in and out, and the two mailed links: password reset and email verification.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::providers::{allowing_provider_forms, buttons};
use super::{forgery_check, CsrfForm, NoticeQuery};
use crate::caller::ClientInfo;
use crate::domain::{Email, Password, Username};
use crate::error::AppError;
use crate::services::{account, auth, email_change};
use crate::state::AppState;
use crate::web::render::{FormErrors, Page};
use crate::web::session::{self, cookie, cookie_name, SignedIn, Visitor};

/// Holds a reset link's token between its landing and the form post, so it leaves the
/// address bar (and history) at once and never appears in the page.
const RESET_COOKIE: &str = "auth_reset";

fn redirect_setting(to: &str, cookies: Vec<axum::http::HeaderValue>) -> Response {
    let headers: Vec<_> = cookies
        .into_iter()
        .map(|c| (header::SET_COOKIE, c))
        .collect();
    (AppendHeaders(headers), Redirect::to(to)).into_response()
}

fn already_signed_in(visitor: &Visitor) -> Option<Response> {
    visitor
        .signed_in
        .as_ref()
        .map(|_| Redirect::to("/account").into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct LoginForm {
    username: String,
    password: String,
    csrf: String,
}

fn login_form(
    state: &AppState,
    visitor: &Visitor,
    username: &str,
    notice: Option<&str>,
    errors: &FormErrors,
) -> Page {
    Page::new("login.html")
        .with("csrf", &visitor.csrf)
        .with("providers", buttons(state))
        .with("username", username)
        .with("notice", notice)
        .errors(errors)
}

pub async fn login_page(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(query): Query<NoticeQuery>,
) -> Response {
    if let Some(to_account) = already_signed_in(&visitor) {
        return to_account;
    }
    let errors = query.oauth_errors();
    let page = login_form(&state, &visitor, "", query.message(), &errors);
    let response = allowing_provider_forms(&state, page.into_response()).await;
    visitor.finish(response)
}

pub async fn login(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    visitor: Visitor,
    Form(form): Form<LoginForm>,
) -> Response {
    if let Some(refused) = forgery_check(&state, &headers, visitor.csrf_ok(&state, &form.csrf)) {
        return refused;
    }
    let mut errors = FormErrors::default();
    if form.username.trim().is_empty() {
        errors.field("username", "Enter your username or email address");
    }
    if form.password.is_empty() {
        errors.field("password", "Enter your password");
    }
    let mut status = StatusCode::UNPROCESSABLE_ENTITY;
    if errors.is_empty() {
        let started = match auth::login(&state, &form.username, &form.password, &client).await {
            Ok(auth::LoginOutcome::Tokens(pair)) => session::start(&state, &pair),
            // No session yet: the code prompt carries the single-use mfa_token.
            Ok(auth::LoginOutcome::MfaRequired(challenge)) => {
                let prompt = super::mfa::prompt(&visitor, &challenge);
                return visitor.finish(prompt);
            }
            Err(e) => Err(e),
        };
        match started {
            Ok(cookie) => return redirect_setting("/account", vec![cookie]),
            Err(e) => {
                status = e.status();
                errors = FormErrors::from_error(&e, &[]);
            }
        }
    }
    let page = login_form(&state, &visitor, &form.username, None, &errors).status(status);
    let response = allowing_provider_forms(&state, page.into_response()).await;
    visitor.finish(response)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct SignupForm {
    username: String,
    email: String,
    password: String,
    csrf: String,
}

fn signup_form(
    state: &AppState,
    visitor: &Visitor,
    form: &SignupForm,
    errors: &FormErrors,
) -> Page {
    Page::new("signup.html")
        .with("csrf", &visitor.csrf)
        .with("providers", buttons(state))
        .with("username", &form.username)
        .with("email", &form.email)
        .errors(errors)
}

pub async fn signup_page(State(state): State<AppState>, visitor: Visitor) -> Response {
    if let Some(to_account) = already_signed_in(&visitor) {
        return to_account;
    }
    let page = signup_form(
        &state,
        &visitor,
        &SignupForm::default(),
        &FormErrors::default(),
    );
    let response = allowing_provider_forms(&state, page.into_response()).await;
    visitor.finish(response)
}

pub async fn signup(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    visitor: Visitor,
    Form(form): Form<SignupForm>,
) -> Response {
    if let Some(refused) = forgery_check(&state, &headers, visitor.csrf_ok(&state, &form.csrf)) {
        return refused;
    }
    let mut errors = FormErrors::default();
    let username = Username::parse(form.username.trim()).map_err(|e| errors.field("username", e));
    let email = Email::parse(form.email.trim()).map_err(|e| errors.field("email", e));
    let password = Password::parse(form.password.clone()).map_err(|e| errors.field("password", e));
    let mut status = StatusCode::UNPROCESSABLE_ENTITY;
    if let (Ok(username), Ok(email), Ok(password)) = (username, email, password) {
        let started = match auth::register(&state, username, email, password, &client).await {
            Ok((_, pair)) => session::start(&state, &pair),
            Err(e) => Err(e),
        };
        match started {
            Ok(cookie) => return redirect_setting("/account?notice=welcome", vec![cookie]),
            Err(e) => {
                status = e.status();
                errors = match &e {
                    AppError::Conflict {
                        code: "username_taken",
                        detail,
                    } => {
                        let mut errors = FormErrors::default();
                        errors.field("username", detail.clone());
                        errors
                    }
                    AppError::Conflict {
                        code: "email_taken",
                        detail,
                    } => {
                        let mut errors = FormErrors::default();
                        errors.field("email", detail.clone());
                        errors
                    }
                    other => FormErrors::from_error(other, &[]),
                };
            }
        }
    }
    let page = signup_form(&state, &visitor, &form, &errors).status(status);
    let response = allowing_provider_forms(&state, page.into_response()).await;
    visitor.finish(response)
}

pub async fn logout(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    signed_in: SignedIn,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(refused) = forgery_check(&state, &headers, signed_in.csrf_ok(&state, &form.csrf)) {
        return refused;
    }
    if let Err(e) = auth::logout(&state, &signed_in.current, &client).await {
        tracing::warn!(error = %e, "could not end a browser session");
    }
    redirect_setting(
        "/login?notice=signed_out",
        vec![session::clear_cookie(
            &state.config,
            session::SESSION_COOKIE,
        )],
    )
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ForgotForm {
    email: String,
    csrf: String,
}

fn forgot_form(visitor: &Visitor, email: &str, errors: &FormErrors) -> Page {
    Page::new("forgot.html")
        .with("csrf", &visitor.csrf)
        .with("email", email)
        .errors(errors)
}

pub async fn forgot_page(visitor: Visitor) -> Response {
    let page = forgot_form(&visitor, "", &FormErrors::default());
    visitor.finish(page.into_response())
}

pub async fn forgot(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    visitor: Visitor,
    Form(form): Form<ForgotForm>,
) -> Response {
    if let Some(refused) = forgery_check(&state, &headers, visitor.csrf_ok(&state, &form.csrf)) {
        return refused;
    }
    let result = match Email::parse(form.email.trim()) {
        Ok(email) => account::request_password_reset(&state, &email, &client).await,
        Err(msg) => Err(AppError::validation("body", "email", msg, "value_error")),
    };
    let page = match result {
        Ok(()) => Page::new("message.html")
            .with("title", "Check your inbox")
            .with(
                "text",
                "If an account uses that address, we have sent it a link to choose a new \
                 password. The link works for 30 minutes.",
            )
            .with("link", ("/login", "Back to sign in")),
        Err(e) => {
            forgot_form(&visitor, &form.email, &FormErrors::from_error(&e, &[])).status(e.status())
        }
    };
    visitor.finish(page.into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct TokenQuery {
    token: Option<String>,
    status: Option<String>,
}

fn reset_cookie_value<'a>(state: &AppState, headers: &'a HeaderMap) -> Option<&'a str> {
    cookie(headers, &cookie_name(&state.config, RESET_COOKIE)).filter(|v| !v.is_empty())
}

fn link_invalid() -> Page {
    Page::new("message.html")
        .status(StatusCode::BAD_REQUEST)
        .with("title", "This link is invalid or has expired")
        .with(
            "text",
            "Reset links work once and for 30 minutes. Ask for a new one.",
        )
        .with("link", ("/forgot-password", "Ask for a new link"))
}

fn reset_form(visitor: &Visitor, errors: &FormErrors) -> Page {
    Page::new("reset.html")
        .with("csrf", &visitor.csrf)
        .errors(errors)
}

pub async fn reset_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    visitor: Visitor,
    Query(query): Query<TokenQuery>,
) -> Response {
    if let Some(token) = query.token.filter(|t| !t.is_empty() && t.len() <= 128) {
        // The token must fit in a cookie value: ours are base64url.
        if !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return link_invalid().into_response();
        }
        let max_age = crate::services::mail::RESET_LINK_MINUTES * 60;
        let keep = session::set_cookie(&state.config, RESET_COOKIE, &token, max_age);
        return visitor.finish(redirect_setting("/reset-password", vec![keep]));
    }
    let page = if reset_cookie_value(&state, &headers).is_some() {
        reset_form(&visitor, &FormErrors::default())
    } else {
        link_invalid()
    };
    visitor.finish(page.into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ResetForm {
    password: String,
    confirm: String,
    csrf: String,
}

pub async fn reset(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    visitor: Visitor,
    Form(form): Form<ResetForm>,
) -> Response {
    if let Some(refused) = forgery_check(&state, &headers, visitor.csrf_ok(&state, &form.csrf)) {
        return refused;
    }
    let Some(token) = reset_cookie_value(&state, &headers) else {
        return link_invalid().into_response();
    };
    let mut errors = FormErrors::default();
    let password = Password::parse(form.password.clone()).map_err(|e| errors.field("password", e));
    if form.password != form.confirm {
        errors.field("confirm", "The two passwords do not match");
    }
    let result = match password {
        Ok(password) if errors.is_empty() => {
            account::reset_password(&state, token, &password, &client).await
        }
        _ => {
            return reset_form(&visitor, &errors)
                .status(StatusCode::UNPROCESSABLE_ENTITY)
                .into_response()
        }
    };
    let clear = session::clear_cookie(&state.config, RESET_COOKIE);
    match result {
        Ok(()) => redirect_setting("/login?notice=password_reset", vec![clear]),
        Err(AppError::BadRequest { .. }) => {
            let mut response = link_invalid().into_response();
            response.headers_mut().append(header::SET_COOKIE, clear);
            response
        }
        Err(e) => reset_form(
            &visitor,
            &FormErrors::from_error(&e, &[("new_password", "password")]),
        )
        .status(e.status())
        .into_response(),
    }
}

/// The mailed verification link lands here: verify, then show the outcome at an address
/// without the token.
pub async fn verify_link(
    State(state): State<AppState>,
    client: ClientInfo,
    visitor: Visitor,
    Query(query): Query<TokenQuery>,
) -> Response {
    if let Some(token) = query.token {
        let to = match account::verify_email(&state, &token, &client).await {
            Ok(()) => "/verify-email?status=verified",
            Err(AppError::BadRequest { .. } | AppError::Validation(_)) => {
                "/verify-email?status=invalid"
            }
            Err(e) => {
                return Page::new("message.html")
                    .status(e.status())
                    .with("title", "Your address could not be verified")
                    .with("text", FormErrors::from_error(&e, &[]).general)
                    .into_response()
            }
        };
        return Redirect::to(to).into_response();
    }
    let next = if visitor.signed_in.is_some() {
        ("/account", "Go to your account")
    } else {
        ("/login", "Sign in")
    };
    let page = match query.status.as_deref() {
        Some("verified") => Page::new("message.html")
            .with("title", "Email address verified")
            .with("text", "Thank you: your address is confirmed.")
            .with("link", next),
        _ => Page::new("message.html")
            .status(StatusCode::BAD_REQUEST)
            .with("title", "This link is invalid or has expired")
            .with(
                "text",
                "Verification links work once and for 24 hours. Sign in and ask for a new one \
                 from your account page.",
            )
            .with("link", next),
    };
    page.into_response()
}

/// The link mailed to the old address while an email change is pending: cancels it, then
/// shows the outcome at an address without the token.
pub async fn cancel_email_change_link(
    State(state): State<AppState>,
    client: ClientInfo,
    Query(query): Query<TokenQuery>,
) -> Response {
    if let Some(token) = query.token {
        let to = match email_change::cancel(&state, &token, &client).await {
            Ok(true) => "/cancel-email-change?status=cancelled",
            Ok(false) | Err(AppError::BadRequest { .. }) => "/cancel-email-change?status=invalid",
            Err(e) => {
                return Page::new("message.html")
                    .status(e.status())
                    .with("title", "The change could not be cancelled")
                    .with("text", FormErrors::from_error(&e, &[]).general)
                    .into_response()
            }
        };
        return Redirect::to(to).into_response();
    }
    let page = match query.status.as_deref() {
        Some("cancelled") => Page::new("message.html")
            .with("title", "Email change cancelled")
            .with(
                "text",
                "Your account keeps its current address. If you did not ask for the change, \
                 change your password too.",
            )
            .with("link", ("/login", "Sign in")),
        _ => Page::new("message.html")
            .status(StatusCode::BAD_REQUEST)
            .with("title", "This link is invalid or has expired")
            .with(
                "text",
                "The change may already be complete or cancelled. Sign in to see your address.",
            )
            .with("link", ("/login", "Sign in")),
    };
    page.into_response()
}
