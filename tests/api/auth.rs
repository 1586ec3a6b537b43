//! Registration, login, refresh, logout and /auth/me.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

both_backends!(register_then_me);

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
