//! Abuse protection: per-client-IP rate limits (fixed one-minute windows, /auth/* and the
//! rest counted apart), who the client is behind TRUSTED_PROXIES, per-account throttling of
//! failed logins, and counters in Redis (shared, or per instance while Redis is away).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    auth_limit_of_100_then_429_while_other_paths_still_answer,
    default_limit_covers_everything_outside_auth,
    rate_limit_headers_count_down_on_every_response,
    forwarded_for_is_ignored_unless_the_peer_is_trusted,
    trusted_proxy_forwarded_for_gives_each_client_its_own_bucket,
    trusted_proxy_forwarded_client_is_recorded_on_sessions_and_activity,
    untrusted_forwarded_for_is_not_recorded,
    bad_trusted_proxies_are_configuration_errors,
    failed_logins_throttle_the_account_then_success_resets,
    throttle_delay_doubles_with_each_further_failure,
    a_login_name_in_any_form_shares_one_count,
    unknown_accounts_are_throttled_exactly_like_existing_ones,
    health_reports_redis_status,
    unreachable_redis_keeps_serving_with_per_instance_limits,
    unreachable_redis_still_throttles_failed_logins,
    redis_counters_are_shared_between_instances,
);

// ---------------------------------------------------------------------------------------
// helpers of this file

/// The length of a rate-limit window.
const WINDOW_MS: u128 = 60_000;

/// A fresh Redis key prefix, so tests sharing one Redis never share counters by accident.
fn unique_prefix() -> String {
    format!("authsvc-test-{}:", uuid::Uuid::new_v4().simple())
}

/// An app with the given per-minute limits (auth bucket, default bucket) and counters of
/// its own; `extra` adjusts the rest of the configuration.
async fn limited_app(
    backend: Backend,
    auth: u32,
    default: u32,
    extra: impl FnOnce(&mut HashMap<String, String>),
) -> TestApp {
    spawn_app_with(backend, |vars| {
        vars.insert("RATE_LIMIT_AUTH_PER_MINUTE".into(), auth.to_string());
        vars.insert("RATE_LIMIT_DEFAULT_PER_MINUTE".into(), default.to_string());
        vars.insert("REDIS_KEY_PREFIX".into(), unique_prefix());
        vars.remove("REDIS_URL");
        vars.remove("TRUSTED_PROXIES");
        extra(vars);
    })
    .await
}

/// Limits so high they never get in the way of what a test is about.
const UNLIMITED: u32 = 100_000;

/// Fixed windows are whole minutes of the Unix clock: the server computes them from the
/// same system clock this test process reads (it even runs in this process). A test that
/// needs its requests to fall into ONE window calls this first with a generous estimate of
/// how long its requests take; if less than that is left of the current minute, it sleeps
/// until just past the boundary. That makes a mid-test reset impossible short of a clock
/// jump (an NTP step), and `Window::observe` asserts that none happened
/// (X-RateLimit-Reset never goes up within one window), so a reset shows up as a clear
/// message rather than as a confusing count.
async fn fresh_window(needed: Duration) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let left = WINDOW_MS - now % WINDOW_MS;
    if left < needed.as_millis() {
        tokio::time::sleep(Duration::from_millis(left as u64 + 150)).await;
    }
}

fn header<'a>(response: &'a Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing on a {} response", response.status()))
        .to_str()
        .unwrap()
}

fn header_u64(response: &Response, name: &str) -> u64 {
    let value = header(response, name);
    value
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number of seconds/requests: {value:?}"))
}

/// Tracks X-RateLimit-* across the requests of one window.
struct Window {
    last_reset: u64,
}

impl Window {
    fn new() -> Self {
        Self {
            last_reset: u64::MAX,
        }
    }

