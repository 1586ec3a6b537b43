//! Text a database cannot store (NUL) is refused before it reaches the store, with the
//! same answer on both backends: 422 naming the field, or the route's own answer where it
//! has one (login 401, unknown session 404). It used to be a 500 on PostgreSQL.

use reqwest::StatusCode;
use serde_json::{json, Value};

use auth_service::error::AppError;
use auth_service::store::StoreError;

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    nul_in_login_is_an_ordinary_failed_login,
    nul_in_paths_and_queries,
    nul_in_credit_text_changes_nothing,
    nul_in_other_bodies_is_a_422,
    database_data_errors_are_client_errors,
);

const NUL: &str = "ab\u{0}c";

async fn assert_422_at(response: reqwest::Response, loc: &str) {
    let body = assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    )
    .await;
    assert_eq!(first_loc(&body), loc, "{body}");
}

async fn nul_in_login_is_an_ordinary_failed_login(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register("nul_login").await;
    // Form, as the issue's `username=ab%00c`.
    let r = app
        .client
        .post(app.url("/auth/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("username=ab%00c&password=whatever-password")
        .send()
        .await
        .unwrap();
    let body = assert_unauthorized(r).await;
    assert_eq!(body["detail"], "Incorrect username or password");
    for login in [
        json!({"username": NUL, "password": "whatever-password"}),
        json!({"email": "ab\u{0}@example.com", "password": "whatever-password"}),
        json!({"username": user.username, "password": format!("{}\u{0}", user.password)}),
    ] {
        let r = app.post("/auth/login", &login, None).await;
        let body = assert_unauthorized(r).await;
        assert_eq!(body["detail"], "Incorrect username or password", "{login}");
    }
    // The account itself is untouched.
    app.login(&user.username, &user.password).await;
}

async fn nul_in_paths_and_queries(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin("nul_admin").await;
    let r = app.delete("/auth/sessions/%00", Some(&admin.access)).await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = app
        .delete("/auth/sessions/ab%00c", Some(&admin.access))
        .await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = app
        .get("/admin/users?search=%00", Some(&admin.access))
        .await;
    assert_422_at(r, "query.search").await;
    let r = app
        .get("/admin/users?search=ab%00c&limit=5", Some(&admin.access))
        .await;
    assert_422_at(r, "query.search").await;
    let r = app.get("/auth/users/ab%00c", Some(&admin.access)).await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = app
        .delete(
            &format!("/auth/users/{}?password=%00", admin.username),
            Some(&admin.access),
        )
        .await;
    assert_422_at(r, "query.password").await;
    // Still an admin with a working session.
    assert_eq!(me_status(&app, &admin.access).await, StatusCode::OK);
}

async fn credits_of(app: &TestApp, user_id: i64) -> Value {
    ok_json(
        app.client
            .get(app.url(&format!("/credits/transactions?user_id={user_id}")))
            .header("x-api-key", "internal-key-one")
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn nul_in_credit_text_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register("nul_credits").await;
    let internal = |path: &str, body: Value| {
        app.client
            .post(app.url(path))
            .header("x-api-key", "internal-key-one")
            .json(&body)
            .send()
    };
    let r = internal("/credits/add", json!({"user_id": user.id, "amount": 5}))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    for path in ["/credits/add", "/credits/use"] {
        for field in ["reference_id", "description"] {
            let mut body = json!({"user_id": user.id, "amount": 1});
            body[field] = json!(NUL);
            let r = internal(path, body).await.unwrap();
            assert_422_at(r, &format!("body.{field}")).await;
        }
    }
    let history = credits_of(&app, user.id).await;
    assert_eq!(history["total_count"], 1, "{history}");
}

async fn nul_in_other_bodies_is_a_422(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register("nul_bodies").await;
    let cases = [
        (
            "/auth/register",
            json!({"username": NUL, "email": "n1@example.com", "password": PASSWORD}),
            "body.username",
        ),
        (
            "/auth/register",
            json!({"username": "nul_two", "email": "n\u{0}2@example.com", "password": PASSWORD}),
            "body.email",
        ),
        (
            "/auth/register",
            json!({"username": "nul_three", "email": "n3@example.com", "password": format!("{PASSWORD}\u{0}")}),
            "body.password",
        ),
        (
            "/auth/password-reset-request",
            json!({"email": "a\u{0}@example.com"}),
            "body.email",
        ),
        (
            "/auth/reset-password",
            json!({"token": NUL, "new_password": PASSWORD}),
            "body.token",
        ),
        ("/auth/verify-email", json!({"token": NUL}), "body.token"),
        (
            "/auth/refresh",
            json!({"refresh_token": NUL}),
            "body.refresh_token",
        ),
    ];
    for (path, body, loc) in cases {
        let r = app.post(path, &body, None).await;
        assert_eq!(
            r.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path} {body}"
        );
        assert_422_at(r, loc).await;
    }
    // Nothing was registered, and the existing user is as before.
    let admin = app.admin("nul_bodies_admin").await;
    let page = ok_json(app.get("/admin/users", Some(&admin.access)).await).await;
    assert_eq!(page["total_count"], 2, "{page}");
    assert_eq!(me_status(&app, &user.access).await, StatusCode::OK);
}

/// The net under the edges: if text with NUL does reach PostgreSQL, its data exception
/// (SQLSTATE class 22) becomes a 422, not a 500. SQLite stores such text, so there the
/// lookup simply finds nothing.
async fn database_data_errors_are_client_errors(backend: Backend) {
    let app = spawn_app(backend).await;
    let looked_up = app.state.store.user_by_login(NUL).await;
    match backend {
        Backend::Postgres => {
            let err = looked_up.expect_err("PostgreSQL refuses NUL in text");
            assert!(matches!(err, StoreError::InvalidData(_)), "{err:?}");
            assert_eq!(
                AppError::from(err).status(),
                StatusCode::UNPROCESSABLE_ENTITY
            );
        }
        Backend::Sqlite => assert!(looked_up.unwrap().is_none()),
    }
}
