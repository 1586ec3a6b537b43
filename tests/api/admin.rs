//! Administration: list and search accounts, change their flags, read anyone's activity.

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    list_users_newest_first_with_paging,
    list_users_search_is_case_insensitive_and_literal,
    admin_routes_require_an_admin,
    list_users_rejects_bad_paging_and_search,
    update_user_changes_flags,
    update_user_rejects_bad_bodies,
    update_user_needs_an_existing_user,
    admins_cannot_demote_or_deactivate_themselves,
    deactivation_ends_access_at_once_and_blocks_login,
    promotion_and_demotion_take_effect_on_the_live_token,
    admin_updates_are_recorded,
    admin_activity_lists_everyones_events,
);

// ---------------------------------------------------------------------------------------
// helpers of this file

async fn patch(app: &TestApp, path: &str, body: &Value, token: Option<&str>) -> Response {
    let mut req = app.client.patch(app.url(path)).json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("request")
}

async fn patch_raw(
    app: &TestApp,
    path: &str,
    content_type: Option<&str>,
    body: &str,
    token: &str,
) -> Response {
    let mut req = app
        .client
        .request(Method::PATCH, app.url(path))
        .body(body.to_owned())
        .bearer_auth(token);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    req.send().await.expect("request")
}

/// GET with properly encoded query parameters.
async fn get_with(
    app: &TestApp,
    path: &str,
    query: &[(&str, &str)],
    token: Option<&str>,
) -> Response {
    let mut req = app.client.get(app.url(path)).query(query);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("request")
}

async fn assert_forbidden(r: Response) {
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
}

async fn assert_422(r: Response, what: &str) -> Value {
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{what}");
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await
}

/// One page of /admin/users: (usernames in order, total_count, the users).
async fn users(
    app: &TestApp,
    token: &str,
    query: &[(&str, &str)],
) -> (Vec<String>, i64, Vec<Value>) {
    let body = ok_json(get_with(app, "/admin/users", query, Some(token)).await).await;
    let list = body["users"].as_array().expect("users is a list").clone();
    let names = list
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_owned())
        .collect();
    (
        names,
        body["total_count"].as_i64().expect("total_count"),
        list,
    )
}

/// A user as /admin/users shows it (found by exact username).
async fn listed(app: &TestApp, token: &str, username: &str) -> Value {
    let (_, _, list) = users(app, token, &[("search", username), ("limit", "100")]).await;
    list.into_iter()
        .find(|u| u["username"] == username)
        .unwrap_or_else(|| panic!("{username} not listed"))
}

fn access_of(tokens: &Value) -> String {
    tokens["access_token"].as_str().unwrap().to_owned()
}

/// Events of one user as the admin sees them, newest first.
async fn admin_events(app: &TestApp, admin: &str, user_id: i64) -> Vec<Value> {
    let body = ok_json(
        app.get(
            &format!("/admin/activity?user_id={user_id}&limit=100"),
            Some(admin),
        )
        .await,
    )
    .await;
    body["activities"].as_array().unwrap().clone()
}

// ---------------------------------------------------------------------------------------
// GET /admin/users

