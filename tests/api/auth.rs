//! Registration, login, refresh, logout and /auth/me.

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    register_then_me,
    register_returns_the_contract_fields,
    register_conflicts_are_409_and_change_nothing,
    register_rejects_bad_usernames,
    register_rejects_bad_emails,
    register_rejects_bad_passwords,
    register_rejects_malformed_bodies,
    concurrent_registrations_of_one_username,
    concurrent_registrations_of_one_email,
    login_by_form_json_username_and_email,
    login_failures_look_identical,
    login_rejects_malformed_bodies,
    me_returns_the_profile,
    me_user_id_is_for_admins_only,
    me_requires_a_valid_bearer_token,
    refresh_with_refresh_token,
    refresh_with_access_token,
    refresh_rejects_bad_input,
    logout_ends_only_that_session,
);

// ---------------------------------------------------------------------------------------
// helpers of this file

/// POSTs raw bytes with the given content type (or none).
async fn post_raw(app: &TestApp, path: &str, content_type: Option<&str>, body: &str) -> Response {
    let mut req = app.client.post(app.url(path)).body(body.to_owned());
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    req.send().await.expect("request")
}

/// Asserts a 422 whose first entry points at `loc`.
async fn assert_422_at(response: Response, loc: &str, what: &str) {
    assert_eq!(
        response.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "{what}: status"
    );
    let body = assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    )
    .await;
    assert_eq!(first_loc(&body), loc, "{what}: loc in {body}");
    let entry = &body["detail"][0];
    assert!(entry["msg"].is_string(), "{what}: msg in {body}");
    assert!(entry["type"].is_string(), "{what}: type in {body}");
}

async fn refresh_raw(app: &TestApp, refresh_token: &str) -> Response {
    app.post(
        "/auth/refresh",
        &json!({ "refresh_token": refresh_token }),
        None,
    )
    .await
}

/// Checks the shape of a token pair (login, refresh) and returns (access, refresh).
fn pair_of(body: &Value) -> (String, String) {
    assert_eq!(body["token_type"], "bearer", "{body}");
    let expires_in = body["expires_in"]
        .as_i64()
        .expect("expires_in is an integer");
    assert!(
        expires_in > 0 && expires_in <= 3600,
        "expires_in {expires_in}"
    );
    let access = body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    let refresh = body["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_owned();
    assert_eq!(access.split('.').count(), 3, "access token is a JWT");
    assert!(refresh.len() >= 32, "refresh token has entropy");
    assert_ne!(access, refresh);
    (access, refresh)
}

// ---------------------------------------------------------------------------------------
// register

async fn register_then_me(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register("alice").await;
    let me: Value = app
        .get("/auth/me", Some(&user.access))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["username"], "alice");
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["is_verified"], false);
    let verified = app.verified_user("bob").await;
    let me: Value = app
        .get("/auth/me", Some(&verified.access))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["is_verified"], true);
    let r = app
        .post("/auth/logout", &json!({}), Some(&user.access))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        app.get("/auth/me", Some(&user.access)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn register_returns_the_contract_fields(backend: Backend) {
    let app = spawn_app(backend).await;
    let r = app
        .register_raw("Alice.Smith-01", "Alice.Smith@Example.COM", PASSWORD)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(r.headers().contains_key("x-request-id"));
    let body = json_of(r).await;
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    // The username is kept as typed; the email is stored lowercased.
    assert_eq!(body["username"], "Alice.Smith-01");
    let (access, refresh) = pair_of(&body);
    assert!(body.get("password").is_none() && body.get("password_hash").is_none());

    let me = json_of(app.get("/auth/me", Some(&access)).await).await;
    assert_eq!(me["username"], "Alice.Smith-01");
    assert_eq!(me["email"], "alice.smith@example.com");
    assert_eq!(me["is_admin"], false);

    // Both tokens of the registration work.
    let r = refresh_raw(&app, &refresh).await;
    assert_eq!(r.status(), StatusCode::OK);
    // The password works for login, by the stored (lowercased) email too.
    app.login("alice.smith-01", PASSWORD).await;
    app.login("ALICE.SMITH@example.com", PASSWORD).await;

    // Boundary lengths are accepted: 3 and 32 characters, 8-character and 72-byte passwords.
    let r = app.register_raw("abc", "abc@example.com", "12345678").await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "3-char username, 8-char password"
    );
    let long_name = "x".repeat(32);
    let r = app
        .register_raw(&long_name, "long@example.com", &"p".repeat(72))
        .await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "32-char username, 72-byte password"
    );
    app.login(&long_name, &"p".repeat(72)).await;
    // 8 multi-byte characters are 8 characters.
    let r = app
        .register_raw("accents", "accents@example.com", "éééééééé")
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    app.login("accents", "éééééééé").await;
}

