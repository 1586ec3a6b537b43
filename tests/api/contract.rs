//! The cross-cutting rules of DESIGN §5: error shapes, 404/405/413, request ids,
//! WWW-Authenticate, the 422 shape of every JSON endpoint, Authorization header
//! variants, /health (and its 503), the OpenAPI document and the offline docs page.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection};

/// (case, content type, body, expected loc when the case names a field)
type BadBodyCase<'a> = (&'a str, Option<&'a str>, Vec<u8>, Option<Vec<&'a str>>);

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    unknown_path_is_json_404,
    wrong_method_is_json_405,
    oversized_body_is_json_413,
    every_response_carries_a_request_id,
    incoming_request_id_is_echoed,
    unauthorized_carries_www_authenticate,
    validation_errors_have_one_shape_on_every_json_endpoint,
    login_form_validation_errors,
    authorization_header_variants,
    health_reports_ok,
    openapi_document_lists_every_route,
    docs_page_works_offline,
);

/// Test apps here make many requests from one IP: keep any per-IP limiter out of the way.
async fn spawn(backend: Backend) -> TestApp {
    spawn_app_with(backend, |vars| {
        vars.insert("RATE_LIMIT_AUTH_PER_MINUTE".into(), "100000".into());
        vars.insert("RATE_LIMIT_DEFAULT_PER_MINUTE".into(), "100000".into());
    })
    .await
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
    token: Option<&str>,
) -> reqwest::Response {
    let mut req = app.client.request(method, app.url(path)).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("request")
}

