//! POST /webhooks/stripe: signatures, exactly-once grants, subscription state, outcomes.

use reqwest::StatusCode;
use serde_json::json;

use super::support::*;
use crate::both_backends;
use crate::helpers::{assert_error, join_all, spawn_app, Backend};

/// A paid one-time checkout grants the plan's credits once: redeliveries and the async
/// success event for the same session change nothing; ledger, events and audit show it.
async fn purchase_is_granted_exactly_once(backend: Backend) {
    let stripe = FakeStripe::start(None).await;
    let app = billing_app(backend, &stripe.base).await;
    let admin = app.admin("boss").await;
    create_plan(&app, &admin, "starter", "one_time", "price_starter").await;
    let user = app.verified_user("buyer").await;
    let session = paid_session("cs_test_a", user.id, "starter", "cus_a", "pi_a");
    let completed = event(
        "evt_1",
        "checkout.session.completed",
        unix_now(),
        session.clone(),
    );
    assert_eq!(deliver(&app, &completed).await, "applied");
    assert_eq!(balance(&app, &user).await, 100.0);
    assert_eq!(deliver(&app, &completed).await, "duplicate");
    let async_ok = event(
        "evt_2",
        "checkout.session.async_payment_succeeded",
        unix_now(),
        session,
    );
    assert_eq!(deliver(&app, &async_ok).await, "duplicate");
    assert_eq!(balance(&app, &user).await, 100.0);

    let txs = transactions(&app, &user).await;
    assert_eq!(txs.len(), 1);
    assert_eq!(txs[0]["transaction_type"], "purchase");
    assert_eq!(txs[0]["reference_id"], "cs_test_a");
    assert_eq!(txs[0]["amount"], 100.0);
    let all = events(&app, &admin, "").await;
    assert_eq!(all.len(), 2, "a redelivery is not stored twice: {all:?}");
    assert_eq!(events(&app, &admin, "applied").await[0]["id"], "evt_1");
    assert_eq!(events(&app, &admin, "duplicate").await[0]["id"], "evt_2");
    let (activity, _) = app
        .state
        .store
        .activities(Some(user.id), 0, 50)
        .await
        .unwrap();
    assert!(
        activity.iter().any(|a| a.event == "billing_grant"),
        "audited"
    );
    // An unpaid (async) session grants nothing yet.
    let mut pending = paid_session("cs_test_b", user.id, "starter", "cus_a", "pi_b");
    pending["payment_status"] = json!("unpaid");
    let e = event("evt_3", "checkout.session.completed", unix_now(), pending);
    assert_eq!(deliver(&app, &e).await, "ignored");
    assert_eq!(balance(&app, &user).await, 100.0);
    assert_ledger_consistent(&app).await;
}

