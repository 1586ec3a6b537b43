//! Two instances of the service behind one load balancer: one PostgreSQL database and one
//! Redis (same key prefix). Revocation is seen by every instance at once, and the rate
//! limits and failed-login throttling are enforced across them. PostgreSQL only (a shared
//! SQLite file is not a scale-out deployment); skipped without PostgreSQL or Redis unless
//! REQUIRE_SERVICES=1.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

const WRONG: &str = "wrong password!";

/// One instance, as a client sees it.
struct Node<'a> {
    client: &'a reqwest::Client,
    address: String,
    name: &'static str,
}

impl Node<'_> {
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    async fn post(&self, path: &str, body: &Value, token: Option<&str>) -> Response {
        let mut req = self.client.post(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    async fn put(&self, path: &str, body: &Value, token: Option<&str>) -> Response {
        let mut req = self.client.put(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    async fn login(&self, username: &str, password: &str) -> Response {
        self.client
            .post(self.url("/auth/login"))
            .form(&[("username", username), ("password", password)])
            .send()
            .await
            .expect("request")
    }

    async fn login_ok(&self, username: &str, password: &str) -> Value {
        let r = self.login(username, password).await;
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "login {username} on {}",
            self.name
        );
        r.json().await.unwrap()
    }
}

/// App A (which owns the database) and a second instance B with the same configuration,
/// both on PostgreSQL and Redis; None (the test is skipped) when either is missing.
async fn two_instances(
    customize: impl FnOnce(&mut HashMap<String, String>),
) -> Option<(TestApp, Instance)> {
    if !Backend::Postgres.available().await || !redis_available().await {
        return None;
    }
    let app = spawn_app_with(Backend::Postgres, |vars| {
        vars.insert("REDIS_URL".into(), test_redis_url());
        vars.insert(
            "REDIS_KEY_PREFIX".into(),
            format!("authsvc-test-{}:", uuid::Uuid::new_v4().simple()),
        );
        vars.insert("RATE_LIMIT_AUTH_PER_MINUTE".into(), "100000".into());
        vars.insert("RATE_LIMIT_DEFAULT_PER_MINUTE".into(), "100000".into());
        vars.remove("TRUSTED_PROXIES");
        customize(vars);
    })
    .await;
    let other = app.another_instance(|_| {}).await;
    Some((app, other))
}

fn nodes<'a>(app: &'a TestApp, other: &Instance) -> (Node<'a>, Node<'a>) {
    (
        Node {
            client: &app.client,
            address: app.address.clone(),
            name: "A",
        },
        Node {
            client: &app.client,
            address: other.address.clone(),
            name: "B",
        },
    )
}

async fn assert_401(response: Response, what: &str) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
    assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

fn header_u64(response: &Response, name: &str) -> u64 {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing"))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn assert_rate_limited(response: Response, what: &str) -> u64 {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS, "{what}");
    let retry_after = header_u64(&response, "retry-after");
    assert!(retry_after >= 1, "Retry-After ≥ 1");
    assert_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    retry_after
}

/// See protection.rs: windows are minutes of the system clock this process shares with
/// both instances; start with at least `needed` of the current one left so that no reset
/// can happen mid-test (X-RateLimit-Reset is checked never to go up, which would reveal one).
async fn fresh_window(needed: Duration) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let left = 60_000 - now % 60_000;
    if left < needed.as_millis() {
        tokio::time::sleep(Duration::from_millis(left as u64 + 150)).await;
    }
}

