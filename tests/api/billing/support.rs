//! What the billing tests share: a local stand-in for the Stripe endpoints localstripe
//! lacks (Checkout Sessions, billing portal) that records each form-encoded request, the
//! app configured against it, events signed exactly as Stripe signs them, and plans.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode as AxumStatus};
use axum::response::{IntoResponse, Response as AxumResponse};
use axum::routing::post;
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::helpers::{ok_json, spawn_app_with, Backend, TestApp, TestUser};

pub const WEBHOOK_SECRET: &str = "whsec_test_current";
pub const OLD_WEBHOOK_SECRET: &str = "whsec_test_previous";
pub const STRIPE_KEY: &str = "sk_test_auth_service";

/// One request the stand-in received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub form: HashMap<String, String>,
    pub idempotency_key: Option<String>,
    pub authorization: Option<String>,
    pub stripe_version: Option<String>,
}

#[derive(Default)]
struct StandIn {
    recorded: Mutex<Vec<Recorded>>,
    /// Idempotency-Key → customer id, as Stripe keeps them.
    customers_by_key: Mutex<HashMap<String, String>>,
    customers_created: AtomicUsize,
    counter: AtomicUsize,
    /// When set, Checkout answers this status with a Stripe error body.
    fail_checkout: Mutex<Option<u16>>,
    /// Everything the stand-in does not serve goes here (localstripe), when set.
    upstream: Option<String>,
    /// When set (`start_with_pages`), Checkout and portal URLs point at the stand-in
    /// itself, which serves a page there, so a browser can follow them.
    pages_at: std::sync::OnceLock<String>,
    http: reqwest::Client,
}

