//! The credits page's billing sections (DESIGN §9): active plans with "Buy"/"Subscribe"
//! through Stripe Checkout, the subscription with cancel-at-period-end, and the billing
//! portal. Shown only when billing is configured; the same service calls as the API.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::{Deserialize, Serialize};

use super::credits::{money, render};
use super::{forgery_check, CsrfForm};
use crate::caller::{Caller, ClientInfo};
use crate::error::AppError;
use crate::services::billing::{self, plans};
use crate::state::AppState;
use crate::store::Plan;
use crate::web::render::FormErrors;
use crate::web::session::SignedIn;

/// Where Checkout and the billing portal live; with STRIPE_API_BASE pointing elsewhere (a
/// test stand-in), that origin too. The credits page names them in its form-action.
pub fn form_targets(state: &AppState) -> Vec<String> {
    let mut targets = vec![
        "https://checkout.stripe.com".to_owned(),
        "https://billing.stripe.com".to_owned(),
    ];
    let api_base = &state.config.billing.api_base;
    if api_base != "https://api.stripe.com" {
        targets.push(api_base.clone());
    }
    targets
}

#[derive(Serialize)]
struct PlanRow {
    id: String,
    name: String,
    credits: String,
    price: String,
    /// "per month" / "per year" for subscriptions.
    per: Option<&'static str>,
    subscription: bool,
}

#[derive(Serialize)]
struct SubscriptionView {
    plan: String,
    status: &'static str,
    live: bool,
    period_end: Option<String>,
    cancel_at_period_end: bool,
}

#[derive(Serialize, Default)]
pub struct BillingSection {
    /// Billing is configured.
    pub enabled: bool,
    /// The user may buy (the API's rule: a verified address when verification is required).
    may_buy: bool,
    plans: Vec<PlanRow>,
    subscription: Option<SubscriptionView>,
}

/// Currencies Stripe counts in whole units (no minor unit).
const ZERO_DECIMAL: [&str; 16] = [
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];

/// A price in minor units as people read it: "10.00 USD", "500 JPY".
pub fn price(minor: i64, currency: &str) -> String {
    let code = currency.to_ascii_uppercase();
    if ZERO_DECIMAL.contains(&currency.to_ascii_lowercase().as_str()) {
        return format!("{minor} {code}");
    }
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{}.{:02} {code}", abs / 100, abs % 100)
}

fn status_name(status: &str) -> &'static str {
    match status {
        "active" => "Active",
        "trialing" => "Trial",
        "past_due" => "Payment overdue",
        "unpaid" => "Unpaid",
        "incomplete" => "Waiting for payment",
        "incomplete_expired" => "Payment not completed",
        "canceled" => "Ended",
        "paused" => "Paused",
        _ => "Unknown",
    }
}

fn plan_row(plan: &Plan) -> PlanRow {
    let subscription = plan.kind == "subscription";
    PlanRow {
        id: plan.id.clone(),
        name: plan.name.clone(),
        credits: money(plan.credits),
        price: price(plan.price, &plan.currency),
        per: match plan.interval.as_deref() {
            Some("month") => Some("per month"),
            Some("year") => Some("per year"),
            _ => None,
        },
        subscription,
    }
}

/// The user whose billing the page acts on, by the API's rule for a verified user.
fn buyer(state: &AppState, signed_in: &SignedIn) -> Result<i64, AppError> {
    billing::stripe(state)?;
    billing::account_of(
        state,
        &Caller::User(signed_in.current.clone()),
        None,
        "body",
    )
}

pub async fn section(state: &AppState, signed_in: &SignedIn) -> Result<BillingSection, AppError> {
    if billing::stripe(state).is_err() {
        return Ok(BillingSection::default());
    }
    let Ok(user_id) = buyer(state, signed_in) else {
        return Ok(BillingSection {
            enabled: true,
            ..BillingSection::default()
        });
    };
    let active = plans::active_plans(state).await?;
    let subscription = billing::current_subscription(state, user_id)
        .await?
        .map(|s| {
            let plan = s.plan_id.as_deref().map_or_else(
                || "Subscription".to_owned(),
                |id| {
                    active
                        .iter()
                        .find(|p| p.id == id)
                        .map_or_else(|| id.to_owned(), |p| p.name.clone())
                },
            );
            SubscriptionView {
                plan,
                status: status_name(&s.status),
                live: s.is_live(),
                period_end: s
                    .current_period_end
                    .map(|t| t.format("%Y-%m-%d").to_string()),
                cancel_at_period_end: s.cancel_at_period_end,
            }
        });
    Ok(BillingSection {
        enabled: true,
        may_buy: true,
        plans: active.iter().map(plan_row).collect(),
        subscription,
    })
}

/// After a refusal: the credits page again, the service's message on top.
async fn refused(state: &AppState, signed_in: &SignedIn, err: &AppError) -> Response {
    let errors = FormErrors::from_error(err, &[]);
    render(state, signed_in, 1, None, &errors, err.status()).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct CheckoutForm {
    plan_id: String,
    csrf: String,
}

/// "Buy" / "Subscribe": a Checkout Session, then off to Stripe (303).
pub async fn checkout(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    signed_in: SignedIn,
    Form(form): Form<CheckoutForm>,
) -> Response {
    if let Some(r) = forgery_check(&state, &headers, signed_in.csrf_ok(&state, &form.csrf)) {
        return r;
    }
    let started = match buyer(&state, &signed_in) {
        Ok(user_id) => billing::checkout(&state, user_id, &form.plan_id, &client).await,
        Err(e) => Err(e),
    };
    match started {
        Ok(checkout) => Redirect::to(&checkout.checkout_url).into_response(),
        Err(e) => refused(&state, &signed_in, &e).await,
    }
}

/// "Manage billing": a billing portal session, then off to Stripe (303).
pub async fn portal(
    State(state): State<AppState>,
    headers: HeaderMap,
    signed_in: SignedIn,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(r) = forgery_check(&state, &headers, signed_in.csrf_ok(&state, &form.csrf)) {
        return r;
    }
    let url = match buyer(&state, &signed_in) {
        Ok(user_id) => billing::portal(&state, user_id).await,
        Err(e) => Err(e),
    };
    match url {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(AppError::NotFound { .. }) => {
            let errors = FormErrors {
                general: Some(
                    "You have no billing account yet: it is created with your first purchase."
                        .into(),
                ),
                ..FormErrors::default()
            };
            render(&state, &signed_in, 1, None, &errors, StatusCode::NOT_FOUND).await
        }
        Err(e) => refused(&state, &signed_in, &e).await,
    }
}

/// "Cancel at period end".
pub async fn cancel(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    signed_in: SignedIn,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(r) = forgery_check(&state, &headers, signed_in.csrf_ok(&state, &form.csrf)) {
        return r;
    }
    let done = match buyer(&state, &signed_in) {
        Ok(user_id) => billing::cancel_subscription(&state, user_id, &client).await,
        Err(e) => Err(e),
    };
    match done {
        Ok(_) => Redirect::to("/credits?notice=subscription_cancelled").into_response(),
        Err(e) => refused(&state, &signed_in, &e).await,
    }
}

#[cfg(test)]
mod tests {
    use super::price;

    #[test]
    fn prices_read_like_prices() {
        assert_eq!(price(1000, "usd"), "10.00 USD");
        assert_eq!(price(5, "eur"), "0.05 EUR");
        assert_eq!(price(500, "jpy"), "500 JPY");
    }
}