async fn health_of(node: &Node<'_>) -> Value {
    let r = node.get("/health", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_on_one_instance_is_seen_by_the_other_at_once() {
    let Some((app, other)) = two_instances(|_| {}).await else {
        return;
    };
    let (a, b) = nodes(&app, &other);
    assert_eq!(health_of(&a).await["checks"]["redis"]["status"], "ok");
    assert_eq!(health_of(&b).await["checks"]["redis"]["status"], "ok");
    let user = app.register("mallory").await;

    let tokens = a.login_ok("mallory", PASSWORD).await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let r = b.get("/auth/me", Some(access)).await;
    assert_eq!(r.status(), StatusCode::OK, "a token from A works on B");

    let r = a.post("/auth/logout", &json!({}), Some(access)).await;
    assert_eq!(r.status(), StatusCode::OK);
    // The very next request, on the other instance: refused.
    assert_401(
        b.get("/auth/me", Some(access)).await,
        "logged-out token on B",
    )
    .await;
    assert_401(
        a.get("/auth/me", Some(access)).await,
        "logged-out token on A",
    )
    .await;
    assert_401(
        b.post("/auth/refresh", &json!({"refresh_token": refresh}), None)
            .await,
        "its refresh token on B",
    )
    .await;
    assert_401(
        b.post("/auth/logout", &json!({}), Some(access)).await,
        "logging out twice",
    )
    .await;
    // Only that session ended.
    let r = b.get("/auth/me", Some(&user.access)).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the registration session is still live"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_rate_limit_is_enforced_across_instances() {
    let Some((app, other)) = two_instances(|vars| {
        vars.insert("RATE_LIMIT_AUTH_PER_MINUTE".into(), "10".into());
        vars.insert("RATE_LIMIT_DEFAULT_PER_MINUTE".into(), "1000".into());
    })
    .await
    else {
        return;
    };
    let (a, b) = nodes(&app, &other);
    fresh_window(Duration::from_secs(15)).await;
    let mut last_reset = u64::MAX;
    for i in 1..=10u64 {
        let node = if i % 2 == 1 { &a } else { &b };
        let r = node.get("/auth/me", None).await;
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "request {i} on {}",
            node.name
        );
        assert_eq!(header_u64(&r, "x-ratelimit-limit"), 10);
        assert_eq!(
            header_u64(&r, "x-ratelimit-remaining"),
            10 - i,
            "request {i} on {}: one count for both instances",
            node.name
        );
        let reset = header_u64(&r, "x-ratelimit-reset");
        assert!(
            reset <= last_reset,
            "the window reset mid-test: was the clock stepped?"
        );
        last_reset = reset;
    }
    // The 11th overall, on either instance.
    assert_rate_limited(a.get("/auth/me", None).await, "11th request, on A").await;
    assert_rate_limited(b.get("/auth/me", None).await, "12th request, on B").await;
    assert_rate_limited(b.login("anyone", PASSWORD).await, "a login on B").await;
    // Other paths have their own (shared) counter.
    let r = a.get("/health", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let first = header_u64(&r, "x-ratelimit-remaining");
    let r = b.get("/health", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        header_u64(&r, "x-ratelimit-remaining"),
        first - 1,
        "the default bucket is shared too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_login_throttling_is_shared_across_instances() {
    let Some((app, other)) = two_instances(|_| {}).await else {
        return;
    };
    let (a, b) = nodes(&app, &other);
    app.register("niaj").await;
    app.register("olivia").await;

    // 5 failures, split across the instances, by one login name in any case. (A name
    // counts on its own: the account's email has a count of its own, see hardening.rs.)
    for (i, (node, name)) in [
        (&a, "niaj"),
        (&b, "niaj"),
        (&a, "Niaj"),
        (&b, "NIAJ"),
        (&a, "niaj"),
    ]
    .into_iter()
    .enumerate()
    {
        assert_401(
            node.login(name, WRONG).await,
            &format!("failure {} on {}", i + 1, node.name),
        )
        .await;
    }
    let retry_b = assert_rate_limited(b.login("niaj", PASSWORD).await, "throttled on B").await;
    let retry_a = assert_rate_limited(a.login("NIAJ", PASSWORD).await, "throttled on A").await;
    assert!(retry_a <= 2 && retry_b <= 2, "2 s after the 5th failure");
    // Another account, on either instance, is fine.
    b.login_ok("olivia", PASSWORD).await;
    a.login_ok("olivia", PASSWORD).await;

    tokio::time::sleep(Duration::from_secs(retry_a.max(retry_b)) + Duration::from_millis(200))
        .await;
    b.login_ok("niaj", PASSWORD).await;
    // The success on B reset the counter for A too: 4 failures on A, then success on A.
    for i in 1..=4 {
        assert_401(
            a.login("niaj", WRONG).await,
            &format!("failure {i} after the reset"),
        )
        .await;
    }
    a.login_ok("niaj", PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_and_password_changes_are_shared_across_instances() {
    let Some((app, other)) = two_instances(|_| {}).await else {
        return;
    };
    let (a, b) = nodes(&app, &other);

    // Registration on A (the welcome mail may come from either instance's mailer).
    let r = a
        .post(
            "/auth/register",
            &json!({"username": "peggy", "email": "peggy@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let registered: Value = r.json().await.unwrap();
    let on_a = registered["access_token"].as_str().unwrap().to_owned();
    let on_a_refresh = registered["refresh_token"].as_str().unwrap().to_owned();
    // Taken on B too.
    let r = b
        .post(
            "/auth/register",
            &json!({"username": "PEGGY", "email": "other@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::CONFLICT,
        "the username is taken on every instance"
    );

    // Verified through B, logged in on B.
    let mail = app.wait_for_mail("peggy@example.com", "verify").await;
    let r = b
        .post(
            "/auth/verify-email",
            &json!({"token": mail.token().unwrap()}),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let tokens = b.login_ok("peggy", PASSWORD).await;
    let on_b = tokens["access_token"].as_str().unwrap().to_owned();
    let me: Value = a.get("/auth/me", Some(&on_b)).await.json().await.unwrap();
    assert_eq!(
        me["is_verified"], true,
        "A sees the verification done through B"
    );

    // Wrong current password on B: nothing changes anywhere.
    let r = b
        .put(
            "/auth/users/peggy/password",
            &json!({"current_password": WRONG, "new_password": "a brand new password"}),
            Some(&on_b),
        )
        .await;
    assert_401(r, "wrong current password").await;
    assert_eq!(
        a.get("/auth/me", Some(&on_a)).await.status(),
        StatusCode::OK
    );

    // The password change on B revokes A's other session at once.
    let r = b
        .put(
            "/auth/users/peggy/password",
            &json!({"current_password": PASSWORD, "new_password": "a brand new password"}),
            Some(&on_b),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_401(
        a.get("/auth/me", Some(&on_a)).await,
        "the other session, on A",
    )
    .await;
    assert_401(
        b.get("/auth/me", Some(&on_a)).await,
        "the other session, on B",
    )
    .await;
    assert_401(
        a.post(
            "/auth/refresh",
            &json!({"refresh_token": on_a_refresh}),
            None,
        )
        .await,
        "its refresh token",
    )
    .await;
    // The session that changed it lives on, on both.
    assert_eq!(
        a.get("/auth/me", Some(&on_b)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        b.get("/auth/me", Some(&on_b)).await.status(),
        StatusCode::OK
    );
    // The new password works on A, the old one nowhere.
    a.login_ok("peggy", "a brand new password").await;
    assert_401(b.login("peggy", PASSWORD).await, "the old password on B").await;
    assert_401(a.login("peggy", PASSWORD).await, "the old password on A").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_outbox_workers_send_each_message_once() {
    let Some((app, other)) = two_instances(|_| {}).await else {
        return;
    };
    // Both instances' workers poll the same outbox (every 100 ms) and send to the same
    // SMTP listener; registrations alternate between them, concurrently.
    let addresses = [app.address.clone(), other.address.clone()];
    let requests = (0..24).map(|i| {
        let url = format!("{}/auth/register", addresses[i % 2]);
        let body = json!({"username": format!("mailer{i}"), "email": format!("mailer{i}@example.com"), "password": PASSWORD});
        let client = app.client.clone();
        tokio::spawn(async move { client.post(url).json(&body).send().await.unwrap().status() })
    });
    for request in requests.collect::<Vec<_>>() {
        assert_eq!(request.await.unwrap(), StatusCode::CREATED);
    }
    for i in 0..24 {
        app.wait_for_mail(&format!("mailer{i}@example.com"), "verify")
            .await;
    }
    // Give a duplicate time to show up, then count.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for i in 0..24 {
        let to = format!("mailer{i}@example.com");
        assert_eq!(app.smtp.messages_to(&to).len(), 1, "{to} got a duplicate");
    }
    assert_eq!(app.state.store.pending_mail_count().await.unwrap(), 0);
}
