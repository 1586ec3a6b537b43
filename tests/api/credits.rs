//! The credits ledger: exact, atomic, idempotent, and only for whom it belongs to.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

pub mod batch_support;
mod group_commit;
mod held_on_balance;
mod holds;

const KEY: &str = "internal-key-one";

both_backends!(
    balance_add_use_and_history,
    amounts_are_exact,
    invalid_amounts_are_422_and_change_nothing,
    insufficient_credits_change_nothing,
    concurrent_uses_never_overspend,
    concurrent_adds_lose_nothing,
    idempotent_replays,
    concurrent_replays_apply_once,
    access_matrix,
    internal_api_keys,
    history_pagination_and_limits,
);

impl TestApp {
    async fn internal_post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("X-API-Key", KEY)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn internal_get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header("X-API-Key", KEY)
            .send()
            .await
            .unwrap()
    }

    async fn grant(&self, user_id: i64, amount: Value) -> Value {
        let r = self
            .internal_post(
                "/credits/add",
                &json!({"user_id": user_id, "amount": amount}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    async fn balance_of(&self, user_id: i64) -> f64 {
        let body: Value = self
            .internal_get(&format!("/credits/balance?user_id={user_id}"))
            .await
            .json()
            .await
            .unwrap();
        body["balance"].as_f64().expect("balance is a number")
    }

    async fn ledger_len(&self, user_id: i64) -> i64 {
        let body: Value = self
            .internal_get(&format!("/credits/transactions?user_id={user_id}"))
            .await
            .json()
            .await
            .unwrap();
        body["total_count"].as_i64().unwrap()
    }
}

async fn balance_add_use_and_history(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register("carol").await;
    let empty: Value = app
        .get("/credits/balance", Some(&user.access))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(empty["user_id"], user.id);
    assert_eq!(empty["balance"].as_f64(), Some(0.0));
    assert!(empty["updated_at"].is_string());

    let added = app.grant(user.id, json!(10.5)).await;
    assert_eq!(added["transaction_type"], "credit_added");
    assert_eq!(added["amount"].as_f64(), Some(10.5));
    assert_eq!(added["new_balance"].as_f64(), Some(10.5));
    assert_eq!(added["user_id"], user.id);

    let used = app
        .post(
            "/credits/use",
            &json!({"amount": "2.25", "description": "a report", "reference_id": "r-1"}),
            Some(&user.access),
        )
        .await;
    assert_eq!(used.status(), StatusCode::OK);
    assert!(used.headers().get("idempotent-replayed").is_none());
    let used: Value = used.json().await.unwrap();
    assert_eq!(used["transaction_type"], "credit_used");
    assert_eq!(used["amount"].as_f64(), Some(2.25));
    assert_eq!(used["new_balance"].as_f64(), Some(8.25));
    assert_eq!(used["description"], "a report");
    assert_eq!(used["reference_id"], "r-1");

    let history: Value = app
        .get("/credits/transactions", Some(&user.access))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(history["total_count"], 2);
    let rows = history["transactions"].as_array().unwrap();
    assert_eq!(rows[0]["transaction_type"], "credit_used", "newest first");
    assert_eq!(
        rows[0]["new_balance"].as_f64(),
        Some(8.25),
        "each row keeps its own balance"
    );
    assert_eq!(rows[1]["new_balance"].as_f64(), Some(10.5));
    assert_eq!(app.balance_of(user.id).await, 8.25);
}

async fn amounts_are_exact(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register("dave").await;
    app.grant(user.id, json!(0.1)).await;
    let second = app.grant(user.id, json!(0.2)).await;
    assert_eq!(
        second["new_balance"].as_f64(),
        Some(0.3),
        "0.1 + 0.2 is exactly 0.3"
    );
    for _ in 0..3 {
        app.post("/credits/use", &json!({"amount": 0.1}), Some(&user.access))
            .await;
    }
    assert_eq!(app.balance_of(user.id).await, 0.0);
    let big = app.grant(user.id, json!("1000000000000")).await;
    assert_eq!(big["new_balance"].as_f64(), Some(1e12));
    let cents = app.grant(user.id, json!("0.01")).await;
    assert_eq!(cents["new_balance"].as_f64(), Some(1_000_000_000_000.01));
}

async fn invalid_amounts_are_422_and_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register("erin").await;
    app.grant(user.id, json!(5)).await;
    let bad_amounts = [
        json!(0),
        json!(-1),
        json!(0.001),
        json!(10.123),
        json!("10.123"),
        json!(1_000_000_000_000.01),
        json!(1e13),
        json!("abc"),
        json!(""),
        json!("NaN"),
        json!("Infinity"),
        json!(null),
        json!(true),
        json!([1]),
        json!({"value": 1}),
    ];
    for amount in bad_amounts {
        for path in ["/credits/add", "/credits/use"] {
            let r = app
                .internal_post(path, &json!({"user_id": user.id, "amount": amount}))
                .await;
            let body = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
            assert_eq!(first_loc(&body), "body.amount", "{path} {amount}: {body}");
        }
    }
    // Missing amount, malformed JSON, wrong content type, oversized strings.
    let r = app
        .internal_post("/credits/add", &json!({"user_id": user.id}))
        .await;
    assert_eq!(
        first_loc(&assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await),
        "body.amount"
    );
    let r = app
        .client
        .post(app.url("/credits/use"))
        .bearer_auth(&user.access)
        .header("content-type", "application/json")
        .body("{\"amount\": 1,")
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    let r = app
        .client
        .post(app.url("/credits/use"))
        .bearer_auth(&user.access)
        .body("amount=1")
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    let r = app
        .internal_post(
            "/credits/add",
            &json!({"user_id": user.id, "amount": 1, "reference_id": "x".repeat(256)}),
        )
        .await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    let r = app
        .internal_post("/credits/add", &json!({"user_id": "one", "amount": 1}))
        .await;
    assert_eq!(
        first_loc(&assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await),
        "body.user_id"
    );

    assert_eq!(
        app.balance_of(user.id).await,
        5.0,
        "no bad request changed the balance"
    );
    assert_eq!(app.ledger_len(user.id).await, 1);
}

async fn insufficient_credits_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register("frank").await;
    app.grant(user.id, json!(1)).await;
    let r = app
        .post("/credits/use", &json!({"amount": 1.01}), Some(&user.access))
        .await;
    let body = assert_error(r, StatusCode::BAD_REQUEST, "insufficient_credits").await;
    assert_eq!(body["detail"], "Insufficient credits");
    let r = app
        .post("/credits/use", &json!({"amount": 1}), Some(&user.access))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .post("/credits/use", &json!({"amount": 0.01}), Some(&user.access))
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "insufficient_credits").await;
    assert_eq!(app.balance_of(user.id).await, 0.0);
    assert_eq!(app.ledger_len(user.id).await, 2);
}