async fn list_users_newest_first_with_paging(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin("root").await;
    let mut ids = vec![root.id];
    for i in 1..=5 {
        ids.push(app.register(&format!("user{i}")).await.id);
    }

    let r = app.get("/admin/users", Some(&root.access)).await;
    let text = r.text().await.unwrap();
    assert!(
        !text.contains("password") && !text.contains("$2"),
        "no password hashes: {text}"
    );
    let (names, total, list) = users(&app, &root.access, &[]).await;
    assert_eq!(names, ["user5", "user4", "user3", "user2", "user1", "root"]);
    assert_eq!(total, 6);
    let listed_ids: Vec<i64> = list.iter().map(|u| u["id"].as_i64().unwrap()).collect();
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(listed_ids, newest_first);
    for u in &list {
        assert_eq!(
            sorted_keys(u),
            [
                "created_at",
                "email",
                "id",
                "identities",
                "is_active",
                "is_admin",
                "is_verified",
                "username"
            ],
            "{u}"
        );
        assert!(u["created_at"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .is_ok());
    }
    let root_row = list.iter().find(|u| u["username"] == "root").unwrap();
    assert_eq!(root_row["email"], "root@example.com");
    assert_eq!(
        (
            root_row["is_admin"].clone(),
            root_row["is_active"].clone(),
            root_row["is_verified"].clone()
        ),
        (json!(true), json!(true), json!(true))
    );
    let user1 = list.iter().find(|u| u["username"] == "user1").unwrap();
    assert_eq!(user1["email"], "user1@example.com");
    assert_eq!(
        (
            user1["is_admin"].clone(),
            user1["is_active"].clone(),
            user1["is_verified"].clone()
        ),
        (json!(false), json!(true), json!(false))
    );

    // Paging.
    for (skip, limit, expected) in [
        ("0", "2", vec!["user5", "user4"]),
        ("2", "2", vec!["user3", "user2"]),
        ("4", "2", vec!["user1", "root"]),
        ("5", "100", vec!["root"]),
        ("6", "2", vec![]),
        ("600", "100", vec![]),
        ("1", "1", vec!["user4"]),
    ] {
        let (names, total, _) =
            users(&app, &root.access, &[("skip", skip), ("limit", limit)]).await;
        assert_eq!(names, expected, "skip={skip} limit={limit}");
        assert_eq!(total, 6, "total_count ignores paging");
    }
}

async fn list_users_search_is_case_insensitive_and_literal(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin("root").await;
    for name in ["alpha_one", "alphaxone", "MixedCase", "bob"] {
        app.register(name).await;
    }
    let search = |s: &'static str| {
        let app = &app;
        let token = root.access.clone();
        async move {
            let (names, total, _) = users(app, &token, &[("search", s)]).await;
            assert_eq!(
                total,
                names.len() as i64,
                "search {s:?}: total_count is the match count"
            );
            names
        }
    };

    assert_eq!(search("ALPHA").await, ["alphaxone", "alpha_one"]);
    assert_eq!(search("alpha").await, ["alphaxone", "alpha_one"]);
    // Username case is kept in the answer; the match ignores it.
    assert_eq!(search("mixedc").await, ["MixedCase"]);
    assert_eq!(search("MIXEDCASE").await, ["MixedCase"]);
    // Email fragments, any case.
    assert_eq!(search("XONE@EXAMPLE.COM").await, ["alphaxone"]);
    assert_eq!(search("bob@").await, ["bob"]);
    assert_eq!(
        search("@example.com").await,
        ["bob", "MixedCase", "alphaxone", "alpha_one", "root"]
    );
    // LIKE wildcards are plain characters.
    assert_eq!(search("%").await, Vec::<String>::new());
    assert_eq!(search("%%").await, Vec::<String>::new());
    assert_eq!(search("a%e").await, Vec::<String>::new());
    assert_eq!(search("_").await, ["alpha_one"]);
    assert_eq!(search("a_o").await, ["alpha_one"]);
    assert_eq!(search("a_x").await, Vec::<String>::new());
    assert_eq!(search("\\").await, Vec::<String>::new());
    assert_eq!(search("\\%").await, Vec::<String>::new());
    // Quotes and SQL are data.
    assert_eq!(search("' OR '1'='1").await, Vec::<String>::new());
    assert_eq!(
        search("\"; DROP TABLE users; --").await,
        Vec::<String>::new()
    );
    assert_eq!(search("nobody-has-this").await, Vec::<String>::new());
    // Blank searches are no filter; surrounding blanks are ignored.
    assert_eq!(search("").await.len(), 5);
    assert_eq!(search("   ").await.len(), 5);
    assert_eq!(search("  bob  ").await, ["bob"]);
    assert_eq!(search("ünïcödé").await, Vec::<String>::new());

    // Search and paging together.
    let (names, total, _) = users(&app, &root.access, &[("search", "alpha"), ("limit", "1")]).await;
    assert_eq!((names, total), (vec!["alphaxone".to_owned()], 2));
    let (names, total, _) = users(
        &app,
        &root.access,
        &[("search", "alpha"), ("limit", "1"), ("skip", "1")],
    )
    .await;
    assert_eq!((names, total), (vec!["alpha_one".to_owned()], 2));

    // Still all there.
    let (_, total, _) = users(&app, &root.access, &[]).await;
    assert_eq!(total, 5);
}