    /// Asserts the rate-limit headers (limit, remaining) of `response` and that the window
    /// did not roll over since the previous one.
    fn observe(&mut self, response: &Response, limit: u64, remaining: u64) {
        assert_eq!(
            header_u64(response, "x-ratelimit-limit"),
            limit,
            "X-RateLimit-Limit"
        );
        assert_eq!(
            header_u64(response, "x-ratelimit-remaining"),
            remaining,
            "X-RateLimit-Remaining on a {} response",
            response.status()
        );
        let reset = header_u64(response, "x-ratelimit-reset");
        assert!(
            (1..=60).contains(&reset),
            "X-RateLimit-Reset {reset} is within a minute"
        );
        assert!(
            reset <= self.last_reset,
            "the window reset mid-test (X-RateLimit-Reset went from {} up to {reset}); \
             fresh_window should have prevented that: was the clock stepped?",
            self.last_reset
        );
        self.last_reset = reset;
    }
}

/// 429 with the contract's body, Retry-After ≥ 1 s and the rate-limit headers; returns
/// Retry-After.
async fn assert_rate_limited(response: Response) -> u64 {
    let retry_after = header_u64(&response, "retry-after");
    assert!(retry_after >= 1, "Retry-After is at least one second");
    assert_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    retry_after
}

/// A per-IP 429: also carries X-RateLimit-* with nothing remaining, and Retry-After is the
/// time until the window resets (what X-RateLimit-Reset says).
async fn assert_ip_limited(response: Response, limit: u64) {
    assert_eq!(header_u64(&response, "x-ratelimit-limit"), limit);
    assert_eq!(header_u64(&response, "x-ratelimit-remaining"), 0);
    let reset = header_u64(&response, "x-ratelimit-reset");
    let retry_after = assert_rate_limited(response).await;
    assert!(
        retry_after <= 60,
        "Retry-After {retry_after} is within the minute window"
    );
    assert_eq!(
        retry_after, reset,
        "Retry-After is the time until the window resets"
    );
}

async fn get_from(app: &TestApp, path: &str, forwarded_for: Option<&str>) -> Response {
    let mut req = app.client.get(app.url(path));
    if let Some(ff) = forwarded_for {
        req = req.header("x-forwarded-for", ff);
    }
    req.send().await.expect("request")
}

async fn login_from(
    app: &TestApp,
    username: &str,
    password: &str,
    forwarded_for: &str,
) -> Response {
    app.client
        .post(app.url("/auth/login"))
        .header("x-forwarded-for", forwarded_for)
        .form(&[("username", username), ("password", password)])
        .send()
        .await
        .expect("request")
}

async fn health(app: &TestApp) -> Value {
    let response = app.get("/health", None).await;
    assert_eq!(response.status(), StatusCode::OK, "health");
    json_of(response).await
}

async fn assert_login_401(response: Response) -> Value {
    assert!(
        response.headers().get("retry-after").is_none(),
        "a plain failed login carries no Retry-After"
    );
    let body = assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_eq!(body["detail"], "Incorrect username or password");
    body
}

/// Waits out a throttle: Retry-After is rounded up to whole seconds, so it suffices.
async fn wait_out(retry_after: u64) {
    tokio::time::sleep(Duration::from_secs(retry_after) + Duration::from_millis(200)).await;
}

// ---------------------------------------------------------------------------------------
// per-IP rate limits