async fn register_conflicts_are_409_and_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;

    // Same username, other case, other email and password.
    let r = app
        .register_raw("ALICE", "other@example.com", "another password")
        .await;
    let body = assert_error(r, StatusCode::CONFLICT, "username_taken").await;
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .to_lowercase()
        .contains("username"));
    let r = app
        .register_raw("alice", "other2@example.com", "another password")
        .await;
    assert_error(r, StatusCode::CONFLICT, "username_taken").await;

    // Same email, other case.
    let r = app
        .register_raw("bob", "ALICE@Example.Com", "another password")
        .await;
    let body = assert_error(r, StatusCode::CONFLICT, "email_taken").await;
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .to_lowercase()
        .contains("email"));

    // Nothing changed: alice still logs in with her password and not with the intruders'.
    app.login("alice", &alice.password).await;
    assert_unauthorized(app.login_raw("alice", "another password").await).await;
    let me = json_of(app.get("/auth/me", Some(&alice.access)).await).await;
    assert_eq!(me["username"], "alice");
    assert_eq!(me["email"], "alice@example.com");
    // The failed attempts reserved neither the other email nor "bob".
    let r = app
        .register_raw("carol", "other@example.com", PASSWORD)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    app.register("bob").await;
}

async fn register_rejects_bad_usernames(backend: Backend) {
    let app = spawn_app(backend).await;
    let too_long = "x".repeat(33);
    let cases: [(&str, &str); 9] = [
        ("", "empty"),
        ("ab", "too short"),
        (&too_long, "too long"),
        ("with space", "space"),
        ("émile", "non-ASCII"),
        ("a@b.c", "@"),
        ("semi;colon", "semicolon"),
        ("tab\tname", "tab"),
        ("<script>", "angle brackets"),
    ];
    for (i, (username, what)) in cases.iter().enumerate() {
        let r = app
            .register_raw(username, &format!("u{i}@example.com"), PASSWORD)
            .await;
        assert_422_at(r, "body.username", what).await;
    }
    // Wrong types.
    for (value, what) in [
        (json!(123), "number"),
        (json!(null), "null"),
        (json!(["alice"]), "array"),
        (json!({"name": "alice"}), "object"),
    ] {
        let r = app
            .post(
                "/auth/register",
                &json!({"username": value, "email": "t@example.com", "password": PASSWORD}),
                None,
            )
            .await;
        assert_422_at(r, "body.username", what).await;
    }
    // None of that created anything: the names and addresses are free.
    let r = app.register_raw("ab1", "u1@example.com", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app.register_raw("t-user", "t@example.com", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::CREATED);
}

async fn register_rejects_bad_emails(backend: Backend) {
    let app = spawn_app(backend).await;
    let long_local = format!("{}@example.com", "a".repeat(65));
    let cases: [(&str, &str); 12] = [
        ("", "empty"),
        ("plain", "no @"),
        ("@example.com", "no local part"),
        ("a@", "no domain"),
        ("a@b", "single-label domain"),
        ("a@@example.com", "double @"),
        ("a b@example.com", "space"),
        ("a@exa..mple.com", "empty label"),
        (".a@example.com", "leading dot"),
        ("a@-example.com", "label starts with dash"),
        ("<a@example.com>", "angle brackets"),
        (&long_local, "local part too long"),
    ];
    for (i, (email, what)) in cases.iter().enumerate() {
        let r = app.register_raw(&format!("user{i}"), email, PASSWORD).await;
        assert_422_at(r, "body.email", what).await;
    }
    for (value, what) in [
        (json!(42), "number"),
        (json!(null), "null"),
        (json!(true), "bool"),
    ] {
        let r = app
            .post(
                "/auth/register",
                &json!({"username": "user0", "email": value, "password": PASSWORD}),
                None,
            )
            .await;
        assert_422_at(r, "body.email", what).await;
    }
    // user0 is still free.
    app.register("user0").await;
}

async fn register_rejects_bad_passwords(backend: Backend) {
    let app = spawn_app(backend).await;
    let over_bcrypt = "p".repeat(73);
    // 37 two-byte characters: 37 characters but 74 bytes, over bcrypt's limit.
    let multibyte = "é".repeat(37);
    let huge = "p".repeat(5000);
    let cases: [(&str, &str); 6] = [
        ("", "empty"),
        ("1234567", "7 characters"),
        ("ééééééé", "7 multi-byte characters"),
        (&over_bcrypt, "73 bytes"),
        (&multibyte, "74 bytes in 37 characters"),
        (&huge, "5000 bytes"),
    ];
    for (password, what) in cases {
        let r = app
            .register_raw("alice", "alice@example.com", password)
            .await;
        assert_422_at(r, "body.password", what).await;
    }
    for (value, what) in [
        (json!(12345678), "number"),
        (json!(null), "null"),
        (json!(["correct horse battery"]), "array"),
    ] {
        let r = app
            .post(
                "/auth/register",
                &json!({"username": "alice", "email": "alice@example.com", "password": value}),
                None,
            )
            .await;
        assert_422_at(r, "body.password", what).await;
    }
    // Nothing was created: alice registers now, and no login works with a rejected password.
    app.register("alice").await;
    assert_unauthorized(app.login_raw("alice", &over_bcrypt).await).await;
}

async fn register_rejects_malformed_bodies(backend: Backend) {
    let app = spawn_app(backend).await;
    let full = json!({"username": "alice", "email": "alice@example.com", "password": PASSWORD});
    // Each missing field is named.
    for field in ["username", "email", "password"] {
        let mut body = full.clone();
        body.as_object_mut().unwrap().remove(field);
        let r = app.post("/auth/register", &body, None).await;
        assert_422_at(r, &format!("body.{field}"), &format!("missing {field}")).await;
    }
    let json_ct = Some("application/json");
    let raw_cases = [
        ("{\"username\": \"alice\",", "truncated JSON"),
        ("not json at all", "not JSON"),
        ("", "empty body"),
        ("{\"username\":\"alice\",\"email\":\"alice@example.com\",\"password\":\"correct horse battery\"} trailing", "trailing garbage"),
    ];
    for (raw, what) in raw_cases {
        let r = post_raw(&app, "/auth/register", json_ct, raw).await;
        assert_422_at(r, "body", what).await;
    }
    // A JSON value that is not an object.
    for raw in ["[]", "\"alice\"", "null", "42"] {
        let r = post_raw(&app, "/auth/register", json_ct, raw).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{raw}");
        assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    }
    // A correct JSON document under the wrong content type, or none.
    let good = full.to_string();
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let r = post_raw(&app, "/auth/register", ct, &good).await;
        assert_422_at(r, "body", &format!("content type {ct:?}")).await;
    }
    // Wrong method on the route.
    let r = app.get("/auth/register", None).await;
    assert_error(r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    // None of these created alice.
    let r = post_raw(&app, "/auth/register", json_ct, &good).await;
    assert_eq!(r.status(), StatusCode::CREATED);
}

/// Registrations racing for one name: one wins, the rest get 409, nobody a 500.
async fn concurrent_registrations_of_one_username(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut tasks = Vec::new();
    for i in 0..30 {
        let client = app.client.clone();
        let url = app.url("/auth/register");
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .json(&json!({
                    "username": if i % 2 == 0 { "racer" } else { "RACER" },
                    "email": format!("racer{i}@example.com"),
                    "password": PASSWORD,
                }))
                .send()
                .await
                .expect("request");
            let status = r.status();
            let body: Value = r.json().await.expect("JSON body");
            (i, status, body)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (i, status, body) = task.await.unwrap();
        match status {
            StatusCode::CREATED => winners.push((i, body)),
            StatusCode::CONFLICT => assert_eq!(body["code"], "username_taken", "{body}"),
            other => panic!("registration {i}: unexpected {other}: {body}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one registration wins");
    let (winner, body) = &winners[0];
    let access = body["access_token"].as_str().unwrap();
    let me = json_of(app.get("/auth/me", Some(access)).await).await;
    assert_eq!(me["email"], format!("racer{winner}@example.com"));
    app.login("racer", PASSWORD).await;
    // A loser's address was not kept.
    let loser = (winner + 1) % 30;
    assert_unauthorized(
        app.login_raw(&format!("racer{loser}@example.com"), PASSWORD)
            .await,
    )
    .await;
    let r = app
        .register_raw("late", &format!("racer{loser}@example.com"), PASSWORD)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
}

async fn concurrent_registrations_of_one_email(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut tasks = Vec::new();
    for i in 0..30 {
        let client = app.client.clone();
        let url = app.url("/auth/register");
        tasks.push(tokio::spawn(async move {
            let email = if i % 2 == 0 {
                "shared@example.com"
            } else {
                "Shared@EXAMPLE.com"
            };
            let r = client
                .post(url)
                .json(&json!({
                    "username": format!("user{i}"),
                    "email": email,
                    "password": PASSWORD,
                }))
                .send()
                .await
                .expect("request");
            let status = r.status();
            let body: Value = r.json().await.expect("JSON body");
            (i, status, body)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (i, status, body) = task.await.unwrap();
        match status {
            StatusCode::CREATED => winners.push(i),
            StatusCode::CONFLICT => assert_eq!(body["code"], "email_taken", "{body}"),
            other => panic!("registration {i}: unexpected {other}: {body}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one registration wins");
    let winner = winners[0];
    let tokens = app.login("shared@example.com", PASSWORD).await;
    let me = json_of(app.get("/auth/me", tokens["access_token"].as_str()).await).await;
    assert_eq!(me["username"], format!("user{winner}"));
    // A loser's username was not kept.
    let loser = (winner + 1) % 30;
    app.register(&format!("user{loser}")).await;
}

// ---------------------------------------------------------------------------------------
// login

async fn login_by_form_json_username_and_email(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("Alice").await;

    // OAuth2 form, by username as registered.
    let r = app.login_raw("Alice", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    let form_pair = pair_of(&json_of(r).await);
    // The username in another case is the same account.
    let r = app.login_raw("aLiCe", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    let case_pair = pair_of(&json_of(r).await);
    // By email in the username field, any case.
    let r = app.login_raw("ALICE@example.com", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    let email_pair = pair_of(&json_of(r).await);
    // JSON with username, and JSON with email.
    let r = app
        .post(
            "/auth/login",
            &json!({"username": "alice", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let json_pair = pair_of(&json_of(r).await);
    let r = app
        .post(
            "/auth/login",
            &json!({"email": "alice@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let json_email_pair = pair_of(&json_of(r).await);
    // A form with extra OAuth2 fields (grant_type, scope) as OAuth2 clients send.
    let r = app
        .client
        .post(app.url("/auth/login"))
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PASSWORD),
            ("scope", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Every login is its own session with its own tokens, all for alice.
    let pairs = [form_pair, case_pair, email_pair, json_pair, json_email_pair];
    for (i, (access, refresh)) in pairs.iter().enumerate() {
        let me = json_of(app.get("/auth/me", Some(access)).await).await;
        assert_eq!(me["id"], alice.id, "login {i}");
        for (other_access, other_refresh) in &pairs[i + 1..] {
            assert_ne!(access, other_access);
            assert_ne!(refresh, other_refresh);
        }
    }
}

async fn login_failures_look_identical(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("alice").await;

    let unknown = assert_unauthorized(app.login_raw("nobody", PASSWORD).await).await;
    let wrong = assert_unauthorized(app.login_raw("alice", "wrong password").await).await;
    let unknown_email =
        assert_unauthorized(app.login_raw("nobody@example.com", PASSWORD).await).await;
    assert_eq!(unknown["detail"], "Incorrect username or password");
    assert_eq!(
        unknown, wrong,
        "unknown user and wrong password answer alike"
    );
    assert_eq!(unknown, unknown_email);
    // The password is case-sensitive; JSON logins fail the same way.
    let upper = assert_unauthorized(app.login_raw("alice", &PASSWORD.to_uppercase()).await).await;
    assert_eq!(upper, wrong);
    let r = app
        .post(
            "/auth/login",
            &json!({"username": "nobody", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(assert_unauthorized(r).await, unknown);
    // Failures did not lock the account for its owner (fewer than 5 of them).
    app.login("alice", PASSWORD).await;
}

async fn login_rejects_malformed_bodies(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("alice").await;
    let form = Some("application/x-www-form-urlencoded");
    let json_ct = Some("application/json");

    let r = post_raw(&app, "/auth/login", form, "username=alice").await;
    assert_422_at(r, "body.password", "form without password").await;
    let r = post_raw(&app, "/auth/login", form, "password=correct+horse+battery").await;
    assert_422_at(r, "body.username", "form without username").await;
    let r = post_raw(&app, "/auth/login", json_ct, r#"{"username": "alice"}"#).await;
    assert_422_at(r, "body.password", "JSON without password").await;
    let r = post_raw(
        &app,
        "/auth/login",
        json_ct,
        r#"{"password": "correct horse battery"}"#,
    )
    .await;
    assert_422_at(r, "body.username", "JSON without username").await;
    let r = post_raw(&app, "/auth/login", json_ct, "{}").await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = post_raw(
        &app,
        "/auth/login",
        json_ct,
        r#"{"username": "alice", "password": 12345678}"#,
    )
    .await;
    assert_422_at(r, "body.password", "numeric password").await;
    let r = post_raw(
        &app,
        "/auth/login",
        json_ct,
        r#"{"username": ["alice"], "password": "correct horse battery"}"#,
    )
    .await;
    assert_422_at(r, "body.username", "array username").await;
    let r = post_raw(&app, "/auth/login", json_ct, r#"{"username": "alice", "#).await;
    assert_422_at(r, "body", "truncated JSON").await;
    let r = post_raw(
        &app,
        "/auth/login",
        Some("text/plain"),
        "username=alice&password=correct+horse+battery",
    )
    .await;
    assert_422_at(r, "body", "text/plain").await;
    let r = post_raw(&app, "/auth/login", None, "").await;
    assert_422_at(r, "body", "no body, no content type").await;
    // Still fine afterwards.
    app.login("alice", PASSWORD).await;
}

// ---------------------------------------------------------------------------------------
// /auth/me

async fn me_returns_the_profile(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("Alice").await;
    let r = app.get("/auth/me", Some(&alice.access)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let me = json_of(r).await;
    assert_eq!(me["id"].as_i64(), Some(alice.id));
    assert_eq!(me["username"], "Alice");
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["is_admin"], false);
    assert_eq!(me["is_verified"], false);
    let created = me["created_at"].as_str().expect("created_at is a string");
    let created = chrono::DateTime::parse_from_rfc3339(created).expect("RFC 3339 created_at");
    let age = chrono::Utc::now().signed_duration_since(created);
    assert!(
        age.num_seconds().abs() < 120,
        "created_at is now-ish: {created}"
    );
    for secret in ["password", "password_hash", "hashed_password"] {
        assert!(me.get(secret).is_none(), "{secret} leaked: {me}");
    }
    // Two users see themselves.
    let bob = app.register("bob").await;
    let me = json_of(app.get("/auth/me", Some(&bob.access)).await).await;
    assert_eq!(me["username"], "bob");
    assert_ne!(me["id"].as_i64(), Some(alice.id));
    // An admin sees is_admin.
    let root = app.admin("root").await;
    let me = json_of(app.get("/auth/me", Some(&root.access)).await).await;
    assert_eq!(me["is_admin"], true);
    assert_eq!(me["is_verified"], true);
}

async fn me_user_id_is_for_admins_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    // Not even for one's own id.
    for id in [alice.id, bob.id] {
        let r = app
            .get(&format!("/auth/me?user_id={id}"), Some(&alice.access))
            .await;
        assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    }
    let root = app.admin("root").await;
    let r = app
        .get(&format!("/auth/me?user_id={}", bob.id), Some(&root.access))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let seen = json_of(r).await;
    assert_eq!(seen["id"].as_i64(), Some(bob.id));
    assert_eq!(seen["username"], "bob");
    assert_eq!(seen["email"], "bob@example.com");
    assert_eq!(seen["is_admin"], false);
    let r = app
        .get(&format!("/auth/me?user_id={}", root.id), Some(&root.access))
        .await;
    assert_eq!(json_of(r).await["username"], "root");
    for missing in [999_999, 0, -1] {
        let r = app
            .get(&format!("/auth/me?user_id={missing}"), Some(&root.access))
            .await;
        assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    }
    for bad in ["abc", "1.5", "99999999999999999999999"] {
        let r = app
            .get(&format!("/auth/me?user_id={bad}"), Some(&root.access))
            .await;
        assert_422_at(r, "query.user_id", &format!("user_id={bad}")).await;
    }
}

async fn me_requires_a_valid_bearer_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    assert_unauthorized(app.get("/auth/me", None).await).await;
    for header in [
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        "Bearer garbage".to_owned(),
        "Bearer a.b.c".to_owned(),
        format!("Basic {}", alice.access),
        format!("Token {}", alice.access),
        alice.access.clone(),
        format!("Bearer {}", alice.refresh),
        format!("Bearer {}x", alice.access),
    ] {
        let r = app
            .client
            .get(app.url("/auth/me"))
            .header("authorization", header.as_str())
            .send()
            .await
            .unwrap();
        assert_unauthorized(r).await;
    }
    // A user_id does not change the need for a token.
    assert_unauthorized(
        app.get(&format!("/auth/me?user_id={}", alice.id), None)
            .await,
    )
    .await;
    assert_eq!(me_status(&app, &alice.access).await, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------
// refresh

async fn refresh_with_refresh_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let r = refresh_raw(&app, &alice.refresh).await;
    assert_eq!(r.status(), StatusCode::OK);
    let (access2, refresh2) = pair_of(&json_of(r).await);
    assert_ne!(access2, alice.access);
    assert_ne!(refresh2, alice.refresh);
    // The new access token is alice's; the old one of the same session still works.
    let me = json_of(app.get("/auth/me", Some(&access2)).await).await;
    assert_eq!(me["id"].as_i64(), Some(alice.id));
    assert_eq!(me_status(&app, &alice.access).await, StatusCode::OK);
    // The new refresh token works in turn.
    let r = refresh_raw(&app, &refresh2).await;
    assert_eq!(r.status(), StatusCode::OK);
    let (access3, refresh3) = pair_of(&json_of(r).await);
    assert_eq!(me_status(&app, &access3).await, StatusCode::OK);
    // `{token: <refresh token>}` is read as a refresh token too.
    let r = app
        .post("/auth/refresh", &json!({ "token": refresh3 }), None)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let (access4, _) = pair_of(&json_of(r).await);
    assert_eq!(me_status(&app, &access4).await, StatusCode::OK);
    // One user's refresh never yields another's tokens.
    let bob = app.register("bob").await;
    let r = refresh_raw(&app, &bob.refresh).await;
    let (bob_access, _) = pair_of(&json_of(r).await);
    let me = json_of(app.get("/auth/me", Some(&bob_access)).await).await;
    assert_eq!(me["username"], "bob");
}

async fn refresh_with_access_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let r = app
        .post("/auth/refresh", &json!({ "token": alice.access }), None)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let (access2, refresh2) = pair_of(&json_of(r).await);
    assert_ne!(access2, alice.access);
    let me = json_of(app.get("/auth/me", Some(&access2)).await).await;
    assert_eq!(me["id"].as_i64(), Some(alice.id));
    let r = refresh_raw(&app, &refresh2).await;
    assert_eq!(r.status(), StatusCode::OK);
    pair_of(&json_of(r).await);
    // An access token is not accepted where a refresh token is asked for.
    assert_unauthorized(refresh_raw(&app, &alice.access).await).await;
    // A refresh token given as bearer is not an access token.
    assert_unauthorized(app.get("/auth/me", Some(&refresh2)).await).await;
}

async fn refresh_rejects_bad_input(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let forty_three = "A".repeat(43);
    for garbage in ["garbage", "", "a.b.c", forty_three.as_str()] {
        assert_unauthorized(refresh_raw(&app, garbage).await).await;
        let r = app
            .post("/auth/refresh", &json!({ "token": garbage }), None)
            .await;
        assert_unauthorized(r).await;
    }
    let r = app.post("/auth/refresh", &json!({}), None).await;
    assert_422_at(r, "body.refresh_token", "empty object").await;
    let r = app
        .post("/auth/refresh", &json!({ "refresh_token": null }), None)
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = app
        .post("/auth/refresh", &json!({ "refresh_token": 42 }), None)
        .await;
    assert_422_at(r, "body.refresh_token", "number").await;
    let r = app
        .post("/auth/refresh", &json!({ "token": ["x"] }), None)
        .await;
    assert_422_at(r, "body.token", "array").await;
    let json_ct = Some("application/json");
    let r = post_raw(&app, "/auth/refresh", json_ct, "{\"refresh_token\":").await;
    assert_422_at(r, "body", "truncated JSON").await;
    let r = post_raw(&app, "/auth/refresh", json_ct, "").await;
    assert_422_at(r, "body", "empty body").await;
    let body = json!({ "refresh_token": alice.refresh }).to_string();
    let r = post_raw(&app, "/auth/refresh", Some("text/plain"), &body).await;
    assert_422_at(r, "body", "text/plain").await;
    // None of that spent the real token.
    let r = refresh_raw(&app, &alice.refresh).await;
    assert_eq!(r.status(), StatusCode::OK);
}

// ---------------------------------------------------------------------------------------
// logout

async fn logout_ends_only_that_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let second = app.login("alice", PASSWORD).await;
    let (second_access, second_refresh) = pair_of(&second);
    // A refreshed access token of the first session, to check the whole session ends.
    let r = refresh_raw(&app, &alice.refresh).await;
    let (refreshed_access, refreshed_refresh) = pair_of(&json_of(r).await);

    assert_unauthorized(app.post("/auth/logout", &json!({}), None).await).await;
    assert_unauthorized(app.post("/auth/logout", &json!({}), Some("garbage")).await).await;

    let r = app
        .post("/auth/logout", &json!({}), Some(&alice.access))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        json_of(r).await,
        json!({"message": "Successfully logged out"})
    );
    // The very next request with any token of that session fails.
    assert_unauthorized(app.get("/auth/me", Some(&alice.access)).await).await;
    assert_unauthorized(app.get("/auth/me", Some(&refreshed_access)).await).await;
    assert_unauthorized(refresh_raw(&app, &refreshed_refresh).await).await;
    assert_unauthorized(refresh_raw(&app, &alice.refresh).await).await;
    let r = app
        .post("/auth/refresh", &json!({ "token": alice.access }), None)
        .await;
    assert_unauthorized(r).await;
    // Logging out twice is a 401, not a 500.
    let r = app
        .post("/auth/logout", &json!({}), Some(&alice.access))
        .await;
    assert_unauthorized(r).await;

    // The other session is untouched.
    assert_eq!(me_status(&app, &second_access).await, StatusCode::OK);
    let r = refresh_raw(&app, &second_refresh).await;
    assert_eq!(r.status(), StatusCode::OK);
    // And the user can log in again.
    let third = app.login("alice", PASSWORD).await;
    assert_eq!(
        me_status(&app, third["access_token"].as_str().unwrap()).await,
        StatusCode::OK
    );
}