/// Bad signatures are 400 `invalid_signature` and record nothing; both rotated secrets work.
async fn signatures_are_enforced(backend: Backend) {
    let stripe = FakeStripe::start(None).await;
    let app = billing_app(backend, &stripe.base).await;
    let admin = app.admin("boss").await;
    create_plan(&app, &admin, "starter", "one_time", "price_starter").await;
    let user = app.verified_user("buyer").await;
    let body = event(
        "evt_sig",
        "checkout.session.completed",
        unix_now(),
        paid_session("cs_sig", user.id, "starter", "cus_s", "pi_s"),
    )
    .to_string();
    let now = unix_now();
    let tampered = body.replace("\"amount_total\":1000", "\"amount_total\":1");
    let bad = [
        Some(signature("whsec_wrong", now, &body)),
        Some(signature(WEBHOOK_SECRET, now - 301, &body)),
        Some(signature(WEBHOOK_SECRET, now + 400, &body)),
        Some(format!("t={now},v1=zz")),
        Some("garbage".to_owned()),
        Some(format!("t={now}")),
        None,
    ];
    for sig in &bad {
        let r = post_webhook(&app, &body, sig.as_deref()).await;
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_signature").await;
    }
    let sig = signature(WEBHOOK_SECRET, now, &body);
    let r = post_webhook(&app, &tampered, Some(&sig)).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_signature").await;
    assert!(events(&app, &admin, "").await.is_empty());
    assert_eq!(balance(&app, &user).await, 0.0);

    // The previous secret still verifies while rotating; a header with several v1 too.
    let old = signature(OLD_WEBHOOK_SECRET, now, &body);
    let old_v1 = old.split_once(",v1=").unwrap().1;
    let several = format!("{},v1={old_v1}", signature("whsec_wrong", now, &body));
    let r = post_webhook(&app, &body, Some(&several)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(balance(&app, &user).await, 100.0);
    // A signed body that is not an event is a 400 too.
    let junk = "not json";
    let r = post_webhook(&app, junk, Some(&signature(WEBHOOK_SECRET, now, junk))).await;
    assert_error(r, StatusCode::BAD_REQUEST, "invalid_payload").await;
}

/// Without STRIPE_WEBHOOK_SECRET the webhook answers 503.
async fn webhook_without_secret_is_disabled(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = "{}";
    let r = post_webhook(
        &app,
        body,
        Some(&signature(WEBHOOK_SECRET, unix_now(), body)),
    )
    .await;
    assert_error(r, StatusCode::SERVICE_UNAVAILABLE, "billing_disabled").await;
}

/// 20 concurrent deliveries of one event: every one answered 200, one grant.
async fn concurrent_deliveries_grant_once(backend: Backend) {
    let stripe = FakeStripe::start(None).await;
    let app = billing_app(backend, &stripe.base).await;
    let admin = app.admin("boss").await;
    create_plan(&app, &admin, "starter", "one_time", "price_starter").await;
    let user = app.verified_user("buyer").await;
    let e = event(
        "evt_burst",
        "checkout.session.completed",
        unix_now(),
        paid_session("cs_burst", user.id, "starter", "cus_b", "pi_b"),
    );
    let outcomes = join_all((0..20).map(|_| deliver(&app, &e))).await;
    assert_eq!(
        outcomes.iter().filter(|o| *o == "applied").count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(outcomes.iter().filter(|o| *o == "duplicate").count(), 19);
    assert_eq!(balance(&app, &user).await, 100.0);
    assert_eq!(transactions(&app, &user).await.len(), 1);
    assert_ledger_consistent(&app).await;
}

/// invoice.paid and invoice.payment_succeeded for one invoice grant once; the next
/// period's invoice grants again; a failed payment makes the subscription past_due.
async fn subscription_invoices_grant_once_per_period(backend: Backend) {
    let stripe = FakeStripe::start(None).await;
    let app = billing_app(backend, &stripe.base).await;
    let admin = app.admin("boss").await;
    create_plan(&app, &admin, "pro", "subscription", "price_pro").await;
    let user = app.verified_user("subscriber").await;
    let t = unix_now();
    let created = event(
        "evt_s1",
        "customer.subscription.created",
        t,
        subscription("sub_1", "cus_1", user.id, "active", "price_pro"),
    );
    assert_eq!(deliver(&app, &created).await, "applied");
    let inv = invoice("in_1", "cus_1", "sub_1", "price_pro", "ch_1");
    let both = [
        event("evt_i1", "invoice.paid", t, inv.clone()),
        event("evt_i2", "invoice.payment_succeeded", t, inv),
    ];
    let outcomes = join_all(both.iter().map(|e| deliver(&app, e))).await;
    let mut sorted = outcomes.clone();
    sorted.sort();
    assert_eq!(sorted, ["applied", "duplicate"], "{outcomes:?}");
    assert_eq!(balance(&app, &user).await, 100.0);
    let renewal = event(
        "evt_i3",
        "invoice.paid",
        t + 1,
        invoice("in_2", "cus_1", "sub_1", "price_pro", "ch_2"),
    );
    assert_eq!(deliver(&app, &renewal).await, "applied");
    assert_eq!(balance(&app, &user).await, 200.0);
    let txs = transactions(&app, &user).await;
    assert!(txs
        .iter()
        .all(|t| t["transaction_type"] == "subscription_grant"));
    assert_eq!(txs[0]["reference_id"], "in_2");

    let failed = event(
        "evt_f",
        "invoice.payment_failed",
        t + 2,
        invoice("in_3", "cus_1", "sub_1", "price_pro", "ch_3"),
    );
    assert_eq!(deliver(&app, &failed).await, "applied");
    let sub =
        crate::helpers::ok_json(app.get("/billing/subscription", Some(&user.access)).await).await;
    assert_eq!(sub["status"], "past_due");
    assert_eq!(sub["plan_id"], "pro");
    assert_eq!(
        balance(&app, &user).await,
        200.0,
        "no credit change on failure"
    );
    assert_ledger_consistent(&app).await;
}

/// An older customer.subscription.updated after a newer one leaves the state as it is.
async fn old_subscription_updates_are_ignored(backend: Backend) {
    let stripe = FakeStripe::start(None).await;
    let app = billing_app(backend, &stripe.base).await;
    let admin = app.admin("boss").await;
    create_plan(&app, &admin, "pro", "subscription", "price_pro").await;
    let user = app.verified_user("subscriber").await;
    let t = unix_now();
    let mut newer = subscription("sub_9", "cus_9", user.id, "active", "price_pro");
    newer["cancel_at_period_end"] = json!(true);
    let older = subscription("sub_9", "cus_9", user.id, "past_due", "price_pro");
    let created = subscription("sub_9", "cus_9", user.id, "incomplete", "price_pro");
    assert_eq!(
        deliver(
            &app,
            &event("e1", "customer.subscription.created", t - 100, created)
        )
        .await,
        "applied"
    );
    assert_eq!(
        deliver(
            &app,
            &event("e3", "customer.subscription.updated", t, newer)
        )
        .await,
        "applied"
    );
    assert_eq!(
        deliver(
            &app,
            &event("e2", "customer.subscription.updated", t - 50, older)
        )
        .await,
        "ignored"
    );
    let sub =
        crate::helpers::ok_json(app.get("/billing/subscription", Some(&user.access)).await).await;
    assert_eq!(sub["status"], "active");
    assert_eq!(sub["cancel_at_period_end"], true);
    assert!(sub["current_period_end"].is_string());
    let deleted = subscription("sub_9", "cus_9", user.id, "canceled", "price_pro");
    assert_eq!(
        deliver(
            &app,
            &event("e4", "customer.subscription.deleted", t + 10, deleted)
        )
        .await,
        "applied"
    );
    let sub =
        crate::helpers::ok_json(app.get("/billing/subscription", Some(&user.access)).await).await;
    assert_eq!(sub["status"], "canceled");
}

/// Events whose user cannot be found are 200 and kept as unmatched; unknown types ignored.
async fn unmatched_and_ignored_events_are_kept(backend: Backend) {
    let stripe = FakeStripe::start(None).await;
    let app = billing_app(backend, &stripe.base).await;
    let admin = app.admin("boss").await;
    create_plan(&app, &admin, "pro", "subscription", "price_pro").await;
    let inv = invoice("in_x", "cus_nobody", "sub_x", "price_pro", "ch_x");
    assert_eq!(
        deliver(&app, &event("evt_u", "invoice.paid", unix_now(), inv)).await,
        "unmatched"
    );
    let ghost = paid_session("cs_ghost", 999_999, "pro", "cus_ghost", "pi_g");
    assert_eq!(
        deliver(
            &app,
            &event("evt_g", "checkout.session.completed", unix_now(), ghost)
        )
        .await,
        "unmatched"
    );
    assert_eq!(
        deliver(
            &app,
            &event(
                "evt_t",
                "customer.created",
                unix_now(),
                json!({"id": "cus_z"})
            )
        )
        .await,
        "ignored"
    );
    let unmatched = events(&app, &admin, "unmatched").await;
    assert_eq!(unmatched.len(), 2);
    assert_eq!(
        unmatched
            .iter()
            .filter(|e| e["type"] == "invoice.paid")
            .count(),
        1
    );
    assert_eq!(
        events(&app, &admin, "ignored").await[0]["type"],
        "customer.created"
    );
    // Admins only; a bad outcome filter is a 422.
    let user = app.verified_user("plain").await;
    let r = app.get("/admin/billing/events", Some(&user.access)).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app
        .get("/admin/billing/events?outcome=weird", Some(&admin.access))
        .await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
}

/// A database failure in the middle of an event is a 500 and leaves nothing behind (not
/// even the event id); Stripe's retry then applies it once.
async fn failure_mid_event_applies_nothing(backend: Backend) {
    let stripe = FakeStripe::start(None).await;
    let app = billing_app(backend, &stripe.base).await;
    let admin = app.admin("boss").await;
    create_plan(&app, &admin, "starter", "one_time", "price_starter").await;
    let user = app.verified_user("buyer").await;
    // The ledger insert fails after the event id, the customer and the payment were written.
    let (create, drop) = match backend {
        Backend::Sqlite => (
            vec![
                "CREATE TRIGGER fail_ledger BEFORE INSERT ON credit_transactions \
                  BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
            ],
            "DROP TRIGGER fail_ledger",
        ),
        Backend::Postgres => (
            vec![
                "CREATE FUNCTION fail_ledger() RETURNS trigger AS $$ BEGIN \
                 RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql",
                "CREATE TRIGGER fail_ledger BEFORE INSERT ON credit_transactions \
                 FOR EACH ROW EXECUTE FUNCTION fail_ledger()",
            ],
            "DROP TRIGGER fail_ledger ON credit_transactions",
        ),
    };
    let exec = |sql: &'static str| {
        let url = app.db.url.clone();
        async move {
            use sqlx::{Connection, Executor};
            match backend {
                Backend::Sqlite => {
                    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
                    c.execute(sql).await.unwrap();
                }
                Backend::Postgres => {
                    let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
                    c.execute(sql).await.unwrap();
                }
            }
        }
    };
    for sql in create {
        exec(sql).await;
    }
    let body = event(
        "evt_fail",
        "checkout.session.completed",
        unix_now(),
        paid_session("cs_fail", user.id, "starter", "cus_f", "pi_f"),
    )
    .to_string();
    let sig = signature(WEBHOOK_SECRET, unix_now(), &body);
    let r = post_webhook(&app, &body, Some(&sig)).await;
    assert_error(r, StatusCode::INTERNAL_SERVER_ERROR, "internal_error").await;
    assert!(
        events(&app, &admin, "").await.is_empty(),
        "event id not recorded"
    );
    assert_eq!(balance(&app, &user).await, 0.0);
    assert_eq!(
        app.state.store.stripe_customer_of(user.id).await.unwrap(),
        None
    );
    exec(drop).await;
    let r = post_webhook(&app, &body, Some(&sig)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(balance(&app, &user).await, 100.0);
    assert_ledger_consistent(&app).await;
}

/// Per-IP rate limits do not apply to the webhook (Stripe delivers from shared addresses).
async fn webhook_is_not_rate_limited(backend: Backend) {
    let stripe = FakeStripe::start(None).await;
    let base = stripe.base.clone();
    let app = crate::helpers::spawn_app_with(backend, move |vars| {
        vars.insert("STRIPE_SECRET_KEY".into(), STRIPE_KEY.into());
        vars.insert("STRIPE_WEBHOOK_SECRET".into(), WEBHOOK_SECRET.into());
        vars.insert("STRIPE_API_BASE".into(), base);
        vars.insert("RATE_LIMIT_DEFAULT_PER_MINUTE".into(), "3".into());
    })
    .await;
    for i in 0..8 {
        let e = event(
            &format!("evt_rl_{i}"),
            "customer.created",
            unix_now(),
            json!({"id": "cus_rl"}),
        );
        assert_eq!(deliver(&app, &e).await, "ignored");
    }
    let statuses = join_all((0..5).map(|_| app.get("/plans", None))).await;
    assert!(
        statuses
            .iter()
            .any(|r| r.status() == StatusCode::TOO_MANY_REQUESTS),
        "other routes are limited"
    );
}

both_backends!(
    webhook_is_not_rate_limited,
    purchase_is_granted_exactly_once,
    signatures_are_enforced,
    webhook_without_secret_is_disabled,
    concurrent_deliveries_grant_once,
    subscription_invoices_grant_once_per_period,
    old_subscription_updates_are_ignored,
    unmatched_and_ignored_events_are_kept,
    failure_mid_event_applies_nothing,
);
