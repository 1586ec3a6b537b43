//! /health/live and /health/ready while the database goes away and comes back (through a
//! proxy the test controls), and /health/ready while migrations are pending.

use std::time::Duration;

use reqwest::StatusCode;

use super::proxy::{via_port, TcpProxy};
use crate::helpers::{spawn_app, spawn_app_with, Backend, TestDatabase};

async fn status(client: &reqwest::Client, url: &str) -> StatusCode {
    client.get(url).send().await.unwrap().status()
}

async fn wait_for(client: &reqwest::Client, url: &str, want: StatusCode) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if status(client, url).await == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{url} never answered {want}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_follows_the_database_and_live_does_not() {
    if !Backend::Postgres.available().await {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::create(Backend::Postgres, dir.path()).await;
    let (_, target) = via_port(&db.url, 1);
    let proxy = TcpProxy::started(&target).await;
    let (proxied, _) = via_port(&db.url, proxy.port);
    let app = spawn_app_with(Backend::Sqlite, |vars| {
        vars.insert("DATABASE_URL".into(), proxied);
    })
    .await;
    let (live, ready) = (app.url("/health/live"), app.url("/health/ready"));
    assert_eq!(status(&app.client, &live).await, StatusCode::OK);
    assert_eq!(status(&app.client, &ready).await, StatusCode::OK);

    proxy.stop().await;
    wait_for(&app.client, &ready, StatusCode::SERVICE_UNAVAILABLE).await;
    let body: serde_json::Value = app
        .client
        .get(&ready)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "unavailable", "{body}");
    assert_eq!(status(&app.client, &live).await, StatusCode::OK);
    assert_eq!(
        status(&app.client, &app.url("/health")).await,
        StatusCode::SERVICE_UNAVAILABLE
    );

    proxy.start().await;
    wait_for(&app.client, &ready, StatusCode::OK).await;
    assert_eq!(status(&app.client, &live).await, StatusCode::OK);
    drop(db);
}

async fn not_ready_while_migrations_are_pending(backend: Backend) {
    let app = spawn_app(backend).await;
    let ready = app.url("/health/ready");
    assert_eq!(status(&app.client, &ready).await, StatusCode::OK);
    app.state.store.migrate_down(1).await.unwrap();
    let response = app.client.get(&ready).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["reason"], "migrations pending", "{body}");
    assert_eq!(
        status(&app.client, &app.url("/health/live")).await,
        StatusCode::OK
    );
    app.state.store.migrate_up().await.unwrap();
    assert_eq!(status(&app.client, &ready).await, StatusCode::OK);
}

crate::both_backends!(not_ready_while_migrations_are_pending);
