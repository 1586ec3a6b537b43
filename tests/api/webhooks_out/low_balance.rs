//! `credits.low_balance` (DESIGN §16): produced once when what an account can spend goes
//! from at least CREDITS_LOW_BALANCE_THRESHOLD to below it — by uses (also committed
//! together), holds — and not while it stays below, rises, or when the setting is unset.

use std::time::Duration;

use serde_json::{json, Value};

use super::{register_endpoint, webhook_vars, Receiver};
use crate::both_backends;
use crate::helpers::*;

both_backends!(
    crossing_below_the_threshold_sends_one_event,
    no_threshold_no_event,
);

fn bodies(seen: &[Value]) -> Vec<Value> {
    seen.iter()
        .filter(|r| r["type"] == "credits.low_balance")
        .map(|r| {
            assert_eq!(r["verified_with"], json!([0]), "not verified: {r}");
            serde_json::from_str(r["body"].as_str().unwrap()).unwrap()
        })
        .collect()
}

async fn spend(app: &TestApp, user: &TestUser, amount: i64) {
    let r = app
        .post(
            "/credits/use",
            &json!({"amount": amount}),
            Some(&user.access),
        )
        .await;
    assert_eq!(r.status(), 200);
}

async fn add(app: &TestApp, admin: &TestUser, user_id: i64, amount: i64) {
    let r = app
        .post(
            "/credits/add",
            &json!({"amount": amount, "user_id": user_id}),
            Some(&admin.access),
        )
        .await;
    assert_eq!(r.status(), 200);
}

/// Every event of every type the app produced so far has been delivered: the test's
/// barrier before saying an event did not come.
async fn settled(receiver: &Receiver, app: &TestApp, admin: &TestUser, n: usize) -> Vec<Value> {
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
            r.iter()
                .filter(|x| x["type"] == "credits.transaction")
                .count()
                >= n
        })
        .await;
    seen
}

async fn crossing_below_the_threshold_sends_one_event(backend: Backend) {
    let Some(receiver) = Receiver::start("ok") else {
        return;
    };
    let app = spawn_app_with(backend, |v| {
        webhook_vars(v);
        v.insert("CREDITS_LOW_BALANCE_THRESHOLD".into(), "5".into());
    })
    .await;
    let admin = app.admin("lowadmin").await;
    register_endpoint(
        &app,
        &admin,
        &receiver,
        &["credits.low_balance", "credits.transaction"],
    )
    .await;
    let user = app.verified_user("lowuser").await;
    add(&app, &admin, user.id, 10).await;
    // Eight uses of 1 at once (group commit puts several in one transaction): 10 → 2
    // crosses 5 once, at the use that leaves 4.
    let mut spends = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (client, url, token) = (
            app.client.clone(),
            app.url("/credits/use"),
            user.access.clone(),
        );
        spends.spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"amount": 1}))
                .send()
                .await;
            r.map(|r| r.status().as_u16()).unwrap_or(0)
        });
    }
    while let Some(status) = spends.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    // Staying below, then rising: nothing.
    spend(&app, &user, 1).await;
    add(&app, &admin, user.id, 10).await; // 11
                                          // A hold takes what can be spent below again: 11 → 3.
    let r = app
        .client
        .post(app.url("/credits/holds"))
        .header("X-API-Key", crate::credits::batch_support::KEY)
        .json(&json!({"user_id": user.id, "amount": 8, "reference_id": "job-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // 1 add + 8 uses + 1 use + 1 add, then the barrier's add: 12 ledger rows.
    let seen = settled(&receiver, &app, &admin, 12).await;
    let low = bodies(&seen);
    let mut available: Vec<i64> = low
        .iter()
        .map(|b| {
            assert_eq!(b["data"]["user_id"], user.id, "{b}");
            assert_eq!(b["data"]["threshold_cents"], 500, "{b}");
            b["data"]["available_cents"].as_i64().unwrap()
        })
        .collect();
    available.sort();
    assert_eq!(available, vec![300, 400], "one event per crossing: {low:?}");
}

async fn no_threshold_no_event(backend: Backend) {
    let Some(receiver) = Receiver::start("ok") else {
        return;
    };
    let app = spawn_app_with(backend, webhook_vars).await;
    let admin = app.admin("nolowadmin").await;
    register_endpoint(&app, &admin, &receiver, &["*"]).await;
    let user = app.verified_user("noluser").await;
    add(&app, &admin, user.id, 10).await;
    spend(&app, &user, 10).await;
    let seen = settled(&receiver, &app, &admin, 3).await;
    assert!(bodies(&seen).is_empty(), "{seen:?}");
}
