//! The per-request observability layer: the request span (the parent of everything a
//! request logs, linked to an incoming W3C traceparent when traces are exported), the
//! HTTP metrics, and the access log line.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use ipnet::IpNet;
use tracing::Instrument;

use super::metrics;
use crate::config::Config;
use crate::protection::client_ip::client_ip;

/// The route label of requests no route matched: one series however many paths are tried.
pub const UNMATCHED_ROUTE: &str = "unmatched";
/// Longest request id copied into logs (a client may send its own).
const MAX_REQUEST_ID_CHARS: usize = 128;

/// Set by the authentication extractor, read by the access log: the user a request acted
/// as, when it was authenticated.
#[derive(Debug, Clone, Default)]
pub struct RequestUser(Arc<OnceLock<i64>>);

impl RequestUser {
    pub fn set(&self, user_id: i64) {
        let _ = self.0.set(user_id);
    }

    fn get(&self) -> Option<i64> {
        self.0.get().copied()
    }
}

#[derive(Clone)]
struct Observe {
    access_log: bool,
    trusted_proxies: Arc<Vec<IpNet>>,
}

/// Adds the observability layer to `router`. Routes are matched before the layer runs
/// (axum applies `Router::layer` per route), so the route template is known here.
pub fn layer(router: Router, config: &Config) -> Router {
    let observe = Observe {
        access_log: config.ops.access_log,
        trusted_proxies: Arc::new(config.trusted_proxies.clone()),
    };
    router.layer(axum::middleware::from_fn_with_state(
        observe,
        observe_request,
    ))
}

async fn observe_request(
    State(observe): State<Observe>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| UNMATCHED_ROUTE.to_owned());
    let request_id: String = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .chars()
        .take(MAX_REQUEST_ID_CHARS)
        .collect();
    let client = client_address(&request, &observe.trusted_proxies);
    let user = RequestUser::default();
    request.extensions_mut().insert(user.clone());

    // The path only: query strings can carry secrets (`?password=`, `?token=`), headers too.
    let span = tracing::info_span!(
        "request",
        method = %method,
        path = %request.uri().path(),
        route = %route,
        request_id = %request_id,
        otel.kind = "server",
        otel.name = format!("{method} {route}"),
        http.response.status_code = tracing::field::Empty,
    );
    super::otel::link_to_incoming_trace(&span, request.headers());
    let response = next.run(request).instrument(span.clone()).await;

    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    metrics::http_request(&method, &route, status, elapsed);
    if observe.access_log {
        let latency_ms = (elapsed.as_secs_f64() * 1000.0 * 100.0).round() / 100.0;
        let client_ip = client.map(|ip| ip.to_string()).unwrap_or_default();
        let _entered = span.enter();
        match user.get() {
            Some(user_id) => tracing::info!(
                target: "access",
                method = %method, route = %route, status, latency_ms, client_ip = %client_ip, request_id = %request_id,
                user_id, "request completed"
            ),
            None => tracing::info!(
                target: "access",
                method = %method, route = %route, status, latency_ms, client_ip = %client_ip, request_id = %request_id,
                "request completed"
            ),
        }
    }
    response
}

fn client_address(request: &Request, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())?;
    let forwarded = request
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    Some(client_ip(peer, forwarded, trusted))
}
