//! Events arrive signed, once per endpoint, through failures; rolled-back changes send none.

use std::time::Duration;

use serde_json::{json, Value};

use super::{register_endpoint, webhook_vars, Receiver};
use crate::both_backends;
use crate::helpers::{spawn_app_with, Backend, PASSWORD};

const WAIT: Duration = Duration::from_secs(15);

fn of_type<'a>(seen: &'a [Value], t: &str) -> Vec<&'a Value> {
    seen.iter().filter(|r| r["type"] == t).collect()
}

/// A registration, a verification, a purchase-like credit, a spend, a logout-all, a
/// deletion and the test event all arrive, each verified by the library with the endpoint's
/// secret; the same body with one byte changed does not verify.
async fn every_event_type_arrives_verified(backend: Backend) {
    let Some(receiver) = Receiver::start("ok") else {
        return;
    };
    let app = spawn_app_with(backend, webhook_vars).await;
    let admin = app.admin("hookadmin").await;
    let endpoint = register_endpoint(&app, &admin, &receiver, &["*"]).await;
    let user = app.verified_user("hookuser").await;
    let r = app
        .post(
            "/credits/add",
            &json!({"amount": 10, "user_id": user.id}),
            Some(&admin.access),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .post("/credits/use", &json!({"amount": 2.5}), Some(&user.access))
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .post("/auth/logout-all", &json!({}), Some(&user.access))
        .await;
    assert!(r.status().is_success(), "{}", r.status());
    let r = app
        .client
        .patch(app.url(&format!("/admin/users/{}", user.username)))
        .bearer_auth(&admin.access)
        .json(&json!({"is_active": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .client
        .delete(app.url(&format!("/auth/users/{}", user.username)))
        .bearer_auth(&admin.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .post(
            &format!("/admin/webhooks/{}/test", endpoint["id"]),
            &json!({}),
            Some(&admin.access),
        )
        .await;
    assert_eq!(r.status(), 202);
    let expected = [
        "user.created",
        "user.verified",
        "user.updated",
        "credits.transaction",
        "session.revoked",
        "user.deleted",
        "webhook.test",
    ];
    let seen = receiver
        .wait_until(WAIT, |r| {
            expected.iter().all(|t| r.iter().any(|x| x["type"] == *t))
        })
        .await;
    for t in expected {
        assert!(!of_type(&seen, t).is_empty(), "{t} never arrived: {seen:?}");
    }
    for r in &seen {
        assert_eq!(
            r["verified_with"],
            json!([0]),
            "not verified by the library: {r}"
        );
        assert_eq!(
            r["tampered_verifies"], false,
            "a tampered body verified: {r}"
        );
    }
    let credits = of_type(&seen, "credits.transaction");
    assert_eq!(credits.len(), 2, "one event per ledger row: {credits:?}");
    let bodies: Vec<Value> = credits
        .iter()
        .map(|r| serde_json::from_str(r["body"].as_str().unwrap()).unwrap())
        .collect();
    assert!(bodies.iter().any(
        |b| b["data"]["transaction_type"] == "credit_used" && b["data"]["amount_cents"] == 250
    ));
    assert!(bodies
        .iter()
        .all(|b| b["timestamp"].as_str().unwrap().ends_with('Z')));
    // The deliveries list shows them delivered.
    let list: Value = app
        .get(
            &format!(
                "/admin/webhooks/{}/deliveries?status=delivered",
                endpoint["id"]
            ),
            Some(&admin.access),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(list.as_array().unwrap().len() >= expected.len(), "{list}");
}

/// 500 three times, then 200: four attempts with one webhook-id, then no more.
async fn failing_receiver_gets_retries_with_the_same_id(backend: Backend) {
    let Some(receiver) = Receiver::start("fail:3") else {
        return;
    };
    let app = spawn_app_with(backend, webhook_vars).await;
    let admin = app.admin("retryadmin").await;
    let endpoint = register_endpoint(&app, &admin, &receiver, &["user.created"]).await;
    app.register("retryuser").await;
    let seen = receiver
        .wait_until(Duration::from_secs(20), |r| {
            of_type(r, "user.created").len() >= 4
        })
        .await;
    // Longer than the scaled schedule's next step (2 h × 0.001 = 7.2 s is not reached: 4th succeeded).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let seen_after = receiver.requests();
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert_eq!(
        seen_after.len(),
        4,
        "delivered again after success: {seen_after:?}"
    );
    assert!(seen
        .iter()
        .all(|r| r["id"] == seen[0]["id"] && r["verified_with"] == json!([0])));
    let list: Value = app
        .get(
            &format!("/admin/webhooks/{}/deliveries", endpoint["id"]),
            Some(&admin.access),
        )
        .await
        .json()
        .await
        .unwrap();
    let d = &list[0];
    assert_eq!(d["status"], "delivered", "{list}");
    assert_eq!(d["attempts"], 4);
    assert_eq!(d["last_status_code"], 200);
    assert_eq!(d["event_id"], seen[0]["id"]);
}

/// A redirect is an answer (not 2xx): not followed, retried.
async fn redirects_are_not_followed(backend: Backend) {
    let Some(receiver) = Receiver::start("redirect") else {
        return;
    };
    let app = spawn_app_with(backend, webhook_vars).await;
    let admin = app.admin("rediradmin").await;
    let endpoint = register_endpoint(&app, &admin, &receiver, &["webhook.test"]).await;
    app.post(
        &format!("/admin/webhooks/{}/test", endpoint["id"]),
        &json!({}),
        Some(&admin.access),
    )
    .await;
    let seen = receiver.wait_until(WAIT, |r| r.len() >= 2).await;
    assert!(seen.len() >= 2, "retried: {seen:?}");
    assert!(
        seen.iter().all(|r| r["path"] == "/hook"),
        "the redirect was followed: {seen:?}"
    );
    let list: Value = app
        .get(
            &format!("/admin/webhooks/{}/deliveries", endpoint["id"]),
            Some(&admin.access),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list[0]["last_status_code"], 302, "{list}");
    assert_ne!(list[0]["status"], "delivered");
}

/// Changes that roll back report nothing: a spend beyond the balance, a duplicate registration.
async fn rolled_back_changes_send_no_event(backend: Backend) {
    let Some(receiver) = Receiver::start("ok") else {
        return;
    };
    let app = spawn_app_with(backend, webhook_vars).await;
    let admin = app.admin("rbadmin").await;
    let endpoint = register_endpoint(&app, &admin, &receiver, &["*"]).await;
    let user = app.register("rbuser").await;
    let r = app
        .post("/credits/use", &json!({"amount": 5}), Some(&user.access))
        .await;
    assert_eq!(r.status(), 400);
    let r = app
        .register_raw("RBUSER", "other@example.com", PASSWORD)
        .await;
    assert_eq!(r.status(), 409);
    app.post(
        &format!("/admin/webhooks/{}/test", endpoint["id"]),
        &json!({}),
        Some(&admin.access),
    )
    .await;
    // The test event comes after the others in the queue: once it arrived, they would have.
    let seen = receiver.wait_for_type("webhook.test").await;
    assert!(of_type(&seen, "credits.transaction").is_empty(), "{seen:?}");
    assert_eq!(of_type(&seen, "user.created").len(), 1, "{seen:?}");
}

/// During a rotation both secrets sign: receivers holding either verify.
async fn rotation_signs_with_both_secrets(backend: Backend) {
    let Some(receiver) = Receiver::start("ok") else {
        return;
    };
    let app = spawn_app_with(backend, webhook_vars).await;
    let admin = app.admin("rotadmin").await;
    let endpoint = register_endpoint(&app, &admin, &receiver, &["webhook.test"]).await;
    let old = endpoint["secret"].as_str().unwrap().to_owned();
    let r = app
        .post(
            &format!("/admin/webhooks/{}/rotate-secret", endpoint["id"]),
            &json!({}),
            Some(&admin.access),
        )
        .await;
    assert_eq!(r.status(), 200);
    let new = r.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new, old);
    assert!(new.starts_with("whsec_"));
    receiver.set_secrets(&[&old, &new]);
    app.post(
        &format!("/admin/webhooks/{}/test", endpoint["id"]),
        &json!({}),
        Some(&admin.access),
    )
    .await;
    let seen = receiver.wait_for_type("webhook.test").await;
    assert_eq!(seen[0]["verified_with"], json!([0, 1]), "{seen:?}");
    assert_eq!(seen[0]["signatures"], 2);
}

/// Two instances on one database: each event reaches the endpoint once.
async fn two_instances_deliver_each_event_once(backend: Backend) {
    let Some(receiver) = Receiver::start("ok") else {
        return;
    };
    let app = spawn_app_with(backend, webhook_vars).await;
    let _second = app.another_instance(|_| {}).await;
    let admin = app.admin("twoadmin").await;
    register_endpoint(&app, &admin, &receiver, &["credits.transaction"]).await;
    for i in 0..20 {
        let r = app
            .post(
                "/credits/add",
                &json!({"amount": 1, "reference_id": format!("r{i}")}),
                Some(&admin.access),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    let seen = receiver.wait_until(WAIT, |r| r.len() >= 20).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let seen_after = receiver.requests();
    assert_eq!(seen.len(), 20, "{seen:?}");
    assert_eq!(seen_after.len(), 20);
    let mut ids: Vec<&str> = seen_after
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20, "an event was delivered twice");
}

/// A receiver that never answers is cut at the 10 s timeout and retried.
async fn hanging_receiver_is_cut_at_the_timeout(backend: Backend) {
    let Some(receiver) = Receiver::start("hang") else {
        return;
    };
    let app = spawn_app_with(backend, webhook_vars).await;
    let admin = app.admin("hangadmin").await;
    let endpoint = register_endpoint(&app, &admin, &receiver, &["webhook.test"]).await;
    let started = std::time::Instant::now();
    app.post(
        &format!("/admin/webhooks/{}/test", endpoint["id"]),
        &json!({}),
        Some(&admin.access),
    )
    .await;
    let seen = receiver
        .wait_until(Duration::from_secs(25), |r| r.len() >= 2)
        .await;
    assert!(seen.len() >= 2, "not retried after the timeout: {seen:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "cut before the 10 s timeout"
    );
    assert_eq!(seen[0]["id"], seen[1]["id"]);
    let list: Value = app
        .get(
            &format!("/admin/webhooks/{}/deliveries", endpoint["id"]),
            Some(&admin.access),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(
        list[0]["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("timed out"),
        "{list}"
    );
}

both_backends!(
    hanging_receiver_is_cut_at_the_timeout,
    every_event_type_arrives_verified,
    failing_receiver_gets_retries_with_the_same_id,
    redirects_are_not_followed,
    rolled_back_changes_send_no_event,
    rotation_signs_with_both_secrets,
    two_instances_deliver_each_event_once,
);
