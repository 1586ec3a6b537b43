//! Billing on the pages (DESIGN §9, §11) against the local Stripe stand-in: the credits
//! page's plans, Checkout, subscription and portal; the admins' billing events. Over plain
//! HTTP: CSRF on every new form, the sections' conditions, the services' refusals shown
//! readably. In a real browser: buying a plan end to end, with the signed webhook.

use reqwest::StatusCode;
use serde_json::json;

use crate::billing::support::{
    billing_app, create_plan, deliver, event, paid_session, subscription, unix_now, FakeStripe,
};
use crate::helpers::{spawn_app, Backend, PASSWORD};
use crate::web::{location, Visit};
use crate::web_driver::Driver;

#[tokio::test]
async fn billing_sections_need_billing_and_a_verified_user() {
    // Billing off: no sections, and the forms answer the service's refusal.
    let app = spawn_app(Backend::Sqlite).await;
    app.verified_user("nobill").await;
    let mut visit = Visit::new(&app);
    visit.sign_in("nobill").await;
    let r = visit.get("/credits").await;
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("form-action 'self';"), "{csp}");
    let page = r.text().await.unwrap();
    assert!(!page.contains("Buy credits"), "{page}");
    assert!(!page.contains("/credits/checkout"));
    let csrf = visit.csrf("/credits").await;
    let r = visit
        .post("/credits/checkout", &[("plan_id", "x"), ("csrf", &csrf)])
        .await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Billing is not configured"));

    // Billing on, address unverified: told to verify, nothing to buy.
    let stripe = FakeStripe::start(None).await;
    let app = billing_app(Backend::Sqlite, &stripe.base).await;
    let admin = app.admin("boss").await;
    create_plan(&app, &admin, "starter", "one_time", "price_starter").await;
    app.register("unver").await;
    let mut visit = Visit::new(&app);
    visit.sign_in("unver").await;
    let page = visit.get("/credits").await.text().await.unwrap();
    assert!(
        page.contains("Verify your email address to buy credits"),
        "{page}"
    );
    assert!(!page.contains("/credits/checkout"));
    let csrf = visit.csrf("/credits").await;
    let r = visit
        .post(
            "/credits/checkout",
            &[("plan_id", "starter"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(stripe.requests("/v1/checkout/sessions").is_empty());
}

#[tokio::test]
async fn billing_forms_need_csrf_and_show_refusals_readably() {
    let stripe = FakeStripe::start(None).await;
    let app = billing_app(Backend::Sqlite, &stripe.base).await;
    let admin = app.admin("boss").await;
    create_plan(&app, &admin, "starter", "one_time", "price_starter").await;
    create_plan(&app, &admin, "pro", "subscription", "price_pro").await;
    let user = app.verified_user("payer").await;
    let mut visit = Visit::new(&app);
    visit.sign_in("payer").await;
    let r = visit.get("/credits").await;
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("https://checkout.stripe.com") && csp.contains(&stripe.base),
        "{csp}"
    );
    let page = r.text().await.unwrap();
    assert!(page.contains("aria-label=\"Buy Plan starter\""), "{page}");
    assert!(page.contains("aria-label=\"Subscribe to Plan pro\""));
    assert!(page.contains("10.00 USD"));
    assert!(page.contains("You have no subscription"));

    let csrf = visit.csrf("/credits").await;
    for path in [
        "/credits/checkout",
        "/credits/portal",
        "/credits/subscription/cancel",
    ] {
        for (token, origin) in [
            ("", app.address.as_str()),
            (csrf.as_str(), "http://evil.test"),
        ] {
            visit.origin = origin.into();
            let r = visit
                .post(path, &[("plan_id", "starter"), ("csrf", token)])
                .await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path} {origin}");
        }
    }
    visit.origin = app.address.clone();
    assert!(stripe.requests("/v1/checkout/sessions").is_empty());

    // No customer yet: the portal says so.
    let r = visit.post("/credits/portal", &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.text().await.unwrap().contains("no billing account yet"));
    // Unknown plan; Stripe failing: readable, on the page.
    let r = visit
        .post("/credits/checkout", &[("plan_id", "nope"), ("csrf", &csrf)])
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.text().await.unwrap().contains("Plan not found"));
    stripe.fail_checkout_with(Some(500));
    let r = visit
        .post(
            "/credits/checkout",
            &[("plan_id", "starter"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let body = r.text().await.unwrap();
    assert!(body.contains("payment provider"), "{body}");
    assert!(
        !body.contains("price_secret_detail"),
        "Stripe's words stay ours"
    );
    stripe.fail_checkout_with(None);

    // Buy: straight to Checkout.
    let r = visit
        .post(
            "/credits/checkout",
            &[("plan_id", "starter"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(location(&r).starts_with("https://checkout.stripe.test/c/pay/cs_test_"));

    // A live subscription: shown; subscribing again is refused (409), readably.
    let sub = subscription("sub_web", "cus_test_0", user.id, "active", "price_pro");
    deliver(
        &app,
        &event("evt_sub", "customer.subscription.created", unix_now(), sub),
    )
    .await;
    let page = visit.get("/credits").await.text().await.unwrap();
    assert!(page.contains("Renews on"), "{page}");
    assert!(page.contains("Cancel at period end"));
    let r = visit
        .post("/credits/checkout", &[("plan_id", "pro"), ("csrf", &csrf)])
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("A subscription is already active"));
    // Cancel at period end: Stripe is asked, the page says what happens.
    let r = visit
        .post("/credits/subscription/cancel", &[("csrf", &csrf)])
        .await;
    assert_eq!(location(&r), "/credits?notice=subscription_cancelled");
    let cancels = stripe.requests("/v1/subscriptions/sub_web");
    assert_eq!(cancels[0].form["cancel_at_period_end"], "true");
    let page = visit
        .get("/credits?notice=subscription_cancelled")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("will end at the end of the current period"));
    // The portal now has a customer.
    let r = visit.post("/credits/portal", &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(location(&r).starts_with("https://billing.stripe.test/p/session/"));
}

#[tokio::test]
async fn admins_see_billing_events_with_a_filter() {
    let stripe = FakeStripe::start(None).await;
    let app = billing_app(Backend::Sqlite, &stripe.base).await;
    let boss = app.admin("evadmin").await;
    create_plan(&app, &boss, "starter", "one_time", "price_starter").await;
    app.verified_user("evuser").await;
    // Nobody has this user id: kept as unmatched.
    let paid = paid_session("cs_ev", 999_999, "starter", "cus_x", "pi_ev");
    deliver(
        &app,
        &event("evt_paid", "checkout.session.completed", unix_now(), paid),
    )
    .await;
    deliver(
        &app,
        &event(
            "evt_other",
            "customer.created",
            unix_now(),
            json!({"id": "cus_y"}),
        ),
    )
    .await;
    let mut visit = Visit::new(&app);
    visit.sign_in("evuser").await;
    assert_eq!(
        visit.get("/admin/billing").await.status(),
        StatusCode::FORBIDDEN
    );
    let mut admin = Visit::new(&app);
    admin.sign_in("evadmin").await;
    let admin_page = admin.get("/admin").await.text().await.unwrap();
    assert!(admin_page.contains("href=\"/admin/billing\""));
    let page = admin.get("/admin/billing").await.text().await.unwrap();
    assert!(
        page.contains("evt_paid") && page.contains("evt_other"),
        "{page}"
    );
    let ignored = admin
        .get("/admin/billing?outcome=ignored")
        .await
        .text()
        .await
        .unwrap();
    assert!(ignored.contains("evt_other") && !ignored.contains("evt_paid"));
    let unmatched = admin
        .get("/admin/billing?outcome=unmatched")
        .await
        .text()
        .await
        .unwrap();
    assert!(unmatched.contains("evt_paid") && !unmatched.contains("evt_other"));
    // Nonsense filters and pages are no filter and page 1, never an error.
    let r = admin.get("/admin/billing?outcome=%27&page=-3").await;
    assert_eq!(r.status(), StatusCode::OK);
}

/// In a real browser: Buy → Stripe's Checkout (the stand-in's page) → the signed webhook
/// → the credits page shows the new balance and the purchase.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_buys_a_plan_through_checkout() {
    let Some(mut driver) = Driver::start().await else {
        return;
    };
    let stripe = FakeStripe::start_with_pages().await;
    let app = billing_app(Backend::Sqlite, &stripe.base).await;
    let admin = app.admin("webboss").await;
    create_plan(&app, &admin, "starter", "one_time", "price_starter").await;
    create_plan(&app, &admin, "pro", "subscription", "price_pro").await;
    let user = app.verified_user("webbuyer").await;
    let base = app.address.clone();
    let b = driver.browser().await;
    b.sign_in(&base, "webbuyer", PASSWORD).await;
    b.goto(&format!("{base}/credits")).await;
    b.wait_heading("Credits").await;
    b.screenshots("credits-plans").await;

    b.click("button[aria-label='Buy Plan starter']").await;
    b.wait_heading("Stripe stand-in").await;
    assert_eq!(b.path().await, "/c/pay/cs_test_0");
    let sessions = stripe.requests("/v1/checkout/sessions");
    assert_eq!(sessions[0].form["metadata[plan_id]"], "starter");

    let paid = paid_session("cs_test_0", user.id, "starter", "cus_test_0", "pi_web");
    let outcome = deliver(
        &app,
        &event(
            "evt_web_paid",
            "checkout.session.completed",
            unix_now(),
            paid,
        ),
    )
    .await;
    assert_eq!(outcome, "applied");
    b.goto(&format!("{base}/billing/success?session_id=cs_test_0"))
        .await;
    b.wait_heading("Thank you").await;
    b.click("a.button[href='/credits']").await;
    b.wait_heading("Credits").await;
    b.wait_text(".amount", "100.00").await;
    b.wait_text("td", "Purchase").await;

    // A subscription arrives; the page shows it, and the portal opens at Stripe.
    let sub = subscription("sub_webb", "cus_test_0", user.id, "active", "price_pro");
    deliver(
        &app,
        &event(
            "evt_web_sub",
            "customer.subscription.created",
            unix_now(),
            sub,
        ),
    )
    .await;
    b.goto(&format!("{base}/credits")).await;
    b.wait_text(".facts", "Plan pro").await;
    b.wait_text(".facts", "Renews on").await;
    b.screenshots("credits-subscription").await;
    b.click("button[aria-label='Subscribe to Plan pro']").await;
    b.wait_text(".alert", "already active").await;
    b.click("form[action='/credits/portal'] button").await;
    b.wait_heading("Stripe stand-in").await;
    assert!(b.path().await.starts_with("/p/session/bps_"));
    b.close().await;

    let a = driver.browser().await;
    a.sign_in(&base, "webboss", PASSWORD).await;
    a.goto(&format!("{base}/admin/billing")).await;
    a.wait_heading("Billing events").await;
    a.wait_text("td", "evt_web_paid").await;
    a.screenshots("admin-billing").await;
    a.close().await;
}
