//! `import-fastapi` trusts nothing it reads (issue 19 items 3–5): an account registered
//! here first under the original's username and email gets none of its credits; hashes
//! that are not well-formed bcrypt within the service's cost limits are refused (and, if
//! one reaches the database anyway, a login against it costs the dummy hash, never days);
//! NaN, ±1e300, NULL columns and 3 MB descriptions are skipped one by one with a reason.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sqlx::{Connection, Executor, PgConnection};

use crate::both_backends;
use crate::helpers::*;
use crate::logs::{base_env, BINARY};

both_backends!(
    pre_registered_account_is_a_conflict_not_a_merge,
    unsafe_hashes_are_refused_and_cost_no_more_than_a_dummy,
    bad_rows_are_skipped_and_reported_one_by_one,
);

/// A source database with the original's schema and `setup` run in it.
async fn source(setup: &str) -> TestDatabase {
    let db = TestDatabase::create(Backend::Postgres, std::path::Path::new(".")).await;
    let mut conn = PgConnection::connect(&db.url).await.expect("source");
    conn.execute(include_str!("../fixtures/fastapi_schema.sql"))
        .await
        .expect("fixture schema");
    conn.execute(setup).await.expect("source rows");
    db
}

fn run_import(app: &TestApp, from: &str) -> String {
    let mut env = base_env(app.dir.path());
    env.insert("DATABASE_URL".into(), app.db.url.clone());
    let out = std::process::Command::new("timeout")
        .args(["120", BINARY, "import-fastapi", "--from", from])
        .env_clear()
        .envs(&env)
        .output()
        .expect("run import");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the import must not abort: {text}");
    text
}

fn insert_user(name: &str, email: &str, hash: &str) -> String {
    format!(
        "INSERT INTO users (username, email, hashed_password, email_verified) \
         VALUES ('{name}', '{email}', '{hash}', TRUE);"
    )
}

async fn pre_registered_account_is_a_conflict_not_a_merge(backend: Backend) {
    if !Backend::Postgres.available().await {
        return;
    }
    let hash = bcrypt::hash("original password", 4).unwrap();
    let src = source(&format!(
        "{} {} INSERT INTO credits (user_id, balance) VALUES (1, 500), (2, 7); \
         INSERT INTO credit_transactions (user_id, amount, type, description) VALUES \
           (1, 500, 'add', 'the victim''s top-up'), (2, 7, 'add', 'bob''s');",
        insert_user("alice", "alice@example.com", &hash),
        insert_user("bob", "bob@example.com", &hash),
    ))
    .await;
    let app = spawn_app(backend).await;
    // Someone registers the original's username and email here before the import.
    let squatter = app.register("alice").await;

    let out = run_import(&app, &src.url);
    assert!(out.contains("users: 1 created"), "{out}");
    assert!(out.contains("conflict"), "{out}");
    let balance = ok_json(app.get("/credits/balance", Some(&squatter.access)).await).await;
    assert_eq!(
        balance["balance"], 0.0,
        "nothing merged into the squatter: {out}"
    );
    let history = ok_json(
        app.get("/credits/transactions", Some(&squatter.access))
            .await,
    )
    .await;
    assert_eq!(history["total_count"], 0, "{history}");
    assert_eq!(
        app.login_raw("alice", "original password").await.status(),
        StatusCode::UNAUTHORIZED,
        "the original's password does not open the squatter's account"
    );

    // The imported account stays "already here" on a second run, even once its hash was
    // replaced at a login (argon2id): the import's own record identifies it.
    let bob = app.login("bob", "original password").await;
    let out = run_import(&app, &src.url);
    assert!(out.contains("users: 0 created, 1 already here"), "{out}");
    assert!(out.contains("conflict"), "{out}");
    let bob_balance = ok_json(
        app.get("/credits/balance", bob["access_token"].as_str())
            .await,
    )
    .await;
    assert_eq!(bob_balance["balance"], 7.0);
}

