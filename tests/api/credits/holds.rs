//! Holds (DESIGN §15): reserve, capture, release; exact under concurrency, on both
//! backends and across instances; expiry decided at every decision and marked once.

use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::batch_support::*;
use crate::both_backends;
use crate::helpers::*;
use crate::logs::BINARY;

both_backends!(
    twenty_holds_of_75_against_500_grant_exactly_six,
    holds_uses_and_captures_racing_never_overdraw,
    two_instances_hold_on_one_account,
    capture_rules,
    release_rules,
    a_hold_past_its_expiry_neither_counts_nor_captures,
    expiry_racing_a_capture_has_one_outcome,
    two_instances_expire_each_hold_once,
    bad_input_is_refused_and_changes_nothing,
    holds_are_listed_and_private,
);

/// An internal-service POST; (status, body, replayed).
async fn post(app: &TestApp, path: &str, body: Value) -> Answered {
    send(app, path, body).await.unwrap()
}

async fn hold(app: &TestApp, user_id: i64, amount: &str, reference: &str) -> Answered {
    post(
        app,
        "/credits/holds",
        json!({"user_id": user_id, "amount": amount, "reference_id": reference}),
    )
    .await
}

pub(super) async fn hold_ttl(
    app: &TestApp,
    user_id: i64,
    amount: &str,
    reference: &str,
    ttl: i64,
) -> Value {
    let (status, body, _) = post(
        app,
        "/credits/holds",
        json!({"user_id": user_id, "amount": amount, "reference_id": reference, "ttl_seconds": ttl}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

pub(super) async fn capture(app: &TestApp, user_id: i64, id: i64, amount: Value) -> Answered {
    post(
        app,
        &format!("/credits/holds/{id}/capture"),
        json!({"user_id": user_id, "amount": amount}),
    )
    .await
}

pub(super) async fn release(app: &TestApp, user_id: i64, id: i64) -> Answered {
    post(
        app,
        &format!("/credits/holds/{id}/release?user_id={user_id}"),
        json!({}),
    )
    .await
}

pub(super) async fn balance(app: &TestApp, user_id: i64) -> Value {
    app.client
        .get(app.url(&format!("/credits/balance?user_id={user_id}")))
        .header("X-API-Key", KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `auth-service ledger verify` on this app's database must pass.
pub(super) fn ledger_verify(app: &TestApp) {
    let out = Command::new(BINARY)
        .args(["ledger", "verify"])
        .env_clear()
        .envs(&app.vars)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ledger verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes a hold's expiry a moment ago, as time passing would (no sleeping for an hour).
pub(super) async fn age(app: &TestApp, hold_id: i64) {
    let past = (chrono::Utc::now() - chrono::Duration::seconds(1)).to_rfc3339();
    match app.backend {
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
            sqlx::query("UPDATE credit_holds SET expires_at = $1::timestamptz WHERE id = $2")
                .bind(&past)
                .bind(hold_id)
                .execute(&pool)
                .await
                .unwrap();
            // Time that passed would have passed for the balance row's first expiry too.
            sqlx::query(
                "UPDATE credit_balances SET held_soonest = $1::timestamptz \
                 WHERE user_id = (SELECT user_id FROM credit_holds WHERE id = $2) \
                 AND held_soonest > $1::timestamptz",
            )
            .bind(&past)
            .bind(hold_id)
            .execute(&pool)
            .await
            .unwrap();
        }
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&app.db.url).await.unwrap();
            let past = chrono::Utc::now() - chrono::Duration::seconds(1);
            sqlx::query("UPDATE credit_holds SET expires_at = $1 WHERE id = $2")
                .bind(past)
                .bind(hold_id)
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query(
                "UPDATE credit_balances SET held_soonest = $1 \
                 WHERE user_id = (SELECT user_id FROM credit_holds WHERE id = $2) \
                 AND held_soonest > $1",
            )
            .bind(past)
            .bind(hold_id)
            .execute(&pool)
            .await
            .unwrap();
        }
    }
}

async fn twenty_holds_of_75_against_500_grant_exactly_six(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register("reserver").await;
    grant(&app, user.id, "500").await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            send(
                &app,
                "/credits/holds",
                json!({"user_id": user.id, "amount": 75, "reference_id": format!("job-{i}")}),
            )
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        let (status, body, _) = t.await.unwrap();
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::BAD_REQUEST => assert_eq!(body["code"], "insufficient_credits"),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(created, 6);
    let b = balance(&app, user.id).await;
    assert_eq!(cents(&b["balance"]), 50000);
    assert_eq!(cents(&b["held"]), 45000);
    assert_eq!(cents(&b["available"]), 5000);
    // Uses spend only what is available.
    let (status, body, _) = post(
        &app,
        "/credits/use",
        json!({"user_id": user.id, "amount": "50.01"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _, _) = post(
        &app,
        "/credits/use",
        json!({"user_id": user.id, "amount": 50}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cents(&balance(&app, user.id).await["available"]), 0);
    assert_ledger_exact(&app, user.id).await;
    ledger_verify(&app);
}

async fn holds_uses_and_captures_racing_never_overdraw(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register("racer").await;
    grant(&app, user.id, "100").await;
    let u = user.id;
    let mut tasks = Vec::new();
    for i in 0..30 {
        tasks.push(send(
            &app,
            "/credits/holds",
            json!({"user_id": u, "amount": 7, "reference_id": format!("h{i}")}),
        ));
        tasks.push(send(
            &app,
            "/credits/use",
            json!({"user_id": u, "amount": 3}),
        ));
    }
    let mut held_ids = Vec::new();
    for t in tasks {
        let (status, body, _) = t.await.unwrap();
        assert!(
            status == StatusCode::CREATED
                || status == StatusCode::OK
                || status == StatusCode::BAD_REQUEST,
            "{status} {body}"
        );
        if status == StatusCode::CREATED {
            held_ids.push(body["id"].as_i64().unwrap());
        }
    }
    // Capture all holds concurrently (each for 5 of its 7) while more uses race them.
    let mut tasks = Vec::new();
    for id in &held_ids {
        tasks.push(send(
            &app,
            &format!("/credits/holds/{id}/capture"),
            json!({"user_id": u, "amount": 5}),
        ));
        tasks.push(send(
            &app,
            "/credits/use",
            json!({"user_id": u, "amount": 2}),
        ));
    }
    for t in tasks {
        let (status, body, _) = t.await.unwrap();
        assert!(
            status == StatusCode::OK || status == StatusCode::BAD_REQUEST,
            "{status} {body}"
        );
        if body.get("hold").is_some() {
            assert_eq!(body["hold"]["status"], "captured");
        }
    }
    let b = balance(&app, u).await;
    assert!(cents(&b["balance"]) >= 0, "{b}");
    assert_eq!(cents(&b["held"]), 0, "every hold captured: {b}");
    assert_ledger_exact(&app, u).await;
    ledger_verify(&app);
}

async fn two_instances_hold_on_one_account(backend: Backend) {
    let app = spawn_app(backend).await;
    let other = app.another_instance(|_| {}).await;
    let user = app.register("twohosts").await;
    grant(&app, user.id, "500").await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let url = if i % 2 == 0 {
            app.url("/credits/holds")
        } else {
            other.url("/credits/holds")
        };
        let request = app
            .client
            .post(url)
            .header("X-API-Key", KEY)
            .json(&json!({"user_id": user.id, "amount": 75, "reference_id": format!("j{i}")}));
        tasks.push(tokio::spawn(async move {
            request.send().await.unwrap().status()
        }));
    }
    let mut created = 0;
    for t in tasks {
        if t.await.unwrap() == StatusCode::CREATED {
            created += 1;
        }
    }
    assert_eq!(created, 6);
    assert_eq!(cents(&balance(&app, user.id).await["available"]), 5000);
    ledger_verify(&app);
}

async fn capture_rules(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register("capturer").await;
    let u = user.id;
    grant(&app, u, "10").await;

    // The README's example: reserve 5.00, capture 3.20, the rest comes back.
    let (status, h, replayed) = hold(&app, u, "5.00", "job").await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false), "{h}");
    assert_eq!(h["status"], "held");
    assert_eq!(cents(&h["available"]), 500);
    let id = h["id"].as_i64().unwrap();
    // Replay of the hold: 200, same hold; another amount: 409.
    let (status, again, replayed) = hold(&app, u, "5.00", "job").await;
    assert_eq!((status, replayed), (StatusCode::OK, true));
    assert_eq!(again["id"], h["id"]);
    assert_eq!(hold(&app, u, "6", "job").await.0, StatusCode::CONFLICT);

    // More than held: 400, nothing changed.
    let (status, body, _) = capture(&app, u, id, json!(5.01)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("capture_exceeds_hold"))
    );
    assert_eq!(cents(&balance(&app, u).await["held"]), 500);

    let (status, c, replayed) = capture(&app, u, id, json!("3.20")).await;
    assert_eq!((status, replayed), (StatusCode::OK, false), "{c}");
    assert_eq!(c["hold"]["status"], "captured");
    assert_eq!(cents(&c["hold"]["captured_amount"]), 320);
    assert_eq!(c["transaction"]["transaction_type"], "credit_used");
    assert_eq!(c["transaction"]["reference_id"], "job");
    assert_eq!(cents(&c["new_balance"]), 680);
    let b = balance(&app, u).await;
    assert_eq!(
        (
            cents(&b["balance"]),
            cents(&b["held"]),
            cents(&b["available"])
        ),
        (680, 0, 680)
    );

    // The same capture again: replayed; another amount: 409.
    let (status, c2, replayed) = capture(&app, u, id, json!(3.2)).await;
    assert_eq!((status, replayed), (StatusCode::OK, true));
    assert_eq!(c2["transaction"]["id"], c["transaction"]["id"]);
    assert_eq!(capture(&app, u, id, json!(3)).await.0, StatusCode::CONFLICT);
    // A captured hold cannot be released.
    assert_eq!(release(&app, u, id).await.0, StatusCode::CONFLICT);

    // Capture 0: nothing spent, no ledger row.
    let (_, h0, _) = hold(&app, u, "1", "zero").await;
    let (status, c0, _) = capture(&app, u, h0["id"].as_i64().unwrap(), json!(0)).await;
    assert_eq!(status, StatusCode::OK, "{c0}");
    assert!(c0["transaction"].is_null());
    assert_eq!(cents(&c0["new_balance"]), 680);

    // Capture all.
    let (_, ha, _) = hold(&app, u, "6.80", "all").await;
    let (status, ca, _) = capture(&app, u, ha["id"].as_i64().unwrap(), json!(6.8)).await;
    assert_eq!(status, StatusCode::OK, "{ca}");
    assert_eq!(cents(&ca["new_balance"]), 0);
    assert_ledger_exact(&app, u).await;
    ledger_verify(&app);
}

async fn release_rules(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register("releaser").await;
    let u = user.id;
    grant(&app, u, "10").await;
    let (_, h, _) = hold(&app, u, "4", "r").await;
    let id = h["id"].as_i64().unwrap();
    assert_eq!(cents(&balance(&app, u).await["available"]), 600);
    let (status, r, _) = release(&app, u, id).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["status"], "released");
    // Twice: still 200, nothing changes.
    let (status, r2, _) = release(&app, u, id).await;
    assert_eq!(
        (status, r2["status"].as_str()),
        (StatusCode::OK, Some("released"))
    );
    assert_eq!(cents(&balance(&app, u).await["available"]), 1000);
    // Capture after release: 409 hold_not_active, nothing spent.
    let (status, body, _) = capture(&app, u, id, json!(1)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("hold_not_active"))
    );
    assert_eq!(cents(&balance(&app, u).await["balance"]), 1000);
    ledger_verify(&app);
}

