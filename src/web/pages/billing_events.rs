//! The admins' list of received Stripe events (GET /admin/billing/events as a page), with
//! the outcome filter and paging; shown when billing is configured.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::account::when;
use super::admin::not_an_admin;
use super::credits::page_number;
use super::user_page;
use crate::error::AppError;
use crate::services::billing;
use crate::state::AppState;
use crate::web::session::SignedIn;

const PER_PAGE: i64 = 50;
/// The outcomes the API's filter accepts.
const OUTCOMES: [&str; 4] = ["applied", "duplicate", "ignored", "unmatched"];

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct EventsQuery {
    outcome: Option<String>,
    page: Option<String>,
}

#[derive(Serialize)]
struct EventRow {
    id: String,
    kind: String,
    outcome: String,
    user_id: Option<i64>,
    detail: String,
    received: String,
}

pub async fn page(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(query): Query<EventsQuery>,
) -> Response {
    if !signed_in.current.is_admin() {
        return not_an_admin();
    }
    let enabled = billing::stripe(&state).is_ok();
    // Anything but a known outcome (including "all" and nonsense) is no filter.
    let outcome = query
        .outcome
        .as_deref()
        .filter(|o| OUTCOMES.contains(o))
        .map(str::to_owned);
    let page = page_number(query.page.as_deref());
    let (events, total) = if enabled {
        match state
            .store
            .billing_events(outcome.as_deref(), (page - 1) * PER_PAGE, PER_PAGE)
            .await
        {
            Ok(found) => found,
            Err(e) => return AppError::from(e).into_response(),
        }
    } else {
        (Vec::new(), 0)
    };
    let rows: Vec<EventRow> = events
        .into_iter()
        .map(|e| EventRow {
            id: e.id,
            kind: e.event_type,
            outcome: e.outcome,
            user_id: e.user_id,
            detail: e.detail.unwrap_or_default(),
            received: when(e.received_at),
        })
        .collect();
    let pages = ((total + PER_PAGE - 1) / PER_PAGE).max(1);
    let page_url = |n: i64| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(o) = &outcome {
            query.append_pair("outcome", o);
        }
        query.append_pair("page", &n.to_string());
        format!("/admin/billing?{}", query.finish())
    };
    user_page("admin_billing.html", &signed_in)
        .with("active", "admin")
        .with("enabled", enabled)
        .with("outcomes", OUTCOMES)
        .with("outcome", outcome.as_deref().unwrap_or(""))
        .with("events", rows)
        .with("total", total)
        .with("page", page)
        .with("pages", pages)
        .with("prev_url", (page > 1).then(|| page_url(page - 1)))
        .with("next_url", (page < pages).then(|| page_url(page + 1)))
        .into_response()
}
