//! The admin page: find accounts, (de)activate, promote/demote, grant credits.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::{Deserialize, Serialize};

use super::account::when;
use super::credits::page_number;
use super::{forgery_check, user_page, NoticeQuery};
use crate::caller::{Caller, ClientInfo};
use crate::domain::Credits;
use crate::error::AppError;
use crate::services::credits::{self, Change};
use crate::services::{account, admin as admin_service};
use crate::state::AppState;
use crate::store::{CreditKind, UserFlags};
use crate::web::render::{FormErrors, Page};
use crate::web::session::SignedIn;

const PER_PAGE: i64 = 25;

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct AdminQuery {
    search: Option<String>,
    page: Option<String>,
    notice: Option<String>,
}

#[derive(Serialize)]
struct UserRow {
    username: String,
    email: String,
    is_admin: bool,
    is_active: bool,
    is_verified: bool,
    created: String,
    is_me: bool,
}

pub(super) fn not_an_admin() -> Response {
    Page::new("message.html")
        .status(StatusCode::FORBIDDEN)
        .with("title", "Administrators only")
        .with("text", "This page is for administrators of the service.")
        .with("link", ("/account", "Go to your account"))
        .into_response()
}

#[derive(Default, Serialize)]
struct GrantValues {
    username: String,
    amount: String,
    reason: String,
}

async fn render(
    state: &AppState,
    signed_in: &SignedIn,
    query: &AdminQuery,
    grant: &GrantValues,
    errors: &FormErrors,
    status: StatusCode,
) -> Response {
    let page = page_number(query.page.as_deref());
    let search = query.search.clone().unwrap_or_default();
    let (users, total) = match admin_service::list_users(
        state,
        Some(&search),
        (page - 1) * PER_PAGE,
        PER_PAGE,
    )
    .await
    {
        Ok(found) => found,
        Err(e @ AppError::Validation(_)) => {
            let mut errors = FormErrors::from_error(&e, &[]);
            errors
                .fields
                .insert("search".into(), errors.general.take().unwrap_or_default());
            return user_page("admin.html", signed_in)
                .status(e.status())
                .with("search", &search)
                .with("users", Vec::<UserRow>::new())
                .with("grant", grant)
                .errors(&errors)
                .into_response();
        }
        Err(e) => return e.into_response(),
    };
    let me = signed_in.current.user.id;
    let rows: Vec<UserRow> = users
        .into_iter()
        .map(|u| UserRow {
            is_me: u.id == me,
            username: u.username,
            email: u.email,
            is_admin: u.is_admin,
            is_active: u.is_active,
            is_verified: u.is_verified,
            created: when(u.created_at),
        })
        .collect();
    let pages = ((total + PER_PAGE - 1) / PER_PAGE).max(1);
    let page_url = |n: i64| {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("search", &search)
            .append_pair("page", &n.to_string())
            .finish();
        format!("/admin?{query}")
    };
    let notice = NoticeQuery {
        notice: query.notice.clone(),
        oauth_error: None,
    };
    user_page("admin.html", signed_in)
        .status(status)
        .with("notice", notice.message())
        .with("search", &search)
        .with("users", rows)
        .with("total", total)
        .with("page", page)
        .with("pages", pages)
        .with("prev_url", (page > 1).then(|| page_url(page - 1)))
        .with("next_url", (page < pages).then(|| page_url(page + 1)))
        .with("grant", grant)
        .with(
            "billing_enabled",
            crate::services::billing::stripe(state).is_ok(),
        )
        .errors(errors)
        .into_response()
}

pub async fn page(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(query): Query<AdminQuery>,
) -> Response {
    if !signed_in.current.is_admin() {
        return not_an_admin();
    }
    render(
        &state,
        &signed_in,
        &query,
        &GrantValues::default(),
        &FormErrors::default(),
        StatusCode::OK,
    )
    .await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct FlagsForm {
    username: String,
    /// activate | deactivate | promote | demote
    change: String,
    csrf: String,
}

pub async fn change_flags(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    signed_in: SignedIn,
    Form(form): Form<FlagsForm>,
) -> Response {
    if let Some(r) = forgery_check(&state, &headers, signed_in.csrf_ok(&state, &form.csrf)) {
        return r;
    }
    if !signed_in.current.is_admin() {
        return not_an_admin();
    }
    let mut flags = UserFlags::default();
    match form.change.as_str() {
        "activate" => flags.is_active = Some(true),
        "deactivate" => flags.is_active = Some(false),
        "promote" => flags.is_admin = Some(true),
        "demote" => flags.is_admin = Some(false),
        _ => {}
    }
    let result =
        admin_service::update_flags(&state, &signed_in.current, &form.username, flags, &client)
            .await;
    match result {
        Ok(_) => Redirect::to("/admin?notice=user_updated").into_response(),
        Err(e) => {
            let errors = FormErrors::from_error(&e, &[]);
            render(
                &state,
                &signed_in,
                &AdminQuery::default(),
                &GrantValues::default(),
                &errors,
                e.status(),
            )
            .await
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct GrantForm {
    #[serde(rename = "grant_username")]
    username: String,
    amount: String,
    reason: String,
    csrf: String,
}

pub async fn grant(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    signed_in: SignedIn,
    Form(form): Form<GrantForm>,
) -> Response {
    if let Some(r) = forgery_check(&state, &headers, signed_in.csrf_ok(&state, &form.csrf)) {
        return r;
    }
    let caller = Caller::User(signed_in.current.clone());
    if credits::may_add(&caller).is_err() {
        return not_an_admin();
    }
    let mut errors = FormErrors::default();
    let amount = Credits::parse(form.amount.trim()).map_err(|e| errors.field("amount", e));
    let reason = form.reason.trim().to_owned();
    if reason.is_empty() {
        errors.field(
            "reason",
            "Give a reason: it is kept in the account's history",
        );
    }
    let target = match account::account_named(&state, form.username.trim()).await {
        Ok(user) => Some(user),
        Err(e) => {
            errors.field("grant_username", e.to_string());
            None
        }
    };
    let mut status = StatusCode::UNPROCESSABLE_ENTITY;
    if let (Ok(amount), Some(target), true) = (amount, target, errors.is_empty()) {
        let change = Change {
            user_id: target.id,
            kind: CreditKind::Added,
            amount,
            reference_id: None,
            description: Some(reason),
        };
        match credits::apply(&state, change, &client).await {
            Ok(_) => return Redirect::to("/admin?notice=credits_granted").into_response(),
            Err(e) => {
                status = e.status();
                errors = FormErrors::from_error(&e, &[("description", "reason")]);
            }
        }
    }
    let values = GrantValues {
        username: form.username,
        amount: form.amount,
        reason: form.reason,
    };
    render(
        &state,
        &signed_in,
        &AdminQuery::default(),
        &values,
        &errors,
        status,
    )
    .await
}