async fn unknown_path_is_json_404(backend: Backend) {
    let app = spawn(backend).await;
    for path in [
        "/nope",
        "/auth/nope",
        "/auth/users/alice/unknown",
        "/credits-x",
    ] {
        let body = assert_error(
            app.get(path, None).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
        assert!(
            !body["detail"].as_str().unwrap().is_empty(),
            "{path}: {body}"
        );
    }
    // A POST to an unknown path is a 404 too, not a 405 or a 422.
    let r = app.post("/auth/unknown", &json!({}), None).await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
}

async fn wrong_method_is_json_405(backend: Backend) {
    let app = spawn(backend).await;
    let cases = [
        (Method::GET, "/auth/register"),
        (Method::DELETE, "/auth/login"),
        (Method::GET, "/auth/login"),
        (Method::PUT, "/auth/me"),
        (Method::GET, "/auth/refresh"),
        (Method::POST, "/health"),
        (Method::PATCH, "/auth/users/alice/password"),
    ];
    for (method, path) in cases {
        let r = send(&app, method.clone(), path, None, "", None).await;
        let status = r.status();
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_error(r, status, "method_not_allowed").await;
    }
}

async fn oversized_body_is_json_413(backend: Backend) {
    let app = spawn(backend).await;
    let big = "a".repeat(1024 * 1024 + 1024);
    let body = json!({"username": "biggie", "email": "biggie@example.com", "password": big});
    let r = send(
        &app,
        Method::POST,
        "/auth/register",
        Some("application/json"),
        body.to_string(),
        None,
    )
    .await;
    assert_error(r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;

    // Just under the limit the body is read and judged on its content: the password is
    // far over bcrypt's 72 bytes, so 422, not 413 (the limit is 1 MiB, not less).
    let under = "a".repeat(1024 * 1024 - 200);
    let body = json!({"username": "biggie", "email": "biggie@example.com", "password": under});
    assert!(body.to_string().len() < 1024 * 1024);
    let r = send(
        &app,
        Method::POST,
        "/auth/register",
        Some("application/json"),
        body.to_string(),
        None,
    )
    .await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    // Nothing was created by either request.
    let r = app
        .register_raw("biggie", "biggie@example.com", PASSWORD)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
}

async fn every_response_carries_a_request_id(backend: Backend) {
    let app = spawn(backend).await;
    let user = app.register("rid").await;
    let big = "x".repeat(1024 * 1024 + 10);
    let responses = vec![
        ("200 health", app.get("/health", None).await),
        ("200 me", app.get("/auth/me", Some(&user.access)).await),
        (
            "201 register",
            app.register_raw("rid2", "rid2@example.com", PASSWORD).await,
        ),
        ("401", app.get("/auth/me", None).await),
        ("404", app.get("/missing", None).await),
        (
            "405",
            send(&app, Method::GET, "/auth/register", None, "", None).await,
        ),
        (
            "413",
            send(
                &app,
                Method::POST,
                "/auth/register",
                Some("application/json"),
                big,
                None,
            )
            .await,
        ),
        ("422", app.post("/auth/register", &json!({}), None).await),
        ("200 openapi", app.get("/openapi.json", None).await),
        ("200 docs", app.get("/docs", None).await),
    ];
    let mut seen = std::collections::HashSet::new();
    for (what, r) in responses {
        let id = r
            .headers()
            .get("x-request-id")
            .unwrap_or_else(|| panic!("{what}: no x-request-id"))
            .to_str()
            .unwrap()
            .to_owned();
        assert!(!id.is_empty(), "{what}: empty x-request-id");
        assert!(seen.insert(id.clone()), "{what}: request id {id} reused");
    }
}

async fn incoming_request_id_is_echoed(backend: Backend) {
    let app = spawn(backend).await;
    for (method, path) in [
        (Method::GET, "/health"),
        (Method::GET, "/nope"),
        (Method::GET, "/auth/me"),
        (Method::POST, "/auth/register"),
    ] {
        let r = app
            .client
            .request(method.clone(), app.url(path))
            .header("X-Request-Id", "client-chosen-id-42")
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.headers().get("x-request-id").map(|v| v.to_str().unwrap()),
            Some("client-chosen-id-42"),
            "{method} {path}"
        );
    }
}

async fn unauthorized_carries_www_authenticate(backend: Backend) {
    let app = spawn(backend).await;
    let user = app.register("wwwauth").await;
    let cases = vec![
        ("no header on /auth/me", app.get("/auth/me", None).await),
        (
            "garbage token on /auth/me",
            app.get("/auth/me", Some("not-a-jwt")).await,
        ),
        (
            "no header on logout",
            app.post("/auth/logout", &json!({}), None).await,
        ),
        (
            "resend-verification without token",
            app.post("/auth/resend-verification", &json!({}), None)
                .await,
        ),
        (
            "wrong password login",
            app.login_raw("wwwauth", "wrong password here").await,
        ),
        (
            "bad refresh token",
            app.post("/auth/refresh", &json!({"refresh_token": "nope"}), None)
                .await,
        ),
        (
            "change password without token",
            app.put(
                "/auth/users/wwwauth/password",
                &json!({"current_password": PASSWORD, "new_password": "another password"}),
                None,
            )
            .await,
        ),
    ];
    for (what, r) in cases {
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{what}");
        let challenge = r
            .headers()
            .get("www-authenticate")
            .unwrap_or_else(|| panic!("{what}: no WWW-Authenticate"))
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.to_ascii_lowercase().starts_with("bearer"),
            "{what}: {challenge}"
        );
        let body: Value = r.json().await.unwrap();
        assert!(body["detail"].is_string(), "{what}: {body}");
        assert!(body["code"].is_string(), "{what}: {body}");
    }
    // The user still works: none of that broke anything.
    assert_eq!(
        app.get("/auth/me", Some(&user.access)).await.status(),
        StatusCode::OK
    );
}

/// A JSON endpoint: a valid body and the field that the wrong-type and missing cases target.
struct JsonEndpoint {
    method: Method,
    path: String,
    token: Option<String>,
    valid: Value,
    field: &'static str,
    /// Whether the endpoint also accepts a urlencoded form (login).
    accepts_form: bool,
}

fn check_422_shape(body: &Value, context: &str) {
    assert_eq!(body["code"], "validation_error", "{context}: {body}");
    let detail = body["detail"]
        .as_array()
        .unwrap_or_else(|| panic!("{context}: detail is not a list: {body}"));
    assert!(!detail.is_empty(), "{context}: empty detail");
    for entry in detail {
        let loc = entry["loc"]
            .as_array()
            .unwrap_or_else(|| panic!("{context}: loc is not a list: {entry}"));
        assert!(!loc.is_empty(), "{context}: empty loc");
        assert_eq!(loc[0], "body", "{context}: {entry}");
        assert!(
            loc.iter().all(|p| p.is_string() || p.is_number()),
            "{context}: {entry}"
        );
        assert!(
            entry["msg"].as_str().is_some_and(|m| !m.is_empty()),
            "{context}: msg in {entry}"
        );
        assert!(
            entry["type"].as_str().is_some_and(|t| !t.is_empty()),
            "{context}: type in {entry}"
        );
    }
}

