//! Plans: what a Stripe Price buys. Admins create and change them; they are never deleted.
//!
//! The rules here are the ones the OpenAPI document states for `CreatePlan` and
//! `UpdatePlan` (src/routes/plans/schema.rs): a request the document allows is never
//! refused as 422, and one it rules out never succeeds.

use serde::Deserialize;
use utoipa::ToSchema;

use crate::domain::Credits;
use crate::error::AppError;
use crate::state::AppState;
use crate::store::{now, Plan};

pub const MAX_ID_CHARS: usize = 64;
pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_STRIPE_ID_CHARS: usize = 255;
/// Stripe's own ceiling for an amount in minor units (eight digits of a currency unit).
pub const MAX_PRICE: i64 = 99_999_999;

/// One-time purchase or recurring subscription.
// Read through a string: serde_json reports any other JSON type given to an enum as a
// syntax error of the whole body, where the client needs the field named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum PlanKind {
    OneTime,
    Subscription,
}

impl PlanKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OneTime => "one_time",
            Self::Subscription => "subscription",
        }
    }
}

/// How often a subscription is billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", try_from = "String")]
pub enum PlanInterval {
    Month,
    Year,
}

impl PlanInterval {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Month => "month",
            Self::Year => "year",
        }
    }
}

impl TryFrom<String> for PlanKind {
    type Error = &'static str;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        match value.as_str() {
            "one_time" => Ok(Self::OneTime),
            "subscription" => Ok(Self::Subscription),
            _ => Err("kind must be one_time or subscription"),
        }
    }
}

impl TryFrom<String> for PlanInterval {
    type Error = &'static str;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        match value.as_str() {
            "month" => Ok(Self::Month),
            "year" => Ok(Self::Year),
            _ => Err("interval must be month or year"),
        }
    }
}

/// A plan as an admin creates it (parsed; checked by [`create`]).
#[derive(Debug)]
pub struct NewPlan {
    pub id: String,
    pub name: String,
    pub kind: PlanKind,
    pub credits: Credits,
    pub price: i64,
    pub currency: String,
    pub interval: Option<PlanInterval>,
    pub stripe_price_id: String,
    pub active: bool,
}

/// Changes to a plan; `None` keeps the current value.
#[derive(Debug, Default)]
pub struct PlanChanges {
    pub name: Option<String>,
    pub kind: Option<PlanKind>,
    pub credits: Option<Credits>,
    pub price: Option<i64>,
    pub currency: Option<String>,
    pub interval: Option<PlanInterval>,
    pub stripe_price_id: Option<String>,
    pub active: Option<bool>,
}

impl PlanChanges {
    fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.kind.is_none()
            && self.credits.is_none()
            && self.price.is_none()
            && self.currency.is_none()
            && self.interval.is_none()
            && self.stripe_price_id.is_none()
            && self.active.is_none()
    }
}

fn invalid(field: &str, msg: &str) -> AppError {
    AppError::validation("body", field, msg, "value_error")
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

fn check_id(id: &str) -> Result<(), AppError> {
    if !is_token(id, MAX_ID_CHARS) || id != id.to_ascii_lowercase() {
        return Err(invalid(
            "id",
            "id must be 1-64 lowercase letters, digits, '_' or '-'",
        ));
    }
    Ok(())
}

/// Whitespace as the document's `\S` pattern means it to the validators that read it:
/// Unicode White_Space plus the ASCII separators U+001C..U+001F (Python's `str.isspace`).
fn is_blank_char(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// 1-100 characters as sent, at least one of them not blank; stored trimmed.
fn checked_name(name: &str) -> Result<String, AppError> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS || name.chars().all(is_blank_char) {
        return Err(invalid(
            "name",
            "name must be 1-100 characters, not all whitespace",
        ));
    }
    Ok(name.trim_matches(is_blank_char).to_owned())
}

fn check_price(price: i64) -> Result<(), AppError> {
    if !(0..=MAX_PRICE).contains(&price) {
        return Err(invalid(
            "price",
            "price must be a whole number of minor units, 0 to 99999999",
        ));
    }
    Ok(())
}

/// Three ASCII letters, stored lowercased (as Stripe writes currencies).
fn checked_currency(currency: &str) -> Result<String, AppError> {
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(invalid(
            "currency",
            "currency must be a three-letter ISO 4217 code",
        ));
    }
    Ok(currency.to_ascii_lowercase())
}

fn check_stripe_price_id(price_id: &str) -> Result<(), AppError> {
    if !is_token(price_id, MAX_STRIPE_ID_CHARS) {
        return Err(invalid(
            "stripe_price_id",
            "stripe_price_id must be a Stripe id (letters, digits, '_' or '-')",
        ));
    }
    Ok(())
}

fn interval_only_for_subscriptions() -> AppError {
    invalid("interval", "interval is only for subscriptions")
}

pub async fn active_plans(state: &AppState) -> Result<Vec<Plan>, AppError> {
    Ok(state.store.plans(true).await?)
}

pub async fn all_plans(state: &AppState) -> Result<Vec<Plan>, AppError> {
    Ok(state.store.plans(false).await?)
}

