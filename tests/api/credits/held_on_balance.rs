//! What holds reserve, carried on the balance row (migration 0013): the balance read trusts
//! the row until the first counted hold expires and sums the holds after that, so every
//! read stays exact; every hold change rewrites the row; `ledger verify` finds a row that
//! disagrees with the holds while reads would trust it.

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::batch_support::*;
use super::holds::{age, balance, capture, hold_ttl, ledger_verify, release};
use crate::both_backends;
use crate::helpers::*;

both_backends!(
    the_balance_row_follows_every_hold_change,
    the_expiry_job_rewrites_the_row,
    ledger_verify_finds_a_row_that_disagrees_with_the_holds,
);

fn held_and_available(b: &Value) -> (i64, i64) {
    (cents(&b["held"]), cents(&b["available"]))
}

/// `(held, held_soonest is set)` as the balance row stores them.
async fn on_row(app: &TestApp, user_id: i64) -> (i64, bool) {
    let sql = "SELECT held, held_soonest IS NOT NULL FROM credit_balances WHERE user_id = $1";
    match app.backend {
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
            sqlx::query_as(sql)
                .bind(user_id)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&app.db.url).await.unwrap();
            sqlx::query_as(sql)
                .bind(user_id)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    }
}

async fn the_balance_row_follows_every_hold_change(backend: Backend) {
    // The expiry job is slow here, so what a read shows after an expiry is its own doing.
    let app = spawn_app_with(backend, |v| {
        v.insert("CREDIT_EXPIRY_INTERVAL_MS".into(), "3600000".into());
    })
    .await;
    let u = app.register("holder").await.id;
    grant(&app, u, "100").await;
    assert_eq!(on_row(&app, u).await, (0, false));

    let soon = hold_ttl(&app, u, "10", "soon", 120).await;
    let later = hold_ttl(&app, u, "20", "later", 3600).await;
    assert_eq!(on_row(&app, u).await, (3000, true), "both holds on the row");
    assert_eq!(held_and_available(&balance(&app, u).await), (3000, 7000));

    // The first hold's expiry passes: the row is no longer trusted, the read sums.
    age(&app, soon["id"].as_i64().unwrap()).await;
    assert_eq!(held_and_available(&balance(&app, u).await), (2000, 8000));

    // The next change rewrites the row from the holds active now.
    let (status, body, _) = release(&app, u, later["id"].as_i64().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(on_row(&app, u).await, (0, false));
    assert_eq!(held_and_available(&balance(&app, u).await), (0, 10000));

    let job = hold_ttl(&app, u, "5", "job", 600).await;
    assert_eq!(held_and_available(&balance(&app, u).await), (500, 9500));
    let (status, body, _) = capture(&app, u, job["id"].as_i64().unwrap(), json!(3)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let b = balance(&app, u).await;
    assert_eq!(held_and_available(&b), (0, 9700), "{b}");
    assert_eq!(cents(&b["balance"]), 9700);
    assert_eq!(on_row(&app, u).await, (0, false));
    ledger_verify(&app);
}

async fn ledger_verify_finds_a_row_that_disagrees_with_the_holds(backend: Backend) {
    let app = spawn_app(backend).await;
    let u = app.register("drifted").await.id;
    grant(&app, u, "100").await;
    hold_ttl(&app, u, "10", "kept", 600).await;
    ledger_verify(&app);
    let sql = "UPDATE credit_balances SET held = 1 WHERE user_id = $1";
    match app.backend {
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
            sqlx::query(sql).bind(u).execute(&pool).await.unwrap();
        }
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&app.db.url).await.unwrap();
            sqlx::query(sql).bind(u).execute(&pool).await.unwrap();
        }
    }
    let out = std::process::Command::new(crate::logs::BINARY)
        .args(["ledger", "verify"])
        .env_clear()
        .envs(&app.vars)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "user {u}: balance row says holds reserve 1 cents, they reserve 1000 cents"
        )),
        "{stdout}"
    );
}

async fn the_expiry_job_rewrites_the_row(backend: Backend) {
    let app = spawn_app_with(backend, |v| {
        v.insert("CREDIT_EXPIRY_INTERVAL_MS".into(), "50".into());
    })
    .await;
    let u = app.register("expiring").await.id;
    grant(&app, u, "100").await;
    let soon = hold_ttl(&app, u, "10", "soon", 120).await;
    hold_ttl(&app, u, "20", "later", 3600).await;
    age(&app, soon["id"].as_i64().unwrap()).await;
    // Once the job has marked the hold, the row counts only the one still held.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while on_row(&app, u).await != (2000, true) && std::time::Instant::now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(on_row(&app, u).await, (2000, true));
    assert_eq!(held_and_available(&balance(&app, u).await), (2000, 8000));
    ledger_verify(&app);
}
