//! The reads that check the session in the same statement as their data (GET /auth/me,
//! /auth/sessions, /credits/balance, /credits/transactions, POST /auth/refresh) keep every
//! rule of a separate check: a revoked or expired session, a foreign sid, an inactive or
//! deleted user are 401 (before 422 for a bad query), then 403 for another user's data,
//! then 404 for an unknown user; a user without a balance row has 0 as of their creation.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

const KEY: &str = "internal-key-one";

both_backends!(
    dead_sessions_and_users_cannot_read,
    foreign_session_id_is_401,
    forbidden_and_unknown_users_in_order,
    balance_without_a_balance_row,
    transactions_pages_and_total,
    sessions_list_is_the_callers_live_sessions,
    refresh_follows_the_user,
);

/// Every joined read of the caller's own data, and (for admins) of `other`'s.
fn reads(other: i64) -> Vec<String> {
    vec![
        "/auth/me".into(),
        format!("/auth/me?user_id={other}"),
        "/auth/sessions".into(),
        "/credits/balance".into(),
        format!("/credits/balance?user_id={other}"),
        "/credits/transactions".into(),
        format!("/credits/transactions?user_id={other}&skip=0&limit=5"),
        // A bad query is 422 only for an authenticated caller.
        "/credits/transactions?limit=0".into(),
        "/credits/balance?user_id=abc".into(),
        "/auth/me?user_id=abc".into(),
    ]
}

async fn all_unauthorized(app: &TestApp, token: &str, other: i64, why: &str) {
    for path in reads(other) {
        let r = app.get(&path, Some(token)).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{why}: {path}");
        assert_unauthorized(r).await;
    }
}

async fn patch_user(app: &TestApp, admin: &TestUser, username: &str, body: Value) {
    let r = app
        .client
        .patch(app.url(&format!("/admin/users/{username}")))
        .bearer_auth(&admin.access)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{body}");
}

/// Sets the flag in the database directly, leaving the user's sessions as they are.
async fn set_active(app: &TestApp, user_id: i64, active: bool) {
    let sql = "UPDATE users SET is_active = $1 WHERE id = $2";
    match app.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&app.db.url).await.unwrap();
            sqlx::query(sql)
                .bind(active)
                .bind(user_id)
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
            sqlx::query(sql)
                .bind(active)
                .bind(user_id)
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }
}

