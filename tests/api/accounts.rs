//! One account by name (DESIGN §5, endpoints 6, 7, 8 and 11): reading it, changing its
//! password or email, deleting it, and who may do each.

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    get_user_self_admin_and_internal,
    get_user_rejects_other_users_bad_keys_and_strangers,
    change_password_requires_verified_email,
    change_password_allowed_unverified_when_not_required,
    change_password_rejects_bad_requests,
    change_password_accepts_exactly_72_bytes,
    change_password_revokes_other_sessions,
    change_email_rejects_bad_requests,
    change_email_succeeds_and_requires_new_verification,
    delete_with_query_password,
    delete_with_json_body_password,
    delete_with_null_body_uses_the_query_password,
    delete_rejects_bad_requests,
    admin_deletes_other_user_without_password,
    deleted_account_frees_username_and_email,
    concurrent_password_changes_never_fail_server_side,
);

const NEW_PASSWORD: &str = "a brand new passphrase";

async fn get_with_header(app: &TestApp, path: &str, name: &str, value: &str) -> Response {
    app.client
        .get(app.url(path))
        .header(name, value)
        .send()
        .await
        .expect("request")
}

async fn put_raw(app: &TestApp, path: &str, raw: &str, token: &str) -> Response {
    app.client
        .put(app.url(path))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(raw.to_owned())
        .send()
        .await
        .expect("request")
}

