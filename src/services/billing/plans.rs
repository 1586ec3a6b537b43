//! Plans: what a Stripe Price buys. Admins create and change them; they are never deleted.

use crate::domain::Credits;
use crate::error::AppError;
use crate::state::AppState;
use crate::store::{now, Plan};

const MAX_ID_CHARS: usize = 64;
const MAX_NAME_CHARS: usize = 100;
const MAX_STRIPE_ID_CHARS: usize = 255;
/// Stripe's own ceiling for an amount in minor units (eight digits of a currency unit).
pub const MAX_PRICE: i64 = 99_999_999;

/// Plan fields as an admin sends them; on update, `None` keeps the current value.
#[derive(Debug, Default)]
pub struct PlanFields {
    pub id: Option<String>,
    pub name: Option<String>,
    pub kind: Option<String>,
    pub credits: Option<Credits>,
    pub price: Option<i64>,
    pub currency: Option<String>,
    pub interval: Option<String>,
    pub stripe_price_id: Option<String>,
    pub active: Option<bool>,
}

fn invalid(field: &str, msg: &str) -> AppError {
    AppError::validation("body", field, msg, "value_error")
}

fn missing(field: &str) -> AppError {
    AppError::validation("body", field, "Field required", "missing")
}

/// Letters, digits and `_`/`-`: what Stripe ids and our slugs are made of, and safe in a
/// URL path.
pub fn is_token(value: &str, max: usize) -> bool {
    !value.is_empty()
        && value.len() <= max
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn check(plan: &Plan) -> Result<(), AppError> {
    if !is_token(&plan.id, MAX_ID_CHARS) || plan.id != plan.id.to_ascii_lowercase() {
        return Err(invalid(
            "id",
            "id must be 1-64 lowercase letters, digits, '_' or '-'",
        ));
    }
    let name = plan.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.contains('\0') {
        return Err(invalid("name", "name must be 1-100 characters"));
    }
    if !matches!(plan.kind.as_str(), "one_time" | "subscription") {
        return Err(invalid("kind", "kind must be one_time or subscription"));
    }
    if !(0..=MAX_PRICE).contains(&plan.price) {
        return Err(invalid(
            "price",
            "price must be an integer number of minor units, 0 to 99999999",
        ));
    }
    if plan.currency.len() != 3 || !plan.currency.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(invalid(
            "currency",
            "currency must be a three-letter ISO 4217 code",
        ));
    }
    match (plan.kind.as_str(), plan.interval.as_deref()) {
        ("subscription", Some("month" | "year")) | ("one_time", None) => {}
        ("subscription", _) => {
            return Err(invalid(
                "interval",
                "a subscription needs interval month or year",
            ))
        }
        _ => return Err(invalid("interval", "interval is only for subscriptions")),
    }
    if !is_token(&plan.stripe_price_id, MAX_STRIPE_ID_CHARS) {
        return Err(invalid(
            "stripe_price_id",
            "stripe_price_id must be a Stripe id (letters, digits, '_')",
        ));
    }
    Ok(())
}

pub async fn active_plans(state: &AppState) -> Result<Vec<Plan>, AppError> {
    Ok(state.store.plans(true).await?)
}

pub async fn all_plans(state: &AppState) -> Result<Vec<Plan>, AppError> {
    Ok(state.store.plans(false).await?)
}

pub async fn create(state: &AppState, f: PlanFields) -> Result<Plan, AppError> {
    let at = now();
    let plan = Plan {
        id: f.id.ok_or_else(|| missing("id"))?,
        name: f.name.ok_or_else(|| missing("name"))?.trim().to_owned(),
        kind: f.kind.ok_or_else(|| missing("kind"))?,
        credits: f.credits.ok_or_else(|| missing("credits"))?.cents(),
        price: f.price.ok_or_else(|| missing("price"))?,
        currency: f
            .currency
            .ok_or_else(|| missing("currency"))?
            .to_ascii_lowercase(),
        interval: f.interval,
        stripe_price_id: f
            .stripe_price_id
            .ok_or_else(|| missing("stripe_price_id"))?,
        active: f.active.unwrap_or(true),
        created_at: at,
        updated_at: at,
    };
    check(&plan)?;
    Ok(state.store.create_plan(&plan).await?)
}

pub async fn update(state: &AppState, id: &str, f: PlanFields) -> Result<Plan, AppError> {
    let not_found = || AppError::not_found("Plan not found");
    let mut plan = state.store.plan_by_id(id).await?.ok_or_else(not_found)?;
    if f.id.as_deref().is_some_and(|new| new != id) {
        return Err(invalid("id", "a plan's id cannot change"));
    }
    if let Some(name) = f.name {
        plan.name = name.trim().to_owned();
    }
    if let Some(kind) = f.kind {
        if kind == "one_time" {
            plan.interval = None;
        }
        plan.kind = kind;
    }
    if let Some(credits) = f.credits {
        plan.credits = credits.cents();
    }
    if let Some(price) = f.price {
        plan.price = price;
    }
    if let Some(currency) = f.currency {
        plan.currency = currency.to_ascii_lowercase();
    }
    if let Some(interval) = f.interval {
        plan.interval = Some(interval);
    }
    if let Some(price_id) = f.stripe_price_id {
        plan.stripe_price_id = price_id;
    }
    if let Some(active) = f.active {
        plan.active = active;
    }
    plan.updated_at = now();
    check(&plan)?;
    state.store.update_plan(&plan).await?.ok_or_else(not_found)
}
