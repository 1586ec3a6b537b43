//! The pages, one file per group. Handlers parse the form, call the same service as the
//! API, and answer with a page (errors next to their fields) or a redirect (after success).

mod account;
mod admin;
mod auth;
mod billing;
mod billing_events;
mod credits;
mod identities;
mod mfa;
mod providers;
mod security;
mod webhooks;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};

use super::csrf;
use super::render::{FormErrors, Page};
use super::session::{SignedIn, Visitor};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/login/mfa", post(mfa::verify))
        .route("/signup", get(auth::signup_page).post(auth::signup))
        .route("/logout", post(auth::logout))
        .route("/auth/start/{provider}", post(providers::start))
        .route("/auth/callback/{provider}", get(providers::callback))
        .route(
            "/forgot-password",
            get(auth::forgot_page).post(auth::forgot),
        )
        .route("/reset-password", get(auth::reset_page).post(auth::reset))
        .route("/verify-email", get(auth::verify_link))
        .route("/cancel-email-change", get(auth::cancel_email_change_link))
        .route("/account", get(account::page))
        .route("/account/resend-verification", post(account::resend))
        .route("/account/email", post(account::change_email))
        .route("/account/password", post(account::change_password))
        .route("/account/sessions/revoke", post(account::revoke_session))
        .route("/account/sessions/revoke-all", post(account::revoke_all))
        .route("/account/delete", post(account::delete))
        .route("/account/mfa/setup", post(security::setup))
        .route("/account/mfa/confirm", post(security::confirm))
        .route("/account/mfa/recovery-codes", post(security::new_codes))
        .route("/account/mfa/remove", post(security::remove))
        .route("/account/identities/unlink", post(identities::unlink))
        .route("/credits", get(credits::page))
        .route("/credits/checkout", post(billing::checkout))
        .route("/credits/portal", post(billing::portal))
        .route("/credits/subscription/cancel", post(billing::cancel))
        .route("/billing/success", get(credits::checkout_returned))
        .route("/billing/cancel", get(credits::checkout_cancelled))
        .route("/admin", get(admin::page))
        .route("/admin/users/flags", post(admin::change_flags))
        .route("/admin/credits", post(admin::grant))
        .route("/admin/billing", get(billing_events::page))
        .route(
            "/admin/webhooks/manage",
            get(webhooks::page).post(webhooks::act),
        )
}

/// Sends visitors where they belong: their account, or the sign-in page.
async fn home(visitor: Visitor) -> Response {
    let target = if visitor.signed_in.is_some() {
        "/account"
    } else {
        "/login"
    };
    Redirect::to(target).into_response()
}

/// The query of pages that show a message after a redirect: a fixed key, never free text.
#[derive(Deserialize, Default)]
pub struct NoticeQuery {
    notice: Option<String>,
    /// A sign-in provider flow's failure (see `providers::error_message`).
    oauth_error: Option<String>,
}

impl NoticeQuery {
    /// The message of a failed provider flow, as the page's general error.
    fn oauth_errors(&self) -> FormErrors {
        FormErrors {
            general: self
                .oauth_error
                .as_deref()
                .and_then(providers::error_message)
                .map(str::to_owned),
            ..FormErrors::default()
        }
    }

    fn message(&self) -> Option<&'static str> {
        Some(match self.notice.as_deref()? {
            "signed_out" => "You have been signed out.",
            "signed_out_everywhere" => "You have been signed out on every device.",
            "password_reset" => "Your password has been changed. Sign in with the new one.",
            "account_deleted" => {
                "Your account has been deleted, and any subscription cancelled: no further charges."
            }
            "session_ended" => "Your session has ended. Please sign in again.",
            "welcome" => "Welcome! We sent you an email with a link to verify your address.",
            "verification_sent" => "A new verification link is on its way to your inbox.",
            "email_change_requested" => {
                "Check your new address: the link we sent there completes the change."
            }
            "password_changed" => {
                "Your password has been changed. Your other devices have been signed out."
            }
            "session_revoked" => "The session has been signed out.",
            "user_updated" => "The account has been updated.",
            "credits_granted" => "The credits have been granted.",
            "welcome_provider" => "Welcome! Your account has been created.",
            "identity_linked" => "The sign-in provider has been linked to your account.",
            "identity_unlinked" => "The sign-in provider has been unlinked.",
            "mfa_removed" => "Two-step verification is off: you sign in with your password alone.",
            "endpoint_updated" => "The endpoint has been changed.",
            "endpoint_enabled" => "The endpoint is enabled: its pending deliveries go out now.",
            "endpoint_disabled" => "The endpoint is disabled: nothing is sent to it until enabled.",
            "endpoint_deleted" => "The endpoint and its deliveries have been deleted.",
            "test_sent" => "A webhook.test event is on its way to the endpoint.",
            "delivery_retried" => "The delivery is due again and will be sent in a moment.",
            "subscription_cancelled" => {
                "Your subscription will end at the end of the current period."
            }
            _ => return None,
        })
    }
}

/// What the navigation shows about the signed-in user.
#[derive(Serialize)]
struct NavUser<'a> {
    username: &'a str,
    is_admin: bool,
}

fn nav_user(signed_in: &SignedIn) -> NavUser<'_> {
    NavUser {
        username: &signed_in.current.user.username,
        is_admin: signed_in.current.user.is_admin,
    }
}

/// A page for a signed-in user, with the navigation and the forms' CSRF token.
fn user_page(template: &'static str, signed_in: &SignedIn) -> Page {
    Page::new(template)
        .with("active", template.trim_end_matches(".html"))
        .with("user", nav_user(signed_in))
        .with("csrf", &signed_in.csrf)
}

/// A form whose only field is its CSRF token (buttons that post: sign out, resend, …).
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct CsrfForm {
    csrf: String,
}

/// A state-changing form is accepted only from our own pages with its CSRF token;
/// otherwise this is the refusal to answer with.
fn forgery_check(state: &AppState, headers: &HeaderMap, token_ok: bool) -> Option<Response> {
    if token_ok && csrf::same_origin(&state.config, headers) {
        return None;
    }
    Some(
        Page::new("message.html")
            .status(StatusCode::FORBIDDEN)
            .with("title", "This form has expired")
            .with(
                "text",
                csrf::refusal_reason(&state.config, headers, token_ok),
            )
            .into_response(),
    )
}
