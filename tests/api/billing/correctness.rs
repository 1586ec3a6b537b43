//! Issue 19 item 7: billing events that must not do what they used to — a $0 invoice
//! granting credits, a stale payment failure overriding a newer state, an event of the
//! other mode (live/test) applied, a grant past the balance's maximum answering 422/500 —
//! and `stripe_events_total` recorded.

use reqwest::StatusCode;
use serde_json::json;

use super::support::*;
use crate::both_backends;
use crate::helpers::{assert_error, ok_json, Backend};
use auth_service::store::{now, Activity, CreditKind, NewCredit};

async fn zero_amount_invoices_grant_nothing(backend: Backend) {
    let stripe = FakeStripe::start(None).await;
    let app = billing_app(backend, &stripe.base).await;
    let admin = app.admin("boss").await;
    create_plan(&app, &admin, "pro", "subscription", "price_pro").await;
    let user = app.verified_user("trial").await;
    let t = unix_now();
    let sub = subscription("sub_t", "cus_t", user.id, "trialing", "price_pro");
    assert_eq!(
        deliver(
            &app,
            &event("e_sub", "customer.subscription.created", t, sub)
        )
        .await,
        "applied"
    );
    let mut trial = invoice("in_trial", "cus_t", "sub_t", "price_pro", "ch_trial");
    trial["amount_paid"] = json!(0);
    trial["billing_reason"] = json!("subscription_create");
    assert_eq!(
        deliver(&app, &event("e_trial", "invoice.paid", t, trial)).await,
        "ignored",
        "a $0 trial invoice grants nothing"
    );
    assert_eq!(balance(&app, &user).await, 0.0);
    let paid = invoice("in_paid", "cus_t", "sub_t", "price_pro", "ch_paid");
    assert_eq!(
        deliver(&app, &event("e_paid", "invoice.paid", t, paid)).await,
        "applied"
    );
    assert_eq!(balance(&app, &user).await, 100.0);
    assert_ledger_consistent(&app).await;
}

async fn a_stale_payment_failure_does_not_override_a_newer_state(backend: Backend) {
    let stripe = FakeStripe::start(None).await;
    let app = billing_app(backend, &stripe.base).await;
    let admin = app.admin("boss").await;
    create_plan(&app, &admin, "pro", "subscription", "price_pro").await;
    let user = app.verified_user("payer").await;
    let t = unix_now();
    let active = subscription("sub_s", "cus_s", user.id, "active", "price_pro");
    assert_eq!(
        deliver(
            &app,
            &event("e_active", "customer.subscription.updated", t, active)
        )
        .await,
        "applied"
    );
    let failed = json!({"id": "in_old", "object": "invoice", "customer": "cus_s",
        "subscription": "sub_s", "status": "open", "amount_paid": 0});
    assert_eq!(
        deliver(
            &app,
            &event(
                "e_old_fail",
                "invoice.payment_failed",
                t - 600,
                failed.clone()
            )
        )
        .await,
        "ignored",
        "older than the state applied"
    );
    let current = ok_json(app.get("/billing/subscription", Some(&user.access)).await).await;
    assert_eq!(current["status"], "active");
    assert_eq!(
        deliver(
            &app,
            &event("e_new_fail", "invoice.payment_failed", t + 60, failed)
        )
        .await,
        "applied"
    );
    let current = ok_json(app.get("/billing/subscription", Some(&user.access)).await).await;
    assert_eq!(current["status"], "past_due");
}

async fn events_of_the_other_mode_are_ignored(backend: Backend) {
    let stripe = FakeStripe::start(None).await;
    let app = billing_app(backend, &stripe.base).await;
    let admin = app.admin("boss").await;
    create_plan(&app, &admin, "starter", "one_time", "price_starter").await;
    let user = app.verified_user("buyer").await;
    let paid = paid_session("cs_live", user.id, "starter", "cus_l", "pi_live");
    let mut live = event("e_live", "checkout.session.completed", unix_now(), paid);
    live["livemode"] = json!(true);
    assert_eq!(
        deliver(&app, &live).await,
        "ignored",
        "a live event on a server with a test key"
    );
    assert_eq!(balance(&app, &user).await, 0.0);
    let listed = events(&app, &admin, "ignored").await;
    assert!(
        listed.iter().any(|e| e["id"] == "e_live"),
        "kept as ignored for admins: {listed:?}"
    );
}

