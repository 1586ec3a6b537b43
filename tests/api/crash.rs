//! A process killed with SIGKILL in the middle of a spending burst on one hot account
//! (changes committed in batches) loses no answered write.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::credits::batch_support::{assert_unbroken_chain, cents, ledger_rows};
use crate::helpers::*;

both_backends!(
    sigkill_during_spending_burst_loses_no_answered_use,
    ledger_verify_names_broken_accounts
);

const KEY: &str = "crash-test-key";

fn binary(db_url: &str, dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_auth-service"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", db_url)
        .env("DATA_DIR", dir)
        .env("SECRET_KEY", "crash-test-secret-key-0123456789abcdef")
        .env("PORT", "0")
        .env("PASSWORD_HASH", "bcrypt")
        .env("BCRYPT_COST", "4")
        .env("INTERNAL_API_KEYS", KEY)
        // The burst must still be going when the process is killed: no per-IP limit.
        .env("RATE_LIMIT_DEFAULT_PER_MINUTE", "0")
        .env("LOG_LEVEL", "warn");
    cmd
}

/// Starts the server and returns it with its base URL, read from its "listening on" line.
fn start_server(db_url: &str, dir: &std::path::Path) -> (Child, String) {
    let mut child = binary(db_url, dir)
        .env("LOG_LEVEL", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the binary");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let addr: String = rest
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '"')
                    .collect();
                let _ = tx.send(format!("http://{addr}"));
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server printed its address");
    (child, url)
}

async fn sigkill_during_spending_burst_loses_no_answered_use(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::create(backend, dir.path()).await;
    let client = reqwest::Client::new();

    let (mut server, url) = start_server(&db.url, dir.path());
    let registered: Value = client
        .post(format!("{url}/auth/register"))
        .json(&json!({"username": "spender", "email": "spender@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = registered["access_token"].as_str().unwrap().to_owned();
    let me: Value = client
        .get(format!("{url}/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user_id = me["id"].as_i64().unwrap();
    let r = client
        .post(format!("{url}/credits/add"))
        .header("X-API-Key", KEY)
        .json(&json!({"user_id": user_id, "amount": 1000}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // 64 clients spend in a loop (most requests wait behind a commit in flight and go in
    // the next batch); each remembers the transactions it was answered 200 for, with the
    // balance it was told.
    let mut spenders = Vec::new();
    for _ in 0..64 {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        spenders.push(tokio::spawn(async move {
            let mut answered = Vec::new();
            for _ in 0..10_000 {
                let sent = client
                    .post(format!("{url}/credits/use"))
                    .bearer_auth(&token)
                    .json(&json!({"amount": 0.01}))
                    .send();
                let Ok(Ok(response)) = tokio::time::timeout(Duration::from_secs(5), sent).await
                else {
                    break;
                };
                if response.status() != StatusCode::OK {
                    break;
                }
                let Ok(body) = response.json::<Value>().await else {
                    break;
                };
                answered.push((body["id"].as_i64().unwrap(), cents(&body["new_balance"])));
            }
            answered
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.kill().expect("SIGKILL the server");
    let _ = server.wait();
    let mut answered = Vec::new();
    for spender in spenders {
        answered.extend(spender.await.unwrap());
    }
    assert!(answered.len() > 64, "the burst got going before the kill");

    // Restart on the same database: every answered use is in the ledger, as answered.
    let (mut server, url) = start_server(&db.url, dir.path());
    let rows = ledger_rows(&client, &url, KEY, user_id).await;
    let ledger: std::collections::HashMap<i64, i64> = rows
        .iter()
        .map(|t| (t["id"].as_i64().unwrap(), cents(&t["new_balance"])))
        .collect();
    let missing: Vec<_> = answered
        .iter()
        .filter(|(id, balance)| ledger.get(id) != Some(balance))
        .collect();
    assert!(
        missing.is_empty(),
        "answered uses missing (or different) after the crash: {missing:?}"
    );
    let end = assert_unbroken_chain(&rows);
    let balance: Value = client
        .get(format!("{url}/credits/balance?user_id={user_id}"))
        .header("X-API-Key", KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let uses_in_ledger = rows.len() as i64 - 1;
    let expected_cents = 1000 * 100 - uses_in_ledger;
    assert_eq!(cents(&balance["balance"]), expected_cents);
    assert_eq!(end, expected_cents);
    server.kill().unwrap();
    let _ = server.wait();

    let verify = binary(&db.url, dir.path())
        .args(["ledger", "verify"])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "ledger verify: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

async fn ledger_verify_names_broken_accounts(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register("tampered").await;
    let r = app
        .client
        .post(app.url("/credits/add"))
        .header("X-API-Key", "internal-key-one")
        .json(&json!({"user_id": user.id, "amount": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let ok = binary(&app.db.url, app.dir.path())
        .args(["ledger", "verify"])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );

    // Change a balance behind the ledger's back.
    let tamper = "UPDATE credit_balances SET balance = balance + 1";
    match backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&app.db.url).await.unwrap();
            sqlx::query(tamper).execute(&pool).await.unwrap();
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
            sqlx::query(tamper).execute(&pool).await.unwrap();
        }
    }
    let broken = binary(&app.db.url, app.dir.path())
        .args(["ledger", "verify"])
        .output()
        .unwrap();
    assert!(!broken.status.success());
    let report = String::from_utf8_lossy(&broken.stdout);
    assert!(report.contains(&format!("user {}", user.id)), "{report}");
}
