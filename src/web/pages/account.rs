//! The account page: profile, verification, email and password change, sessions,
//! sign-in providers (`identities.rs`), recent activity, deletion.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{forgery_check, user_page, CsrfForm, NoticeQuery};
use crate::caller::ClientInfo;
use crate::domain::{Email, Password};
use crate::error::AppError;
use crate::services::{account, email_change, sessions};
use crate::state::AppState;
use crate::store::now;
use crate::web::render::FormErrors;
use crate::web::session::{self, SignedIn};

const RECENT_ACTIVITY: i64 = 10;

pub fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[derive(Serialize)]
struct SessionRow {
    id: String,
    device: String,
    ip: String,
    created: String,
    last_seen: String,
    current: bool,
}

#[derive(Serialize)]
struct ActivityRow {
    what: &'static str,
    when: String,
    ip: String,
}

/// A short, readable name for a browser from its User-Agent.
fn device(user_agent: Option<&str>) -> String {
    let Some(ua) = user_agent.filter(|ua| !ua.is_empty()) else {
        return "Unknown device".into();
    };
    let browser = [
        ("Edg/", "Edge"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
    ]
    .iter()
    .find(|(needle, _)| ua.contains(needle))
    .map(|(_, name)| *name);
    let system = [
        ("Android", "Android"),
        ("iPhone", "iPhone"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(needle, _)| ua.contains(needle))
    .map(|(_, name)| *name);
    match (browser, system) {
        (Some(b), Some(s)) => format!("{b} on {s}"),
        (Some(b), None) => b.to_owned(),
        (None, Some(s)) => s.to_owned(),
        (None, None) => ua.chars().take(40).collect(),
    }
}

fn event_name(event: &str) -> &'static str {
    match event {
        "register" => "Account created",
        "login_success" => "Signed in",
        "login_failure" => "Failed sign-in attempt",
        "logout" => "Signed out",
        "refresh_reuse_detected" => "Session ended: a stolen token was detected",
        "password_change" => "Password changed",
        "password_reset_request" => "Password reset requested",
        "password_reset" => "Password reset",
        "email_change" => "Email address changed",
        "email_verified" => "Email address verified",
        "session_revoke" => "Session signed out",
        "credits_add" => "Credits added",
        "credits_use" => "Credits used",
        "admin_update" => "Account changed by an administrator",
        "identity_linked" => "Sign-in provider linked",
        "identity_unlinked" => "Sign-in provider unlinked",
        "email_change_request" => "Email change requested",
        "email_change_cancel" => "Email change cancelled",
        "billing_checkout" => "Checkout started",
        "billing_subscription_cancel" => "Subscription set to end",
        _ => "Other account event",
    }
}

/// The page, with `errors` under the fields of the form that failed.
async fn render(
    state: &AppState,
    signed_in: &SignedIn,
    notice: Option<&str>,
    errors: &FormErrors,
    status: StatusCode,
) -> Response {
    let user = &signed_in.current.user;
    let live = match state.store.live_sessions(user.id, now()).await {
        Ok(list) => list,
        Err(e) => return AppError::from(e).into_response(),
    };
    let sessions: Vec<SessionRow> = live
        .into_iter()
        .map(|s| SessionRow {
            current: s.id == signed_in.current.session_id,
            device: device(s.user_agent.as_deref()),
            ip: s.ip.clone().unwrap_or_default(),
            created: when(s.created_at),
            last_seen: when(s.last_seen_at),
            id: s.id,
        })
        .collect();
    let activity: Vec<ActivityRow> = match state
        .store
        .activities(Some(user.id), 0, RECENT_ACTIVITY)
        .await
    {
        Ok((rows, _)) => rows
            .into_iter()
            .map(|a| ActivityRow {
                what: event_name(&a.event),
                when: when(a.created_at),
                ip: a.ip.unwrap_or_default(),
            })
            .collect(),
        Err(e) => return AppError::from(e).into_response(),
    };
    let providers = match super::identities::section(state, signed_in).await {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    let pending_email = match email_change::pending(state, user.id).await {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    let mfa_status = match crate::services::mfa::status(state, user).await {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    let page = user_page("account.html", signed_in)
        .with("mfa", mfa_status)
        .status(status)
        .with("notice", notice)
        .with("email", &user.email)
        .with("is_verified", user.is_verified)
        .with(
            "verification_required",
            state.config.require_email_verification,
        )
        .with("member_since", when(user.created_at))
        .with("sessions", sessions)
        .with("activity", activity)
        .with("providers", providers)
        .with("pending_email", pending_email)
        .with("has_password", !user.password_hash.is_empty())
        .errors(errors)
        .into_response();
    super::providers::allowing_provider_forms(state, page).await
}

pub async fn page(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(query): Query<NoticeQuery>,
) -> Response {
    // A failed "Link …" comes back here with its key.
    let errors = query.oauth_errors();
    render(&state, &signed_in, query.message(), &errors, StatusCode::OK).await
}

/// After a service refused: the page again, its message next to the right field.
pub(super) async fn refused(
    state: &AppState,
    signed_in: &SignedIn,
    err: &AppError,
    rename: &[(&str, &str)],
) -> Response {
    let mut errors = FormErrors::from_error(err, rename);
    // 401 here is "Incorrect password": it belongs under the password field.
    if let (AppError::Unauthorized { detail, .. }, Some((_, field))) = (err, rename.last()) {
        errors.general = None;
        errors.field(field, detail.clone());
    }
    render(state, signed_in, None, &errors, err.status()).await
}

pub async fn resend(
    State(state): State<AppState>,
    headers: HeaderMap,
    signed_in: SignedIn,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(r) = forgery_check(&state, &headers, signed_in.csrf_ok(&state, &form.csrf)) {
        return r;
    }
    match account::resend_verification(&state, &signed_in.current).await {
        Ok(()) => Redirect::to("/account?notice=verification_sent").into_response(),
        Err(e) => refused(&state, &signed_in, &e, &[]).await,
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct EmailForm {
    new_email: String,
    email_password: String,
    csrf: String,
}

pub async fn change_email(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    signed_in: SignedIn,
    Form(form): Form<EmailForm>,
) -> Response {
    if let Some(r) = forgery_check(&state, &headers, signed_in.csrf_ok(&state, &form.csrf)) {
        return r;
    }
    let rename = [
        ("new_email", "new_email"),
        ("current_password", "email_password"),
    ];
    let result = match Email::parse(form.new_email.trim()) {
        Err(msg) => Err(AppError::validation(
            "body",
            "new_email",
            msg,
            "value_error",
        )),
        Ok(email) => match account::ensure_verified(&state, &signed_in.current) {
            Err(e) => Err(e),
            Ok(()) => email_change::request_change(
                &state,
                &signed_in.current,
                &email,
                &form.email_password,
                &client,
            )
            .await
            .map(|_| ()),
        },
    };
    match result {
        Ok(()) => Redirect::to("/account?notice=email_change_requested").into_response(),
        Err(AppError::BadRequest { detail, .. }) => {
            // Taken or unchanged: about the address field.
            let mut errors = FormErrors::default();
            errors.field("new_email", detail);
            render(&state, &signed_in, None, &errors, StatusCode::BAD_REQUEST).await
        }
        Err(e) => refused(&state, &signed_in, &e, &rename).await,
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct PasswordForm {
    current_password: String,
    new_password: String,
    csrf: String,
}

pub async fn change_password(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    signed_in: SignedIn,
    Form(form): Form<PasswordForm>,
) -> Response {
    if let Some(r) = forgery_check(&state, &headers, signed_in.csrf_ok(&state, &form.csrf)) {
        return r;
    }
    let rename = [
        ("new_password", "new_password"),
        ("current_password", "current_password"),
    ];
    let result = match Password::parse(form.new_password) {
        Err(msg) => Err(AppError::validation(
            "body",
            "new_password",
            msg,
            "value_error",
        )),
        Ok(new_password) => match account::ensure_verified(&state, &signed_in.current) {
            Err(e) => Err(e),
            Ok(()) => {
                account::change_password(
                    &state,
                    &signed_in.current,
                    &form.current_password,
                    &new_password,
                    &client,
                )
                .await
            }
        },
    };
    match result {
        Ok(()) => Redirect::to("/account?notice=password_changed").into_response(),
        Err(e) => refused(&state, &signed_in, &e, &rename).await,
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RevokeForm {
    session_id: String,
    csrf: String,
}

pub async fn revoke_session(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    signed_in: SignedIn,
    Form(form): Form<RevokeForm>,
) -> Response {
    if let Some(r) = forgery_check(&state, &headers, signed_in.csrf_ok(&state, &form.csrf)) {
        return r;
    }
    match sessions::revoke(&state, &signed_in.current, &form.session_id, &client).await {
        Ok(()) if form.session_id == signed_in.current.session_id => {
            signed_out(&state, "signed_out")
        }
        Ok(()) => Redirect::to("/account?notice=session_revoked").into_response(),
        Err(e) => refused(&state, &signed_in, &e, &[]).await,
    }
}

fn signed_out(state: &AppState, notice: &str) -> Response {
    let mut response = Redirect::to(&format!("/login?notice={notice}")).into_response();
    response.headers_mut().append(
        axum::http::header::SET_COOKIE,
        session::clear_cookie(&state.config, session::SESSION_COOKIE),
    );
    response
}

pub async fn revoke_all(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    signed_in: SignedIn,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(r) = forgery_check(&state, &headers, signed_in.csrf_ok(&state, &form.csrf)) {
        return r;
    }
    match sessions::revoke_all(&state, &signed_in.current, &client).await {
        Ok(_) => signed_out(&state, "signed_out_everywhere"),
        Err(e) => refused(&state, &signed_in, &e, &[]).await,
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct DeleteForm {
    delete_password: String,
    csrf: String,
}

pub async fn delete(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    signed_in: SignedIn,
    Form(form): Form<DeleteForm>,
) -> Response {
    if let Some(r) = forgery_check(&state, &headers, signed_in.csrf_ok(&state, &form.csrf)) {
        return r;
    }
    let current = &signed_in.current;
    let result = match account::ensure_verified(&state, current) {
        Err(e) => Err(e),
        Ok(()) => {
            account::delete_account(
                &state,
                current,
                &current.user,
                Some(&form.delete_password),
                &client,
            )
            .await
        }
    };
    match result {
        Ok(()) => signed_out(&state, "account_deleted"),
        Err(e) => refused(&state, &signed_in, &e, &[("password", "delete_password")]).await,
    }
}
