//! The outbox survives the process: events whose deliveries were still pending (being
//! retried) when the service was killed with SIGKILL are all delivered, verified, once the
//! service is started again on the same database. Those the killed process had claimed
//! wait out their claim's lease (60 s: a claim must outlast every send of its batch)
//! before the new process takes them, so this test takes over a minute.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use super::Receiver;
use crate::both_backends;
use crate::helpers::{Backend, TestDatabase};
use crate::logs::{base_env, ServerProcess, BINARY};

both_backends!(sigkill_with_deliveries_pending_delivers_all_after_restart);

const EVENTS: usize = 10;

/// webhook-ids the receiver answered 200 (attempt 3 and later: it fails the first two).
fn delivered(seen: &[Value]) -> HashSet<String> {
    seen.iter()
        .filter(|r| r["type"] == "user.created" && r["attempt"].as_u64() >= Some(3))
        .map(|r| r["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn sigkill_with_deliveries_pending_delivers_all_after_restart(backend: Backend) {
    // Every event is refused twice before it is taken: its delivery is retried (5 ms,
    // then 300 ms at this scale), so it is still pending when the process is killed.
    let Some(receiver) = Receiver::start("fail:2") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::create(backend, dir.path()).await;
    let mut env: HashMap<String, String> = base_env(dir.path());
    env.insert("DATABASE_URL".into(), db.url.clone());
    env.insert("WEBHOOK_ALLOW_PRIVATE_NETWORKS".into(), "true".into());
    env.insert("WEBHOOK_RETRY_SCALE".into(), "0.001".into());
    env.insert("WEBHOOK_POLL_MS".into(), "50".into());
    env.insert("RATE_LIMIT_AUTH_PER_MINUTE".into(), "0".into());
    env.insert("ADMIN_PASSWORD".into(), "hook-admin-password".into());
    let made = Command::new(BINARY)
        .args([
            "create-admin",
            "--username",
            "hookroot",
            "--email",
            "hookroot@example.com",
        ])
        .env_clear()
        .envs(&env)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );

    let server = ServerProcess::start(&env, dir.path()).await;
    let client = reqwest::Client::new();
    let login: Value = client
        .post(server.url("/auth/login"))
        .json(&json!({"username": "hookroot", "password": "hook-admin-password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let admin = login["access_token"]
        .as_str()
        .expect("admin signs in")
        .to_owned();
    let endpoint: Value = client
        .post(server.url("/admin/webhooks"))
        .bearer_auth(&admin)
        .json(&json!({"url": receiver.url, "events": ["user.created"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    receiver.set_secrets(&[endpoint["secret"].as_str().expect("secret shown")]);
    for i in 0..EVENTS {
        let r = client
            .post(server.url("/auth/register"))
            .json(
                &json!({"username": format!("hooked{i}"), "email": format!("hooked{i}@example.com"),
                "password": "a long enough password"}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let killed = Command::new("kill")
        .args(["-9", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let before = delivered(&receiver.requests());
    assert!(
        before.len() < EVENTS,
        "every delivery finished before the kill: the test proved nothing"
    );
    drop(server);

    let server = ServerProcess::start(&env, dir.path()).await;
    let seen = receiver
        .wait_until(Duration::from_secs(100), |r| delivered(r).len() >= EVENTS)
        .await;
    let after = delivered(&seen);
    assert_eq!(
        after.len(),
        EVENTS,
        "{} of {EVENTS} delivered after the restart",
        after.len()
    );
    for r in seen.iter().filter(|r| r["type"] == "user.created") {
        assert_eq!(r["verified_with"], json!([0]), "not verified: {r}");
    }
    let deliveries: Value = client
        .get(server.url(&format!(
            "/admin/webhooks/{}/deliveries?status=delivered",
            endpoint["id"]
        )))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let shown = deliveries["items"]
        .as_array()
        .or_else(|| deliveries.as_array())
        .map_or(0, Vec::len);
    assert!(
        shown >= EVENTS,
        "deliveries not shown delivered: {deliveries}"
    );
    drop(server);
    drop(db);
}