async fn concurrent_uses_never_overspend(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register("grace").await;
    app.grant(user.id, json!("10.00")).await;
    let requests = (0..200).map(|_| {
        let request = app
            .client
            .post(app.url("/credits/use"))
            .bearer_auth(&user.access)
            .json(&json!({"amount": 0.1}));
        async move { request.send().await.unwrap().status() }
    });
    let statuses = join_all(requests).await;
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::BAD_REQUEST)
        .count();
    assert_eq!((ok, refused), (100, 100), "{statuses:?}");
    assert_eq!(app.balance_of(user.id).await, 0.0);
    assert_eq!(app.ledger_len(user.id).await, 101);
    assert_eq!(batch_support::assert_ledger_exact(&app, user.id).await, 101);
    assert!(app
        .state
        .store
        .ledger_mismatches()
        .await
        .unwrap()
        .is_empty());
}

async fn concurrent_adds_lose_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register("heidi").await;
    let requests = (0..50).map(|_| {
        let request = app
            .client
            .post(app.url("/credits/add"))
            .header("X-API-Key", KEY)
            .json(&json!({"user_id": user.id, "amount": 1}));
        async move { request.send().await.unwrap().status() }
    });
    let statuses = join_all(requests).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(app.balance_of(user.id).await, 50.0);
    assert_eq!(app.ledger_len(user.id).await, 50);
}

async fn idempotent_replays(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register("ivan").await;
    let body = json!({"user_id": user.id, "amount": 3, "reference_id": "order-1"});
    let first: Value = app
        .internal_post("/credits/add", &body)
        .await
        .json()
        .await
        .unwrap();
    let replay = app.internal_post("/credits/add", &body).await;
    assert_eq!(replay.status(), StatusCode::OK);
    assert_eq!(replay.headers().get("idempotent-replayed").unwrap(), "true");
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay, first, "the original transaction is returned");
    let conflict = app
        .internal_post(
            "/credits/add",
            &json!({"user_id": user.id, "amount": 4, "reference_id": "order-1"}),
        )
        .await;
    assert_error(conflict, StatusCode::CONFLICT, "idempotency_conflict").await;
    // The same reference for another type or another user is another key.
    let used = app
        .post(
            "/credits/use",
            &json!({"amount": 3, "reference_id": "order-1"}),
            Some(&user.access),
        )
        .await;
    assert_eq!(used.status(), StatusCode::OK);
    assert!(used.headers().get("idempotent-replayed").is_none());
    let other = app.register("judy").await;
    let r = app
        .internal_post(
            "/credits/add",
            &json!({"user_id": other.id, "amount": 3, "reference_id": "order-1"}),
        )
        .await;
    assert!(r.headers().get("idempotent-replayed").is_none());
    // A replayed use after the balance ran out still answers the original.
    let replayed_use = app
        .post(
            "/credits/use",
            &json!({"amount": 3, "reference_id": "order-1"}),
            Some(&user.access),
        )
        .await;
    assert_eq!(replayed_use.status(), StatusCode::OK);
    assert_eq!(
        replayed_use.headers().get("idempotent-replayed").unwrap(),
        "true"
    );
    assert_eq!(app.balance_of(user.id).await, 0.0);
    assert_eq!(app.ledger_len(user.id).await, 2);
}

