//! Prometheus metrics (DESIGN §12). One registry per process, reached through the small
//! recording functions below, so services record an event with one call and never see
//! the registry. Label values are always from a closed set (route templates, outcomes the
//! code names): a client cannot make the number of series grow.

use std::sync::{Arc, LazyLock, Weak};
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::store::Store;

/// Seconds; from a cached lookup (~1 ms) to a password hash under load (seconds).
const DURATION_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often the outbox depth and pool state are read (not per scrape).
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    logins: IntCounterVec,
    credit_operations: IntCounterVec,
    mail_outbox_pending: IntGauge,
    mail_sent: IntCounterVec,
    rate_limited: IntCounterVec,
    stripe_events: IntCounterVec,
    db_pool: IntGaugeVec,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    registry
        .register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let registry = Registry::new();
    let http_duration = HistogramVec::new(
        HistogramOpts::new(
            "http_request_duration_seconds",
            "Time from request to response, by route template.",
        )
        .buckets(DURATION_BUCKETS.to_vec()),
        &["route"],
    )
    .expect("valid metric definition");
    registry
        .register(Box::new(http_duration.clone()))
        .expect("metric registered once");
    let mail_outbox_pending = IntGauge::new(
        "mail_outbox_pending",
        "Messages in the outbox not sent yet (sampled).",
    )
    .expect("valid metric definition");
    registry
        .register(Box::new(mail_outbox_pending.clone()))
        .expect("metric registered once");
    let db_pool = IntGaugeVec::new(
        Opts::new(
            "db_pool_connections",
            "Database pool connections by state (sampled).",
        ),
        &["state"],
    )
    .expect("valid metric definition");
    registry
        .register(Box::new(db_pool.clone()))
        .expect("metric registered once");
    let build_info = IntGaugeVec::new(
        Opts::new("build_info", "Always 1; the version is the label."),
        &["version"],
    )
    .expect("valid metric definition");
    registry
        .register(Box::new(build_info.clone()))
        .expect("metric registered once");
    build_info
        .with_label_values(&[env!("CARGO_PKG_VERSION")])
        .set(1);
    let metrics = Metrics {
        http_requests: counter(
            &registry,
            "http_requests_total",
            "Requests answered, by method, route template and status.",
            &["method", "route", "status"],
        ),
        logins: counter(
            &registry,
            "logins_total",
            "Login attempts by outcome.",
            &["outcome"],
        ),
        credit_operations: counter(
            &registry,
            "credit_operations_total",
            "Credit changes by type and outcome.",
            &["type", "outcome"],
        ),
        mail_sent: counter(
            &registry,
            "mail_sent_total",
            "Delivery attempts from the outbox by outcome.",
            &["outcome"],
        ),
        rate_limited: counter(
            &registry,
            "rate_limited_total",
            "Requests refused by a rate limit, by bucket.",
            &["bucket"],
        ),
        stripe_events: counter(
            &registry,
            "stripe_events_total",
            "Stripe webhook events by type and outcome.",
            &["type", "outcome"],
        ),
        http_duration,
        mail_outbox_pending,
        db_pool,
        registry,
    };
    zero_known_series(&metrics);
    metrics
});

/// Every series of a closed label set exists from the start at 0, so a dashboard or an
/// alert on `rate(...)` sees "none yet" instead of "no data" before the first event.
fn zero_known_series(m: &Metrics) {
    for outcome in LOGIN_OUTCOMES {
        m.logins.with_label_values(&[outcome]);
    }
    for kind in ["credit_added", "credit_used"] {
        for outcome in CREDIT_OUTCOMES {
            m.credit_operations.with_label_values(&[kind, outcome]);
        }
    }
    for outcome in ["sent", "failed"] {
        m.mail_sent.with_label_values(&[outcome]);
    }
    for bucket in ["auth", "default", "login"] {
        m.rate_limited.with_label_values(&[bucket]);
    }
    for outcome in [
        "applied",
        "duplicate",
        "ignored",
        "invalid_signature",
        "error",
    ] {
        m.stripe_events.with_label_values(&["other", outcome]);
    }
}

const LOGIN_OUTCOMES: [&str; 5] = [
    "success",
    "invalid_credentials",
    "throttled",
    "disabled",
    "error",
];
const CREDIT_OUTCOMES: [&str; 7] = [
    "success",
    "replayed",
    "insufficient",
    "conflict",
    "not_found",
    "invalid",
    "error",
];

