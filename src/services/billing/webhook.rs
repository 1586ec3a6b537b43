//! Stripe webhooks (DESIGN §9): the signature is checked on the raw body, then the event
//! is turned into an `EventEffect` and applied by the store in one transaction together
//! with the record of its id, so a redelivery, even a concurrent one, changes nothing.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::error::AppError;
use crate::secret::Secret;
use crate::state::AppState;
use crate::store::{
    now, CreditKind, EventEffect, EventOutcome, EventOwner, IncomingEvent, PaymentGrant,
    SubscriptionState,
};
use crate::telemetry::metrics;

#[derive(Debug, PartialEq, Eq)]
pub enum SignatureError {
    /// No header, no `t=`, or no `v1=`.
    Malformed,
    /// `t` is more than the tolerance away from now.
    Stale,
    /// No v1 signature matches any configured secret.
    Mismatch,
}

/// Checks `Stripe-Signature: t=<unix>,v1=<hex>[,v1=…]` against every configured secret:
/// valid when some v1 equals HMAC-SHA256(secret, "<t>.<body>") and |now − t| ≤ tolerance.
/// The MAC comparison is constant-time (`verify_slice`).
pub fn verify_signature(
    header: Option<&str>,
    body: &[u8],
    secrets: &[Secret],
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<i64, SignatureError> {
    let header = header.ok_or(SignatureError::Malformed)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", sig)) => {
                if let Ok(bytes) = hex::decode(sig) {
                    signatures.push(bytes);
                }
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let mut matched = false;
    for secret in secrets {
        for signature in &signatures {
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) else {
                continue;
            };
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            // No early exit: every pair is checked, whatever matched first.
            matched |= mac.verify_slice(signature).is_ok();
        }
    }
    if !matched {
        return Err(SignatureError::Mismatch);
    }
    if (now_unix - timestamp).abs() > tolerance_secs {
        return Err(SignatureError::Stale);
    }
    Ok(timestamp)
}