async fn a_grant_past_the_maximum_balance_is_balance_overflow(backend: Backend) {
    let stripe = FakeStripe::start(None).await;
    let app = billing_app(backend, &stripe.base).await;
    let admin = app.admin("boss").await;
    create_plan(&app, &admin, "starter", "one_time", "price_starter").await;
    let user = app.verified_user("rich").await;
    let near_max = i64::MAX - 5_000;
    let credit = NewCredit {
        user_id: user.id,
        kind: CreditKind::Added,
        amount: near_max,
        reference_id: None,
        description: None,
        created_at: now(),
    };
    let activity = Activity {
        user_id: Some(user.id),
        event: "credit_added",
        ip: None,
        user_agent: None,
        details: "{}".into(),
        created_at: now(),
    };
    app.state
        .store
        .apply_credit(&credit, &activity)
        .await
        .unwrap()
        .expect("applied");
    let before = balance(&app, &user).await;
    let paid = paid_session("cs_over", user.id, "starter", "cus_o", "pi_over");
    let body = event("e_over", "checkout.session.completed", unix_now(), paid).to_string();
    let sig = signature(WEBHOOK_SECRET, unix_now(), &body);
    let r = post_webhook(&app, &body, Some(&sig)).await;
    assert_error(r, StatusCode::BAD_REQUEST, "balance_overflow").await;
    assert_eq!(balance(&app, &user).await, before, "nothing changed");
    assert!(
        !events(&app, &admin, "")
            .await
            .iter()
            .any(|e| e["id"] == "e_over"),
        "the event is not recorded: a redelivery may apply later"
    );
    assert_ledger_consistent(&app).await;
}

async fn stripe_events_are_counted(backend: Backend) {
    let stripe = FakeStripe::start(None).await;
    let app = billing_app(backend, &stripe.base).await;
    let body = event("e_counted", "some.unused.type", unix_now(), json!({})).to_string();
    let sig = signature(WEBHOOK_SECRET, unix_now(), &body);
    assert_eq!(
        post_webhook(&app, &body, Some(&sig)).await.status(),
        StatusCode::OK
    );
    let r = post_webhook(&app, &body, Some("t=1,v1=00")).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let text = app.get("/metrics", None).await.text().await.unwrap();
    let counted = |labels: &str| {
        text.lines()
            .filter(|l| l.starts_with("stripe_events_total{") && l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    assert!(
        counted(r#"outcome="ignored",type="other""#) >= 1.0,
        "an unknown type counted as other/ignored:\n{text}"
    );
}

/// A confirmed email change is told to the user's Stripe customer.
async fn an_email_change_reaches_the_stripe_customer(backend: Backend) {
    let stripe = FakeStripe::start(None).await;
    let app = billing_app(backend, &stripe.base).await;
    let admin = app.admin("boss").await;
    create_plan(&app, &admin, "starter", "one_time", "price_starter").await;
    let user = app.verified_user("mover").await;
    ok_json(
        app.post(
            "/billing/checkout",
            &json!({"plan_id": "starter"}),
            Some(&user.access),
        )
        .await,
    )
    .await;
    let customer = app
        .state
        .store
        .stripe_customer_of(user.id)
        .await
        .unwrap()
        .expect("customer recorded");
    let r = app
        .put(
            "/auth/users/mover/email",
            &json!({"new_email": "mover.new@example.com", "current_password": user.password}),
            Some(&user.access),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let path = format!("/v1/customers/{customer}");
    assert!(
        stripe.requests(&path).is_empty(),
        "not before it is confirmed"
    );
    let mail = app.wait_for_mail("mover.new@example.com", "").await;
    let token = mail.token().expect("confirm link");
    let r = app
        .post("/auth/verify-email", &json!({"token": token}), None)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let updates = stripe.requests(&path);
    assert_eq!(updates.len(), 1, "one update of the customer");
    assert_eq!(updates[0].method, "POST");
    assert_eq!(
        updates[0].form.get("email").map(String::as_str),
        Some("mover.new@example.com")
    );
}

both_backends!(
    an_email_change_reaches_the_stripe_customer,
    zero_amount_invoices_grant_nothing,
    a_stale_payment_failure_does_not_override_a_newer_state,
    events_of_the_other_mode_are_ignored,
    a_grant_past_the_maximum_balance_is_balance_overflow,
    stripe_events_are_counted
);