/// The method label: the standard methods by name, anything else as "OTHER".
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// One answered request. `route` is the matched template ("/auth/users/{username}") or
/// "unmatched", never the raw path.
pub fn http_request(method: &axum::http::Method, route: &str, status: u16, elapsed: Duration) {
    let m = &*METRICS;
    m.http_requests
        .with_label_values(&[method_label(method), route, &status.to_string()])
        .inc();
    m.http_duration
        .with_label_values(&[route])
        .observe(elapsed.as_secs_f64());
}

/// A login attempt: one of `LOGIN_OUTCOMES`.
pub fn login(outcome: &str) {
    METRICS.logins.with_label_values(&[outcome]).inc();
}

/// A credit change: `kind` "credit_added" / "credit_used"; outcome one of `CREDIT_OUTCOMES`.
pub fn credit_operation(kind: &str, outcome: &str) {
    METRICS
        .credit_operations
        .with_label_values(&[kind, outcome])
        .inc();
}

/// One delivery attempt: "sent" or "failed".
pub fn mail_sent(outcome: &str) {
    METRICS.mail_sent.with_label_values(&[outcome]).inc();
}

/// A request refused by the limiter: `bucket` "auth", "default", "login", ...
pub fn rate_limited(bucket: &str) {
    METRICS.rate_limited.with_label_values(&[bucket]).inc();
}

/// A Stripe webhook event: `event_type` as Stripe names it ("invoice.paid"), outcome
/// "applied", "duplicate", "ignored", "invalid_signature", "error". Callers should pass
/// only event types they handle, or "other", so the label set stays closed.
pub fn stripe_event(event_type: &str, outcome: &str) {
    METRICS
        .stripe_events
        .with_label_values(&[event_type, outcome])
        .inc();
}

/// The Prometheus text exposition of every series.
pub fn render() -> String {
    LazyLock::force(&WEBHOOK_METRICS);
    let mut out = Vec::new();
    // Encoding into a Vec fails only for a malformed metric, which we never register.
    let _ = TextEncoder::new().encode(&METRICS.registry.gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Reads the outbox depth and pool state every `SAMPLE_INTERVAL` until the store is gone
/// (the app that owned it was dropped).
pub async fn sample(store: Weak<dyn Store>) {
    let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
    loop {
        tick.tick().await;
        let Some(store) = store.upgrade() else { return };
        sample_once(&store).await;
    }
}

async fn sample_once(store: &Arc<dyn Store>) {
    let pool = store.pool_connections();
    let m = &*METRICS;
    m.db_pool.with_label_values(&["idle"]).set(pool.idle as i64);
    m.db_pool
        .with_label_values(&["active"])
        .set(pool.size.saturating_sub(pool.idle) as i64);
    m.db_pool.with_label_values(&["max"]).set(pool.max as i64);
    let pending = tokio::time::timeout(Duration::from_secs(2), store.pending_mail_count()).await;
    if let Ok(Ok(pending)) = pending {
        m.mail_outbox_pending.set(pending);
    }
    let pending = tokio::time::timeout(Duration::from_secs(2), store.pending_webhook_count()).await;
    if let Ok(Ok(pending)) = pending {
        WEBHOOK_METRICS.pending.set(pending);
    }
}

/// Outgoing webhooks (DESIGN §16), registered beside the others.
struct WebhookMetrics {
    deliveries: IntCounterVec,
    pending: IntGauge,
}

static WEBHOOK_METRICS: LazyLock<WebhookMetrics> = LazyLock::new(|| {
    let registry = &METRICS.registry;
    let pending = IntGauge::new(
        "webhook_pending",
        "Webhook deliveries not delivered or failed yet (sampled).",
    )
    .expect("valid metric definition");
    registry
        .register(Box::new(pending.clone()))
        .expect("metric registered once");
    let deliveries = counter(
        registry,
        "webhook_deliveries_total",
        "Webhook delivery attempts by outcome (delivered, retry, failed).",
        &["outcome"],
    );
    for outcome in ["delivered", "retry", "failed"] {
        deliveries.with_label_values(&[outcome]);
    }
    WebhookMetrics {
        deliveries,
        pending,
    }
});

/// One webhook delivery attempt: "delivered", "retry" (failed, will be retried) or "failed".
pub fn webhook_delivery(outcome: &str) {
    WEBHOOK_METRICS
        .deliveries
        .with_label_values(&[outcome])
        .inc();
}