/// A Stripe id that may come as a string or, when expanded, as an object with an id.
fn id_of(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Object(o) => o.get("id").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

fn text(object: &Value, pointer: &str) -> Option<String> {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Our user id as we wrote it into metadata / client_reference_id.
fn user_hint(object: &Value, pointers: &[&str]) -> Option<i64> {
    pointers
        .iter()
        .find_map(|p| text(object, p).and_then(|v| v.parse().ok()))
}

fn owner(object: &Value, user_pointers: &[&str]) -> EventOwner {
    EventOwner {
        customer_id: id_of(object.get("customer")),
        user_id: user_hint(object, user_pointers),
    }
}

fn unix(object: &Value, pointer: &str) -> Option<DateTime<Utc>> {
    object
        .pointer(pointer)
        .and_then(Value::as_i64)
        .and_then(|t| DateTime::from_timestamp(t, 0))
}

/// What an event does, from its type and object alone (the store resolves users and plans).
pub fn effect_of(event_type: &str, object: &Value) -> EventEffect {
    let amount = |p: &str| object.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    let currency = text(object, "/currency").unwrap_or_default();
    match event_type {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            let Some(session_id) = text(object, "/id") else {
                return EventEffect::Ignore("session without id");
            };
            let owner = owner(object, &["/client_reference_id", "/metadata/user_id"]);
            match text(object, "/mode").as_deref() {
                Some("payment") => {
                    if text(object, "/payment_status").as_deref() != Some("paid") {
                        return EventEffect::Ignore("payment not completed yet");
                    }
                    EventEffect::Grant(PaymentGrant {
                        owner,
                        reference: session_id,
                        kind: CreditKind::Purchase,
                        plan_id: text(object, "/metadata/plan_id"),
                        price_id: None,
                        payment_intent: id_of(object.get("payment_intent")),
                        charge_id: None,
                        amount: amount("/amount_total"),
                        currency,
                        subscription_id: None,
                    })
                }
                Some("subscription") => {
                    let Some(subscription_id) = id_of(object.get("subscription")) else {
                        return EventEffect::Ignore("subscription session without subscription");
                    };
                    let paid = text(object, "/payment_status").as_deref() == Some("paid");
                    EventEffect::Subscription(SubscriptionState {
                        owner,
                        subscription_id,
                        status: if paid { "active" } else { "incomplete" }.into(),
                        plan_id: text(object, "/metadata/plan_id"),
                        price_id: None,
                        current_period_end: None,
                        cancel_at_period_end: false,
                    })
                }
                _ => EventEffect::Ignore("checkout mode without credits"),
            }
        }
        "invoice.paid" | "invoice.payment_succeeded" => {
            let (Some(invoice_id), Some(subscription_id)) =
                (text(object, "/id"), id_of(object.get("subscription")))
            else {
                return EventEffect::Ignore("not a subscription invoice");
            };
            // A $0 invoice (a trial period, a 100% coupon) pays for nothing: no credits.
            if amount("/amount_paid") <= 0 {
                return EventEffect::Ignore("nothing paid (amount_paid 0)");
            }
            EventEffect::Grant(PaymentGrant {
                owner: owner(
                    object,
                    &[
                        "/subscription_details/metadata/user_id",
                        "/lines/data/0/metadata/user_id",
                    ],
                ),
                reference: invoice_id,
                kind: CreditKind::SubscriptionGrant,
                plan_id: None,
                price_id: text(object, "/lines/data/0/price/id"),
                payment_intent: id_of(object.get("payment_intent")),
                charge_id: id_of(object.get("charge")),
                amount: amount("/amount_paid"),
                currency,
                subscription_id: Some(subscription_id),
            })
        }
        "invoice.payment_failed" => match id_of(object.get("subscription")) {
            Some(subscription_id) => EventEffect::PaymentFailed {
                owner: owner(object, &["/subscription_details/metadata/user_id"]),
                subscription_id,
            },
            None => EventEffect::Ignore("not a subscription invoice"),
        },
        "customer.subscription.created"
        | "customer.subscription.updated"
        | "customer.subscription.deleted" => {
            let Some(subscription_id) = text(object, "/id") else {
                return EventEffect::Ignore("subscription without id");
            };
            let status = if event_type == "customer.subscription.deleted" {
                "canceled".to_owned()
            } else {
                text(object, "/status").unwrap_or_else(|| "incomplete".into())
            };
            EventEffect::Subscription(SubscriptionState {
                owner: owner(object, &["/metadata/user_id"]),
                subscription_id,
                status,
                plan_id: None,
                price_id: text(object, "/items/data/0/price/id"),
                current_period_end: unix(object, "/current_period_end")
                    .or_else(|| unix(object, "/items/data/0/current_period_end")),
                cancel_at_period_end: object
                    .get("cancel_at_period_end")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            })
        }
        "charge.refunded" => match text(object, "/id") {
            Some(charge_id) => EventEffect::Refund {
                charge_id,
                payment_intent: id_of(object.get("payment_intent")),
                invoice_id: id_of(object.get("invoice")),
                amount: amount("/amount"),
                amount_refunded: amount("/amount_refunded"),
            },
            None => EventEffect::Ignore("charge without id"),
        },
        "charge.dispute.created" => match text(object, "/id") {
            Some(dispute_id) => EventEffect::Dispute {
                dispute_id,
                charge_id: id_of(object.get("charge")),
                payment_intent: id_of(object.get("payment_intent")),
            },
            None => EventEffect::Ignore("dispute without id"),
        },
        _ => EventEffect::Ignore("event type not used"),
    }
}

/// The event types `effect_of` acts on, as metric labels; any other is "other", so the
/// label set stays closed whatever Stripe (or a forger) sends.
const HANDLED_TYPES: &[&str] = &[
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "charge.refunded",
    "charge.dispute.created",
];

fn type_label(event_type: &str) -> &str {
    HANDLED_TYPES
        .iter()
        .find(|t| **t == event_type)
        .copied()
        .unwrap_or("other")
}

/// A test-mode event reaching a server with a live key (or the reverse) is not ours to
/// apply: Stripe never sends those, so it is a misrouted endpoint or a replay from the
/// other mode. Kept as `ignored` with the reason. Unknown when no key is configured.
fn livemode_mismatch(config: &crate::config::BillingConfig, event: &Value) -> Option<&'static str> {
    let key = config.stripe_secret_key.as_ref()?.expose();
    let key_is_live = key.starts_with("sk_live_") || key.starts_with("rk_live_");
    let event_is_live = event.get("livemode").and_then(Value::as_bool)?;
    match (key_is_live, event_is_live) {
        (true, false) => Some("test-mode event on a live-mode server"),
        (false, true) => Some("live-mode event on a test-mode server"),
        _ => None,
    }
}

fn webhooks_disabled() -> AppError {
    AppError::Disabled {
        code: "billing_disabled",
        detail: "Stripe webhooks are not configured on this server".into(),
    }
}

fn invalid_signature() -> AppError {
    AppError::bad_request("invalid_signature", "Invalid Stripe signature")
}

