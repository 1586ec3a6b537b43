//! Billing (DESIGN §9): plans, Stripe Checkout and the billing portal, subscriptions and
//! payment methods, and the webhook that grants credits. Everything here is HTTP-free so
//! both the JSON API and the web pages can call it.

pub mod intake;
pub mod plans;
pub mod stripe;
pub mod webhook;

use serde_json::json;

use crate::caller::{Caller, ClientInfo};
use crate::error::AppError;
use crate::services::audit;
use crate::state::AppState;
use crate::store::{now, BillingSubscription};

use self::plans::is_token;
use self::stripe::{CheckoutRequest, StripeClient, StripeError};

pub const BILLING_CHECKOUT: &str = "billing_checkout";
pub const BILLING_CANCEL: &str = "billing_subscription_cancel";
pub const BILLING_DETACH: &str = "billing_payment_method_detach";

impl From<StripeError> for AppError {
    fn from(err: StripeError) -> Self {
        match err {
            StripeError::NotFound => AppError::not_found("Not found at the payment provider"),
            StripeError::Unavailable(_) => AppError::BadGateway {
                code: "payment_provider_unavailable",
                detail: "The payment provider could not be reached; try again later".into(),
            },
            StripeError::Rejected { .. } => AppError::BadGateway {
                code: "payment_provider_error",
                detail: "The payment provider refused the request".into(),
            },
        }
    }
}

/// The Stripe client, or 503 `billing_disabled` when no STRIPE_SECRET_KEY is set.
pub fn stripe(state: &AppState) -> Result<&StripeClient, AppError> {
    state.stripe.as_ref().ok_or_else(|| AppError::Disabled {
        code: "billing_disabled",
        detail: "Billing is not configured on this server".into(),
    })
}

/// Whose billing a request acts on: a verified user their own; an internal service names
/// the user (`requested`, at `location`: "query" or "body").
pub fn account_of(
    state: &AppState,
    caller: &Caller,
    requested: Option<i64>,
    location: &str,
) -> Result<i64, AppError> {
    match caller {
        Caller::Internal => requested.ok_or_else(|| {
            AppError::validation(
                location,
                "user_id",
                "Field required for internal services",
                "missing",
            )
        }),
        Caller::User(current) => {
            if state.config.require_email_verification && !current.user.is_verified {
                return Err(AppError::Forbidden {
                    code: "email_not_verified",
                    detail: "Email not verified".into(),
                });
            }
            match requested {
                None => Ok(current.user.id),
                Some(id) if id == current.user.id => Ok(id),
                Some(_) => Err(AppError::forbidden(
                    "Not allowed to act on another user's billing",
                )),
            }
        }
    }
}

/// The user's Stripe customer, created on first need. Two first checkouts at once send
/// the same Idempotency-Key, so Stripe creates one customer; should two still differ (a key
/// that expired), the first one stored wins and the other is deleted at Stripe.
pub async fn ensure_customer(state: &AppState, user_id: i64) -> Result<String, AppError> {
    if let Some(id) = state.store.stripe_customer_of(user_id).await? {
        return Ok(id);
    }
    let client = stripe(state)?;
    let user = state
        .store
        .user_by_id(user_id)
        .await?
        .ok_or_else(AppError::user_not_found)?;
    let key = format!("auth-service-customer-{}", user.id);
    let created = client.create_customer(user.id, &user.email, &key).await?;
    let kept = state
        .store
        .save_stripe_customer(user.id, &created.id, now())
        .await?;
    if kept != created.id {
        if let Err(e) = client.delete_customer(&created.id).await {
            tracing::warn!(error = %e, "could not delete a duplicate Stripe customer");
        }
    }
    Ok(kept)
}

pub struct Checkout {
    pub checkout_url: String,
    pub session_id: String,
}

