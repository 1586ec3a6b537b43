//! A purchase reaches the product's services: a signed Stripe `checkout.session.completed`
//! becomes one `billing.payment.succeeded` and one `credits.transaction` event, verified by
//! the standardwebhooks library; Stripe's redelivery of the same event sends neither again.

use std::time::Duration;

use serde_json::{json, Value};

use super::{register_endpoint, webhook_vars, Receiver};
use crate::billing::support::{
    billing_app_with, create_plan, deliver, event, paid_session, unix_now, FakeStripe,
};
use crate::both_backends;
use crate::helpers::Backend;

both_backends!(a_purchase_arrives_once_verified);

fn of_type<'a>(seen: &'a [Value], t: &str) -> Vec<&'a Value> {
    seen.iter().filter(|r| r["type"] == t).collect()
}

async fn a_purchase_arrives_once_verified(backend: Backend) {
    let Some(receiver) = Receiver::start("ok") else {
        return;
    };
    let stripe = FakeStripe::start(None).await;
    let app = billing_app_with(backend, &stripe.base, webhook_vars).await;
    let admin = app.admin("shopadmin").await;
    register_endpoint(
        &app,
        &admin,
        &receiver,
        &["billing.payment.succeeded", "credits.transaction"],
    )
    .await;
    create_plan(&app, &admin, "starter", "one_time", "price_starter").await;
    let buyer = app.verified_user("shopper").await;
    let paid = event(
        "evt_purchase",
        "checkout.session.completed",
        unix_now(),
        paid_session("cs_buy", buyer.id, "starter", "cus_buy", "pi_buy"),
    );
    assert_eq!(deliver(&app, &paid).await, "applied");
    assert_eq!(deliver(&app, &paid).await, "duplicate");
    // A later change, as a barrier: once its event is in, so is everything before it.
    let r = app
        .post(
            "/credits/add",
            &json!({"amount": 1, "user_id": admin.id}),
            Some(&admin.access),
        )
        .await;
    assert_eq!(r.status(), 200);
    let seen = receiver
        .wait_until(Duration::from_secs(15), |r| {
            of_type(r, "credits.transaction").len() >= 2
                && !of_type(r, "billing.payment.succeeded").is_empty()
        })
        .await;
    let payments = of_type(&seen, "billing.payment.succeeded");
    assert_eq!(payments.len(), 1, "one event for the purchase: {seen:?}");
    let body: Value = serde_json::from_str(payments[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["data"]["user_id"], buyer.id, "{body}");
    let credits: Vec<Value> = of_type(&seen, "credits.transaction")
        .iter()
        .map(|r| serde_json::from_str(r["body"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(
        credits
            .iter()
            .filter(|b| b["data"]["user_id"] == buyer.id)
            .count(),
        1,
        "one ledger row for the purchase: {credits:?}"
    );
    for r in &seen {
        assert_eq!(r["verified_with"], json!([0]), "not verified: {r}");
    }
}