async fn a_hold_past_its_expiry_neither_counts_nor_captures(backend: Backend) {
    // The job is slow here: the decisions themselves must see the expiry.
    let app = spawn_app_with(backend, |v| {
        v.insert("CREDIT_EXPIRY_INTERVAL_MS".into(), "3600000".into());
    })
    .await;
    let user = app.register("expirer").await;
    let u = user.id;
    grant(&app, u, "10").await;
    let h = hold_ttl(&app, u, "10", "late", 60).await;
    let id = h["id"].as_i64().unwrap();
    assert_eq!(cents(&balance(&app, u).await["available"]), 0);
    age(&app, id).await;
    let b = balance(&app, u).await;
    assert_eq!(
        (cents(&b["held"]), cents(&b["available"])),
        (0, 1000),
        "{b}"
    );
    let (status, body, _) = capture(&app, u, id, json!(1)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("hold_not_active"))
    );
    let (status, body, _) = release(&app, u, id).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let shown = ok_json(
        app.client
            .get(app.url(&format!("/credits/holds/{id}?user_id={u}")))
            .header("X-API-Key", KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(shown["status"], "expired");
    // What it reserved can be spent.
    let (status, _, _) = post(&app, "/credits/use", json!({"user_id": u, "amount": 10})).await;
    assert_eq!(status, StatusCode::OK);
    ledger_verify(&app);
}

async fn expiry_racing_a_capture_has_one_outcome(backend: Backend) {
    let app = spawn_app_with(backend, |v| {
        v.insert("CREDIT_EXPIRY_INTERVAL_MS".into(), "50".into());
    })
    .await;
    let user = app.register("edge").await;
    let u = user.id;
    grant(&app, u, "100").await;
    for round in 0..5 {
        let h = hold_ttl(&app, u, "1", &format!("edge{round}"), 60).await;
        let id = h["id"].as_i64().unwrap();
        let aging = age(&app, id);
        let captured = capture(&app, u, id, json!(1));
        let (_, (status, body, _)) = tokio::join!(aging, captured);
        let shown = ok_json(
            app.client
                .get(app.url(&format!("/credits/holds/{id}?user_id={u}")))
                .header("X-API-Key", KEY)
                .send()
                .await
                .unwrap(),
        )
        .await;
        match status {
            StatusCode::OK => assert_eq!(shown["status"], "captured", "{body}"),
            StatusCode::CONFLICT => {
                assert_eq!(shown["status"], "expired");
                assert!(shown["transaction_id"].is_null());
            }
            other => panic!("{other}: {body}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_ledger_exact(&app, u).await;
    ledger_verify(&app);
}

async fn two_instances_expire_each_hold_once(backend: Backend) {
    let app = spawn_app_with(backend, |v| {
        v.insert("CREDIT_EXPIRY_INTERVAL_MS".into(), "50".into());
    })
    .await;
    let _other = app.another_instance(|_| {}).await;
    let user = app.register("twojobs").await;
    let u = user.id;
    grant(&app, u, "100").await;
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(
            hold_ttl(&app, u, "1", &format!("x{i}"), 60).await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    for id in &ids {
        age(&app, *id).await;
    }
    // Both instances' jobs run every 50 ms: wait until every hold is marked.
    for _ in 0..100 {
        let page = ok_json(
            app.client
                .get(app.url(&format!("/credits/holds?user_id={u}&status=expired")))
                .header("X-API-Key", KEY)
                .send()
                .await
                .unwrap(),
        )
        .await;
        if page["total_count"] == 10
            && page["holds"]
                .as_array()
                .unwrap()
                .iter()
                .all(|h| !h["settled_at"].is_null())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let audits: Vec<i64> = app
        .state
        .store
        .activities(Some(u), 0, 1000)
        .await
        .unwrap()
        .0
        .iter()
        .filter(|a| a.event == "credits_hold_expired")
        .map(|a| a.id)
        .collect();
    assert_eq!(
        audits.len(),
        10,
        "each hold expired and audited exactly once"
    );
    assert_eq!(cents(&balance(&app, u).await["available"]), 10000);
}

async fn bad_input_is_refused_and_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice_h").await;
    let bob = app.register("bob_h").await;
    grant(&app, alice.id, "10").await;
    let u = alice.id;
    for body in [
        json!({"user_id": u, "amount": 1, "reference_id": "t", "ttl_seconds": 59}),
        json!({"user_id": u, "amount": 1, "reference_id": "t", "ttl_seconds": 604801}),
        json!({"user_id": u, "amount": -1, "reference_id": "t"}),
        json!({"user_id": u, "amount": 0, "reference_id": "t"}),
        json!({"user_id": u, "amount": "1.001", "reference_id": "t"}),
        json!({"user_id": u, "amount": 1}),
        json!({"user_id": u, "amount": 1, "reference_id": ""}),
    ] {
        let (status, b, _) = post(&app, "/credits/holds", body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {b}");
        assert_eq!(b["code"], "validation_error");
    }
    let (_, h, _) = hold(&app, u, "2", "ok").await;
    let id = h["id"].as_i64().unwrap();
    for amount in [json!(-1), json!("0.001"), json!("abc")] {
        assert_eq!(
            capture(&app, u, id, amount).await.0,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
    // Bob cannot see, capture or release Alice's hold: 404; naming her user_id: 403.
    let bob_path = format!("/credits/holds/{id}");
    assert_error(
        app.get(&bob_path, Some(&bob.access)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let r = app
        .post(
            &format!("{bob_path}/capture"),
            &json!({"amount": 1}),
            Some(&bob.access),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app
        .post(
            &format!("{bob_path}/release"),
            &json!({}),
            Some(&bob.access),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app
        .post(
            "/credits/holds",
            &json!({"user_id": u, "amount": 1, "reference_id": "steal"}),
            Some(&bob.access),
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app
        .get(&format!("/credits/holds?user_id={u}"), Some(&bob.access))
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app
        .get("/credits/holds?status=bogus", Some(&bob.access))
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // A user holds their own credits: insufficient for Bob.
    let r = app
        .post(
            "/credits/holds",
            &json!({"amount": 1, "reference_id": "mine"}),
            Some(&bob.access),
        )
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "insufficient_credits").await;
    let b = balance(&app, u).await;
    assert_eq!((cents(&b["balance"]), cents(&b["held"])), (1000, 200));
    ledger_verify(&app);
}

async fn holds_are_listed_and_private(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register("lister").await;
    let u = user.id;
    grant(&app, u, "10").await;
    for i in 0..3 {
        hold(&app, u, "1", &format!("l{i}")).await;
    }
    let page = ok_json(app.get("/credits/holds?limit=2", Some(&user.access)).await).await;
    assert_eq!(page["total_count"], 3);
    let holds = page["holds"].as_array().unwrap();
    assert_eq!(holds.len(), 2);
    assert_eq!(holds[0]["reference_id"], "l2", "newest first");
    let id = holds[0]["id"].as_i64().unwrap();
    let r = app
        .post(
            &format!("/credits/holds/{id}/release"),
            &json!({}),
            Some(&user.access),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let held = ok_json(
        app.get("/credits/holds?status=held", Some(&user.access))
            .await,
    )
    .await;
    assert_eq!(held["total_count"], 2);
    let released = ok_json(
        app.get("/credits/holds?status=released", Some(&user.access))
            .await,
    )
    .await;
    assert_eq!(released["total_count"], 1);
    let b = ok_json(app.get("/credits/balance", Some(&user.access)).await).await;
    assert_eq!(cents(&b["available"]), 800);
    assert!(b["next_expiry"].is_null());
}
