//! The account page's "Two-step verification" (DESIGN §14): set up an authenticator app
//! (its QR code as inline SVG and the key as text, then a code to confirm), see the
//! recovery codes once, replace them, turn the app off. The same services as the API, so
//! the same rules: a verified email to set up, a recent second factor (step-up) to remove
//! or replace.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::account::refused;
use super::{forgery_check, user_page, CsrfForm};
use crate::caller::ClientInfo;
use crate::services::{account, mfa, step_up};
use crate::state::AppState;
use crate::web::render::FormErrors;
use crate::web::session::SignedIn;

/// POST /account/mfa/setup: a new secret, shown with a form for the first code.
pub async fn setup(
    State(state): State<AppState>,
    headers: HeaderMap,
    signed_in: SignedIn,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(r) = forgery_check(&state, &headers, signed_in.csrf_ok(&state, &form.csrf)) {
        return r;
    }
    if let Err(e) = account::ensure_verified(&state, &signed_in.current) {
        return refused(&state, &signed_in, &e, &[]).await;
    }
    // A pending (unconfirmed) secret is replaced; an active app is a 409 shown on the page.
    match mfa::enroll(&state, &signed_in.current.user).await {
        Ok(enrolled) => setup_page(
            &signed_in,
            &enrolled.qr_svg,
            &enrolled.secret,
            &FormErrors::default(),
        )
        .into_response(),
        Err(e) => refused(&state, &signed_in, &e, &[]).await,
    }
}

fn setup_page(
    signed_in: &SignedIn,
    qr_svg: &str,
    secret: &str,
    errors: &FormErrors,
) -> crate::web::Page {
    user_page("mfa_setup.html", signed_in)
        .with("qr_svg", qr_svg)
        .with("secret", secret)
        .errors(errors)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ConfirmForm {
    code: String,
    csrf: String,
}

/// POST /account/mfa/confirm: the first code turns the app on; the recovery codes are
/// shown once.
pub async fn confirm(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    signed_in: SignedIn,
    Form(form): Form<ConfirmForm>,
) -> Response {
    if let Some(r) = forgery_check(&state, &headers, signed_in.csrf_ok(&state, &form.csrf)) {
        return r;
    }
    let user = &signed_in.current.user;
    match mfa::confirm(&state, user, &form.code, &client).await {
        Ok(codes) => codes_page(&signed_in, codes.recovery_codes),
        Err(e) => {
            // The pending secret is still the one to confirm: show it again.
            let mut errors = FormErrors::default();
            errors.field(
                "code",
                "That code is not right: enter the one the app shows now",
            );
            match state.store.totp_of(user.id).await {
                Ok(Some(row)) if row.confirmed_at.is_none() => {
                    let totp_url = mfa::otpauth_url(&row.secret, &user.username);
                    match totp_url.and_then(|url| mfa::qr_svg(&url)) {
                        Ok(svg) => setup_page(&signed_in, &svg, &row.secret, &errors)
                            .status(e.status())
                            .into_response(),
                        Err(e) => refused(&state, &signed_in, &e, &[]).await,
                    }
                }
                _ => refused(&state, &signed_in, &e, &[]).await,
            }
        }
    }
}

/// POST /account/mfa/recovery-codes: new codes (the old ones die), shown once.
pub async fn new_codes(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    signed_in: SignedIn,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(r) = forgery_check(&state, &headers, signed_in.csrf_ok(&state, &form.csrf)) {
        return r;
    }
    let result = match step_up::require_recent_factor(&state, &signed_in.current).await {
        Ok(()) => mfa::regenerate_recovery_codes(&state, &signed_in.current.user, &client).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(codes) => codes_page(&signed_in, codes.recovery_codes),
        Err(e) => refused(&state, &signed_in, &e, &[]).await,
    }
}

/// The new recovery codes, shown this once, and the same as a text file to download (a
/// `data:` link: nothing is kept on the server to fetch them again).
fn codes_page(signed_in: &SignedIn, codes: Vec<String>) -> Response {
    let file = format!(
        "Recovery codes for {} (each signs you in once):\n\n{}\n",
        signed_in.current.user.username,
        codes.join("\n")
    );
    // Percent-encoded for the data: URL ("+" is not a space there).
    let href: String = form_urlencoded::byte_serialize(file.as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    user_page("mfa_setup.html", signed_in)
        .with("recovery_codes", codes)
        .with("codes_file", href)
        .into_response()
}

/// POST /account/mfa/remove: the app and the recovery codes are removed.
pub async fn remove(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    signed_in: SignedIn,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(r) = forgery_check(&state, &headers, signed_in.csrf_ok(&state, &form.csrf)) {
        return r;
    }
    let result = match step_up::require_recent_factor(&state, &signed_in.current).await {
        Ok(()) => mfa::remove(&state, &signed_in.current.user, &client).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Redirect::to("/account?notice=mfa_removed").into_response(),
        Err(e) => refused(&state, &signed_in, &e, &[]).await,
    }
}
