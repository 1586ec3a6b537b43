//! POST /billing/checkout and /billing/portal against the local Stripe stand-in, which
//! records each form-encoded request.

use reqwest::StatusCode;
use serde_json::json;

use super::support::*;
use crate::both_backends;
use crate::helpers::{assert_error, join_all, ok_json, spawn_app, Backend};

/// The session carries what DESIGN §9 requires; the customer is created once.
async fn checkout_sends_the_contract_fields(backend: Backend) {
    let stripe = FakeStripe::start(None).await;
    let app = billing_app(backend, &stripe.base).await;
    let admin = app.admin("boss").await;
    create_plan(&app, &admin, "starter", "one_time", "price_starter").await;
    create_plan(&app, &admin, "pro", "subscription", "price_pro").await;
    let user = app.verified_user("buyer").await;
    let body = ok_json(
        app.post(
            "/billing/checkout",
            &json!({"plan_id": "starter"}),
            Some(&user.access),
        )
        .await,
    )
    .await;
    let session_id = body["session_id"].as_str().unwrap();
    assert!(session_id.starts_with("cs_test_"));
    assert!(body["checkout_url"].as_str().unwrap().ends_with(session_id));

    let customers = stripe.requests("/v1/customers");
    assert_eq!(customers.len(), 1);
    assert_eq!(customers[0].form["metadata[user_id]"], user.id.to_string());
    assert_eq!(customers[0].form["email"], user.email);
    assert_eq!(customers[0].method, "POST");
    assert!(customers[0].idempotency_key.is_some());
    assert_eq!(
        customers[0].authorization.as_deref(),
        Some(format!("Bearer {STRIPE_KEY}").as_str())
    );
    assert_eq!(customers[0].stripe_version.as_deref(), Some("2024-06-20"));

    let sessions = stripe.requests("/v1/checkout/sessions");
    let f = &sessions[0].form;
    assert_eq!(f["mode"], "payment");
    assert_eq!(f["client_reference_id"], user.id.to_string());
    assert_eq!(f["metadata[user_id]"], user.id.to_string());
    assert_eq!(f["metadata[plan_id]"], "starter");
    assert_eq!(f["line_items[0][price]"], "price_starter");
    assert_eq!(f["line_items[0][quantity]"], "1");
    assert_eq!(f["customer"], "cus_test_0");
    assert_eq!(
        f["success_url"],
        "http://frontend.test/billing/success?session_id={CHECKOUT_SESSION_ID}"
    );
    assert_eq!(f["cancel_url"], "http://frontend.test/billing/cancel");
    assert!(sessions[0]
        .idempotency_key
        .as_deref()
        .is_some_and(|k| !k.is_empty()));

    // A subscription: mode and subscription_data metadata; the same customer.
    ok_json(
        app.post(
            "/billing/checkout",
            &json!({"plan_id": "pro"}),
            Some(&user.access),
        )
        .await,
    )
    .await;
    let sessions = stripe.requests("/v1/checkout/sessions");
    let f = &sessions[1].form;
    assert_eq!(f["mode"], "subscription");
    assert_eq!(f["subscription_data[metadata][plan_id]"], "pro");
    assert_eq!(
        f["subscription_data[metadata][user_id]"],
        user.id.to_string()
    );
    assert_eq!(f["customer"], "cus_test_0");
    assert_ne!(sessions[0].idempotency_key, sessions[1].idempotency_key);
    assert_eq!(stripe.requests("/v1/customers").len(), 1, "customer reused");

    // Portal: returns to FRONTEND_URL.
    let portal = ok_json(
        app.post("/billing/portal", &json!({}), Some(&user.access))
            .await,
    )
    .await;
    assert!(portal["url"]
        .as_str()
        .unwrap()
        .starts_with("https://billing.stripe.test/"));
    let p = stripe.requests("/v1/billing_portal/sessions");
    assert_eq!(p[0].form["return_url"], "http://frontend.test");
    assert_eq!(p[0].form["customer"], "cus_test_0");
}

