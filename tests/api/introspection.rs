//! POST /oauth/introspect (RFC 7662, DESIGN §13): active for a live token, exactly
//! `{"active": false}` for anything else, 401 without the internal key.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    live_tokens_are_active_with_their_facts,
    dead_tokens_are_inactive_at_once,
    introspection_needs_the_internal_key,
);

const KEY: &str = "internal-key-one";

async fn introspect_raw(app: &TestApp, key: Option<&str>, body: String) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/oauth/introspect"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(key) = key {
        request = request.header("X-API-Key", key);
    }
    request.send().await.unwrap()
}

async fn introspect(app: &TestApp, token: &str) -> Value {
    let r = introspect_raw(app, Some(KEY), format!("token={}", enc(token))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    r.json().await.unwrap()
}

fn inactive() -> Value {
    json!({"active": false})
}

async fn live_tokens_are_active_with_their_facts(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let answer = introspect(&app, &alice.access).await;
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["sub"], alice.id.to_string());
    assert_eq!(answer["username"], "alice");
    assert_eq!(answer["iss"], app.state.config.jwt.issuer.as_str());
    assert_eq!(answer["aud"], "authenticated");
    assert_eq!(answer["aal"], "aal1");
    assert_eq!(answer["token_type"], "access_token");
    for name in ["sid", "exp", "iat"] {
        assert!(answer.get(name).is_some(), "{name} missing: {answer}");
    }
    // JSON bodies and the `api-key` header are accepted too; HS256 installs introspect alike.
    let r = app
        .client
        .post(app.url("/oauth/introspect"))
        .header("api-key", KEY)
        .json(&json!({"token": alice.access, "token_type_hint": "access_token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["active"], true);
    let hs = spawn_app_with(backend, |v| {
        v.insert("ALGORITHM".into(), "HS256".into());
    })
    .await;
    let bob = hs.register("bob").await;
    assert_eq!(introspect(&hs, &bob.access).await["active"], true);
}

async fn dead_tokens_are_inactive_at_once(backend: Backend) {
    let app = spawn_app_with(backend, |v| {
        v.insert("ACCESS_TOKEN_EXPIRE_SECONDS".into(), "2".into());
    })
    .await;
    // Garbage of every shape.
    for garbage in [
        "",
        "garbage",
        "a.b.c",
        "eyJhbGciOiJub25lIn0.e30.",
        &"x".repeat(9000),
    ] {
        assert_eq!(introspect(&app, garbage).await, inactive(), "{garbage:.20}");
    }
    // Logout.
    let alice = app.register("alice").await;
    assert_eq!(
        app.post("/auth/logout", &json!({}), Some(&alice.access))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(introspect(&app, &alice.access).await, inactive());
    // Password reset revokes every session.
    let bob = app.register("bob").await;
    assert_eq!(introspect(&app, &bob.access).await["active"], true);
    let r = app
        .post(
            "/auth/password-reset-request",
            &json!({"email": bob.email}),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let token = app
        .wait_for_mail(&bob.email, "reset")
        .await
        .token()
        .expect("reset token");
    let r = app
        .post(
            "/auth/reset-password",
            &json!({"token": token, "new_password": "another-password-1"}),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(introspect(&app, &bob.access).await, inactive());
    // Deactivation by an admin.
    let carol = app.register("carol").await;
    let root = app.admin("root").await;
    let r = app
        .client
        .patch(app.url("/admin/users/carol"))
        .bearer_auth(&root.access)
        .json(&json!({"is_active": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(introspect(&app, &carol.access).await, inactive());
    // Deletion.
    let dave = app.verified_user("dave").await;
    let r = app
        .delete(
            &format!("/auth/users/dave?password={}", enc(&dave.password)),
            Some(&dave.access),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(introspect(&app, &dave.access).await, inactive());
    // Expiry (a 2-second token life here).
    let erin = app.register("erin").await;
    assert_eq!(introspect(&app, &erin.access).await["active"], true);
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    assert_eq!(introspect(&app, &erin.access).await, inactive());
}

async fn introspection_needs_the_internal_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let body = format!("token={}", enc(&alice.access));
    for key in [None, Some("wrong-key"), Some("")] {
        let r = introspect_raw(&app, key, body.clone()).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "key {key:?}");
        assert!(r.headers().contains_key("www-authenticate"));
    }
    // A user's bearer token is not an internal key.
    let r = app
        .client
        .post(app.url("/oauth/introspect"))
        .bearer_auth(&alice.access)
        .form(&[("token", alice.access.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // No token field: the contract's 422.
    let r = introspect_raw(&app, Some(KEY), "nothing=here".into()).await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
}
