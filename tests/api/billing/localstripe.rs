//! The Stripe calls against localstripe (a fake but stateful Stripe server from PyPI,
//! installed by `.ci/setup.d/30-localstripe.sh`): customers, payment methods,
//! subscriptions. Checkout and the portal, which localstripe lacks, stay on the stand-in,
//! which proxies everything else here.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::support::*;
use crate::both_backends;
use crate::helpers::{assert_error, join_all, ok_json, outside_tool, tools_dir, Backend};

/// A localstripe child process on a free port, killed when dropped.
struct LocalStripe {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for LocalStripe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl LocalStripe {
    async fn start() -> Option<Self> {
        let bin = outside_tool(
            tools_dir().join("localstripe/bin/localstripe"),
            "run .ci/setup.d/30-localstripe.sh",
        )?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(bin)
            // In memory only: without --from-scratch it loads the state another test left in
            // /tmp/localstripe.pickle (a fixed path every instance writes).
            .args(["--port", &port.to_string(), "--from-scratch"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("localstripe starts");
        let me = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        for _ in 0..300 {
            if me
                .http
                .get(format!("{}/v1/customers", me.base))
                .basic_auth(STRIPE_KEY, Some(""))
                .send()
                .await
                .is_ok()
            {
                return Some(me);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("localstripe did not answer on port {port}");
    }

    async fn call(&self, method: reqwest::Method, path: &str, form: &[(&str, &str)]) -> Value {
        let r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .basic_auth(STRIPE_KEY, Some(""))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert!(status.is_success(), "{path}: {body}");
        body
    }

    /// A card attached to `customer`; the customer's default when `default`.
    async fn card(&self, customer: &str, default: bool) -> String {
        let pm = self
            .call(
                reqwest::Method::POST,
                "/v1/payment_methods",
                &[
                    ("type", "card"),
                    ("card[number]", "4242424242424242"),
                    ("card[exp_month]", "12"),
                    ("card[exp_year]", "2030"),
                    ("card[cvc]", "123"),
                ],
            )
            .await;
        let id = pm["id"].as_str().unwrap().to_owned();
        self.call(
            reqwest::Method::POST,
            &format!("/v1/payment_methods/{id}/attach"),
            &[("customer", customer)],
        )
        .await;
        if default {
            self.call(
                reqwest::Method::POST,
                &format!("/v1/customers/{customer}"),
                &[("invoice_settings[default_payment_method]", &id)],
            )
            .await;
        }
        id
    }
}

/// Customers, cards (list, default, detach only one's own) and cancel at period end.
async fn payment_methods_and_subscription(backend: Backend) {
    let Some(ls) = LocalStripe::start().await else {
        return;
    };
    let stripe = FakeStripe::start(Some(ls.base.clone())).await;
    let app = billing_app(backend, &stripe.base).await;
    let admin = app.admin("boss").await;
    create_plan(&app, &admin, "pro", "subscription", "plan_pro").await;
    let alice = app.verified_user("alice").await;
    let bob = app.verified_user("bob").await;
    // No customer yet: no cards.
    let none = ok_json(
        app.get("/billing/payment-methods", Some(&alice.access))
            .await,
    )
    .await;
    assert_eq!(none, json!([]));
    let mut customers = Vec::new();
    for user in [&alice, &bob] {
        ok_json(
            app.post(
                "/billing/checkout",
                &json!({"plan_id": "pro"}),
                Some(&user.access),
            )
            .await,
        )
        .await;
        customers.push(
            app.state
                .store
                .stripe_customer_of(user.id)
                .await
                .unwrap()
                .expect("customer stored"),
        );
    }
    let customer = ls
        .call(
            reqwest::Method::GET,
            &format!("/v1/customers/{}", customers[0]),
            &[],
        )
        .await;
    assert_eq!(customer["metadata"]["user_id"], alice.id.to_string());
    let alice_default = ls.card(&customers[0], true).await;
    let alice_other = ls.card(&customers[0], false).await;
    let bobs = ls.card(&customers[1], true).await;

    let cards = ok_json(
        app.get("/billing/payment-methods", Some(&alice.access))
            .await,
    )
    .await;
    let cards = cards.as_array().unwrap();
    assert_eq!(cards.len(), 2);
    let default = cards
        .iter()
        .find(|c| c["id"] == alice_default.as_str())
        .unwrap();
    assert_eq!(default["is_default"], true);
    assert_eq!(default["brand"], "visa");
    assert_eq!(default["last4"], "4242");
    assert_eq!(default["exp_month"], 12);
    assert_eq!(default["exp_year"], 2030);
    assert_eq!(cards.iter().filter(|c| c["is_default"] == true).count(), 1);

    for id in [bobs.as_str(), "pm_does_not_exist", "..%2Fcustomers"] {
        let r = app
            .delete(
                &format!("/billing/payment-methods/{id}"),
                Some(&alice.access),
            )
            .await;
        assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    }
    let r = app
        .delete(
            &format!("/billing/payment-methods/{alice_other}"),
            Some(&alice.access),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let cards = ok_json(
        app.get("/billing/payment-methods", Some(&alice.access))
            .await,
    )
    .await;
    assert_eq!(cards.as_array().unwrap().len(), 1);
    let bob_cards = ok_json(app.get("/billing/payment-methods", Some(&bob.access)).await).await;
    assert_eq!(
        bob_cards.as_array().unwrap().len(),
        1,
        "bob's card untouched"
    );
    // Internal services name the user.
    let r = app
        .client
        .get(app.url(&format!("/billing/payment-methods?user_id={}", bob.id)))
        .header("X-API-Key", "internal-key-two")
        .send()
        .await
        .unwrap();
    assert_eq!(ok_json(r).await.as_array().unwrap().len(), 1);

    // Subscription: created at localstripe, reported by its event, cancelled at period end.
    let r = app
        .post(
            "/billing/subscription/cancel",
            &json!({}),
            Some(&alice.access),
        )
        .await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    let product = ls
        .call(reqwest::Method::POST, "/v1/products", &[("name", "Pro")])
        .await;
    ls.call(
        reqwest::Method::POST,
        "/v1/plans",
        &[
            ("id", "plan_pro"),
            ("amount", "999"),
            ("currency", "usd"),
            ("interval", "month"),
            ("product", product["id"].as_str().unwrap()),
        ],
    )
    .await;
    let sub = ls
        .call(
            reqwest::Method::POST,
            "/v1/subscriptions",
            &[("customer", &customers[0]), ("items[0][plan]", "plan_pro")],
        )
        .await;
    let sub_id = sub["id"].as_str().unwrap();
    let object = subscription(sub_id, &customers[0], alice.id, "active", "plan_pro");
    assert_eq!(
        deliver(
            &app,
            &event(
                "evt_ls",
                "customer.subscription.created",
                unix_now(),
                object
            )
        )
        .await,
        "applied"
    );
    let current = ok_json(app.get("/billing/subscription", Some(&alice.access)).await).await;
    assert_eq!(current["plan_id"], "pro");
    let cancelled = ok_json(
        app.post(
            "/billing/subscription/cancel",
            &json!({}),
            Some(&alice.access),
        )
        .await,
    )
    .await;
    assert_eq!(cancelled["cancel_at_period_end"], true);
    let at_stripe = ls
        .call(
            reqwest::Method::GET,
            &format!("/v1/subscriptions/{sub_id}"),
            &[],
        )
        .await;
    assert_eq!(at_stripe["cancel_at_period_end"], true);
    // Read back at once, before Stripe's customer.subscription.updated arrives.
    let current = ok_json(app.get("/billing/subscription", Some(&alice.access)).await).await;
    assert_eq!(current["cancel_at_period_end"], true);
    assert_eq!(current["status"], "active");
}

/// Two first checkouts at once leave one Stripe customer for the user, also at a server
/// that may not keep idempotency keys (the loser's customer is deleted).
async fn concurrent_first_checkouts_leave_one_customer(backend: Backend) {
    let Some(ls) = LocalStripe::start().await else {
        return;
    };
    let stripe = FakeStripe::start(Some(ls.base.clone())).await;
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
    let uid = user.id.to_string();
    let list = ls
        .call(reqwest::Method::GET, "/v1/customers?limit=100", &[])
        .await;
    let mine: Vec<_> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["metadata"]["user_id"] == uid.as_str())
        .collect();
    assert_eq!(mine.len(), 1, "{mine:?}");
    let stored = app.state.store.stripe_customer_of(user.id).await.unwrap();
    assert_eq!(stored.as_deref(), mine[0]["id"].as_str());
    let sessions = stripe.requests("/v1/checkout/sessions");
    assert!(sessions
        .iter()
        .all(|s| Some(s.form["customer"].as_str()) == stored.as_deref()));
}

/// Deleting an account (by its owner, or by an admin) cancels its subscription at Stripe
/// at once: the card is not charged for an account that no longer exists.
async fn deleting_an_account_cancels_its_subscription(backend: Backend) {
    let Some(ls) = LocalStripe::start().await else {
        return;
    };
    let stripe = FakeStripe::start(Some(ls.base.clone())).await;
    let app = billing_app(backend, &stripe.base).await;
    let admin = app.admin("boss").await;
    create_plan(&app, &admin, "pro", "subscription", "plan_pro").await;
    let product = ls
        .call(reqwest::Method::POST, "/v1/products", &[("name", "Pro")])
        .await;
    ls.call(
        reqwest::Method::POST,
        "/v1/plans",
        &[
            ("id", "plan_pro"),
            ("amount", "999"),
            ("currency", "usd"),
            ("interval", "month"),
            ("product", product["id"].as_str().unwrap()),
        ],
    )
    .await;
    let alice = app.verified_user("alice").await;
    let bob = app.verified_user("bob").await;
    let mut subscriptions = Vec::new();
    for user in [&alice, &bob] {
        ok_json(
            app.post(
                "/billing/checkout",
                &json!({"plan_id": "pro"}),
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
            .expect("customer stored");
        ls.card(&customer, true).await;
        let sub = ls
            .call(
                reqwest::Method::POST,
                "/v1/subscriptions",
                &[("customer", &customer), ("items[0][plan]", "plan_pro")],
            )
            .await;
        let sub_id = sub["id"].as_str().unwrap().to_owned();
        let object = subscription(&sub_id, &customer, user.id, "active", "plan_pro");
        let e = event(
            &format!("evt_sub_{}", user.id),
            "customer.subscription.created",
            unix_now(),
            object,
        );
        assert_eq!(deliver(&app, &e).await, "applied");
        subscriptions.push(sub_id);
    }
    let r = app
        .delete(
            &format!("/auth/users/alice?password={}", alice.password),
            Some(&alice.access),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.delete("/auth/users/bob", Some(&admin.access)).await;
    assert_eq!(r.status(), StatusCode::OK);
    for sub_id in &subscriptions {
        let at_stripe = ls
            .call(
                reqwest::Method::GET,
                &format!("/v1/subscriptions/{sub_id}"),
                &[],
            )
            .await;
        assert_eq!(
            at_stripe["status"], "canceled",
            "{sub_id} cancelled at once"
        );
    }
}

both_backends!(
    deleting_an_account_cancels_its_subscription,
    payment_methods_and_subscription,
    concurrent_first_checkouts_leave_one_customer
);