async fn auth_limit_of_100_then_429_while_other_paths_still_answer(backend: Backend) {
    let app = limited_app(backend, 100, 1000, |_| {}).await;
    fresh_window(Duration::from_secs(20)).await;
    let mut window = Window::new();

    // Request 1 of the /auth/ bucket; then 99 more, successful ones.
    let r = app
        .register_raw("alice", "alice@example.com", PASSWORD)
        .await;
    window.observe(&r, 100, 99);
    assert_eq!(r.status(), StatusCode::CREATED);
    let token = json_of(r).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for i in 2..=100u64 {
        let r = app.get("/auth/me", Some(&token)).await;
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "request {i} is within the limit"
        );
        window.observe(&r, 100, 100 - i);
    }

    // The 101st: refused, whatever it is (even a correct login, even an unknown path).
    assert_ip_limited(app.login_raw("alice", PASSWORD).await, 100).await;
    assert_ip_limited(app.get("/auth/me", Some(&token)).await, 100).await;
    assert_ip_limited(app.get("/auth/no-such-path", None).await, 100).await;
    assert_ip_limited(
        app.post("/auth/refresh", &json!({"refresh_token": "x"}), None)
            .await,
        100,
    )
    .await;

    // The other bucket is untouched: health and an authenticated non-/auth/ route work.
    let r = app.get("/health", None).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "GET /health answers while /auth/ is limited"
    );
    let mut other = Window::new();
    other.observe(&r, 1000, 999);
    let r = app.get("/credits/balance", Some(&token)).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the token still works outside /auth/"
    );
    other.observe(&r, 1000, 998);
    // "/auth" without the slash, and paths merely starting with "auth", are not under /auth/.
    let r = app.get("/authentic", None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    other.observe(&r, 1000, 997);
}

async fn default_limit_covers_everything_outside_auth(backend: Backend) {
    let app = limited_app(backend, UNLIMITED, 5, |_| {}).await;
    let user = app.register("bob").await;
    fresh_window(Duration::from_secs(10)).await;
    let mut window = Window::new();
    for i in 1..=5u64 {
        let r = app.get("/health", None).await;
        assert_eq!(r.status(), StatusCode::OK, "health request {i}");
        window.observe(&r, 5, 5 - i);
    }
    assert_ip_limited(app.get("/health", None).await, 5).await;
    assert_ip_limited(app.get("/credits/balance", Some(&user.access)).await, 5).await;
    assert_ip_limited(app.get("/no-such-path", None).await, 5).await;
    assert_ip_limited(app.get("/openapi.json", None).await, 5).await;

    // /auth/ has its own counter.
    let r = app.get("/auth/me", Some(&user.access)).await;
    assert_eq!(r.status(), StatusCode::OK, "/auth/ is counted apart");
    assert_eq!(header_u64(&r, "x-ratelimit-limit"), u64::from(UNLIMITED));
}