async fn admin_routes_require_an_admin(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin("root").await;
    let alice = app.register("alice").await;
    let bob = app.verified_user("bob").await;

    for token in [&alice.access, &bob.access] {
        assert_forbidden(app.get("/admin/users", Some(token)).await).await;
        assert_forbidden(app.get("/admin/users?limit=0", Some(token)).await).await;
        assert_forbidden(app.get("/admin/activity", Some(token)).await).await;
        assert_forbidden(
            patch(
                &app,
                "/admin/users/alice",
                &json!({"is_admin": true}),
                Some(token),
            )
            .await,
        )
        .await;
        assert_forbidden(
            patch(
                &app,
                "/admin/users/bob",
                &json!({"is_verified": false}),
                Some(token),
            )
            .await,
        )
        .await;
        assert_forbidden(
            patch(
                &app,
                "/admin/users/root",
                &json!({"is_active": false}),
                Some(token),
            )
            .await,
        )
        .await;
        assert_forbidden(patch(&app, "/admin/users/alice", &json!({}), Some(token)).await).await;
    }
    for token in [None, Some("garbage"), Some(alice.refresh.as_str())] {
        assert_unauthorized(app.get("/admin/users", token).await).await;
        assert_unauthorized(app.get("/admin/activity", token).await).await;
        assert_unauthorized(
            patch(
                &app,
                "/admin/users/alice",
                &json!({"is_admin": true}),
                token,
            )
            .await,
        )
        .await;
    }
    // An internal key is not an admin.
    let r = app
        .client
        .get(app.url("/admin/users"))
        .header("X-API-Key", "internal-key-one")
        .send()
        .await
        .unwrap();
    assert_unauthorized(r).await;

    // Nobody escalated anything.
    let a = listed(&app, &root.access, "alice").await;
    assert_eq!(
        (a["is_admin"].clone(), a["is_verified"].clone()),
        (json!(false), json!(false))
    );
    let b = listed(&app, &root.access, "bob").await;
    assert_eq!(
        (b["is_admin"].clone(), b["is_verified"].clone()),
        (json!(false), json!(true))
    );
    let r = listed(&app, &root.access, "root").await;
    assert_eq!(r["is_active"], true);
    assert_forbidden(app.get("/admin/users", Some(&alice.access)).await).await;

    // Wrong method.
    let r = app.delete("/admin/users/alice", Some(&root.access)).await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

async fn list_users_rejects_bad_paging_and_search(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin("root").await;
    for (query, loc) in [
        ("?limit=0", "query.limit"),
        ("?limit=101", "query.limit"),
        ("?limit=-5", "query.limit"),
        ("?limit=x", "query.limit"),
        ("?limit=2.5", "query.limit"),
        ("?skip=-1", "query.skip"),
        ("?skip=x", "query.skip"),
        ("?skip=1e3", "query.skip"),
    ] {
        let r = app
            .get(&format!("/admin/users{query}"), Some(&root.access))
            .await;
        let body = assert_422(r, query).await;
        assert_eq!(first_loc(&body), loc, "{query}: {body}");
    }
    let long = "a".repeat(255);
    let body = assert_422(
        get_with(
            &app,
            "/admin/users",
            &[("search", &long)],
            Some(&root.access),
        )
        .await,
        "long search",
    )
    .await;
    assert_eq!(first_loc(&body), "query.search");
    let ok = "a".repeat(254);
    let (names, total, _) = users(&app, &root.access, &[("search", &ok)]).await;
    assert_eq!((names.len(), total), (0, 0));
    // Limits at the edges are fine.
    assert_eq!(
        users(&app, &root.access, &[("limit", "1")]).await.0,
        ["root"]
    );
    assert_eq!(
        users(&app, &root.access, &[("limit", "100")]).await.0,
        ["root"]
    );
}

// ---------------------------------------------------------------------------------------
// PATCH /admin/users/{username}

async fn update_user_changes_flags(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin("root").await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;

    let r = patch(
        &app,
        "/admin/users/alice",
        &json!({"is_verified": true}),
        Some(&root.access),
    )
    .await;
    let u = ok_json(r).await;
    assert_eq!(
        sorted_keys(&u),
        [
            "created_at",
            "email",
            "id",
            "identities",
            "is_active",
            "is_admin",
            "is_verified",
            "username"
        ],
        "{u}"
    );
    assert_eq!(u["id"], alice.id);
    assert_eq!(u["username"], "alice");
    assert_eq!(u["email"], "alice@example.com");
    assert_eq!(
        (
            u["is_admin"].clone(),
            u["is_active"].clone(),
            u["is_verified"].clone()
        ),
        (json!(false), json!(true), json!(true))
    );
    // Stored, and visible to the user on their very next request.
    let me = ok_json(app.get("/auth/me", Some(&alice.access)).await).await;
    assert_eq!(me["is_verified"], true);
    assert_eq!(listed(&app, &root.access, "alice").await, u);
    // The verified-only routes open up.
    let r = app
        .put(
            "/auth/users/alice/password",
            &json!({"current_password": PASSWORD, "new_password": "another password 1"}),
            Some(&alice.access),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    // Several flags at once; the username in the path ignores case.
    let r = patch(
        &app,
        "/admin/users/ALICE",
        &json!({"is_admin": true, "is_verified": false}),
        Some(&root.access),
    )
    .await;
    let u = ok_json(r).await;
    assert_eq!(u["username"], "alice");
    assert_eq!(
        (
            u["is_admin"].clone(),
            u["is_active"].clone(),
            u["is_verified"].clone()
        ),
        (json!(true), json!(true), json!(false))
    );
    // A flag set to what it already is: fine, nothing else moves.
    let r = patch(
        &app,
        "/admin/users/alice",
        &json!({"is_active": true}),
        Some(&root.access),
    )
    .await;
    let u = ok_json(r).await;
    assert_eq!(
        (
            u["is_admin"].clone(),
            u["is_active"].clone(),
            u["is_verified"].clone()
        ),
        (json!(true), json!(true), json!(false))
    );
    // A null flag means "leave it", as long as another is given.
    let r = patch(
        &app,
        "/admin/users/alice",
        &json!({"is_admin": null, "is_verified": true}),
        Some(&root.access),
    )
    .await;
    let u = ok_json(r).await;
    assert_eq!(
        (u["is_admin"].clone(), u["is_verified"].clone()),
        (json!(true), json!(true))
    );

    // Bob was not touched by any of it.
    let b = listed(&app, &root.access, "bob").await;
    assert_eq!(b["id"], bob.id);
    assert_eq!(
        (
            b["is_admin"].clone(),
            b["is_active"].clone(),
            b["is_verified"].clone()
        ),
        (json!(false), json!(true), json!(false))
    );
}

async fn update_user_rejects_bad_bodies(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin("root").await;
    app.register("alice").await;
    let path = "/admin/users/alice";

    for body in [
        json!({}),
        json!({"is_admin": null}),
        json!({"is_admin": null, "is_active": null, "is_verified": null}),
        json!({"is_admin": "true"}),
        json!({"is_admin": 1}),
        json!({"is_active": [false]}),
        json!({"is_verified": {"value": true}}),
        json!({"is_active": "no"}),
        json!({"is_admin": true, "role": "root"}),
        json!({"is_admin": true, "password": "x"}),
        json!({"username": "mallory"}),
        json!({"email": "m@example.com"}),
        json!([true]),
        json!(null),
        json!(true),
        json!("is_admin"),
    ] {
        let r = patch(&app, path, &body, Some(&root.access)).await;
        assert_422(r, &body.to_string()).await;
    }
    for (ct, raw) in [
        (Some("application/json"), "{"),
        (Some("application/json"), "{\"is_admin\": tru}"),
        (Some("application/json"), "{\"is_admin\": true} trailing"),
        (Some("application/json"), ""),
        (Some("text/plain"), "{\"is_admin\": true}"),
        (Some("application/x-www-form-urlencoded"), "is_admin=true"),
        (None, "{\"is_admin\": true}"),
    ] {
        let r = patch_raw(&app, path, ct, raw, &root.access).await;
        assert_422(r, &format!("{ct:?} {raw:?}")).await;
    }
    // The type errors name the field.
    let body = assert_422(
        patch(&app, path, &json!({"is_active": "no"}), Some(&root.access)).await,
        "type",
    )
    .await;
    assert_eq!(first_loc(&body), "body.is_active", "{body}");

    // None of it changed alice.
    let a = listed(&app, &root.access, "alice").await;
    assert_eq!(
        (
            a["is_admin"].clone(),
            a["is_active"].clone(),
            a["is_verified"].clone()
        ),
        (json!(false), json!(true), json!(false))
    );
    let events = admin_events(&app, &root.access, a["id"].as_i64().unwrap()).await;
    assert!(
        events.iter().all(|e| e["event"] != "admin_update"),
        "{events:?}"
    );
}

async fn update_user_needs_an_existing_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin("root").await;
    let alice = app.register("alice").await;
    let too_long = "x".repeat(40);
    for name in [
        "ghost",
        "a",
        "no%20such%20user",
        too_long.as_str(),
        "alice.",
        "1",
    ] {
        let r = patch(
            &app,
            &format!("/admin/users/{name}"),
            &json!({"is_admin": true}),
            Some(&root.access),
        )
        .await;
        assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    }
    // A deleted account is gone for the admin too.
    let r = app.delete("/auth/users/alice", Some(&root.access)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = patch(
        &app,
        "/admin/users/alice",
        &json!({"is_active": true}),
        Some(&root.access),
    )
    .await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    let (names, total, _) = users(&app, &root.access, &[]).await;
    assert_eq!((names, total), (vec!["root".to_owned()], 1));
    assert!(admin_events(&app, &root.access, alice.id)
        .await
        .iter()
        .all(|e| e["event"] != "admin_update"));
}

async fn admins_cannot_demote_or_deactivate_themselves(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin("root").await;
    let path = "/admin/users/root";
    for body in [
        json!({"is_admin": false}),
        json!({"is_active": false}),
        json!({"is_admin": false, "is_active": false}),
        json!({"is_verified": true, "is_active": false}),
        json!({"is_admin": false, "is_verified": true}),
    ] {
        let r = patch(&app, path, &body, Some(&root.access)).await;
        assert_error(r, StatusCode::BAD_REQUEST, "cannot_change_self").await;
    }
    // Also through another spelling of the name.
    let r = patch(
        &app,
        "/admin/users/ROOT",
        &json!({"is_admin": false}),
        Some(&root.access),
    )
    .await;
    assert_error(r, StatusCode::BAD_REQUEST, "cannot_change_self").await;

    // Nothing changed: still an active admin.
    let me = listed(&app, &root.access, "root").await;
    assert_eq!(
        (
            me["is_admin"].clone(),
            me["is_active"].clone(),
            me["is_verified"].clone()
        ),
        (json!(true), json!(true), json!(true))
    );
    assert!(admin_events(&app, &root.access, root.id)
        .await
        .iter()
        .all(|e| e["event"] != "admin_update"));

    // Harmless changes to oneself are allowed.
    let u = ok_json(
        patch(
            &app,
            path,
            &json!({"is_admin": true, "is_active": true}),
            Some(&root.access),
        )
        .await,
    )
    .await;
    assert_eq!(u["is_admin"], true);
    let u = ok_json(
        patch(
            &app,
            path,
            &json!({"is_verified": false}),
            Some(&root.access),
        )
        .await,
    )
    .await;
    assert_eq!(u["is_verified"], false);

    // Another admin may demote this one, whose token then stops granting admin access.
    let second = app.admin("second").await;
    let u = ok_json(
        patch(
            &app,
            path,
            &json!({"is_admin": false}),
            Some(&second.access),
        )
        .await,
    )
    .await;
    assert_eq!(u["is_admin"], false);
    assert_forbidden(app.get("/admin/users", Some(&root.access)).await).await;
    assert_eq!(
        app.get("/auth/me", Some(&root.access)).await.status(),
        StatusCode::OK
    );
}

async fn deactivation_ends_access_at_once_and_blocks_login(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin("root").await;
    let alice = app.verified_user("alice").await;
    let bob = app.register("bob").await;
    let other = app.login("alice", PASSWORD).await;
    let other_access = access_of(&other);
    assert_eq!(
        app.get("/auth/me", Some(&alice.access)).await.status(),
        StatusCode::OK
    );

    let u = ok_json(
        patch(
            &app,
            "/admin/users/alice",
            &json!({"is_active": false}),
            Some(&root.access),
        )
        .await,
    )
    .await;
    assert_eq!(u["is_active"], false);
    assert_eq!(
        listed(&app, &root.access, "alice").await["is_active"],
        false
    );

    // Every live token of alice fails on the very next request.
    for token in [&alice.access, &other_access] {
        assert_unauthorized(app.get("/auth/me", Some(token)).await).await;
        assert_unauthorized(app.get("/auth/sessions", Some(token)).await).await;
        assert_unauthorized(app.get("/credits/balance", Some(token)).await).await;
        assert_unauthorized(
            app.post("/auth/refresh", &json!({"token": token}), None)
                .await,
        )
        .await;
    }
    for refresh in [
        alice.refresh.as_str(),
        other["refresh_token"].as_str().unwrap(),
    ] {
        assert_unauthorized(
            app.post("/auth/refresh", &json!({"refresh_token": refresh}), None)
                .await,
        )
        .await;
    }
    // The right password is refused as a disabled account; a wrong one stays a plain 401.
    assert_error(
        app.login_raw("alice", PASSWORD).await,
        StatusCode::FORBIDDEN,
        "account_disabled",
    )
    .await;
    assert_error(
        app.login_raw("alice@example.com", PASSWORD).await,
        StatusCode::FORBIDDEN,
        "account_disabled",
    )
    .await;
    let body = assert_error(
        app.login_raw("alice", "wrong password 1").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    assert_eq!(body["detail"], "Incorrect username or password");
    // Bob is unaffected.
    assert_eq!(
        app.get("/auth/me", Some(&bob.access)).await.status(),
        StatusCode::OK
    );
    // The account still exists for the admin.
    assert_eq!(
        app.get(
            &format!("/auth/me?user_id={}", alice.id),
            Some(&root.access)
        )
        .await
        .status(),
        StatusCode::OK
    );

    // Reactivated: alice can log in again.
    let u = ok_json(
        patch(
            &app,
            "/admin/users/alice",
            &json!({"is_active": true}),
            Some(&root.access),
        )
        .await,
    )
    .await;
    assert_eq!(u["is_active"], true);
    // Sessions from before the deactivation stay dead.
    for token in [&alice.access, &other_access] {
        assert_eq!(
            app.get("/auth/me", Some(token)).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let r = app
        .post(
            "/auth/refresh",
            &json!({"refresh_token": alice.refresh}),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let fresh = app.login("alice", PASSWORD).await;
    let me = ok_json(app.get("/auth/me", Some(&access_of(&fresh))).await).await;
    assert_eq!(me["id"], alice.id);
    let r = app
        .post(
            "/auth/refresh",
            &json!({"refresh_token": fresh["refresh_token"]}),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

async fn promotion_and_demotion_take_effect_on_the_live_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin("root").await;
    let alice = app.register("alice").await;
    assert_forbidden(app.get("/admin/users", Some(&alice.access)).await).await;
    assert_forbidden(
        app.get(
            &format!("/auth/me?user_id={}", root.id),
            Some(&alice.access),
        )
        .await,
    )
    .await;

    let u = ok_json(
        patch(
            &app,
            "/admin/users/alice",
            &json!({"is_admin": true}),
            Some(&root.access),
        )
        .await,
    )
    .await;
    assert_eq!(u["is_admin"], true);

    // The token issued before the promotion (its is_admin claim says false) now has admin
    // access: access follows the stored flag, read on each request.
    let (names, _, _) = users(&app, &alice.access, &[]).await;
    assert_eq!(names, ["alice", "root"]);
    let me = ok_json(
        app.get(
            &format!("/auth/me?user_id={}", root.id),
            Some(&alice.access),
        )
        .await,
    )
    .await;
    assert_eq!(me["username"], "root");
    assert_eq!(
        ok_json(app.get("/auth/me", Some(&alice.access)).await).await["is_admin"],
        true
    );
    // So does a new login.
    let fresh = access_of(&app.login("alice", PASSWORD).await);
    users(&app, &fresh, &[]).await;
    // The new admin can act as one.
    let u = ok_json(
        patch(
            &app,
            "/admin/users/root",
            &json!({"is_verified": true}),
            Some(&alice.access),
        )
        .await,
    )
    .await;
    assert_eq!(u["username"], "root");

    // Demoted: both tokens (the fresh one's claim says true) lose admin access at once,
    // but stay valid for ordinary use.
    let u = ok_json(
        patch(
            &app,
            "/admin/users/alice",
            &json!({"is_admin": false}),
            Some(&root.access),
        )
        .await,
    )
    .await;
    assert_eq!(u["is_admin"], false);
    for token in [&alice.access, &fresh] {
        assert_forbidden(app.get("/admin/users", Some(token)).await).await;
        assert_forbidden(
            patch(
                &app,
                "/admin/users/root",
                &json!({"is_active": false}),
                Some(token),
            )
            .await,
        )
        .await;
        assert_forbidden(
            app.get(&format!("/auth/me?user_id={}", root.id), Some(token))
                .await,
        )
        .await;
        assert_eq!(
            app.get("/auth/me", Some(token)).await.status(),
            StatusCode::OK
        );
    }
    let r = listed(&app, &root.access, "root").await;
    assert_eq!(r["is_active"], true);
}

async fn admin_updates_are_recorded(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin("root").await;
    let alice = app.register("alice").await;
    let ua = "admin-console/2.0";

    let r = app
        .client
        .patch(app.url("/admin/users/alice"))
        .header("user-agent", ua)
        .bearer_auth(&root.access)
        .json(&json!({"is_verified": true, "is_admin": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Failed attempts record nothing.
    patch(
        &app,
        "/admin/users/ghost",
        &json!({"is_admin": true}),
        Some(&root.access),
    )
    .await;
    patch(&app, "/admin/users/alice", &json!({}), Some(&root.access)).await;
    patch(
        &app,
        "/admin/users/root",
        &json!({"is_admin": false}),
        Some(&root.access),
    )
    .await;
    patch(
        &app,
        "/admin/users/root",
        &json!({"is_active": false}),
        Some(&alice.access),
    )
    .await;

    let rows = admin_events(&app, &root.access, alice.id).await;
    let updates: Vec<&Value> = rows
        .iter()
        .filter(|r| r["event"] == "admin_update")
        .collect();
    assert_eq!(updates.len(), 1, "{rows:?}");
    let row = updates[0];
    assert_eq!(rows[0], *row, "newest first");
    assert_eq!(row["user_id"], alice.id, "recorded for the target");
    assert_eq!(row["ip"], "127.0.0.1");
    assert_eq!(row["user_agent"], ua);
    assert_eq!(row["details"]["by"], root.id, "{row}");
    let changes = &row["details"]["changes"];
    assert_eq!(changes["is_verified"], true, "{row}");
    assert_eq!(changes["is_admin"], false, "{row}");
    assert!(
        changes["is_active"].is_null(),
        "not changed, not recorded as a change: {row}"
    );

    // The target sees it in their own trail; the admin's own trail does not hold it.
    let own = ok_json(app.get("/auth/activity", Some(&alice.access)).await).await;
    assert_eq!(own["activities"][0]["event"], "admin_update");
    let roots = admin_events(&app, &root.access, root.id).await;
    assert!(
        roots.iter().all(|r| r["event"] != "admin_update"),
        "{roots:?}"
    );
    let all = ok_json(
        app.get("/admin/activity?limit=100", Some(&root.access))
            .await,
    )
    .await;
    let count = all["activities"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["event"] == "admin_update")
        .count();
    assert_eq!(count, 1);
}

async fn admin_activity_lists_everyones_events(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin("root").await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    assert_eq!(
        app.login_raw("nobody", "some password 1").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login_raw("bob", "some password 1").await.status(),
        StatusCode::UNAUTHORIZED
    );

    let all = ok_json(
        app.get("/admin/activity?limit=100", Some(&root.access))
            .await,
    )
    .await;
    let rows = all["activities"].as_array().unwrap();
    assert_eq!(all["total_count"], rows.len() as i64);
    let summary: Vec<(Value, String)> = rows
        .iter()
        .map(|r| {
            (
                r["user_id"].clone(),
                r["event"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (json!(bob.id), "login_failure".to_owned()),
            (Value::Null, "login_failure".to_owned()),
            (json!(bob.id), "register".to_owned()),
            (json!(alice.id), "register".to_owned()),
            (json!(root.id), "login_success".to_owned()),
        ]
    );
    let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");

    let bobs = admin_events(&app, &root.access, bob.id).await;
    assert_eq!(bobs.len(), 2);
    assert!(bobs.iter().all(|r| r["user_id"] == bob.id));
    let page = ok_json(
        app.get("/admin/activity?skip=1&limit=2", Some(&root.access))
            .await,
    )
    .await;
    assert_eq!(page["activities"], Value::Array(rows[1..3].to_vec()));
    assert_eq!(page["total_count"], 5);
    let none = ok_json(
        app.get("/admin/activity?user_id=999999", Some(&root.access))
            .await,
    )
    .await;
    assert_eq!(none, json!({"activities": [], "total_count": 0}));

    for query in [
        "?user_id=abc",
        "?user_id=1.5",
        "?limit=0",
        "?limit=101",
        "?skip=-1",
    ] {
        let r = app
            .get(&format!("/admin/activity{query}"), Some(&root.access))
            .await;
        assert_422(r, query).await;
    }
}
