//! A multi-host DATABASE_URL (libpq style) against the test server: the host that does
//! not answer is skipped, /health names the primary, a server that turns read-only is
//! answered 503 (never 500) and the service writes again when it is writable, without a
//! restart.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection};

use crate::helpers::*;

/// `postgres://user@HOST:PORT/db` → the same database behind `extra_host` first.
fn with_hosts_before(url: &str, extra_host: &str) -> String {
    let (scheme_user, rest) = url.split_once('@').expect("test URL names a user");
    let rest = rest.split('?').next().unwrap_or(rest);
    format!("{scheme_user}@{extra_host},{rest}?target_session_attrs=read-write")
}

fn host_of(url: &str) -> String {
    let rest = url.split_once('@').map(|(_, r)| r).unwrap_or(url);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// A port on loopback where nothing listens.
fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

async fn set_read_only(db_url: &str, name: &str, on: bool) {
    let mut conn = PgConnection::connect(&test_database_server())
        .await
        .unwrap();
    let value = if on { "on" } else { "off" };
    conn.execute(
        format!(r#"ALTER DATABASE "{name}" SET default_transaction_read_only = {value}"#).as_str(),
    )
    .await
    .unwrap();
    // Sessions keep the setting they started with: end them, as a demotion would.
    conn.execute(
        format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        )
        .as_str(),
    )
    .await
    .unwrap();
    let _ = db_url;
}

fn database_name(url: &str) -> String {
    url.rsplit('/').next().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_host_is_skipped_and_health_names_the_primary() {
    if !Backend::Postgres.available().await {
        return;
    }
    let dead = format!("127.0.0.1:{}", dead_port());
    let app = spawn_app_with(Backend::Postgres, |vars| {
        let url = vars["DATABASE_URL"].clone();
        vars.insert("DATABASE_URL".into(), with_hosts_before(&url, &dead));
    })
    .await;
    let health = ok_json(app.get("/health", None).await).await;
    assert_eq!(
        health["checks"]["database"]["primary"],
        json!(host_of(&app.db.url)),
        "{health}"
    );
    let user = app.register("multihost").await;
    assert_eq!(me_status(&app, &user.access).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_read_only_hosts_is_a_startup_error_naming_them() {
    if !Backend::Postgres.available().await {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::create(Backend::Postgres, dir.path()).await;
    set_read_only(&db.url, &database_name(&db.url), true).await;
    let dead = format!("127.0.0.1:{}", dead_port());
    let url = with_hosts_before(&db.url, &dead).replacen("://postgres@", "://postgres:hunter2@", 1);
    let mut vars = base_vars(&url, dir.path(), 2525);
    vars.insert("DATABASE_CONNECT_TIMEOUT_SECONDS".into(), "1".into());
    let config = auth_service::config::Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let error = match auth_service::app::App::build(config).await {
        Ok(_) => panic!("started without a writable host"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains(&dead), "{error}");
    assert!(error.contains(&host_of(&db.url)), "{error}");
    assert!(error.contains("read-only"), "{error}");
    assert!(!error.contains("hunter2"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_turned_read_only_is_503_then_writes_resume_without_restart() {
    if !Backend::Postgres.available().await {
        return;
    }
    let dead = format!("127.0.0.1:{}", dead_port());
    let app = spawn_app_with(Backend::Postgres, |vars| {
        let url = vars["DATABASE_URL"].clone();
        vars.insert("DATABASE_URL".into(), with_hosts_before(&url, &dead));
    })
    .await;
    let user = app.register("demoted").await;
    let name = database_name(&app.db.url);

    set_read_only(&app.db.url, &name, true).await;
    for i in 0..3 {
        let r = app
            .post_internal_add(user.id, &format!("while-read-only-{i}"))
            .await;
        let status = r.status();
        assert!(
            status == StatusCode::OK || status == StatusCode::SERVICE_UNAVAILABLE,
            "{status}"
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(r.headers().contains_key("retry-after"));
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["code"], "service_unavailable", "{body}");
        }
    }
    // target_session_attrs=read-write: no connection to a read-only server at all, so
    // reads wait for the primary too — answered 503, never 500.
    let status = me_status(&app, &user.access).await;
    assert!(
        status == StatusCode::OK || status == StatusCode::SERVICE_UNAVAILABLE,
        "{status}"
    );

    set_read_only(&app.db.url, &name, false).await;
    let started = Instant::now();
    loop {
        let r = app.post_internal_add(user.id, "after-promotion").await;
        match r.status() {
            StatusCode::OK => break,
            StatusCode::SERVICE_UNAVAILABLE => {}
            other => panic!("{other}: {}", r.text().await.unwrap()),
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "writes did not resume"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl TestApp {
    async fn post_internal_add(&self, user_id: i64, reference: &str) -> reqwest::Response {
        self.client
            .post(self.url("/credits/add"))
            .header("X-API-Key", "internal-key-one")
            .json(&json!({"user_id": user_id, "amount": 1, "reference_id": reference}))
            .send()
            .await
            .unwrap()
    }
}
