//! Builds the application from a `Config`: store, state, router and layers, bound to a
//! port. `App::build` returns before serving, so callers (tests) can read the port.

mod detach;
mod headers;
mod serve;

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;

pub use headers::MAX_REQUEST_ID_LEN;
use headers::X_REQUEST_ID;

use crate::config::Config;
use crate::error::error_body;
use crate::routes;
use crate::services::mail::OutboxWorker;
use crate::state::AppState;
use crate::store;

pub const MAX_BODY_BYTES: usize = 1024 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub struct App {
    listener: TcpListener,
    router: Router,
    state: AppState,
    worker: OutboxWorker,
}

impl App {
    /// Connects to the database, applies migrations, binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let store = store::connect_and_migrate(&config)
            .await
            .context("cannot open the database")?;
        let addr = format!("{}:{}", config.host, config.port);
        let listener = TcpListener::bind(&addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let state = AppState::new(config, store).await?;
        let worker = OutboxWorker::new(
            &state.config,
            state.store.clone(),
            state.mail_wakeup.clone(),
        )?;
        let router = router(state.clone());
        tokio::spawn(crate::telemetry::metrics::sample(
            std::sync::Arc::downgrade(&state.store),
        ));
        Ok(Self {
            listener,
            router,
            state,
            worker,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until the process ends.
    pub async fn run(self) -> anyhow::Result<()> {
        self.run_until(std::future::pending()).await
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = self.listener.local_addr()?;
        // The address to open is the one mailed links and the pages' origin check use, not
        // the socket's (127.0.0.1 and localhost are different sites to a browser).
        let open = self
            .state
            .config
            .web
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://localhost:{}", addr.port()));
        tracing::info!(address = %addr, backend = self.state.store.backend(),
            "auth-service listening on http://{addr} (open {open} in a browser)");
        let worker = tokio::spawn(self.worker.run());
        let webhooks = tokio::spawn(
            crate::services::webhooks::WebhookWorker::new(
                &self.state.config,
                self.state.store.clone(),
                self.state.webhook_wakeup.clone(),
            )?
            .run(),
        );
        let pruning = tokio::spawn(crate::services::pruning::run(
            self.state.store.clone(),
            self.state.config.hardening.clone(),
        ));
        let hold_expiry = tokio::spawn(crate::services::credits::holds::run_expiry(
            self.state.store.clone(),
            self.state.config.hardening.credit_expiry_interval,
        ));
        let served = serve::serve(
            self.listener,
            self.router,
            &self.state.config.server,
            shutdown,
        )
        .await;
        worker.abort();
        webhooks.abort();
        pruning.abort();
        hold_expiry.abort();
        served.context("server error")
    }
}

pub fn router(state: AppState) -> Router {
    let cors = headers::cors_layer(&state.config.server.cors);
    let config = state.config.clone();
    let password_scheme = state.config.password_hash;
    let limiter_state = state.clone();
    let api = routes::api()
        .merge(crate::web::router(&state))
        .fallback(
            |axum::extract::State(state): axum::extract::State<AppState>,
             request: axum::extract::Request| async move {
                let (parts, _) = request.into_parts();
                crate::web::not_found_page(&state, &parts).unwrap_or_else(|| {
                    error_body(StatusCode::NOT_FOUND, "not_found", "Not Found").into_response()
                })
            },
        )
        .method_not_allowed_fallback(|| async {
            error_body(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method Not Allowed",
            )
        })
        .with_state(state);
    let router = api
        .merge(routes::docs::router(password_scheme))
        // Innermost: nothing a dropped request future cancels can hold a transaction.
        .layer(axum::middleware::from_fn(detach::run_to_completion))
        .layer(axum::middleware::map_response(errors_as_json))
        .layer(axum::middleware::from_fn_with_state(
            limiter_state,
            crate::protection::middleware::rate_limit,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            error_body(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "Internal server error",
            )
        }));
    let router = match cors {
        Some(cors) => router.layer(cors),
        None => router,
    };
    let router =
        headers::security_headers(router).layer(PropagateRequestIdLayer::new(X_REQUEST_ID.clone()));
    // The request span, HTTP metrics and access log sit inside the request-id layers, so
    // each sees the (sanitised) id.
    crate::telemetry::request_layer(router, &config)
        .layer(SetRequestIdLayer::new(
            X_REQUEST_ID.clone(),
            MakeRequestUuid,
        ))
        .layer(axum::middleware::map_request(headers::sanitize_request_id))
}

/// Errors produced outside our handlers (path rejections, timeouts, layers) get the
/// contract's JSON shape too.
async fn errors_as_json(response: Response) -> Response {
    let status = response.status();
    // JSON bodies are ours already; HTML ones are the web pages' own error pages.
    let already_shaped = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes().starts_with(b"application/json") || v.as_bytes().starts_with(b"text/html")
        });
    if !(status.is_client_error() || status.is_server_error()) || already_shaped {
        return response;
    }
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        _ if status.is_server_error() => "internal_error",
        _ => "error",
    };
    let detail = status.canonical_reason().unwrap_or("Error");
    let mut replaced = error_body(status, code, detail);
    for name in [header::WWW_AUTHENTICATE, header::RETRY_AFTER, header::ALLOW] {
        if let Some(value) = response.headers().get(&name) {
            replaced.headers_mut().insert(name, value.clone());
        }
    }
    replaced.into_response()
}