/// A Stripe Checkout Session for an active plan.
pub async fn checkout(
    state: &AppState,
    user_id: i64,
    plan_id: &str,
    client_info: &ClientInfo,
) -> Result<Checkout, AppError> {
    let client = stripe(state)?;
    let plan = state
        .store
        .plan_by_id(plan_id)
        .await?
        .filter(|p| p.active)
        .ok_or_else(|| AppError::not_found("Plan not found"))?;
    let subscription = plan.kind == "subscription";
    if subscription
        && current_subscription(state, user_id)
            .await?
            .is_some_and(|s| s.is_live())
    {
        return Err(AppError::conflict(
            "subscription_active",
            "A subscription is already active; manage it in the billing portal",
        ));
    }
    let customer = ensure_customer(state, user_id).await?;
    let config = &state.config;
    let success_url = config.billing.success_url(&config.frontend_url);
    let cancel_url = config.billing.cancel_url(&config.frontend_url);
    let idempotency_key = format!("auth-service-checkout-{}", uuid::Uuid::new_v4());
    let session = client
        .create_checkout_session(&CheckoutRequest {
            customer: &customer,
            user_id,
            plan_id: &plan.id,
            price_id: &plan.stripe_price_id,
            subscription,
            success_url: &success_url,
            cancel_url: &cancel_url,
            idempotency_key: &idempotency_key,
        })
        .await?;
    let checkout_url = session.url.ok_or_else(|| AppError::BadGateway {
        code: "payment_provider_error",
        detail: "The payment provider returned no checkout URL".into(),
    })?;
    let details = json!({"plan_id": plan.id, "session_id": session.id});
    state
        .store
        .record_activity(&audit::activity(
            BILLING_CHECKOUT,
            Some(user_id),
            client_info,
            details,
        ))
        .await?;
    Ok(Checkout {
        checkout_url,
        session_id: session.id,
    })
}

/// A billing portal session that returns to FRONTEND_URL; 404 before the first checkout.
pub async fn portal(state: &AppState, user_id: i64) -> Result<String, AppError> {
    let client = stripe(state)?;
    let customer = state
        .store
        .stripe_customer_of(user_id)
        .await?
        .ok_or_else(|| AppError::not_found("No billing account yet"))?;
    Ok(client
        .create_portal_session(&customer, &state.config.frontend_url)
        .await?
        .url)
}

/// The user's live subscription, else their most recent one.
pub async fn current_subscription(
    state: &AppState,
    user_id: i64,
) -> Result<Option<BillingSubscription>, AppError> {
    let all = state.store.subscriptions_of(user_id).await?;
    let live = all.iter().find(|s| s.is_live()).cloned();
    Ok(live.or_else(|| all.into_iter().next()))
}

/// Cancels the live subscription at the end of its period (Stripe confirms; the webhook
/// that follows updates the local row, which is also updated at once here).
pub async fn cancel_subscription(
    state: &AppState,
    user_id: i64,
    client_info: &ClientInfo,
) -> Result<BillingSubscription, AppError> {
    let client = stripe(state)?;
    let mut sub = current_subscription(state, user_id)
        .await?
        .filter(BillingSubscription::is_live)
        .ok_or_else(|| AppError::not_found("No active subscription"))?;
    let key = format!("auth-service-cancel-{}", sub.stripe_subscription_id);
    let answer = client
        .cancel_at_period_end(&sub.stripe_subscription_id, &key)
        .await?;
    sub.cancel_at_period_end = answer.cancel_at_period_end;
    state
        .store
        .set_cancel_at_period_end(&sub.stripe_subscription_id, sub.cancel_at_period_end, now())
        .await?;
    let details = json!({"subscription": sub.stripe_subscription_id});
    state
        .store
        .record_activity(&audit::activity(
            BILLING_CANCEL,
            Some(user_id),
            client_info,
            details,
        ))
        .await?;
    Ok(sub)
}

