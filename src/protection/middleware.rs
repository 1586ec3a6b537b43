//! The per-client-IP rate limit, applied to every request before routing.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::client_ip::client_ip;
use crate::error::AppError;
use crate::state::AppState;

/// The address the request is attributed to (after TRUSTED_PROXIES), for handlers.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

static LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
static REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
static RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

pub async fn rate_limit(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let forwarded = request
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    let ip = peer.map(|peer| client_ip(peer, forwarded, &state.config.trusted_proxies));
    if let Some(ip) = ip {
        request.extensions_mut().insert(ClientIp(ip));
    }
    // The web pages' sign-in and account-recovery forms count like the API's /auth/*.
    let path = request.uri().path();
    let auth_like = path.starts_with("/auth/")
        || matches!(
            path,
            "/login" | "/signup" | "/forgot-password" | "/reset-password"
        );
    let (bucket, limit) = if auth_like {
        ("auth", state.config.rate_limit_auth_per_minute)
    } else {
        ("default", state.config.rate_limit_default_per_minute)
    };
    // Stripe's webhook deliveries come from a few shared addresses in bursts; they are
    // authenticated by signature, not throttled per IP (DESIGN §9).
    if limit == 0 || request.uri().path() == "/webhooks/stripe" {
        return next.run(request).await;
    }
    let client = ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    let decision = state.limiter.hit(bucket, &client, limit).await;
    let mut response = if decision.allowed {
        next.run(request).await
    } else {
        crate::telemetry::metrics::rate_limited(bucket);
        AppError::TooManyRequests {
            detail: "Too many requests".into(),
            retry_after_secs: decision.reset_after_secs,
        }
        .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(LIMIT.clone(), HeaderValue::from(decision.limit));
    headers.insert(REMAINING.clone(), HeaderValue::from(decision.remaining));
    headers.insert(RESET.clone(), HeaderValue::from(decision.reset_after_secs));
    response
}