async fn unsafe_hashes_are_refused_and_cost_no_more_than_a_dummy(backend: Backend) {
    if !Backend::Postgres.available().await {
        return;
    }
    let good = bcrypt::hash("original password", 4).unwrap();
    let body = &good[7..];
    let src = source(
        &[
            insert_user("good", "good@example.com", &good),
            insert_user("cost31", "c31@example.com", &format!("$2b$31${body}")),
            insert_user("cost15", "c15@example.com", &format!("$2b$15${body}")),
            insert_user("short", "short@example.com", "$2b$12$tooshort"),
            insert_user("other", "other@example.com", "$2x$"),
            insert_user("plain", "plain@example.com", "hunter2"),
        ]
        .concat(),
    )
    .await;
    let app = spawn_app(backend).await;
    let out = run_import(&app, &src.url);
    assert!(out.contains("users: 1 created"), "{out}");
    assert_eq!(out.matches("password hash refused").count(), 5, "{out}");
    app.login("good", "original password").await;

    // A cost-31 hash that got into the database some other way: the login answers 401
    // at once (a real cost-31 check would hold a hasher for days).
    let victim = app.register("victim").await;
    crate::oidc::exec_sql(
        &app,
        &format!(
            "UPDATE users SET password_hash = '$2b$31${body}' WHERE id = {}",
            victim.id
        ),
    )
    .await;
    let started = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(20),
        app.login_raw("victim", "original password"),
    )
    .await
    .expect("a login against a cost-31 hash must not pin the hasher");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(started.elapsed() < Duration::from_secs(20));
}

async fn bad_rows_are_skipped_and_reported_one_by_one(backend: Backend) {
    if !Backend::Postgres.available().await {
        return;
    }
    let hash = bcrypt::hash("original password", 4).unwrap();
    let huge = "x".repeat(3 * 1024 * 1024);
    let src = source(&format!(
        "ALTER TABLE users ALTER COLUMN email DROP NOT NULL; \
         ALTER TABLE users ALTER COLUMN hashed_password DROP NOT NULL; \
         ALTER TABLE credit_transactions ALTER COLUMN amount TYPE DOUBLE PRECISION; \
         {ok} {nan} {big} {neg} \
         INSERT INTO users (username, email, hashed_password) VALUES ('noemail', NULL, '{hash}'), \
           ('nohash', 'nohash@example.com', NULL); \
         INSERT INTO credits (user_id, balance) VALUES (1, 12.5), (2, 'NaN'), (3, 1e300), (4, -1e300); \
         INSERT INTO credit_transactions (user_id, amount, type, description) VALUES \
           (1, 10, 'add', 'fine'), (1, 'NaN', 'add', 'nan'), (1, 1e300, 'add', 'huge'), \
           (1, -1e300, 'use', 'huge spend'), (1, 'Infinity', 'add', 'inf'), \
           (1, 2.5, 'add', '{huge}'), (1, 2.5, 'add', 'fine too');",
        ok = insert_user("okay", "okay@example.com", &hash),
        nan = insert_user("nanbal", "nanbal@example.com", &hash),
        big = insert_user("bigbal", "bigbal@example.com", &hash),
        neg = insert_user("negbal", "negbal@example.com", &hash),
    ))
    .await;
    let app = spawn_app(backend).await;
    let out = run_import(&app, &src.url);
    assert!(out.contains("users: 4 created"), "{out}");
    assert!(out.contains("transactions: 2 written"), "{out}");
    assert_eq!(out.matches("is NULL").count(), 2, "{out}");
    assert_eq!(
        out.matches("is not a finite number within ±1e12").count(),
        7,
        "4 transactions and 3 balances: {out}"
    );
    assert!(out.contains("description of 3145728 bytes"), "{out}");
    assert!(
        !out.contains(&"x".repeat(100)),
        "the description is not printed"
    );

    let okay = app.login("okay", "original password").await;
    let token = okay["access_token"].as_str();
    let balance = ok_json(app.get("/credits/balance", token).await).await;
    assert_eq!(balance["balance"], 12.5);
    let history = ok_json(app.get("/credits/transactions", token).await).await;
    assert_eq!(
        history["total_count"], 2,
        "the two good rows (10 + 2.5): {history}"
    );
    let too_long = history["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["description"].as_str().is_some_and(|d| d.len() > 1000));
    assert!(!too_long, "{history}");
    for name in ["nanbal", "bigbal", "negbal"] {
        let user = app.login(name, "original password").await;
        let balance = ok_json(
            app.get("/credits/balance", user["access_token"].as_str())
                .await,
        )
        .await;
        assert_eq!(balance["balance"], 0.0, "{name}: {balance}");
    }
    let verify = std::process::Command::new(BINARY)
        .args(["ledger", "verify"])
        .env_clear()
        .envs({
            let mut env = base_env(app.dir.path());
            env.insert("DATABASE_URL".into(), app.db.url.clone());
            env
        })
        .output()
        .unwrap();
    assert!(verify.status.success());
}