/// Before an account is deleted: every live subscription of it is cancelled at Stripe at
/// once, so the card stops being charged for an account that no longer exists. A
/// subscription Stripe no longer knows counts as cancelled. When Stripe cannot be reached
/// the deletion is refused (502, nothing deleted) rather than leave a charge running;
/// with billing switched off there is nobody to ask, so the deletion goes on and says so
/// in the log.
pub async fn cancel_before_deletion(state: &AppState, user_id: i64) -> Result<(), AppError> {
    let live: Vec<_> = state
        .store
        .subscriptions_of(user_id)
        .await?
        .into_iter()
        .filter(BillingSubscription::is_live)
        .collect();
    if live.is_empty() {
        return Ok(());
    }
    let Some(client) = state.stripe.as_ref() else {
        tracing::error!(user_id, subscriptions = live.len(),
            "deleting an account with live Stripe subscriptions while billing is off: cancel them in Stripe");
        return Ok(());
    };
    for sub in live {
        match client.cancel_now(&sub.stripe_subscription_id).await {
            Ok(_) | Err(StripeError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
        tracing::info!(user_id, subscription = %sub.stripe_subscription_id,
            "subscription cancelled: its account is being deleted");
    }
    Ok(())
}

/// After a confirmed email change: the user's Stripe customer gets the new address, so
/// receipts stop going to the old one. The change itself is done whatever Stripe says;
/// a failure is logged (the next checkout does not re-send it).
pub async fn sync_customer_email(state: &AppState, user_id: i64) {
    let Some(client) = state.stripe.as_ref() else {
        return;
    };
    let customer = match state.store.stripe_customer_of(user_id).await {
        Ok(Some(customer)) => customer,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, user_id, "cannot read the Stripe customer to update its email");
            return;
        }
    };
    let email = match state.store.user_by_id(user_id).await {
        Ok(Some(user)) => user.email,
        _ => return,
    };
    if let Err(e) = client.update_customer_email(&customer, &email).await {
        tracing::warn!(error = ?e, user_id, %customer, "Stripe customer email not updated");
    }
}

pub struct CardOnFile {
    pub id: String,
    pub brand: Option<String>,
    pub last4: Option<String>,
    pub exp_month: Option<i64>,
    pub exp_year: Option<i64>,
    pub is_default: bool,
}

pub async fn payment_methods(state: &AppState, user_id: i64) -> Result<Vec<CardOnFile>, AppError> {
    let client = stripe(state)?;
    let Some(customer) = state.store.stripe_customer_of(user_id).await? else {
        return Ok(Vec::new());
    };
    let default = client
        .customer(&customer)
        .await?
        .invoice_settings
        .and_then(|s| s.default_payment_method);
    let methods = client.payment_methods(&customer).await?;
    Ok(methods
        .into_iter()
        .map(|m| {
            let card = m.card.unwrap_or(stripe::Card {
                brand: None,
                last4: None,
                exp_month: None,
                exp_year: None,
            });
            CardOnFile {
                is_default: default.as_deref() == Some(m.id.as_str()),
                id: m.id,
                brand: card.brand,
                last4: card.last4,
                exp_month: card.exp_month,
                exp_year: card.exp_year,
            }
        })
        .collect())
}

/// Detaches one of the caller's own payment methods; anyone else's is a 404.
pub async fn detach_payment_method(
    state: &AppState,
    user_id: i64,
    id: &str,
    client_info: &ClientInfo,
) -> Result<(), AppError> {
    let client = stripe(state)?;
    let not_found = || AppError::not_found("Payment method not found");
    if !is_token(id, 255) {
        return Err(not_found());
    }
    let customer = state
        .store
        .stripe_customer_of(user_id)
        .await?
        .ok_or_else(not_found)?;
    let method = client.payment_method(id).await?;
    if method.customer.as_deref() != Some(customer.as_str()) {
        return Err(not_found());
    }
    client.detach_payment_method(id).await?;
    state
        .store
        .record_activity(&audit::activity(
            BILLING_DETACH,
            Some(user_id),
            client_info,
            json!({"payment_method": id}),
        ))
        .await?;
    Ok(())
}