async fn rate_limit_headers_count_down_on_every_response(backend: Backend) {
    let app = limited_app(backend, 4, UNLIMITED, |_| {}).await;
    fresh_window(Duration::from_secs(10)).await;
    let mut window = Window::new();
    // Success, client errors and a validation error alike carry and consume the count.
    let r = app
        .register_raw("carol", "carol@example.com", PASSWORD)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    window.observe(&r, 4, 3);
    let r = app.get("/auth/me", Some("not-a-token")).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    window.observe(&r, 4, 2);
    let r = app
        .client
        .post(app.url("/auth/register"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    window.observe(&r, 4, 1);
    let r = app.login_raw("carol", "wrong password!").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    window.observe(&r, 4, 0);
    // Over the limit: Remaining stays at 0 and Retry-After matches X-RateLimit-Reset.
    for _ in 0..3 {
        let r = app.login_raw("carol", PASSWORD).await;
        let reset = header_u64(&r, "x-ratelimit-reset");
        assert!(reset <= window.last_reset, "the window did not roll over");
        assert_ip_limited(r, 4).await;
    }
}

// ---------------------------------------------------------------------------------------
// client IP behind proxies

async fn forwarded_for_is_ignored_unless_the_peer_is_trusted(backend: Backend) {
    // No TRUSTED_PROXIES, and a list that does not contain the real peer (127.0.0.1).
    for trusted in [None, Some("10.0.0.0/8, 192.168.0.1")] {
        let app = limited_app(backend, 3, UNLIMITED, |vars| {
            if let Some(t) = trusted {
                vars.insert("TRUSTED_PROXIES".into(), t.into());
            }
        })
        .await;
        fresh_window(Duration::from_secs(10)).await;
        let mut window = Window::new();
        let claims = ["203.0.113.1", "203.0.113.2", "198.51.100.7, 203.0.113.3"];
        for (i, ff) in claims.iter().enumerate() {
            let r = get_from(&app, "/auth/me", Some(ff)).await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "trusted={trusted:?}");
            window.observe(&r, 3, 2 - i as u64);
        }
        // A new claimed address every time, yet one bucket: the 4th is refused.
        assert_ip_limited(get_from(&app, "/auth/me", Some("203.0.113.4")).await, 3).await;
        assert_ip_limited(get_from(&app, "/auth/me", None).await, 3).await;
    }
}

async fn trusted_proxy_forwarded_for_gives_each_client_its_own_bucket(backend: Backend) {
    // A CIDR and a single address, comma-separated; the test client connects from 127.0.0.1.
    for trusted in ["127.0.0.1/32", "10.0.0.0/8, 127.0.0.1"] {
        let app = limited_app(backend, 3, UNLIMITED, |vars| {
            vars.insert("TRUSTED_PROXIES".into(), trusted.into());
        })
        .await;
        fresh_window(Duration::from_secs(15)).await;
        for client in ["203.0.113.1", "203.0.113.2"] {
            let mut window = Window::new();
            for i in 1..=3u64 {
                let r = get_from(&app, "/auth/me", Some(client)).await;
                assert_eq!(
                    r.status(),
                    StatusCode::UNAUTHORIZED,
                    "{client} request {i} ({trusted})"
                );
                window.observe(&r, 3, 3 - i);
            }
            assert_ip_limited(get_from(&app, "/auth/me", Some(client)).await, 3).await;
        }
        // The right-most entry that is not a trusted proxy is the client: what a client
        // writes to the left of it does not get it a new bucket...
        assert_ip_limited(
            get_from(&app, "/auth/me", Some("192.0.2.50, 203.0.113.1")).await,
            3,
        )
        .await;
        // ...and trusted hops to the right of it are skipped.
        assert_ip_limited(
            get_from(&app, "/auth/me", Some("203.0.113.2, 127.0.0.1")).await,
            3,
        )
        .await;
        // Whereas a limited client's address to the left of a new one does not matter.
        let r = get_from(&app, "/auth/me", Some("203.0.113.1, 203.0.113.9")).await;
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "203.0.113.9 has its own bucket"
        );
        assert_eq!(header_u64(&r, "x-ratelimit-remaining"), 2);
        // The proxy itself, forwarding nothing, is a client of its own.
        let r = get_from(&app, "/auth/me", None).await;
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "the peer without X-Forwarded-For"
        );
        assert_eq!(header_u64(&r, "x-ratelimit-remaining"), 2);
        // The default bucket is per client too, and apart.
        let r = get_from(&app, "/health", Some("203.0.113.1")).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
}

/// The sessions of the caller, by whether they are the current one.
async fn sessions_of(app: &TestApp, token: &str) -> Vec<Value> {
    let r = app.get("/auth/sessions", Some(token)).await;
    assert_eq!(r.status(), StatusCode::OK, "GET /auth/sessions");
    json_of(r).await["sessions"]
        .as_array()
        .expect("sessions list")
        .clone()
}

async fn activity_ips(app: &TestApp, token: &str, event: &str) -> Vec<Value> {
    let r = app.get("/auth/activity", Some(token)).await;
    assert_eq!(r.status(), StatusCode::OK, "GET /auth/activity");
    json_of(r).await["activities"]
        .as_array()
        .expect("activities list")
        .iter()
        .filter(|a| a["event"] == event)
        .map(|a| a["ip"].clone())
        .collect()
}

