//! Start-up against PostgreSQL that is late, absent, or empty and shared by three
//! instances starting at once. The real binary, as an orchestrator would run it.

use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use sqlx::{Connection, PgConnection};

use super::proxy::{via_port, TcpProxy};
use crate::helpers::{Backend, TestDatabase};
use crate::logs::{base_env, strip_ansi, ServerProcess, BINARY};

/// Runs the binary, which must exit non-zero within `within`: what it printed, colours removed.
async fn run_to_failure(
    env: std::collections::HashMap<String, String>,
    dir: tempfile::TempDir,
    within: Duration,
) -> String {
    let output = tokio::task::spawn_blocking(move || {
        Command::new(BINARY)
            .env_clear()
            .envs(&env)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    });
    let output = tokio::time::timeout(within, output)
        .await
        .expect("the binary gave up within the timeout")
        .unwrap();
    assert!(!output.status.success(), "exit status {:?}", output.status);
    strip_ansi(&format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_for_a_database_that_appears_after_five_seconds() {
    if !Backend::Postgres.available().await {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::create(Backend::Postgres, dir.path()).await;
    let (_, target) = via_port(&db.url, 1);
    let proxy = TcpProxy::reserve(&target).await;
    let (proxied, _) = via_port(&db.url, proxy.port);
    let mut env = base_env(dir.path());
    env.insert("DATABASE_URL".into(), proxied);
    env.insert("DATABASE_CONNECT_TIMEOUT_SECONDS".into(), "25".into());
    let late = async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        proxy.start().await;
    };
    let (server, ()) = tokio::join!(ServerProcess::start(&env, dir.path()), late);
    let ready = reqwest::get(server.url("/health/ready")).await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let output = strip_ansi(&server.output());
    assert!(
        output.contains("database not reachable yet")
            && output.contains(&format!("127.0.0.1:{}", proxy.port)),
        "each try is logged with the host:\n{output}"
    );
    drop(server);
    drop(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gives_up_naming_the_host_but_never_the_password() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on (bound, then released).
    let port = TcpProxy::reserve("127.0.0.1:1").await.port;
    let mut env = base_env(dir.path());
    env.insert(
        "DATABASE_URL".into(),
        format!("postgres://auth:pw-Sup3rSecret@127.0.0.1:{port}/auth"),
    );
    env.insert("DATABASE_CONNECT_TIMEOUT_SECONDS".into(), "2".into());
    let text = run_to_failure(env, dir, Duration::from_secs(60)).await;
    assert!(
        text.contains(&format!("127.0.0.1:{port}")),
        "host not named:\n{text}"
    );
    assert!(
        text.contains("database not reachable yet"),
        "tries not logged:\n{text}"
    );
    assert!(
        !text.contains("pw-Sup3rSecret"),
        "password printed:\n{text}"
    );
}

/// A server that is up and refuses (here: no such database) is not waited for: the binary
/// stops at once, saying why once, instead of retrying for the whole timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_database_is_not_retried_and_said_once() {
    if !Backend::Postgres.available().await {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = crate::helpers::test_database_server();
    let base = server
        .trim_end_matches('/')
        .rsplit_once('/')
        .map_or(server.clone(), |(base, _)| base.to_owned());
    let mut env = base_env(dir.path());
    env.insert(
        "DATABASE_URL".into(),
        format!("{base}/no_such_database_{}", uuid::Uuid::new_v4().simple()),
    );
    env.insert("DATABASE_CONNECT_TIMEOUT_SECONDS".into(), "60".into());
    let started = std::time::Instant::now();
    let text = run_to_failure(env, dir, Duration::from_secs(50)).await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "retried for {:?}",
        started.elapsed()
    );
    assert!(!text.contains("not reachable yet"), "retried:\n{text}");
    assert_eq!(
        text.matches("does not exist").count(),
        1,
        "the cause once:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_on_an_empty_database_migrate_it_once_and_all_serve() {
    if !Backend::Postgres.available().await {
        return;
    }
    let db_dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::create(Backend::Postgres, db_dir.path()).await;
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let envs: Vec<_> = dirs
        .iter()
        .map(|dir| {
            let mut env = base_env(dir.path());
            env.insert("DATABASE_URL".into(), db.url.clone());
            env
        })
        .collect();
    let (a, b, c) = tokio::join!(
        ServerProcess::start(&envs[0], dirs[0].path()),
        ServerProcess::start(&envs[1], dirs[1].path()),
        ServerProcess::start(&envs[2], dirs[2].path()),
    );
    for server in [&a, &b, &c] {
        let ready = reqwest::get(server.url("/health/ready")).await.unwrap();
        assert_eq!(ready.status(), StatusCode::OK);
    }
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    let (rows, distinct): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(DISTINCT version) FROM _sqlx_migrations WHERE success",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let expected = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".up.sql")
        })
        .count() as i64;
    assert_eq!((rows, distinct), (expected, expected));
    // One instance's registration is visible to the others: one schema, shared.
    let client = reqwest::Client::new();
    let registered = client
        .post(a.url("/auth/register"))
        .json(&serde_json::json!({"username": "trio", "email": "trio@example.com", "password": crate::helpers::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), StatusCode::CREATED);
    let login = client
        .post(c.url("/auth/login"))
        .form(&[("username", "trio"), ("password", crate::helpers::PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    drop((a, b, c));
    conn.close().await.ok();
    drop(db);
}