pub async fn create(state: &AppState, new: NewPlan) -> Result<Plan, AppError> {
    check_id(&new.id)?;
    let name = checked_name(&new.name)?;
    check_price(new.price)?;
    let currency = checked_currency(&new.currency)?;
    match (new.kind, new.interval) {
        (PlanKind::Subscription, Some(_)) | (PlanKind::OneTime, None) => {}
        (PlanKind::Subscription, None) => {
            return Err(AppError::validation(
                "body",
                "interval",
                "a subscription needs interval month or year",
                "missing",
            ))
        }
        (PlanKind::OneTime, Some(_)) => return Err(interval_only_for_subscriptions()),
    }
    check_stripe_price_id(&new.stripe_price_id)?;
    let at = now();
    let plan = Plan {
        id: new.id,
        name,
        kind: new.kind.as_str().to_owned(),
        credits: new.credits.cents(),
        price: new.price,
        currency,
        interval: new.interval.map(|i| i.as_str().to_owned()),
        stripe_price_id: new.stripe_price_id,
        active: new.active,
        created_at: at,
        updated_at: at,
    };
    Ok(state.store.create_plan(&plan).await?)
}

/// 400 `plan_kind_conflict`: a change that is valid on its own but not for this plan.
fn kind_conflict(detail: &str) -> AppError {
    AppError::bad_request("plan_kind_conflict", detail)
}

/// Applies `changes`. Field rules (422) are checked before the plan is looked up; what a
/// change means for the stored plan's kind (400) after.
pub async fn update(state: &AppState, id: &str, changes: PlanChanges) -> Result<Plan, AppError> {
    if changes.is_empty() {
        return Err(AppError::validation(
            "body",
            "",
            "Give at least one field to change (null leaves a field as it is)",
            "value_error",
        ));
    }
    let name = changes.name.as_deref().map(checked_name).transpose()?;
    if let Some(price) = changes.price {
        check_price(price)?;
    }
    let currency = changes
        .currency
        .as_deref()
        .map(checked_currency)
        .transpose()?;
    if let Some(price_id) = changes.stripe_price_id.as_deref() {
        check_stripe_price_id(price_id)?;
    }
    if changes.kind == Some(PlanKind::OneTime) && changes.interval.is_some() {
        return Err(interval_only_for_subscriptions());
    }

    let not_found = || AppError::not_found("Plan not found");
    let mut plan = state.store.plan_by_id(id).await?.ok_or_else(not_found)?;
    let stored_is_subscription = plan.kind == PlanKind::Subscription.as_str();
    match (changes.kind, changes.interval) {
        (None, None) => {}
        (Some(PlanKind::OneTime), _) => plan.interval = None,
        (Some(PlanKind::Subscription), Some(_)) => {}
        (Some(PlanKind::Subscription), None) if stored_is_subscription => {}
        (Some(PlanKind::Subscription), None) => {
            return Err(kind_conflict(
                "This plan is one_time: making it a subscription needs an interval (month or year)",
            ))
        }
        (None, Some(_)) if stored_is_subscription => {}
        (None, Some(_)) => {
            return Err(kind_conflict(
                "This plan is one_time: interval is only for subscriptions (send kind \"subscription\" with it to convert the plan)",
            ))
        }
    }
    if let Some(kind) = changes.kind {
        plan.kind = kind.as_str().to_owned();
    }
    if let Some(interval) = changes.interval {
        plan.interval = Some(interval.as_str().to_owned());
    }
    if let Some(name) = name {
        plan.name = name;
    }
    if let Some(credits) = changes.credits {
        plan.credits = credits.cents();
    }
    if let Some(price) = changes.price {
        plan.price = price;
    }
    if let Some(currency) = currency {
        plan.currency = currency;
    }
    if let Some(price_id) = changes.stripe_price_id {
        plan.stripe_price_id = price_id;
    }
    if let Some(active) = changes.active {
        plan.active = active;
    }
    plan.updated_at = now();
    state.store.update_plan(&plan).await?.ok_or_else(not_found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_need_a_visible_character_and_are_stored_trimmed() {
        assert_eq!(checked_name("  Pro  ").unwrap(), "Pro");
        assert_eq!(checked_name("\u{1c}Pro\u{3000}").unwrap(), "Pro");
        for blank in ["", " ", "\t\n", "\u{1c}\u{1f}", "\u{a0}\u{3000}"] {
            assert!(checked_name(blank).is_err(), "{blank:?}");
        }
        assert!(checked_name(&"x".repeat(100)).is_ok());
        assert!(
            checked_name(&"é".repeat(100)).is_ok(),
            "characters, not bytes"
        );
        // Counted as sent, as the document's maxLength counts.
        assert!(checked_name(&format!("{} ", "x".repeat(100))).is_err());
    }

    #[test]
    fn currencies_are_three_ascii_letters() {
        assert_eq!(checked_currency("EUR").unwrap(), "eur");
        for bad in ["eu", "euro", "e1r", "ÉUR", "éu"] {
            assert!(checked_currency(bad).is_err(), "{bad}");
        }
    }
}
