//! `auth-service import-fastapi --from URL`, against a PostgreSQL database built from
//! tests/fixtures/fastapi_schema.sql, into both backends: users log in with their original
//! bcrypt passwords, balances equal the original's, `ledger verify` passes, and a second
//! run changes nothing.

use std::process::{Command, Stdio};

use reqwest::StatusCode;
use sqlx::{Connection, Executor, PgConnection};

use crate::both_backends;
use crate::helpers::*;
use crate::logs::{base_env, BINARY};

both_backends!(imports_the_original_users_and_credits);

/// A source database with the original's tables and a few accounts, dropped at the end.
async fn source_database() -> TestDatabase {
    let db = TestDatabase::create(Backend::Postgres, std::path::Path::new(".")).await;
    let mut conn = PgConnection::connect(&db.url)
        .await
        .expect("source database");
    conn.execute(include_str!("../fixtures/fastapi_schema.sql"))
        .await
        .expect("fixture schema");
    let hash = bcrypt::hash("original password", 4).unwrap();
    for (username, email, active, verified, admin) in [
        ("alice", "alice@example.com", true, true, false),
        ("bob", "bob@example.com", true, false, true),
        ("carol", "carol@example.com", false, true, false),
        ("not valid!", "weird@example.com", true, true, false),
        ("alice2", "ALICE@example.com", true, true, false),
    ] {
        sqlx::query(
            "INSERT INTO users (username, email, hashed_password, is_active, email_verified, is_superuser) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(username)
        .bind(email)
        .bind(&hash)
        .bind(active)
        .bind(verified)
        .bind(admin)
        .execute(&mut conn)
        .await
        .unwrap();
    }
    // alice: 10.50 in, 0.1 + 0.2 out, balance 10.20 (stored as a float).
    conn.execute(
        "INSERT INTO credit_transactions (user_id, amount, type, description) VALUES \
           (1, 10.50, 'add', 'top-up'), (1, 0.10, 'use', 'job'), (1, 0.20, 'use', 'job'); \
         INSERT INTO credits (user_id, balance) VALUES (1, 10.2), (2, 5);",
    )
    .await
    .unwrap();
    db
}

fn import(env: &std::collections::HashMap<String, String>, from: &str) -> (bool, String, String) {
    let out = Command::new("timeout")
        .args(["120", BINARY, "import-fastapi", "--from", from])
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .output()
        .expect("run import");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn imports_the_original_users_and_credits(backend: Backend) {
    if !Backend::Postgres.available().await {
        return;
    }
    let source = source_database().await;
    let app = spawn_app(backend).await;
    let mut env = base_env(app.dir.path());
    env.insert("DATABASE_URL".into(), app.db.url.clone());

    let (ok, out, err) = import(&env, &source.url);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("users: 3 created"), "{out}");
    assert!(out.contains("invalid username"), "{out}");
    assert!(out.contains("duplicate email"), "{out}");

    // The original bcrypt password works; flags came along.
    let tokens = app.login("alice", "original password").await;
    let token = tokens["access_token"].as_str().unwrap();
    let me = ok_json(app.get("/auth/me", Some(token)).await).await;
    assert_eq!(me["is_verified"], true);
    let balance = ok_json(app.get("/credits/balance", Some(token)).await).await;
    assert_eq!(balance["balance"], 10.2);
    let history = ok_json(app.get("/credits/transactions", Some(token)).await).await;
    assert_eq!(history["total_count"], 3, "{history}");
    let bob = app.login("bob", "original password").await;
    let bob_me = ok_json(app.get("/auth/me", bob["access_token"].as_str()).await).await;
    assert_eq!(
        (bob_me["is_admin"].clone(), bob_me["is_verified"].clone()),
        (true.into(), false.into())
    );
    let bob_balance = ok_json(
        app.get("/credits/balance", bob["access_token"].as_str())
            .await,
    )
    .await;
    assert_eq!(bob_balance["balance"], 5.0);
    // carol was inactive in the original: still refused.
    assert_eq!(
        app.login_raw("carol", "original password").await.status(),
        StatusCode::FORBIDDEN
    );

    // A second run changes nothing.
    let (ok, out, err) = import(&env, &source.url);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("users: 0 created, 3 already here; transactions: 0 written, 3 already here; balances adjusted: 0"), "{out}");
    let again = ok_json(app.get("/credits/transactions", Some(token)).await).await;
    assert_eq!(again["total_count"], 3);

    let verify = Command::new(BINARY)
        .args(["ledger", "verify"])
        .env_clear()
        .envs(&env)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}
