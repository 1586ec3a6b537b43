//! The second step of a sign-in on the pages (DESIGN §14): after a correct password or a
//! provider sign-in on an account with a second factor, a code prompt carrying the
//! single-use mfa_token; a correct code starts the session, a wrong one shows the prompt
//! again (the token stays valid until it is used or expires).

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::forgery_check;
use crate::caller::ClientInfo;
use crate::services::mfa::{self, Factor, MfaChallenge};
use crate::state::AppState;
use crate::web::render::{FormErrors, Page};
use crate::web::session::{self, Visitor};

/// The prompt for the challenge a first step answered with.
pub fn prompt(visitor: &Visitor, challenge: &MfaChallenge) -> Response {
    prompt_page(visitor, &challenge.mfa_token, &FormErrors::default()).into_response()
}

fn prompt_page(visitor: &Visitor, mfa_token: &str, errors: &FormErrors) -> Page {
    Page::new("mfa.html")
        .with("csrf", &visitor.csrf)
        .with("mfa_token", mfa_token)
        .errors(errors)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct MfaForm {
    mfa_token: String,
    code: String,
    csrf: String,
}

/// A 6-digit code is the app's; anything else is tried as a recovery code.
fn factor_of(code: &str) -> Factor<'_> {
    let code = code.trim();
    if code.len() == mfa::TOTP_DIGITS && code.bytes().all(|b| b.is_ascii_digit()) {
        Factor::Totp(code)
    } else {
        Factor::RecoveryCode(code)
    }
}

/// POST /login/mfa.
pub async fn verify(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    visitor: Visitor,
    Form(form): Form<MfaForm>,
) -> Response {
    if let Some(refused) = forgery_check(&state, &headers, visitor.csrf_ok(&state, &form.csrf)) {
        return refused;
    }
    let mut errors = FormErrors::default();
    let mut status = StatusCode::UNPROCESSABLE_ENTITY;
    if form.code.trim().is_empty() {
        errors.field("code", "Enter the code from your app or a recovery code");
    } else if form.mfa_token.is_empty() || form.mfa_token.contains('\0') {
        status = StatusCode::UNAUTHORIZED;
        errors.general = Some("This sign-in has expired: start again".into());
    } else {
        let started = mfa::verify(&state, &form.mfa_token, factor_of(&form.code), &client)
            .await
            .and_then(|pair| session::start(&state, &pair));
        match started {
            Ok(cookie) => {
                return (
                    AppendHeaders([(header::SET_COOKIE, cookie)]),
                    Redirect::to("/account"),
                )
                    .into_response()
            }
            Err(e) => {
                status = e.status();
                errors = FormErrors::from_error(&e, &[]);
                if status == StatusCode::UNAUTHORIZED {
                    errors.general = Some(
                        "That code is not valid, or this sign-in has expired (start again)".into(),
                    );
                }
            }
        }
    }
    let page = prompt_page(&visitor, &form.mfa_token, &errors).status(status);
    visitor.finish(page.into_response())
}