async fn validation_errors_have_one_shape_on_every_json_endpoint(backend: Backend) {
    let app = spawn(backend).await;
    let user = app.verified_user("shape").await;
    let endpoints = vec![
        JsonEndpoint {
            method: Method::POST,
            path: "/auth/register".into(),
            token: None,
            valid: json!({"username": "newbie", "email": "newbie@example.com", "password": PASSWORD}),
            field: "email",
            accepts_form: false,
        },
        JsonEndpoint {
            method: Method::POST,
            path: "/auth/login".into(),
            token: None,
            valid: json!({"username": "shape", "password": PASSWORD}),
            field: "password",
            accepts_form: true,
        },
        JsonEndpoint {
            method: Method::POST,
            path: "/auth/refresh".into(),
            token: None,
            valid: json!({"refresh_token": user.refresh}),
            field: "refresh_token",
            accepts_form: false,
        },
        JsonEndpoint {
            method: Method::POST,
            path: "/auth/verify-email".into(),
            token: None,
            valid: json!({"token": "some-token"}),
            field: "token",
            accepts_form: false,
        },
        JsonEndpoint {
            method: Method::POST,
            path: "/auth/password-reset-request".into(),
            token: None,
            valid: json!({"email": "shape@example.com"}),
            field: "email",
            accepts_form: false,
        },
        JsonEndpoint {
            method: Method::POST,
            path: "/auth/reset-password".into(),
            token: None,
            valid: json!({"token": "some-token", "new_password": "a brand new password"}),
            field: "new_password",
            accepts_form: false,
        },
        JsonEndpoint {
            method: Method::PUT,
            path: "/auth/users/shape/password".into(),
            token: Some(user.access.clone()),
            valid: json!({"current_password": PASSWORD, "new_password": "a brand new password"}),
            field: "new_password",
            accepts_form: false,
        },
        JsonEndpoint {
            method: Method::PUT,
            path: "/auth/users/shape/email".into(),
            token: Some(user.access.clone()),
            valid: json!({"new_email": "shape2@example.com", "current_password": PASSWORD}),
            field: "new_email",
            accepts_form: false,
        },
    ];

    for ep in &endpoints {
        let mut wrong_type = ep.valid.clone();
        wrong_type[ep.field] = json!(12345);
        let mut null_field = ep.valid.clone();
        null_field[ep.field] = Value::Null;
        let mut missing = ep.valid.clone();
        missing.as_object_mut().unwrap().remove(ep.field);
        let mut nested = ep.valid.clone();
        nested[ep.field] = json!({"nested": ["object"]});

        // (case, content type, body, expected loc when the case names a field)
        let mut cases: Vec<BadBodyCase> = vec![
            (
                "malformed JSON",
                Some("application/json"),
                r#"{"username": "x", "#.into(),
                None,
            ),
            (
                "not JSON at all",
                Some("application/json"),
                "hello there".into(),
                None,
            ),
            (
                "trailing garbage",
                Some("application/json"),
                format!("{} garbage", ep.valid).into_bytes(),
                None,
            ),
            (
                "array instead of object",
                Some("application/json"),
                json!([ep.valid.clone()]).to_string().into_bytes(),
                None,
            ),
            ("a bare number", Some("application/json"), "42".into(), None),
            ("JSON null", Some("application/json"), "null".into(), None),
            (
                "wrong type for a field",
                Some("application/json"),
                wrong_type.to_string().into_bytes(),
                Some(vec!["body", ep.field]),
            ),
            (
                "an object for a string field",
                Some("application/json"),
                nested.to_string().into_bytes(),
                Some(vec!["body", ep.field]),
            ),
            (
                "null for a required field",
                Some("application/json"),
                null_field.to_string().into_bytes(),
                None,
            ),
            (
                "missing field",
                Some("application/json"),
                missing.to_string().into_bytes(),
                Some(vec!["body", ep.field]),
            ),
            (
                "text/plain content type",
                Some("text/plain"),
                ep.valid.to_string().into_bytes(),
                None,
            ),
            ("empty body", Some("application/json"), Vec::new(), None),
            ("empty body, no content type", None, Vec::new(), None),
            (
                "JSON body without content type",
                None,
                ep.valid.to_string().into_bytes(),
                None,
            ),
            (
                "invalid UTF-8",
                Some("application/json"),
                b"{\"x\": \"\xff\xfe\"}".to_vec(),
                None,
            ),
        ];
        if !ep.accepts_form {
            cases.push((
                "a urlencoded form",
                Some("application/x-www-form-urlencoded"),
                "a=b&c=d".into(),
                None,
            ));
        }
        for (case, ct, body, loc) in cases {
            let context = format!("{} {}: {case}", ep.method, ep.path);
            let r = send(
                &app,
                ep.method.clone(),
                &ep.path,
                ct,
                body,
                ep.token.as_deref(),
            )
            .await;
            assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{context}");
            assert!(r.headers().contains_key("x-request-id"), "{context}");
            let body: Value = r.json().await.expect("JSON 422 body");
            check_422_shape(&body, &context);
            if let Some(loc) = loc {
                assert_eq!(body["detail"][0]["loc"], json!(loc), "{context}: {body}");
            }
        }
    }

    // Nothing above changed anything: the user keeps their password and address, the
    // would-be registration did not happen.
    let me: Value = app
        .get("/auth/me", Some(&user.access))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "shape@example.com");
    app.login("shape", PASSWORD).await;
    assert_eq!(
        app.login_raw("newbie", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn login_form_validation_errors(backend: Backend) {
    let app = spawn(backend).await;
    app.register("former").await;
    let form = "application/x-www-form-urlencoded";
    for (case, body) in [
        ("missing password", "username=former"),
        ("missing username", "password=whatever123"),
        ("empty form", ""),
    ] {
        let r = send(&app, Method::POST, "/auth/login", Some(form), body, None).await;
        let body = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
        check_422_shape(&body, case);
    }
    let r = send(
        &app,
        Method::POST,
        "/auth/login",
        Some(form),
        "username=former&password=correct+horse+battery",
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK, "a well-formed form logs in");
}

async fn authorization_header_variants(backend: Backend) {
    let app = spawn(backend).await;
    let user = app.register("headers").await;
    let with_header = |value: String| {
        app.client
            .get(app.url("/auth/me"))
            .header("authorization", value)
            .send()
    };

    for value in [
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        "Basic xyz".to_owned(),
        format!("Basic {}", user.access),
        format!("Token {}", user.access),
        "garbage".to_owned(),
        user.access.clone(),
        "Bearer garbage".to_owned(),
        "Bearer a.b.c".to_owned(),
        format!("Bearer {}x", user.access),
        format!("Bearer {}", user.refresh),
        format!("Bearer{}", user.access),
    ] {
        let r = with_header(value.clone()).await.unwrap();
        let body = assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
        assert!(body["detail"].is_string(), "{value:?}: {body}");
    }
    // An empty header and no header at all.
    let r = with_header(String::new()).await.unwrap();
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;

    // The scheme is case-insensitive (RFC 7235).
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let r = with_header(format!("{scheme} {}", user.access))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{scheme}");
        let me: Value = r.json().await.unwrap();
        assert_eq!(me["username"], "headers");
    }
}

async fn health_reports_ok(backend: Backend) {
    let app = spawn(backend).await;
    let r = app.get("/health", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().contains_key("x-request-id"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"), "{body}");
    assert_eq!(body["checks"]["database"]["status"], "ok", "{body}");
    let latency = body["checks"]["database"]["latency_ms"]
        .as_f64()
        .unwrap_or_else(|| panic!("latency_ms is a number: {body}"));
    assert!(latency >= 0.0, "{body}");
    assert!(
        body["checks"]["redis"]["status"].is_string(),
        "redis status: {body}"
    );
    // Public: a bad token does not matter here.
    let r = app.get("/health", Some("garbage")).await;
    assert_eq!(r.status(), StatusCode::OK);
}

/// PostgreSQL only: a database that stops accepting connections turns /health into a 503,
/// other endpoints never answer 500, and health recovers when the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_503_when_postgres_is_down() {
    if !Backend::Postgres.available().await {
        return;
    }
    let app = spawn(Backend::Postgres).await;
    let user = app.register("downtime").await;
    let name = app
        .db
        .url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let mut admin = PgConnection::connect(&test_database_server())
        .await
        .unwrap();
    admin
        .execute(format!(r#"ALTER DATABASE "{name}" ALLOW_CONNECTIONS false"#).as_str())
        .await
        .unwrap();
    admin
        .execute(
            format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            )
            .as_str(),
        )
        .await
        .unwrap();

    // Collect everything first, restore the database, then assert (so a failure does
    // not leave a database nobody can drop).
    let health = app.get("/health", None).await;
    let health_status = health.status();
    let health_has_id = health.headers().contains_key("x-request-id");
    let health_body: Value = health.json().await.unwrap_or(Value::Null);
    let mut others = Vec::new();
    others.push(("me", app.get("/auth/me", Some(&user.access)).await));
    others.push(("login", app.login_raw("downtime", PASSWORD).await));
    others.push((
        "register",
        app.register_raw("another", "another@example.com", PASSWORD)
            .await,
    ));
    others.push((
        "reset request",
        app.post(
            "/auth/password-reset-request",
            &json!({"email": "downtime@example.com"}),
            None,
        )
        .await,
    ));
    let mut other_results = Vec::new();
    for (what, r) in others {
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        other_results.push((what, status, body));
    }

    admin
        .execute(format!(r#"ALTER DATABASE "{name}" ALLOW_CONNECTIONS true"#).as_str())
        .await
        .unwrap();

    assert_eq!(
        health_status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{health_body}"
    );
    assert!(health_has_id);
    assert_eq!(health_body["status"], "unavailable", "{health_body}");
    assert_ne!(health_body["checks"]["database"]["status"], "ok");
    for (what, status, body) in &other_results {
        assert_ne!(
            *status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{what} answered 500 while the database was down: {body}"
        );
        assert_eq!(
            *status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{what} while the database was down: {body}"
        );
        let parsed: Value = serde_json::from_str(body).expect("JSON error body");
        assert!(parsed["detail"].is_string(), "{what}: {body}");
        assert!(
            !body.to_lowercase().contains("postgres") && !body.contains("sqlx"),
            "{what} leaks internals: {body}"
        );
    }

    // Back up: health recovers without a restart.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let r = app.get("/health", None).await;
        if r.status() == StatusCode::OK {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "health did not recover: {}",
            r.text().await.unwrap_or_default()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        app.get("/auth/me", Some(&user.access)).await.status(),
        StatusCode::OK
    );
}

async fn openapi_document_lists_every_route(backend: Backend) {
    let app = spawn(backend).await;
    let r = app.get("/openapi.json", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("application/json"), "{ct}");
    let doc: Value = r.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "openapi version: {}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string());
    let paths = doc["paths"].as_object().expect("paths object");
    let expected: [(&str, &[&str]); 13] = [
        ("/auth/register", &["post"]),
        ("/auth/login", &["post"]),
        ("/auth/me", &["get"]),
        ("/auth/password-reset-request", &["post"]),
        ("/auth/reset-password", &["post"]),
        ("/auth/users/{username}/password", &["put"]),
        ("/auth/users/{username}/email", &["put"]),
        ("/auth/users/{username}", &["get", "delete"]),
        ("/auth/refresh", &["post"]),
        ("/auth/logout", &["post"]),
        ("/auth/verify-email", &["post", "get"]),
        ("/auth/resend-verification", &["post"]),
        ("/health", &["get"]),
    ];
    for (path, methods) in expected {
        let item = paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} missing from the OpenAPI document"));
        for method in methods {
            assert!(
                item.get(*method).is_some(),
                "{method} {path} missing from the OpenAPI document"
            );
        }
    }
}

async fn docs_page_works_offline(backend: Backend) {
    let app = spawn(backend).await;
    let r = app.get("/docs", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/html"), "{ct}");
    let html = r.text().await.unwrap();
    assert!(html.contains("swagger-ui-bundle.js"), "{html}");
    assert!(
        html.contains("/openapi.json"),
        "the page loads our spec: {html}"
    );
    // Every script and stylesheet is local: no CDN.
    for attr in ["src=\"", "href=\""] {
        for (i, _) in html.match_indices(attr) {
            let url: String = html[i + attr.len()..]
                .chars()
                .take_while(|c| *c != '"')
                .collect();
            assert!(url.starts_with('/'), "docs page loads {url} from elsewhere");
            let r = app.get(&url, None).await;
            assert_eq!(r.status(), StatusCode::OK, "{url}");
        }
    }
    let r = app.get("/docs/swagger-ui-bundle.js", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.contains("javascript"), "{ct}");
    let js = r.text().await.unwrap();
    assert!(js.len() > 10_000, "bundle is {} bytes", js.len());
    assert!(js.contains("SwaggerUIBundle"));
}