async fn delete_json(app: &TestApp, path: &str, body: &Value, token: &str) -> Response {
    app.client
        .delete(app.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("request")
}

fn assert_user_fields(user: &Value, expected: &TestUser, is_admin: bool, is_verified: bool) {
    assert_eq!(user["id"], expected.id, "{user}");
    assert_eq!(user["username"], expected.username.as_str(), "{user}");
    assert_eq!(user["email"], expected.email.as_str(), "{user}");
    assert_eq!(user["is_admin"], is_admin, "{user}");
    assert_eq!(user["is_verified"], is_verified, "{user}");
    let keys: Vec<&String> = user.as_object().expect("object").keys().collect();
    assert!(
        !keys
            .iter()
            .any(|k| k.contains("password") || k.contains("hash")),
        "no secrets in the user view: {user}"
    );
}

// ---------------------------------------------------------------------------
// GET /auth/users/{username}
// ---------------------------------------------------------------------------

async fn get_user_self_admin_and_internal(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let admin = app.admin("root").await;

    // Self.
    let r = app.get("/auth/users/alice", Some(&alice.access)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_user_fields(&json_of(r).await, &alice, false, false);

    // Admin, for anyone (and for themself).
    let r = app.get("/auth/users/alice", Some(&admin.access)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_user_fields(&json_of(r).await, &alice, false, false);
    let r = app.get("/auth/users/root", Some(&admin.access)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_user_fields(&json_of(r).await, &admin, true, true);

    // Internal services, by either header and either configured key.
    for (header, key) in [
        ("X-API-Key", "internal-key-one"),
        ("X-API-Key", "internal-key-two"),
        ("api-key", "internal-key-one"),
        ("api-key", "internal-key-two"),
    ] {
        let r = get_with_header(&app, "/auth/users/alice", header, key).await;
        assert_eq!(r.status(), StatusCode::OK, "{header}: {key}");
        assert_user_fields(&json_of(r).await, &alice, false, false);
    }

    // A verified user is reported as such.
    let bob = app.verified_user("bob").await;
    let r = get_with_header(&app, "/auth/users/bob", "X-API-Key", "internal-key-one").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_user_fields(&json_of(r).await, &bob, false, true);
}

async fn get_user_rejects_other_users_bad_keys_and_strangers(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let admin = app.admin("root").await;

    // Another user's account, and an admin's.
    let r = app.get("/auth/users/bob", Some(&alice.access)).await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = app.get("/auth/users/root", Some(&bob.access)).await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;

    // Unknown usernames, including ones that could never be valid.
    for token in [&alice.access, &admin.access] {
        for name in ["nobody", "ab", "x%20y"] {
            let r = app.get(&format!("/auth/users/{name}"), Some(token)).await;
            assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
        }
    }
    let r = get_with_header(&app, "/auth/users/nobody", "X-API-Key", "internal-key-one").await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;

    // No credentials at all, and broken bearer tokens.
    let r = app.get("/auth/users/alice", None).await;
    assert_eq!(
        r.headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap()),
        Some("Bearer")
    );
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    for token in ["garbage", "a.b.c", &format!("{}x", alice.access)] {
        let r = app.get("/auth/users/alice", Some(token)).await;
        assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }

    // Wrong keys: unknown, empty-ish, a prefix of a real one, differently cased.
    for (header, key) in [
        ("X-API-Key", "wrong-key"),
        ("X-API-Key", "internal-key-on"),
        ("X-API-Key", "INTERNAL-KEY-ONE"),
        ("X-API-Key", "internal-key-one,internal-key-two"),
        ("api-key", "nope"),
        ("api-key", ""),
    ] {
        let r = get_with_header(&app, "/auth/users/alice", header, key).await;
        assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    // A wrong key is not rescued by a valid bearer token next to it.
    let r = app
        .client
        .get(app.url("/auth/users/alice"))
        .bearer_auth(&alice.access)
        .header("X-API-Key", "wrong-key")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // The password hash never leaks, whoever asks.
    let text = get_with_header(&app, "/auth/users/alice", "api-key", "internal-key-two")
        .await
        .text()
        .await
        .unwrap();
    assert!(!text.contains("$2"), "no bcrypt hash in {text}");
}

// ---------------------------------------------------------------------------
// PUT /auth/users/{username}/password
// ---------------------------------------------------------------------------

fn change_body(current: &str, new: &str) -> Value {
    json!({"current_password": current, "new_password": new})
}

async fn change_password_requires_verified_email(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let r = app
        .put(
            "/auth/users/alice/password",
            &change_body(PASSWORD, NEW_PASSWORD),
            Some(&alice.access),
        )
        .await;
    assert_error(r, StatusCode::FORBIDDEN, "email_not_verified").await;
    // Nothing changed.
    app.login("alice", PASSWORD).await;
    assert_eq!(
        app.login_raw("alice", NEW_PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn change_password_allowed_unverified_when_not_required(backend: Backend) {
    let app = spawn_app_with(backend, |vars| {
        vars.insert("REQUIRE_EMAIL_VERIFICATION".into(), "false".into());
    })
    .await;
    let alice = app.register("alice").await;
    let r = app
        .put(
            "/auth/users/alice/password",
            &change_body(PASSWORD, NEW_PASSWORD),
            Some(&alice.access),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(json_of(r).await["message"].is_string());
    app.login("alice", NEW_PASSWORD).await;
}

async fn change_password_rejects_bad_requests(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.verified_user("alice").await;
    let bob = app.verified_user("bob").await;
    let path = "/auth/users/alice/password";
    let token = Some(alice.access.as_str());

    // Wrong current password.
    let r = app
        .put(path, &change_body("not my password", NEW_PASSWORD), token)
        .await;
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;

    // Someone else's account, even with that account's right password.
    let r = app
        .put(
            "/auth/users/bob/password",
            &change_body(PASSWORD, NEW_PASSWORD),
            token,
        )
        .await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;

    // Unknown account.
    let r = app
        .put(
            "/auth/users/nobody/password",
            &change_body(PASSWORD, NEW_PASSWORD),
            token,
        )
        .await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;

    // Weak or too long new passwords, with the right current one.
    let long_multibyte = "é".repeat(37); // 37 characters, 74 bytes
    for weak in [
        "short",
        "1234567",
        "",
        &"x".repeat(73),
        &long_multibyte,
        &"y".repeat(5000),
    ] {
        let r = app.put(path, &change_body(PASSWORD, weak), token).await;
        let b = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
        assert_eq!(first_loc(&b), "body.new_password", "{weak:?}: {b}");
    }

    // Missing fields, wrong types, malformed JSON, no JSON at all.
    let r = app
        .put(path, &json!({"new_password": NEW_PASSWORD}), token)
        .await;
    let b = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    assert_eq!(first_loc(&b), "body.current_password");
    let r = app
        .put(path, &json!({"current_password": PASSWORD}), token)
        .await;
    let b = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    assert_eq!(first_loc(&b), "body.new_password");
    for bad in [
        json!({"current_password": PASSWORD, "new_password": 123456789}),
        json!({"current_password": PASSWORD, "new_password": null}),
        json!({"current_password": ["x"], "new_password": NEW_PASSWORD}),
        json!([PASSWORD, NEW_PASSWORD]),
        json!("text"),
    ] {
        let r = app.put(path, &bad, token).await;
        assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    }
    for raw in ["{", "{\"current_password\": }", "", "null"] {
        let r = put_raw(&app, path, raw, &alice.access).await;
        assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    }
    let r = app
        .client
        .put(app.url(path))
        .bearer_auth(&alice.access)
        .header("content-type", "text/plain")
        .body(change_body(PASSWORD, NEW_PASSWORD).to_string())
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;

    // No or bad authentication.
    let body = change_body(PASSWORD, NEW_PASSWORD);
    let r = app.put(path, &body, None).await;
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let r = app.put(path, &body, Some("not-a-jwt")).await;
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    // An internal API key is not a user.
    let r = app
        .client
        .put(app.url(path))
        .header("X-API-Key", "internal-key-one")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // After all of that, both passwords are unchanged and both sessions work.
    app.login("alice", PASSWORD).await;
    app.login("bob", PASSWORD).await;
    assert_eq!(me_status(&app, &alice.access).await, StatusCode::OK);
    assert_eq!(me_status(&app, &bob.access).await, StatusCode::OK);
}

async fn change_password_accepts_exactly_72_bytes(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.verified_user("alice").await;
    // 72 bytes exactly: the last byte matters (no truncation) and it is accepted.
    let max = format!("{}A", "z".repeat(71));
    let r = app
        .put(
            "/auth/users/alice/password",
            &change_body(PASSWORD, &max),
            Some(&alice.access),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    app.login("alice", &max).await;
    let almost = format!("{}B", "z".repeat(71));
    assert_eq!(
        app.login_raw("alice", &almost).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn change_password_revokes_other_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.verified_user("alice").await;
    // A second session, opened before the change.
    let other = app.login("alice", PASSWORD).await;
    let other_access = other["access_token"].as_str().unwrap().to_owned();
    let other_refresh = other["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(me_status(&app, &other_access).await, StatusCode::OK);
    // Another user's session is not touched.
    let bob = app.verified_user("bob").await;

    let r = app
        .put(
            "/auth/users/alice/password",
            &change_body(PASSWORD, NEW_PASSWORD),
            Some(&alice.access),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(json_of(r).await["message"].is_string());

    // Old password out, new password in (by username and by email).
    let r = app.login_raw("alice", PASSWORD).await;
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    app.login("alice", NEW_PASSWORD).await;
    app.login("alice@example.com", NEW_PASSWORD).await;

    // The session that made the change goes on, refresh included.
    assert_eq!(me_status(&app, &alice.access).await, StatusCode::OK);
    assert_eq!(refresh_status(&app, &alice.refresh).await, StatusCode::OK);

    // The other session is over at once: access and refresh tokens.
    let r = app.get("/auth/me", Some(&other_access)).await;
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_eq!(
        refresh_status(&app, &other_refresh).await,
        StatusCode::UNAUTHORIZED
    );
    let r = app
        .post("/auth/refresh", &json!({"token": other_access}), None)
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    assert_eq!(me_status(&app, &bob.access).await, StatusCode::OK);
}

// ---------------------------------------------------------------------------
// PUT /auth/users/{username}/email
// ---------------------------------------------------------------------------

fn email_body(new_email: &str, password: &str) -> Value {
    json!({"new_email": new_email, "current_password": password})
}

async fn change_email_rejects_bad_requests(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.verified_user("alice").await;
    let _bob = app.verified_user("bob").await;
    let path = "/auth/users/alice/email";
    let token = Some(alice.access.as_str());

    // An unverified user may not.
    let carol = app.register("carol").await;
    let r = app
        .put(
            "/auth/users/carol/email",
            &email_body("carol2@example.com", PASSWORD),
            Some(&carol.access),
        )
        .await;
    assert_error(r, StatusCode::FORBIDDEN, "email_not_verified").await;

    // Taken by someone else, whatever the case.
    for taken in ["bob@example.com", "BOB@Example.COM", "carol@example.com"] {
        let r = app.put(path, &email_body(taken, PASSWORD), token).await;
        assert_error(r, StatusCode::BAD_REQUEST, "email_taken").await;
    }
    // The address it already has.
    let r = app
        .put(path, &email_body("ALICE@example.com", PASSWORD), token)
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Wrong password.
    let r = app
        .put(
            path,
            &email_body("alice2@example.com", "wrong password"),
            token,
        )
        .await;
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;

    // Not addresses.
    for invalid in [
        "not-an-email",
        "",
        "@example.com",
        "alice@",
        "a b@example.com",
        "alice@@example.com",
    ] {
        let r = app.put(path, &email_body(invalid, PASSWORD), token).await;
        let b = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
        assert_eq!(first_loc(&b), "body.new_email", "{invalid:?}: {b}");
    }
    let r = app
        .put(path, &json!({"current_password": PASSWORD}), token)
        .await;
    let b = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    assert_eq!(first_loc(&b), "body.new_email");
    let r = app
        .put(path, &json!({"new_email": "alice2@example.com"}), token)
        .await;
    let b = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    assert_eq!(first_loc(&b), "body.current_password");
    let r = app
        .put(
            path,
            &json!({"new_email": 42, "current_password": PASSWORD}),
            token,
        )
        .await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    let r = put_raw(
        &app,
        path,
        "{\"new_email\": \"x@example.com\",",
        &alice.access,
    )
    .await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;

    // Someone else's account; an unknown one.
    let r = app
        .put(
            "/auth/users/bob/email",
            &email_body("bob2@example.com", PASSWORD),
            token,
        )
        .await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = app
        .put(
            "/auth/users/nobody/email",
            &email_body("nobody@example.com", PASSWORD),
            token,
        )
        .await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;

    // No authentication.
    let r = app
        .put(path, &email_body("alice2@example.com", PASSWORD), None)
        .await;
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;

    // Nothing changed.
    let me = json_of(app.get("/auth/me", token).await).await;
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["is_verified"], true);
    let r = app.get("/auth/users/bob", Some(&_bob.access)).await;
    assert_eq!(json_of(r).await["email"], "bob@example.com");
}

async fn change_email_succeeds_and_requires_new_verification(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.verified_user("alice").await;
    let r = app
        .put(
            "/auth/users/alice/email",
            &email_body("Alice.New@Example.COM", PASSWORD),
            Some(&alice.access),
        )
        .await;
    check_email_changed(&app, &alice, r).await;
}

async fn check_email_changed(app: &TestApp, alice: &TestUser, r: Response) {
    assert_eq!(r.status(), StatusCode::OK);
    let b = json_of(r).await;
    assert!(b["message"].is_string(), "{b}");
    assert_eq!(b["username"], "alice");
    // Pending (DESIGN §5 #7): the current address stays until the new one is confirmed.
    assert_eq!(b["email"], "alice@example.com", "{b}");
    assert_eq!(b["pending_email"], "alice.new@example.com", "{b}");

    let me = json_of(app.get("/auth/me", Some(&alice.access)).await).await;
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["is_verified"], true);

    // The old address still logs in; the pending one does not name the account yet.
    app.login("alice@example.com", PASSWORD).await;
    let r = app.login_raw("alice.new@example.com", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Verified-only endpoints stay open: a mistyped address locks nothing.
    let r = app
        .put(
            "/auth/users/alice/password",
            &change_body(PASSWORD, NEW_PASSWORD),
            Some(&alice.access),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    // The current address is still taken; the pending one is not reserved.
    let r = app.register_raw("bob", "alice@example.com", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
}

// ---------------------------------------------------------------------------
// DELETE /auth/users/{username}
// ---------------------------------------------------------------------------

async fn assert_gone(app: &TestApp, user: &TestUser) {
    let r = app.get("/auth/me", Some(&user.access)).await;
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_eq!(
        refresh_status(app, &user.refresh).await,
        StatusCode::UNAUTHORIZED
    );
    let r = app.login_raw(&user.username, &user.password).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = get_with_header(
        app,
        &format!("/auth/users/{}", user.username),
        "X-API-Key",
        "internal-key-one",
    )
    .await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
}

async fn delete_with_query_password(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.verified_user("alice").await;
    let bob = app.verified_user("bob").await;
    // A second session of alice's.
    let second = app.login("alice", PASSWORD).await;
    let second_access = second["access_token"].as_str().unwrap().to_owned();

    let r = app
        .delete(
            &format!("/auth/users/alice?password={}", enc(PASSWORD)),
            Some(&alice.access),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        json_of(r).await,
        json!({"message": "User deleted successfully"})
    );

    assert_gone(&app, &alice).await;
    assert_eq!(
        me_status(&app, &second_access).await,
        StatusCode::UNAUTHORIZED
    );
    // Deleting again: the token is dead now.
    let r = app
        .delete(
            &format!("/auth/users/alice?password={}", enc(PASSWORD)),
            Some(&alice.access),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Bob is untouched.
    assert_eq!(me_status(&app, &bob.access).await, StatusCode::OK);
}

async fn delete_with_json_body_password(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.verified_user("alice").await;
    let r = delete_json(
        &app,
        "/auth/users/alice",
        &json!({"password": PASSWORD}),
        &alice.access,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        json_of(r).await,
        json!({"message": "User deleted successfully"})
    );
    assert_gone(&app, &alice).await;
}

/// A JSON `null` is no body at all (optional bodies are nullable in the OpenAPI
/// document): the query's password decides.
async fn delete_with_null_body_uses_the_query_password(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.verified_user("alice").await;
    let r = delete_json(
        &app,
        &format!("/auth/users/alice?password={}", enc(PASSWORD)),
        &json!(null),
        &alice.access,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_gone(&app, &alice).await;
}

async fn delete_rejects_bad_requests(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.verified_user("alice").await;
    let bob = app.verified_user("bob").await;
    let token = alice.access.as_str();

    // Wrong password, by query and by body.
    let r = app
        .delete("/auth/users/alice?password=wrong-password", Some(token))
        .await;
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let r = delete_json(
        &app,
        "/auth/users/alice",
        &json!({"password": "wrong-password"}),
        token,
    )
    .await;
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    // A wrong query password is not rescued by a right body password.
    let r = delete_json(
        &app,
        "/auth/users/alice?password=wrong-password",
        &json!({"password": PASSWORD}),
        token,
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Missing password.
    let r = app.delete("/auth/users/alice", Some(token)).await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    let r = delete_json(&app, "/auth/users/alice", &json!({}), token).await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    let r = delete_json(&app, "/auth/users/alice", &json!({"password": null}), token).await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    // Wrong type and malformed JSON are 422s, never 500s.
    let r = delete_json(
        &app,
        "/auth/users/alice",
        &json!({"password": 12345678}),
        token,
    )
    .await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    let r = app
        .client
        .delete(app.url("/auth/users/alice"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body("{\"password\": ")
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;

    // Someone else's account, even with their password; an unknown account.
    let r = app
        .delete(
            &format!("/auth/users/bob?password={}", enc(PASSWORD)),
            Some(token),
        )
        .await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = app
        .delete(
            &format!("/auth/users/nobody?password={}", enc(PASSWORD)),
            Some(token),
        )
        .await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;

    // Not authenticated; an unverified user.
    let r = app
        .delete(
            &format!("/auth/users/alice?password={}", enc(PASSWORD)),
            None,
        )
        .await;
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let carol = app.register("carol").await;
    let r = app
        .delete(
            &format!("/auth/users/carol?password={}", enc(PASSWORD)),
            Some(&carol.access),
        )
        .await;
    assert_error(r, StatusCode::FORBIDDEN, "email_not_verified").await;

    // Everyone is still there.
    for user in [&alice, &bob, &carol] {
        assert_eq!(me_status(&app, &user.access).await, StatusCode::OK);
    }
    app.login("alice", PASSWORD).await;
}

async fn admin_deletes_other_user_without_password(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin("root").await;
    let alice = app.register("alice").await; // unverified: the admin may delete it anyway
    let bob = app.verified_user("bob").await;

    let r = app.delete("/auth/users/alice", Some(&admin.access)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        json_of(r).await,
        json!({"message": "User deleted successfully"})
    );
    assert_gone(&app, &alice).await;

    // An admin needs no password for someone else's account: a wrong one is ignored.
    let r = app
        .delete("/auth/users/bob?password=whatever123", Some(&admin.access))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_gone(&app, &bob).await;

    // Unknown account for the admin: 404.
    let r = app.delete("/auth/users/nobody", Some(&admin.access)).await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    // The admin is still fine.
    assert_eq!(me_status(&app, &admin.access).await, StatusCode::OK);
}

async fn deleted_account_frees_username_and_email(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.verified_user("Alice").await;
    let r = app
        .delete(
            &format!("/auth/users/alice?password={}", enc(PASSWORD)),
            Some(&alice.access),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        me_status(&app, &alice.access).await,
        StatusCode::UNAUTHORIZED
    );

    // Same username (other case too) and same email register again.
    let r = app
        .register_raw("ALICE", "alice@example.com", "another password")
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let fresh = json_of(r).await;
    let fresh_access = fresh["access_token"].as_str().unwrap();
    let me = json_of(app.get("/auth/me", Some(fresh_access)).await).await;
    assert_eq!(me["username"], "ALICE");
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["is_verified"], false, "a new account starts unverified");
    assert_ne!(me["id"], alice.id, "a new account, not the old one revived");
    // The old tokens do not open the new account.
    assert_eq!(
        me_status(&app, &alice.access).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        refresh_status(&app, &alice.refresh).await,
        StatusCode::UNAUTHORIZED
    );
    app.login("alice", "another password").await;
}

// ---------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------

async fn concurrent_password_changes_never_fail_server_side(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.verified_user("alice").await;
    let candidates: Vec<String> = (0..10)
        .map(|i| format!("new password number {i}"))
        .collect();

    let requests = candidates.iter().map(|candidate| {
        let app = &app;
        let access = alice.access.clone();
        async move {
            app.put(
                "/auth/users/alice/password",
                &change_body(PASSWORD, candidate),
                Some(&access),
            )
            .await
        }
    });
    let responses = join_all(requests).await;
    let mut ok = 0;
    for r in responses {
        let status = r.status();
        assert!(
            status == StatusCode::OK || status == StatusCode::UNAUTHORIZED,
            "unexpected status {status}: {}",
            r.text().await.unwrap_or_default()
        );
        if status == StatusCode::OK {
            ok += 1;
        }
    }
    assert!(ok >= 1, "at least the first change succeeds");

    // Exactly one candidate is the password now; found without burning login attempts.
    let stored = app
        .state
        .store
        .user_by_id(alice.id)
        .await
        .unwrap()
        .expect("user exists")
        .password_hash;
    let matching: Vec<&String> = candidates
        .iter()
        .filter(|c| bcrypt::verify(c.as_str(), &stored).unwrap_or(false))
        .collect();
    assert_eq!(matching.len(), 1, "exactly one new password is in force");
    assert!(!bcrypt::verify(PASSWORD, &stored).unwrap_or(false));
    app.login("alice", matching[0]).await;
    assert_eq!(
        app.login_raw("alice", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // The session that made the changes survives them.
    assert_eq!(me_status(&app, &alice.access).await, StatusCode::OK);
}