async fn dead_sessions_and_users_cannot_read(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin("root").await;
    let alice = app.verified_user("alice").await;
    let bob = app.register("bob").await;

    // The same tokens work first (so the 401s below are about the session or user).
    for path in reads(bob.id) {
        let r = app.get(&path, Some(&admin.access)).await;
        assert!(
            matches!(
                r.status(),
                StatusCode::OK | StatusCode::UNPROCESSABLE_ENTITY
            ),
            "admin {path}: {}",
            r.status()
        );
    }

    // Logged out: the JWT is still valid, its session is revoked.
    let second = app.login("root", PASSWORD).await;
    let second = second["access_token"].as_str().unwrap().to_owned();
    let r = app.post("/auth/logout", &json!({}), Some(&second)).await;
    assert_eq!(r.status(), StatusCode::OK);
    all_unauthorized(&app, &second, bob.id, "revoked session").await;

    // Deactivated by an admin: the account's sessions end with it.
    let carol = app.verified_user("carol").await;
    patch_user(&app, &admin, "carol", json!({"is_active": false})).await;
    all_unauthorized(&app, &carol.access, bob.id, "deactivated user").await;
    // An inactive user whose session row is still live (as in a race with the
    // deactivation): the joined read's own check refuses it.
    set_active(&app, alice.id, false).await;
    all_unauthorized(&app, &alice.access, bob.id, "inactive user").await;
    set_active(&app, alice.id, true).await;
    let r = app.get("/credits/balance", Some(&alice.access)).await;
    assert_eq!(r.status(), StatusCode::OK, "active again");

    // Deleted: its tokens are 401, not 404.
    let r = app
        .delete(
            &format!("/auth/users/alice?password={}", enc(PASSWORD)),
            Some(&alice.access),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    all_unauthorized(&app, &alice.access, bob.id, "deleted user").await;

    // No token, a malformed one: 401 as before.
    for path in reads(bob.id) {
        assert_unauthorized(app.get(&path, None).await).await;
        assert_unauthorized(app.get(&path, Some("not.a.jwt")).await).await;
    }
}

async fn foreign_session_id_is_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let bob_session: Value = app
        .get("/auth/sessions", Some(&bob.access))
        .await
        .json()
        .await
        .unwrap();
    let bob_sid = bob_session["sessions"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A correctly signed token for alice that names bob's session.
    let alice_user = app.state.store.user_by_id(alice.id).await.unwrap().unwrap();
    let now = auth_service::store::now();
    let forged = app
        .state
        .tokens
        .issue_access(
            &alice_user,
            &bob_sid,
            now + chrono::Duration::days(1),
            now,
            &auth_service::services::tokens::Assurance::password(),
        )
        .unwrap()
        .token;
    all_unauthorized(&app, &forged, bob.id, "foreign sid").await;
    // An unknown session id too.
    let unknown = app
        .state
        .tokens
        .issue_access(
            &alice_user,
            "no-such-session",
            now + chrono::Duration::days(1),
            now,
            &auth_service::services::tokens::Assurance::password(),
        )
        .unwrap()
        .token;
    all_unauthorized(&app, &unknown, bob.id, "unknown sid").await;
}

async fn forbidden_and_unknown_users_in_order(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin("root").await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let unknown = bob.id + 1000;

    // A plain user naming someone else, existing or not: 403 (never 404: no probing).
    for other in [bob.id, unknown] {
        for path in [
            format!("/auth/me?user_id={other}"),
            format!("/credits/balance?user_id={other}"),
            format!("/credits/transactions?user_id={other}"),
        ] {
            assert_error(
                app.get(&path, Some(&alice.access)).await,
                StatusCode::FORBIDDEN,
                "forbidden",
            )
            .await;
        }
    }
    // Naming themself is fine.
    for path in [
        format!("/credits/balance?user_id={}", alice.id),
        format!("/credits/transactions?user_id={}", alice.id),
    ] {
        assert_eq!(
            app.get(&path, Some(&alice.access)).await.status(),
            StatusCode::OK,
            "{path}"
        );
    }
    let r = app
        .get(
            &format!("/auth/me?user_id={}", alice.id),
            Some(&alice.access),
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "user_id on /auth/me is for admins"
    );

    // An admin (or an internal service) naming an unknown user: 404.
    for path in [
        format!("/auth/me?user_id={unknown}"),
        format!("/credits/balance?user_id={unknown}"),
        format!("/credits/transactions?user_id={unknown}"),
    ] {
        assert_error(
            app.get(&path, Some(&admin.access)).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    for path in [
        format!("/credits/balance?user_id={unknown}"),
        format!("/credits/transactions?user_id={unknown}"),
    ] {
        let r = app
            .client
            .get(app.url(&path))
            .header("X-API-Key", KEY)
            .send()
            .await
            .unwrap();
        assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    }
    // An internal service must name the user; a wrong key is 401 whatever the query.
    for path in ["/credits/balance", "/credits/transactions"] {
        let r = app
            .client
            .get(app.url(path))
            .header("X-API-Key", KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{path}");
        let r = app
            .client
            .get(app.url(&format!("{path}?user_id={}", alice.id)))
            .header("X-API-Key", "wrong-key")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    // The admin's view of another user.
    let me: Value = ok_json(
        app.get(&format!("/auth/me?user_id={}", bob.id), Some(&admin.access))
            .await,
    )
    .await;
    assert_eq!(me["username"], "bob");
    assert_eq!(me["id"], bob.id);
}

async fn balance_without_a_balance_row(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin("root").await;
    let alice = app.register("alice").await;
    let me: Value = ok_json(app.get("/auth/me", Some(&alice.access)).await).await;

    let own: Value = ok_json(app.get("/credits/balance", Some(&alice.access)).await).await;
    let by_admin: Value = ok_json(
        app.get(
            &format!("/credits/balance?user_id={}", alice.id),
            Some(&admin.access),
        )
        .await,
    )
    .await;
    let r = app
        .client
        .get(app.url(&format!("/credits/balance?user_id={}", alice.id)))
        .header("X-API-Key", KEY)
        .send()
        .await
        .unwrap();
    let by_service: Value = ok_json(r).await;
    for balance in [&own, &by_admin, &by_service] {
        assert_eq!(balance["user_id"], alice.id);
        assert_eq!(balance["balance"].as_f64(), Some(0.0));
        assert_eq!(
            balance["updated_at"], me["created_at"],
            "as of the account's creation"
        );
    }
    // The admin's own (no row either) is theirs, not alice's.
    let admin_own: Value = ok_json(app.get("/credits/balance", Some(&admin.access)).await).await;
    assert_eq!(admin_own["user_id"], admin.id);

    // With a row: its balance and time.
    let r = app
        .post(
            "/credits/add",
            &json!({"amount": 2.5, "user_id": alice.id}),
            Some(&admin.access),
        )
        .await;
    let added: Value = ok_json(r).await;
    let own: Value = ok_json(app.get("/credits/balance", Some(&alice.access)).await).await;
    assert_eq!(own["balance"].as_f64(), Some(2.5));
    assert_eq!(own["updated_at"], added["created_at"]);
}

async fn transactions_pages_and_total(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin("root").await;
    let alice = app.register("alice").await;
    let empty: Value = ok_json(app.get("/credits/transactions", Some(&alice.access)).await).await;
    assert_eq!(empty, json!({"transactions": [], "total_count": 0}));

    for amount in 1..=5 {
        let r = app
            .post(
                "/credits/add",
                &json!({"amount": amount, "user_id": alice.id}),
                Some(&admin.access),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let page = |skip: u32, limit: u32| {
        let path = format!("/credits/transactions?skip={skip}&limit={limit}");
        let app = &app;
        let token = alice.access.clone();
        async move { ok_json(app.get(&path, Some(&token)).await).await }
    };
    let amounts = |body: &Value| -> Vec<f64> {
        body["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["amount"].as_f64().unwrap())
            .collect()
    };
    let first = page(0, 2).await;
    assert_eq!(amounts(&first), vec![5.0, 4.0], "newest first");
    assert_eq!(first["total_count"], 5);
    let second = page(2, 2).await;
    assert_eq!(amounts(&second), vec![3.0, 2.0]);
    assert_eq!(second["total_count"], 5);
    let last = page(4, 2).await;
    assert_eq!(amounts(&last), vec![1.0]);
    assert_eq!(last["total_count"], 5);
    let beyond = page(10, 2).await;
    assert_eq!(
        beyond,
        json!({"transactions": [], "total_count": 5}),
        "empty page, total kept"
    );
    let all = page(0, 100).await;
    assert_eq!(amounts(&all), vec![5.0, 4.0, 3.0, 2.0, 1.0]);
    assert_eq!(all["transactions"][0]["new_balance"].as_f64(), Some(15.0));
    assert_eq!(all["transactions"][0]["user_id"], alice.id);
    assert_eq!(all["transactions"][0]["transaction_type"], "credit_added");

    // Another user's ledger is not mixed in, and their total is their own.
    let bob = app.register("bob").await;
    let r = app
        .post(
            "/credits/add",
            &json!({"amount": 7, "user_id": bob.id}),
            Some(&admin.access),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(page(0, 100).await["total_count"], 5);
    let bobs: Value = ok_json(
        app.get(
            &format!("/credits/transactions?user_id={}", bob.id),
            Some(&admin.access),
        )
        .await,
    )
    .await;
    assert_eq!(amounts(&bobs), vec![7.0]);
    assert_eq!(bobs["total_count"], 1);
    // Bad paging stays 422 for an authenticated caller.
    for bad in ["limit=0", "limit=101", "skip=-1", "limit=x"] {
        let r = app
            .get(&format!("/credits/transactions?{bad}"), Some(&alice.access))
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
}

async fn sessions_list_is_the_callers_live_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let second = app.login("alice", PASSWORD).await;
    let second = second["access_token"].as_str().unwrap().to_owned();
    let third = app.login("alice", PASSWORD).await;
    let third = third["access_token"].as_str().unwrap().to_owned();
    let r = app.post("/auth/logout", &json!({}), Some(&third)).await;
    assert_eq!(r.status(), StatusCode::OK);

    let listed: Value = ok_json(app.get("/auth/sessions", Some(&second)).await).await;
    let sessions = listed["sessions"].as_array().unwrap();
    assert_eq!(
        sessions.len(),
        2,
        "two live sessions, the revoked one left out: {listed}"
    );
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    assert_eq!(
        sessions[0]["current"], true,
        "newest first: the second login"
    );
    let bobs: Value = ok_json(app.get("/auth/sessions", Some(&bob.access)).await).await;
    assert_eq!(bobs["sessions"].as_array().unwrap().len(), 1);
    assert_unauthorized(app.get("/auth/sessions", Some(&third)).await).await;
    let _ = alice;
}

async fn refresh_follows_the_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin("root").await;
    let alice = app.register("alice").await;

    let first: Value = ok_json(
        app.post(
            "/auth/refresh",
            &json!({"refresh_token": alice.refresh}),
            None,
        )
        .await,
    )
    .await;
    let rotated = first["refresh_token"].as_str().unwrap().to_owned();
    // The replaced token within the grace window: a retry, answered.
    assert_eq!(refresh_status(&app, &alice.refresh).await, StatusCode::OK);
    let latest: Value = ok_json(
        app.post("/auth/refresh", &json!({"refresh_token": rotated}), None)
            .await,
    )
    .await;
    let latest = latest["refresh_token"].as_str().unwrap().to_owned();

    // An inactive user cannot refresh, with a current or a retired token (the flag set
    // alone, sessions left live: the refresh's own check refuses it).
    set_active(&app, alice.id, false).await;
    assert_eq!(
        refresh_status(&app, &latest).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        refresh_status(&app, &rotated).await,
        StatusCode::UNAUTHORIZED
    );
    set_active(&app, alice.id, true).await;
    assert_eq!(refresh_status(&app, &latest).await, StatusCode::OK);
    // Deactivated by an admin: its sessions are revoked, the refresh token with them.
    let fresh = app.login("alice", PASSWORD).await;
    let fresh = fresh["refresh_token"].as_str().unwrap().to_owned();
    patch_user(&app, &admin, "alice", json!({"is_active": false})).await;
    assert_eq!(refresh_status(&app, &fresh).await, StatusCode::UNAUTHORIZED);
    // Unknown tokens: 401.
    assert_eq!(
        refresh_status(&app, "no-such-refresh-token").await,
        StatusCode::UNAUTHORIZED
    );
}