async fn trusted_proxy_forwarded_client_is_recorded_on_sessions_and_activity(backend: Backend) {
    let app = limited_app(backend, UNLIMITED, UNLIMITED, |vars| {
        vars.insert("TRUSTED_PROXIES".into(), "127.0.0.1/32".into());
    })
    .await;
    let r = app
        .client
        .post(app.url("/auth/register"))
        .header("x-forwarded-for", "198.51.100.1")
        .json(&json!({"username": "dave", "email": "dave@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let failed = login_from(&app, "dave", "wrong password!", "203.0.113.13").await;
    assert_login_401(failed).await;
    let r = login_from(
        &app,
        "dave",
        PASSWORD,
        "192.0.2.99, 203.0.113.77, 127.0.0.1",
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let token = json_of(r).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let sessions = sessions_of(&app, &token).await;
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    let current: Vec<_> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1, "{sessions:?}");
    assert_eq!(
        current[0]["ip"], "203.0.113.77",
        "the login's session records the forwarded client"
    );
    let other: Vec<_> = sessions.iter().filter(|s| s["current"] == false).collect();
    assert_eq!(
        other[0]["ip"], "198.51.100.1",
        "the registration's session too"
    );

    assert_eq!(
        activity_ips(&app, &token, "login_success").await,
        vec![json!("203.0.113.77")]
    );
    assert_eq!(
        activity_ips(&app, &token, "login_failure").await,
        vec![json!("203.0.113.13")]
    );
    assert_eq!(
        activity_ips(&app, &token, "register").await,
        vec![json!("198.51.100.1")]
    );
}

async fn untrusted_forwarded_for_is_not_recorded(backend: Backend) {
    let app = limited_app(backend, UNLIMITED, UNLIMITED, |_| {}).await;
    app.register("erin").await;
    assert_login_401(login_from(&app, "erin", "wrong password!", "203.0.113.13").await).await;
    let r = login_from(&app, "erin", PASSWORD, "203.0.113.77").await;
    assert_eq!(r.status(), StatusCode::OK);
    let token = json_of(r).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let sessions = sessions_of(&app, &token).await;
    assert_eq!(sessions.len(), 2);
    for s in &sessions {
        assert_eq!(
            s["ip"], "127.0.0.1",
            "a spoofed X-Forwarded-For is not believed: {s}"
        );
    }
    assert_eq!(
        activity_ips(&app, &token, "login_success").await,
        vec![json!("127.0.0.1")]
    );
    assert_eq!(
        activity_ips(&app, &token, "login_failure").await,
        vec![json!("127.0.0.1")]
    );
}

async fn bad_trusted_proxies_are_configuration_errors(backend: Backend) {
    let db_url = match backend {
        Backend::Sqlite => "sqlite://./never-opened.db".to_owned(),
        Backend::Postgres => test_database_server(),
    };
    let dir = tempfile::tempdir().unwrap();
    let base = base_vars(&db_url, dir.path(), 2525);
    let config_with = |value: &str| {
        let mut vars = base.clone();
        vars.insert("TRUSTED_PROXIES".into(), value.into());
        auth_service::config::Config::from_lookup(|k| vars.get(k).cloned())
    };
    for bad in [
        "not-an-ip",
        "10.0.0.0/33",
        "127.0.0.1, 300.1.1.1",
        "10.0.0.0/8/8",
    ] {
        let err = config_with(bad)
            .err()
            .unwrap_or_else(|| panic!("TRUSTED_PROXIES={bad:?} is rejected"));
        assert!(
            err.0.contains("TRUSTED_PROXIES"),
            "the error names the setting: {}",
            err.0
        );
    }
    for good in [
        "127.0.0.1",
        "10.0.0.0/8, 127.0.0.1/32",
        "::1, 2001:db8::/32",
        "",
    ] {
        let config =
            config_with(good).unwrap_or_else(|e| panic!("TRUSTED_PROXIES={good:?}: {}", e.0));
        assert_eq!(
            config.trusted_proxies.len(),
            good.split(',').filter(|s| !s.trim().is_empty()).count()
        );
    }
}

// ---------------------------------------------------------------------------------------
// failed-login throttling

async fn failed_logins_throttle_the_account_then_success_resets(backend: Backend) {
    let app = limited_app(backend, UNLIMITED, UNLIMITED, |_| {}).await;
    app.register("frank").await;
    let bob = app.register("bobby").await;

    // 8 wrong passwords: 5 are judged (401), then the account is throttled (429).
    for i in 1..=5 {
        let r = app.login_raw("frank", "wrong password!").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "failure {i}");
        assert_login_401(r).await;
    }
    let mut retry_after = 0;
    for i in 6..=8 {
        let r = app.login_raw("frank", "wrong password!").await;
        retry_after = assert_rate_limited(r).await;
        assert!(
            retry_after <= 2,
            "attempt {i}: the delay after 5 failures is 2 s, got {retry_after}"
        );
    }
    // Another account is not affected, nor are other routes of this one.
    let r = app.login_raw(&bob.username, PASSWORD).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "another account logs in during the block"
    );
    let r = app.login_raw("bobby", "wrong password!").await;
    assert_login_401(r).await;
    // During the block even the right password is refused.
    let r = app.login_raw("frank", PASSWORD).await;
    let body = assert_error(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert!(body.get("access_token").is_none());

    wait_out(retry_after).await;
    let r = app.login_raw("frank", PASSWORD).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "after the delay the right password works"
    );
    let tokens = json_of(r).await;
    assert!(tokens["access_token"].is_string());

    // The counter was reset: 4 more failures are plain 401s and the right password still
    // works at once (without the reset, the first of them would be failure 6 and the
    // second a 429).
    for i in 1..=4 {
        let r = app.login_raw("frank", "wrong password!").await;
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "failure {i} after the reset"
        );
    }
    let r = app.login_raw("frank", PASSWORD).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "4 failures after a reset do not throttle"
    );
}