async fn concurrent_replays_apply_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register("kim").await;
    let body = json!({"user_id": user.id, "amount": 7, "reference_id": "once"});
    let requests = (0..30).map(|_| {
        let request = app
            .client
            .post(app.url("/credits/add"))
            .header("X-API-Key", KEY)
            .json(&body);
        async move {
            let r = request.send().await.unwrap();
            (r.status(), r.headers().get("idempotent-replayed").is_some())
        }
    });
    let results = join_all(requests).await;
    assert!(
        results.iter().all(|(s, _)| *s == StatusCode::OK),
        "{results:?}"
    );
    assert_eq!(
        results.iter().filter(|(_, replayed)| !replayed).count(),
        1,
        "exactly one applied"
    );
    assert_eq!(app.balance_of(user.id).await, 7.0);
    assert_eq!(app.ledger_len(user.id).await, 1);
}

async fn access_matrix(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let admin = app.admin("root").await;
    app.grant(bob.id, json!(5)).await;

    // A plain user cannot add, not even to themself.
    let r = app
        .post("/credits/add", &json!({"amount": 1}), Some(&alice.access))
        .await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    // ...nor read, spend or list another user's credits.
    let r = app
        .get(
            &format!("/credits/balance?user_id={}", bob.id),
            Some(&alice.access),
        )
        .await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = app
        .post(
            "/credits/use",
            &json!({"amount": 1, "user_id": bob.id}),
            Some(&alice.access),
        )
        .await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = app
        .get(
            &format!("/credits/transactions?user_id={}", bob.id),
            Some(&alice.access),
        )
        .await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    let alice_history: Value = app
        .get("/credits/transactions", Some(&alice.access))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        alice_history["total_count"], 0,
        "nothing of bob's is visible to alice"
    );
    // Their own id is fine.
    let r = app
        .get(
            &format!("/credits/balance?user_id={}", alice.id),
            Some(&alice.access),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    // Admins add to themselves by default, and to anyone by user_id.
    let own: Value = app
        .post("/credits/add", &json!({"amount": 2}), Some(&admin.access))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(own["user_id"], admin.id);
    let r = app
        .post(
            "/credits/add",
            &json!({"amount": 2, "user_id": alice.id}),
            Some(&admin.access),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .post(
            "/credits/use",
            &json!({"amount": 1, "user_id": bob.id}),
            Some(&admin.access),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .get(
            &format!("/credits/balance?user_id={}", bob.id),
            Some(&admin.access),
        )
        .await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["balance"].as_f64(),
        Some(4.0)
    );
    let r = app
        .post(
            "/credits/add",
            &json!({"amount": 2, "user_id": 999_999}),
            Some(&admin.access),
        )
        .await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;

    // No token at all.
    let r = app
        .client
        .get(app.url("/credits/balance"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers().get("www-authenticate").unwrap(), "Bearer");
}

async fn internal_api_keys(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register("lena").await;
    for header in ["X-API-Key", "api-key"] {
        let r = app
            .client
            .post(app.url("/credits/add"))
            .header(header, "internal-key-two")
            .json(&json!({"user_id": user.id, "amount": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{header}");
    }
    let r = app
        .client
        .post(app.url("/credits/add"))
        .header("X-API-Key", "internal-key-onf")
        .json(&json!({"user_id": user.id, "amount": 1}))
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    // An internal service must name the user.
    let r = app
        .internal_post("/credits/add", &json!({"amount": 1}))
        .await;
    assert_eq!(
        first_loc(&assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await),
        "body.user_id"
    );
    let r = app.internal_get("/credits/balance?user_id=424242").await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = app.internal_get("/credits/balance?user_id=abc").await;
    assert_eq!(
        first_loc(&assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await),
        "query.user_id"
    );
    assert_eq!(app.balance_of(user.id).await, 2.0);
}

async fn history_pagination_and_limits(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register("mia").await;
    for i in 1..=5 {
        app.grant(user.id, json!(i)).await;
    }
    let page: Value = app
        .get("/credits/transactions?skip=1&limit=2", Some(&user.access))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["total_count"], 5);
    let amounts: Vec<f64> = page["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["amount"].as_f64().unwrap())
        .collect();
    assert_eq!(amounts, [4.0, 3.0]);
    for bad in [
        "limit=0",
        "limit=101",
        "limit=-1",
        "skip=-1",
        "limit=x",
        "skip=1.5",
    ] {
        let r = app
            .get(&format!("/credits/transactions?{bad}"), Some(&user.access))
            .await;
        let body = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
        assert!(first_loc(&body).starts_with("query."), "{bad}: {body}");
    }
    let r = app
        .get("/credits/transactions?limit=100", Some(&user.access))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}
