//! Liveness and readiness in one: 200 while the database answers, 503 when it does not.

use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/health", get(health))
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
    let body = json!({
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
    let status = if database_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
