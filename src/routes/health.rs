//! `/health`: the database and Redis state in one answer (200 while the database answers).
//! `/health/live`: the process answers (no dependency checked, so a database outage does
//! not get every instance restarted). `/health/ready`: the database answers and its schema
//! is fully migrated; a load balancer or Kubernetes sends traffic only while it is 200.

use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
}

/// The shape of the /health answer (built with `json!` below; this type documents it).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct HealthReport {
    /// `ok`, or `unavailable` when the database does not answer.
    #[schema(example = "ok")]
    status: String,
    version: String,
    checks: HealthChecks,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct HealthChecks {
    database: DatabaseCheck,
    redis: RedisCheck,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct DatabaseCheck {
    /// `ok` or `error`.
    status: String,
    /// `postgres` or `sqlite`.
    backend: String,
    latency_ms: f64,
    /// `host:port` writes go to, when DATABASE_URL lists several hosts (failover).
    #[schema(example = "127.0.0.1:55433")]
    primary: Option<String>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct RedisCheck {
    /// `disabled` (no REDIS_URL), `ok` or `degraded` (falling back to in-process counters).
    status: String,
}

#[utoipa::path(get, path = "/health", tag = "health",
    responses(
        (status = 200, description = "Serving", body = HealthReport),
        (status = 503, description = "Database unreachable", body = HealthReport),
    ))]
async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let started = Instant::now();
    let database =
        tokio::time::timeout(std::time::Duration::from_secs(2), state.store.ping()).await;
    let latency_ms = (started.elapsed().as_secs_f64() * 1000.0 * 100.0).round() / 100.0;
    let database_ok = matches!(database, Ok(Ok(())));
    let redis = state.limiter.redis_status().await;
    let primary = state.store.primary_host();
    let mut body = json!({
        "status": if database_ok { "ok" } else { "unavailable" },
        "version": env!("CARGO_PKG_VERSION"),
        "checks": {
            "database": {
                "status": if database_ok { "ok" } else { "error" },
                "backend": state.store.backend(),
                "latency_ms": latency_ms,
            },
            "redis": { "status": redis },
        },
    });
    if let Some(primary) = primary {
        body["checks"]["database"]["primary"] = json!(primary);
    }
    let providers = state.identity.all();
    if !providers.is_empty() {
        // Not discovered yet (or not reachable): degraded, retried in the background;
        // still 200, since every other sign-in method works.
        let oidc: serde_json::Map<String, Value> = providers
            .iter()
            .map(|p| {
                let status = if p.is_discovered() { "ok" } else { "degraded" };
                (p.config.name.clone(), json!({ "status": status }))
            })
            .collect();
        body["checks"]["oidc"] = Value::Object(oidc);
    }
    let status = if database_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// How long a probe waits for the database before answering 503.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, description = "The process answers")))]
async fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "Database reachable and migrated"),
        (status = 503, description = "Database unreachable or migrations pending"),
    ))]
async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let check = async {
        state
            .store
            .ping()
            .await
            .map_err(|_| "database unreachable")?;
        let migrations = state
            .store
            .migration_status()
            .await
            .map_err(|_| "database unreachable")?;
        if migrations.iter().all(|m| m.applied) {
            Ok(())
        } else {
            Err("migrations pending")
        }
    };
    let outcome = tokio::time::timeout(PROBE_TIMEOUT, check)
        .await
        .unwrap_or(Err("database unreachable"));
    match outcome {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ok" }))),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "reason": reason })),
        ),
    }
}