/// A running stand-in; dropped with the test.
pub struct FakeStripe {
    pub base: String,
    state: Arc<StandIn>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl FakeStripe {
    pub async fn start(upstream: Option<String>) -> Self {
        Self::launch(upstream, false).await
    }

    /// A stand-in whose Checkout and portal URLs are pages it serves (for browser tests).
    pub async fn start_with_pages() -> Self {
        Self::launch(None, true).await
    }

    async fn launch(upstream: Option<String>, pages: bool) -> Self {
        let state = Arc::new(StandIn {
            upstream,
            ..Default::default()
        });
        let app = Router::new()
            .route("/v1/checkout/sessions", post(checkout_session))
            .route("/v1/billing_portal/sessions", post(portal_session))
            .route("/c/pay/{id}", axum::routing::get(stand_in_page))
            .route("/p/session/{id}", axum::routing::get(stand_in_page))
            .fallback(other)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        if pages {
            let _ = state.pages_at.set(base.clone());
        }
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Self {
            base,
            state,
            _shutdown: tx,
        }
    }

    pub fn requests(&self, path: &str) -> Vec<Recorded> {
        self.state
            .recorded
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Distinct customers the stand-in itself created (when it serves customers).
    pub fn customers_created(&self) -> usize {
        self.state.customers_created.load(Ordering::SeqCst)
    }

    pub fn fail_checkout_with(&self, status: Option<u16>) {
        *self.state.fail_checkout.lock().unwrap() = status;
    }
}

fn record(state: &StandIn, method: &Method, path: &str, headers: &HeaderMap, body: &[u8]) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    state.recorded.lock().unwrap().push(Recorded {
        method: method.to_string(),
        path: path.to_owned(),
        form: form_urlencoded::parse(body).into_owned().collect(),
        idempotency_key: header("idempotency-key"),
        authorization: header("authorization"),
        stripe_version: header("stripe-version"),
    });
}

async fn checkout_session(
    State(state): State<Arc<StandIn>>,
    headers: HeaderMap,
    body: Bytes,
) -> AxumResponse {
    record(
        &state,
        &Method::POST,
        "/v1/checkout/sessions",
        &headers,
        &body,
    );
    if let Some(status) = *state.fail_checkout.lock().unwrap() {
        let body = json!({"error": {"type": "invalid_request_error", "code": "resource_missing",
            "message": "No such price: 'price_secret_detail'"}});
        return (AxumStatus::from_u16(status).unwrap(), Json(body)).into_response();
    }
    let n = state.counter.fetch_add(1, Ordering::SeqCst);
    let id = format!("cs_test_{n}");
    let host = state
        .pages_at
        .get()
        .cloned()
        .unwrap_or_else(|| "https://checkout.stripe.test".into());
    Json(json!({"id": id, "object": "checkout.session",
        "url": format!("{host}/c/pay/{id}")}))
    .into_response()
}

/// What a browser sees at a Checkout or portal URL of `start_with_pages`.
async fn stand_in_page(axum::extract::Path(id): axum::extract::Path<String>) -> AxumResponse {
    axum::response::Html(format!(
        "<!doctype html><title>Stripe stand-in</title><h1>Stripe stand-in: {id}</h1>"
    ))
    .into_response()
}

async fn portal_session(
    State(state): State<Arc<StandIn>>,
    headers: HeaderMap,
    body: Bytes,
) -> AxumResponse {
    record(
        &state,
        &Method::POST,
        "/v1/billing_portal/sessions",
        &headers,
        &body,
    );
    let n = state.counter.fetch_add(1, Ordering::SeqCst);
    let host = state
        .pages_at
        .get()
        .cloned()
        .unwrap_or_else(|| "https://billing.stripe.test".into());
    Json(
        json!({"id": format!("bps_{n}"), "object": "billing_portal.session",
        "url": format!("{host}/p/session/bps_{n}")}),
    )
    .into_response()
}

/// Customers when there is no upstream; otherwise a plain proxy to localstripe.
async fn other(State(state): State<Arc<StandIn>>, request: Request) -> AxumResponse {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    record(&state, &parts.method, &path, &parts.headers, &body);
    if let Some(upstream) = &state.upstream {
        let url = format!(
            "{upstream}{}",
            parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/")
        );
        let mut forward = state
            .http
            .request(parts.method.clone(), url)
            .body(body.to_vec());
        for name in [
            "authorization",
            "content-type",
            "idempotency-key",
            "stripe-version",
        ] {
            if let Some(v) = parts.headers.get(name) {
                forward = forward.header(name, v.as_bytes());
            }
        }
        let answer = forward.send().await.unwrap();
        let status = AxumStatus::from_u16(answer.status().as_u16()).unwrap();
        let bytes = answer.bytes().await.unwrap_or_default();
        return (status, [("content-type", "application/json")], bytes).into_response();
    }
    if parts.method == Method::POST && path.starts_with("/v1/subscriptions/") {
        let id = path.trim_start_matches("/v1/subscriptions/");
        let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
        return Json(
            json!({"id": id, "object": "subscription", "status": "active",
            "cancel_at_period_end": form.get("cancel_at_period_end").is_some_and(|v| v == "true"),
            "current_period_end": 1_900_000_000}),
        )
        .into_response();
    }
    if parts.method == Method::POST && path == "/v1/customers" {
        let key = parts
            .headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let mut by_key = state.customers_by_key.lock().unwrap();
        let id = by_key
            .entry(key)
            .or_insert_with(|| {
                let n = state.customers_created.fetch_add(1, Ordering::SeqCst);
                format!("cus_test_{n}")
            })
            .clone();
        return Json(json!({"id": id, "object": "customer"})).into_response();
    }
    (
        AxumStatus::NOT_FOUND,
        Json(
            json!({"error": {"type": "invalid_request_error", "code": "resource_missing",
            "message": "Unrecognized request URL"}}),
        ),
    )
        .into_response()
}

/// The app with billing on, pointed at `stripe_base`.
pub async fn billing_app(backend: Backend, stripe_base: &str) -> TestApp {
    billing_app_with(backend, stripe_base, |_| {}).await
}

/// `billing_app` with more settings.
pub async fn billing_app_with(
    backend: Backend,
    stripe_base: &str,
    more: impl FnOnce(&mut std::collections::HashMap<String, String>),
) -> TestApp {
    let base = stripe_base.to_owned();
    spawn_app_with(backend, move |vars| {
        more(vars);
        vars.insert("STRIPE_SECRET_KEY".into(), STRIPE_KEY.into());
        vars.insert(
            "STRIPE_WEBHOOK_SECRET".into(),
            format!("{OLD_WEBHOOK_SECRET}, {WEBHOOK_SECRET}"),
        );
        vars.insert("STRIPE_API_BASE".into(), base);
        vars.insert("STRIPE_TIMEOUT_SECONDS".into(), "10".into());
    })
    .await
}

/// `Stripe-Signature` for `body` at `t`, computed as Stripe does.
pub fn signature(secret: &str, t: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub async fn post_webhook(app: &TestApp, body: &str, signature: Option<&str>) -> Response {
    let mut req = app
        .client
        .post(app.url("/webhooks/stripe"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(sig) = signature {
        req = req.header("stripe-signature", sig);
    }
    req.send().await.unwrap()
}

/// Delivers a correctly signed event; returns the outcome (asserting 200).
pub async fn deliver(app: &TestApp, event: &Value) -> String {
    let body = event.to_string();
    let sig = signature(WEBHOOK_SECRET, unix_now(), &body);
    let answer = ok_json(post_webhook(app, &body, Some(&sig)).await).await;
    answer["outcome"].as_str().unwrap().to_owned()
}

pub fn event(id: &str, kind: &str, created: i64, object: Value) -> Value {
    json!({"id": id, "object": "event", "type": kind, "created": created,
        "api_version": "2024-06-20", "livemode": false, "data": {"object": object}})
}

pub fn paid_session(session: &str, user: i64, plan: &str, customer: &str, pi: &str) -> Value {
    json!({"id": session, "object": "checkout.session", "mode": "payment",
        "payment_status": "paid", "status": "complete", "customer": customer,
        "client_reference_id": user.to_string(), "payment_intent": pi,
        "amount_total": 1000, "currency": "usd",
        "metadata": {"user_id": user.to_string(), "plan_id": plan}})
}

pub fn invoice(id: &str, customer: &str, subscription: &str, price: &str, charge: &str) -> Value {
    json!({"id": id, "object": "invoice", "customer": customer, "subscription": subscription,
        "status": "paid", "amount_paid": 900, "currency": "usd", "charge": charge,
        "payment_intent": format!("pi_{id}"), "billing_reason": "subscription_cycle",
        "lines": {"data": [{"price": {"id": price}, "metadata": {}}]}})
}

pub fn subscription(id: &str, customer: &str, user: i64, status: &str, price: &str) -> Value {
    json!({"id": id, "object": "subscription", "customer": customer, "status": status,
        "cancel_at_period_end": false, "current_period_end": 1_900_000_000,
        "metadata": {"user_id": user.to_string()},
        "items": {"data": [{"price": {"id": price}}]}})
}

pub fn refunded_charge(charge: &str, pi: &str, amount: i64, refunded: i64) -> Value {
    json!({"id": charge, "object": "charge", "payment_intent": pi, "amount": amount,
        "amount_refunded": refunded, "refunded": refunded >= amount, "currency": "usd"})
}

/// Creates a plan through the admin API.
pub async fn create_plan(app: &TestApp, admin: &TestUser, id: &str, kind: &str, price_id: &str) {
    let mut body = json!({"id": id, "name": format!("Plan {id}"), "kind": kind,
        "credits": 100, "price": 1000, "currency": "usd", "stripe_price_id": price_id});
    if kind == "subscription" {
        body["interval"] = json!("month");
    }
    let r = app.post("/admin/plans", &body, Some(&admin.access)).await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
}

pub async fn balance(app: &TestApp, user: &TestUser) -> f64 {
    let body = ok_json(app.get("/credits/balance", Some(&user.access)).await).await;
    body["balance"].as_f64().unwrap()
}

pub async fn transactions(app: &TestApp, user: &TestUser) -> Vec<Value> {
    let body = ok_json(app.get("/credits/transactions", Some(&user.access)).await).await;
    body["transactions"].as_array().unwrap().clone()
}

pub async fn events(app: &TestApp, admin: &TestUser, outcome: &str) -> Vec<Value> {
    let path = if outcome.is_empty() {
        "/admin/billing/events?limit=100".to_owned()
    } else {
        format!("/admin/billing/events?limit=100&outcome={outcome}")
    };
    let body = ok_json(app.get(&path, Some(&admin.access)).await).await;
    body["events"].as_array().unwrap().clone()
}

/// `auth-service ledger verify`'s check: every ledger sums to its balance.
pub async fn assert_ledger_consistent(app: &TestApp) {
    let mismatches = app.state.store.ledger_mismatches().await.unwrap();
    assert!(mismatches.is_empty(), "ledger mismatches: {mismatches:?}");
}