async fn throttle_delay_doubles_with_each_further_failure(backend: Backend) {
    let app = limited_app(backend, UNLIMITED, UNLIMITED, |_| {}).await;
    app.register("grace").await;
    for _ in 0..5 {
        assert_login_401(app.login_raw("grace", "wrong password!").await).await;
    }
    let first = assert_rate_limited(app.login_raw("grace", "wrong password!").await).await;
    assert!(first <= 2, "2 s after the 5th failure, got {first}");
    wait_out(first).await;

    // The 6th failure is judged (401) and doubles the delay to 4 s.
    assert_login_401(app.login_raw("grace", "wrong password!").await).await;
    let second = assert_rate_limited(app.login_raw("grace", PASSWORD).await).await;
    assert!(
        (3..=4).contains(&second),
        "4 s after the 6th failure, got {second}"
    );
    wait_out(second).await;

    // The 7th: 8 s.
    assert_login_401(app.login_raw("grace", "wrong password!").await).await;
    let third = assert_rate_limited(app.login_raw("grace", "wrong password!").await).await;
    assert!(
        (5..=8).contains(&third),
        "8 s after the 7th failure (more than the previous 4 s), got {third}"
    );
    // Attempts during the block are not failures: they do not lengthen it.
    let again = assert_rate_limited(app.login_raw("grace", "wrong password!").await).await;
    assert!(again <= third);
}

async fn a_login_name_in_any_form_shares_one_count(backend: Backend) {
    let app = limited_app(backend, UNLIMITED, UNLIMITED, |_| {}).await;
    let user = app.register("Heidi").await;
    // One login name in any case, padded, by form or JSON: one count.
    assert_login_401(app.login_raw("Heidi", "wrong password!").await).await;
    assert_login_401(app.login_raw("HEIDI", "wrong password!").await).await;
    let r = app
        .post(
            "/auth/login",
            &json!({"username": "heidi", "password": "wrong password!"}),
            None,
        )
        .await;
    assert_login_401(r).await;
    assert_login_401(app.login_raw(" heidi ", "wrong password!").await).await;
    assert_login_401(app.login_raw("hEiDi", "wrong password!").await).await;

    assert_rate_limited(app.login_raw("heidi", &user.password).await).await;
    let r = app
        .post(
            "/auth/login",
            &json!({"username": "HEIDI", "password": user.password}),
            None,
        )
        .await;
    assert_rate_limited(r).await;
    // The account's email is another login name with a count of its own: were it
    // throttled too, the 429 would tell a guesser that this email belongs to "heidi".
    let r = app.login_raw("Heidi@Example.COM", &user.password).await;
    assert_eq!(r.status(), StatusCode::OK);
}