/// What can be refused before a byte of the body is read: webhooks switched off, and a
/// `Stripe-Signature` header that is missing, malformed (no `t=`, no v1 of 64 hex digits)
/// or outside the tolerance. Nothing here depends on a secret.
pub fn check_before_body(state: &AppState, header: Option<&str>) -> Result<(), AppError> {
    let config = &state.config.billing;
    if config.webhook_secrets.is_empty() {
        return Err(webhooks_disabled());
    }
    let header = header.ok_or_else(invalid_signature)?;
    let mut timestamp = None;
    let mut has_v1 = false;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", sig)) => {
                has_v1 |= sig.len() == 64 && sig.bytes().all(|b| b.is_ascii_hexdigit())
            }
            _ => {}
        }
    }
    match timestamp {
        Some(t) if has_v1 && (now().timestamp() - t).abs() <= config.webhook_tolerance_secs => {
            Ok(())
        }
        _ => Err(invalid_signature()),
    }
}

fn invalid_payload() -> AppError {
    AppError::bad_request("invalid_payload", "Not a Stripe event")
}

/// Verifies and applies one delivery. 503 when no webhook secret is configured, 400 for a
/// bad signature or payload, 500 only when the event could not be stored (Stripe retries).
pub async fn receive(
    state: &AppState,
    signature: Option<&str>,
    body: &[u8],
) -> Result<EventOutcome, AppError> {
    let config = &state.config.billing;
    if config.webhook_secrets.is_empty() {
        return Err(webhooks_disabled());
    }
    let received_at = now();
    verify_signature(
        signature,
        body,
        &config.webhook_secrets,
        received_at.timestamp(),
        config.webhook_tolerance_secs,
    )
    .map_err(|e| {
        tracing::warn!(reason = ?e, "Stripe webhook signature rejected");
        metrics::stripe_event("other", "invalid_signature");
        invalid_signature()
    })?;
    let event: Value = serde_json::from_slice(body).map_err(|_| invalid_payload())?;
    let id = text(&event, "/id").ok_or_else(invalid_payload)?;
    let event_type = text(&event, "/type").ok_or_else(invalid_payload)?;
    if id.len() > 255 || event_type.len() > 255 || id.contains('\0') || event_type.contains('\0') {
        return Err(invalid_payload());
    }
    let created = event
        .get("created")
        .and_then(Value::as_i64)
        .ok_or_else(invalid_payload)?;
    let object = event.pointer("/data/object").ok_or_else(invalid_payload)?;
    let effect = match livemode_mismatch(config, &event) {
        Some(why) => EventEffect::Ignore(why),
        None => effect_of(&event_type, object),
    };
    let incoming = IncomingEvent {
        id,
        event_type,
        created,
        received_at,
    };
    let applied = state.store.apply_stripe_event(&incoming, &effect).await;
    let (outcome, user_id) = match applied {
        Ok(applied) => applied,
        Err(e) => {
            let error = AppError::from(e);
            let label = match &error {
                AppError::BadRequest { code, .. } => code,
                _ => "error",
            };
            metrics::stripe_event(type_label(&incoming.event_type), label);
            return Err(error);
        }
    };
    metrics::stripe_event(type_label(&incoming.event_type), outcome.as_str());
    tracing::info!(
        target: "stripe_events",
        event_id = %incoming.id,
        event_type = %incoming.event_type,
        outcome = outcome.as_str(),
        user_id,
        "Stripe event"
    );
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, t: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn signatures_are_checked_like_stripe() {
        let body = br#"{"id":"evt_1"}"#;
        let secrets = [Secret::new("whsec_old"), Secret::new("whsec_new")];
        let t = 1_700_000_000;
        let good = format!("t={t},v1={}", sign("whsec_new", t, body));
        assert_eq!(
            verify_signature(Some(&good), body, &secrets, t + 10, 300),
            Ok(t)
        );
        let both = format!("t={t},v1=00ff,v1={}", sign("whsec_old", t, body));
        assert!(verify_signature(Some(&both), body, &secrets, t, 300).is_ok());
        assert_eq!(
            verify_signature(Some(&good), body, &secrets, t + 301, 300),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify_signature(Some(&good), b"{}", &secrets, t, 300),
            Err(SignatureError::Mismatch)
        );
        let wrong = format!("t={t},v1={}", sign("whsec_other", t, body));
        assert_eq!(
            verify_signature(Some(&wrong), body, &secrets, t, 300),
            Err(SignatureError::Mismatch)
        );
        for bad in ["", "t=abc,v1=00", "v1=00", &format!("t={t}")] {
            assert_eq!(
                verify_signature(Some(bad), body, &secrets, t, 300),
                Err(SignatureError::Malformed)
            );
        }
        assert_eq!(
            verify_signature(None, body, &secrets, t, 300),
            Err(SignatureError::Malformed)
        );
    }
}
