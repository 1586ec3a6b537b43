//! The credits page: balance and history, a page at a time; the billing sections are in
//! `billing.rs`.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::account::when;
use super::{user_page, NoticeQuery};
use crate::domain::Credits;
use crate::error::AppError;
use crate::services::credits;
use crate::state::AppState;
use crate::web::render::FormErrors;
use crate::web::session::SignedIn;

const PER_PAGE: i64 = 20;

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct PageQuery {
    /// 1-based; anything unparsable is page 1.
    page: Option<String>,
    notice: Option<String>,
}

pub fn page_number(raw: Option<&str>) -> i64 {
    raw.and_then(|p| p.parse::<i64>().ok())
        .filter(|p| (1..=1_000_000).contains(p))
        .unwrap_or(1)
}

#[derive(Serialize)]
struct Row {
    when: String,
    kind: String,
    amount: String,
    /// "plus", "minus", or "" for a type this page does not know.
    direction: &'static str,
    /// What precedes the amount: "+", "−" (U+2212) or nothing.
    sign: &'static str,
    balance: String,
    description: String,
}

/// Amounts with their sign (refunds can take a balance below zero).
pub fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let magnitude = Credits::from_cents(cents.checked_abs().unwrap_or(i64::MAX));
    format!("{sign}{magnitude}")
}

/// Which way a ledger row moved the balance. Stored amounts are always positive (the
/// type says the direction), so the sign comes from the type, never from the amount.
fn direction(kind: &str) -> (&'static str, &'static str) {
    use crate::store::CreditKind::*;
    let known = [Added, Used, Purchase, Refund, SubscriptionGrant]
        .into_iter()
        .find(|k| k.as_str() == kind);
    match known {
        Some(k) if k.debits() => ("minus", "\u{2212}"),
        Some(_) => ("plus", "+"),
        None => ("", ""),
    }
}

fn kind_name(kind: &str) -> String {
    match kind {
        "credit_added" => "Added".into(),
        "credit_used" => "Used".into(),
        "purchase" => "Purchase".into(),
        "subscription_grant" => "Subscription".into(),
        "refund" => "Refund".into(),
        other => other.replace('_', " "),
    }
}

pub async fn page(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(query): Query<PageQuery>,
) -> Response {
    let page = page_number(query.page.as_deref());
    let notice = NoticeQuery {
        notice: query.notice,
        oauth_error: None,
    };
    render(
        &state,
        &signed_in,
        page,
        notice.message(),
        &FormErrors::default(),
        StatusCode::OK,
    )
    .await
}

/// The page (history page `page`), with `errors` of a billing action on top.
pub async fn render(
    state: &AppState,
    signed_in: &SignedIn,
    page: i64,
    notice: Option<&str>,
    errors: &FormErrors,
    status: StatusCode,
) -> Response {
    let user_id = signed_in.current.user.id;
    let loaded = async {
        let (balance, _) = credits::balance(state, user_id).await?;
        let (rows, total) =
            credits::history(state, user_id, (page - 1) * PER_PAGE, PER_PAGE).await?;
        let billing = super::billing::section(state, signed_in).await?;
        Ok::<_, AppError>((balance, rows, total, billing))
    };
    let (balance, rows, total, billing) = match loaded.await {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    let rows: Vec<Row> = rows
        .into_iter()
        .map(|t| Row {
            when: when(t.created_at),
            kind: kind_name(&t.transaction_type),
            direction: direction(&t.transaction_type).0,
            sign: direction(&t.transaction_type).1,
            amount: money(t.amount),
            balance: money(t.balance_after),
            description: t.description.unwrap_or_default(),
        })
        .collect();
    let pages = ((total + PER_PAGE - 1) / PER_PAGE).max(1);
    let billing_on = billing.enabled;
    let response = user_page("credits.html", signed_in)
        .status(status)
        .with("notice", notice)
        .with("balance", money(balance))
        .with("transactions", rows)
        .with("total", total)
        .with("page", page)
        .with("pages", pages)
        .with("billing", billing)
        .errors(errors)
        .into_response();
    if billing_on {
        let targets = super::billing::form_targets(state);
        crate::web::allow_form_targets(response, targets.iter().map(String::as_str))
    } else {
        response
    }
}

/// Where Stripe Checkout sends the browser back (BILLING_SUCCESS_URL's default). The
/// credits come from the verified webhook, not from this visit, so it promises nothing.
pub async fn checkout_returned() -> Response {
    crate::web::render::Page::new("message.html")
        .with("title", "Thank you")
        .with(
            "text",
            "Your payment is being confirmed. The credits appear in your history as soon as \
             the payment provider confirms it, usually within a minute.",
        )
        .with("link", ("/credits", "Go to your credits"))
        .into_response()
}

/// BILLING_CANCEL_URL's default: Checkout was left without paying.
pub async fn checkout_cancelled() -> Response {
    crate::web::render::Page::new("message.html")
        .with("title", "Checkout cancelled")
        .with("text", "Nothing was charged.")
        .with("link", ("/credits", "Back to your credits"))
        .into_response()
}