/// Who may check out, and every refusal.
async fn checkout_refusals(backend: Backend) {
    let stripe = FakeStripe::start(None).await;
    let app = billing_app(backend, &stripe.base).await;
    let admin = app.admin("boss").await;
    create_plan(&app, &admin, "starter", "one_time", "price_starter").await;
    create_plan(&app, &admin, "pro", "subscription", "price_pro").await;
    create_plan(&app, &admin, "old", "one_time", "price_old").await;
    let r = app
        .client
        .patch(app.url("/admin/plans/old"))
        .bearer_auth(&admin.access)
        .json(&json!({"active": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let user = app.verified_user("buyer").await;
    let checkout = |plan: &str| json!({"plan_id": plan});

    let r = app
        .post("/billing/checkout", &checkout("starter"), None)
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let unverified = app.register("unverified").await;
    let r = app
        .post(
            "/billing/checkout",
            &checkout("starter"),
            Some(&unverified.access),
        )
        .await;
    assert_error(r, StatusCode::FORBIDDEN, "email_not_verified").await;
    for plan in ["nope", "old"] {
        let r = app
            .post("/billing/checkout", &checkout(plan), Some(&user.access))
            .await;
        assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    }
    let r = app
        .post("/billing/checkout", &json!({"plan": 1}), Some(&user.access))
        .await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    let other = json!({"plan_id": "starter", "user_id": admin.id});
    let r = app
        .post("/billing/checkout", &other, Some(&user.access))
        .await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    assert!(stripe.requests("/v1/checkout/sessions").is_empty());

    // Internal services name the user; without one it is a 422.
    let internal = |body: serde_json::Value| {
        app.client
            .post(app.url("/billing/checkout"))
            .header("X-API-Key", "internal-key-one")
            .json(&body)
            .send()
    };
    let r = internal(checkout("starter")).await.unwrap();
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    let r = internal(json!({"plan_id": "starter", "user_id": user.id}))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Any whole JSON number names the user; a fraction is no user id.
    let r = internal(json!({"plan_id": "starter", "user_id": user.id as f64}))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = internal(json!({"plan_id": "starter", "user_id": user.id as f64 + 0.5}))
        .await
        .unwrap();
    let err = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    assert_eq!(err["detail"][0]["loc"], json!(["body", "user_id"]));
    let r = internal(json!({"plan_id": "starter", "user_id": 987_654}))
        .await
        .unwrap();
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;

    // Subscribing while a subscription is active: 409.
    let sub = subscription("sub_live", "cus_test_0", user.id, "active", "price_pro");
    deliver(
        &app,
        &event("e_sub", "customer.subscription.created", unix_now(), sub),
    )
    .await;
    let r = app
        .post("/billing/checkout", &checkout("pro"), Some(&user.access))
        .await;
    assert_error(r, StatusCode::CONFLICT, "subscription_active").await;

    // Stripe's errors become 502 in our words, never Stripe's text.
    stripe.fail_checkout_with(Some(400));
    let r = app
        .post(
            "/billing/checkout",
            &checkout("starter"),
            Some(&user.access),
        )
        .await;
    let body = assert_error(r, StatusCode::BAD_GATEWAY, "payment_provider_error").await;
    assert!(!body.to_string().contains("price_secret_detail"));
    stripe.fail_checkout_with(Some(500));
    let r = app
        .post(
            "/billing/checkout",
            &checkout("starter"),
            Some(&user.access),
        )
        .await;
    assert_error(r, StatusCode::BAD_GATEWAY, "payment_provider_unavailable").await;
}

/// Before the first checkout there is no portal; Stripe unreachable is a 502; billing off is 503.
async fn portal_and_unavailable_stripe(backend: Backend) {
    // A port nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let app = billing_app(backend, &closed).await;
    let admin = app.admin("boss").await;
    create_plan(&app, &admin, "starter", "one_time", "price_starter").await;
    let user = app.verified_user("buyer").await;
    let r = app
        .post("/billing/portal", &json!({}), Some(&user.access))
        .await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = app
        .post(
            "/billing/checkout",
            &json!({"plan_id": "starter"}),
            Some(&user.access),
        )
        .await;
    assert_error(r, StatusCode::BAD_GATEWAY, "payment_provider_unavailable").await;
    let r = app.get("/billing/subscription", Some(&user.access)).await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;

    let off = spawn_app(backend).await;
    let user = off.verified_user("buyer").await;
    for (path, post) in [
        ("/billing/checkout", true),
        ("/billing/portal", true),
        ("/billing/subscription", false),
        ("/billing/payment-methods", false),
        ("/billing/subscription/cancel", true),
    ] {
        let r = if post {
            off.post(path, &json!({"plan_id": "x"}), Some(&user.access))
                .await
        } else {
            off.get(path, Some(&user.access)).await
        };
        assert_error(r, StatusCode::SERVICE_UNAVAILABLE, "billing_disabled").await;
    }
    // The same order of refusals as with billing on: credentials, then input, then 503.
    let r = off
        .post("/billing/checkout", &json!({"plan_id": "x"}), None)
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = off.get("/billing/subscription?user_id=x", None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = off
        .post("/billing/checkout", &json!({"plan": 1}), Some(&user.access))
        .await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    let r = off
        .get("/billing/payment-methods?user_id=x", Some(&user.access))
        .await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    // Plans are still listed.
    assert_eq!(off.get("/plans", None).await.status(), StatusCode::OK);
}

/// Two first checkouts of one user at once create one Stripe customer.
async fn concurrent_first_checkouts_share_a_customer(backend: Backend) {
    let stripe = FakeStripe::start(None).await;
    let app = billing_app(backend, &stripe.base).await;
    let admin = app.admin("boss").await;
    create_plan(&app, &admin, "starter", "one_time", "price_starter").await;
    let user = app.verified_user("buyer").await;
    let body = json!({"plan_id": "starter"});
    let answers =
        join_all((0..2).map(|_| app.post("/billing/checkout", &body, Some(&user.access)))).await;
    for r in answers {
        assert_eq!(r.status(), StatusCode::OK);
    }
    assert_eq!(stripe.customers_created(), 1);
    let keys: Vec<_> = stripe
        .requests("/v1/customers")
        .into_iter()
        .map(|r| r.idempotency_key)
        .collect();
    assert!(
        keys.windows(2).all(|w| w[0] == w[1]),
        "one Idempotency-Key: {keys:?}"
    );
    let sessions = stripe.requests("/v1/checkout/sessions");
    assert_eq!(sessions.len(), 2);
    assert!(sessions.iter().all(|s| s.form["customer"] == "cus_test_0"));
    assert_eq!(
        app.state
            .store
            .stripe_customer_of(user.id)
            .await
            .unwrap()
            .as_deref(),
        Some("cus_test_0")
    );
}

both_backends!(
    checkout_sends_the_contract_fields,
    checkout_refusals,
    portal_and_unavailable_stripe,
    concurrent_first_checkouts_share_a_customer,
);