/// (status, body, whether Retry-After / WWW-Authenticate are present) of each attempt.
async fn attempt_sequence(
    app: &TestApp,
    name: &str,
    attempts: usize,
) -> Vec<(StatusCode, Value, bool, bool)> {
    let mut seen = Vec::new();
    for _ in 0..attempts {
        let r = app.login_raw(name, "wrong password!").await;
        let status = r.status();
        let retry = r.headers().contains_key("retry-after");
        let www = r.headers().contains_key("www-authenticate");
        if retry {
            let secs = header_u64(&r, "retry-after");
            assert!((1..=2).contains(&secs), "Retry-After {secs}");
        }
        seen.push((status, json_of(r).await, retry, www));
    }
    seen
}

async fn unknown_accounts_are_throttled_exactly_like_existing_ones(backend: Backend) {
    let app = limited_app(backend, UNLIMITED, UNLIMITED, |_| {}).await;
    app.register("ivan").await;
    let existing = attempt_sequence(&app, "ivan", 7).await;
    let unknown = attempt_sequence(&app, "nobody-here", 7).await;
    let unknown_email = attempt_sequence(&app, "nobody@example.com", 7).await;

    let statuses: Vec<_> = existing.iter().map(|(s, ..)| s.as_u16()).collect();
    assert_eq!(statuses, vec![401, 401, 401, 401, 401, 429, 429]);
    assert_eq!(
        existing, unknown,
        "unknown names answer exactly like an existing account"
    );
    assert_eq!(
        existing, unknown_email,
        "unknown emails answer exactly like an existing account"
    );
    assert_eq!(existing[5].1["code"], "rate_limited");
    assert!(existing[5].2, "429 carries Retry-After");
    // Throttling one unknown name does not throttle another.
    assert_login_401(app.login_raw("someone-else", "wrong password!").await).await;
}

// ---------------------------------------------------------------------------------------
// Redis

async fn health_reports_redis_status(backend: Backend) {
    let app = limited_app(backend, UNLIMITED, UNLIMITED, |_| {}).await;
    let body = health(&app).await;
    assert_eq!(
        body["checks"]["redis"]["status"], "disabled",
        "no REDIS_URL: {body}"
    );

    let app = limited_app(backend, UNLIMITED, UNLIMITED, |vars| {
        vars.insert("REDIS_URL".into(), "redis://127.0.0.1:1".into());
    })
    .await;
    for _ in 0..2 {
        let body = health(&app).await;
        assert_eq!(
            body["status"], "ok",
            "an unreachable Redis does not make the service unhealthy"
        );
        assert_eq!(body["checks"]["database"]["status"], "ok");
        assert_eq!(
            body["checks"]["redis"]["status"], "degraded",
            "unreachable Redis: {body}"
        );
    }

    if redis_available().await {
        let app = limited_app(backend, UNLIMITED, UNLIMITED, |vars| {
            vars.insert("REDIS_URL".into(), test_redis_url());
        })
        .await;
        let body = health(&app).await;
        assert_eq!(
            body["checks"]["redis"]["status"], "ok",
            "reachable Redis: {body}"
        );
    }
}

async fn unreachable_redis_keeps_serving_with_per_instance_limits(backend: Backend) {
    let app = limited_app(backend, 5, UNLIMITED, |vars| {
        vars.insert("REDIS_URL".into(), "redis://127.0.0.1:1".into());
    })
    .await;
    fresh_window(Duration::from_secs(15)).await;
    let mut window = Window::new();
    let r = app.register_raw("judy", "judy@example.com", PASSWORD).await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "registration works without Redis"
    );
    window.observe(&r, 5, 4);
    let r = app.login_raw("judy", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK, "login works without Redis");
    window.observe(&r, 5, 3);
    let token = json_of(r).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for remaining in [2, 1, 0] {
        let r = app.get("/auth/me", Some(&token)).await;
        assert_eq!(r.status(), StatusCode::OK);
        window.observe(&r, 5, remaining);
    }
    assert_ip_limited(app.get("/auth/me", Some(&token)).await, 5).await;
    assert_ip_limited(app.login_raw("judy", PASSWORD).await, 5).await;

    let body = health(&app).await;
    assert_eq!(body["checks"]["redis"]["status"], "degraded");
    let r = app.get("/credits/balance", Some(&token)).await;
    assert_eq!(r.status(), StatusCode::OK, "still serving");
}

async fn unreachable_redis_still_throttles_failed_logins(backend: Backend) {
    let app = limited_app(backend, UNLIMITED, UNLIMITED, |vars| {
        vars.insert("REDIS_URL".into(), "redis://127.0.0.1:1".into());
    })
    .await;
    app.register("kim").await;
    for _ in 0..5 {
        assert_login_401(app.login_raw("kim", "wrong password!").await).await;
    }
    let retry_after = assert_rate_limited(app.login_raw("kim", PASSWORD).await).await;
    wait_out(retry_after).await;
    let r = app.login_raw("kim", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
}

async fn redis_counters_are_shared_between_instances(backend: Backend) {
    if !redis_available().await {
        return;
    }
    // Two separate deployments (each its own database) sharing one Redis and key prefix:
    // only the counters are shared, which is what this test is about. (Two instances on
    // one database are tests/api/scale_out.rs.)
    let prefix = unique_prefix();
    let config = |vars: &mut HashMap<String, String>| {
        vars.insert("REDIS_URL".into(), test_redis_url());
        vars.insert("REDIS_KEY_PREFIX".into(), prefix.clone());
    };
    let a = limited_app(backend, 6, UNLIMITED, config).await;
    let b = limited_app(backend, 6, UNLIMITED, config).await;
    let elsewhere = limited_app(backend, 6, UNLIMITED, |vars| {
        vars.insert("REDIS_URL".into(), test_redis_url());
    })
    .await;
    assert_eq!(health(&a).await["checks"]["redis"]["status"], "ok");

    fresh_window(Duration::from_secs(15)).await;
    let mut window = Window::new();
    for i in 1..=6u64 {
        let app = if i % 2 == 1 { &a } else { &b };
        let r = app.get("/auth/me", None).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "request {i}");
        window.observe(&r, 6, 6 - i);
    }
    assert_ip_limited(a.get("/auth/me", None).await, 6).await;
    assert_ip_limited(b.get("/auth/me", None).await, 6).await;
    // Another prefix is another set of counters.
    let r = elsewhere.get("/auth/me", None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header_u64(&r, "x-ratelimit-remaining"), 5);

    // Failed-login throttling is shared too (an unknown name: the same on both databases).
    let a = limited_app(backend, UNLIMITED, UNLIMITED, config).await;
    let c = limited_app(backend, UNLIMITED, UNLIMITED, config).await;
    for (i, app) in [&a, &c, &a, &c, &a].into_iter().enumerate() {
        let r = app.login_raw("ghost", "wrong password!").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "failure {}", i + 1);
    }
    assert_rate_limited(c.login_raw("ghost", "wrong password!").await).await;
    assert_rate_limited(a.login_raw("ghost", "wrong password!").await).await;
    // Not on a deployment with other counters.
    assert_login_401(elsewhere.login_raw("ghost", "wrong password!").await).await;
}
