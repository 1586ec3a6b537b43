//! The caller's sessions (list, revoke one, revoke all), last_seen_at, and the audit trail.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    sessions_lists_the_callers_live_sessions,
    session_routes_require_a_valid_token,
    revoking_another_session_ends_its_tokens_at_once,
    revoking_is_limited_to_own_live_sessions,
    revoking_the_current_session_ends_it,
    logout_all_ends_every_session_of_the_user_only,
    last_seen_at_is_not_written_on_every_request,
    last_seen_at_is_refreshed_once_older_than_the_resolution,
    activity_records_every_security_event,
    activity_paging_and_validation,
    refresh_reuse_is_recorded_and_ends_the_session,
    account_delete_is_recorded_for_admins,
);

// ---------------------------------------------------------------------------------------
// helpers of this file

const UA: &str = "sessions-test/1.0 (audit trail)";
const LOCALHOST: &str = "127.0.0.1";

/// A client of `app` that sends a fixed User-Agent on every request.
struct Agent<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
}

impl<'a> Agent<'a> {
    fn new(app: &'a TestApp, user_agent: &str) -> Self {
        let client = reqwest::Client::builder()
            .user_agent(user_agent)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self { app, client }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
        api_key: Option<&str>,
    ) -> Response {
        let mut req = self.client.request(method, self.app.url(path));
        if let Some(body) = body {
            req = req.json(body);
        }
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(k) = api_key {
            req = req.header("X-API-Key", k);
        }
        req.send().await.expect("request")
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.send(Method::GET, path, None, token, None).await
    }

    async fn post(&self, path: &str, body: &Value, token: Option<&str>) -> Response {
        self.send(Method::POST, path, Some(body), token, None).await
    }

    async fn put(&self, path: &str, body: &Value, token: Option<&str>) -> Response {
        self.send(Method::PUT, path, Some(body), token, None).await
    }

    async fn delete(&self, path: &str, token: Option<&str>) -> Response {
        self.send(Method::DELETE, path, None, token, None).await
    }

    async fn login_raw(&self, username: &str, password: &str) -> Response {
        self.client
            .post(self.app.url("/auth/login"))
            .form(&[("username", username), ("password", password)])
            .send()
            .await
            .expect("request")
    }

    /// Logs in; returns (access, refresh).
    async fn login(&self, username: &str, password: &str) -> (String, String) {
        let r = self.login_raw(username, password).await;
        assert_eq!(r.status(), StatusCode::OK, "login {username}");
        pair_of(r).await
    }

    async fn register(&self, username: &str) -> TestUser {
        let email = format!("{}@example.com", username.to_lowercase());
        let r = self
            .post(
                "/auth/register",
                &json!({"username": username, "email": email, "password": PASSWORD}),
                None,
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED, "register {username}");
        let (access, refresh) = pair_of(r).await;
        let me = ok_json(self.get("/auth/me", Some(&access)).await).await;
        TestUser {
            id: me["id"].as_i64().unwrap(),
            username: username.to_owned(),
            email,
            password: PASSWORD.to_owned(),
            access,
            refresh,
        }
    }
}

async fn pair_of(r: Response) -> (String, String) {
    let body: Value = r.json().await.expect("JSON body");
    (
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned(),
        body["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_owned(),
    )
}

async fn assert_422(r: Response, loc: &str, what: &str) {
    let body = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    assert_eq!(first_loc(&body), loc, "{what}: {body}");
}

/// The caller's live sessions.
async fn sessions(app: &TestApp, token: &str) -> Vec<Value> {
    let body = ok_json(app.get("/auth/sessions", Some(token)).await).await;
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["sessions"], "{body}");
    body["sessions"]
        .as_array()
        .expect("sessions is a list")
        .clone()
}

/// The id of the session `token` belongs to, as /auth/sessions reports it.
async fn current_session_id(app: &TestApp, token: &str) -> String {
    let list = sessions(app, token).await;
    let current: Vec<&Value> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1, "exactly one current session in {list:?}");
    current[0]["id"].as_str().unwrap().to_owned()
}

/// The whole activity page (limit 100) as seen by `token`'s user.
async fn activity(app: &TestApp, token: &str) -> (Vec<Value>, i64, String) {
    let r = app.get("/auth/activity?limit=100", Some(token)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    let rows = body["activities"]
        .as_array()
        .expect("activities is a list")
        .clone();
    let total = body["total_count"].as_i64().expect("total_count");
    (rows, total, text)
}

fn events(rows: &[Value]) -> Vec<String> {
    rows.iter()
        .map(|r| r["event"].as_str().unwrap().to_owned())
        .collect()
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .unwrap_or_else(|| panic!("timestamp expected, got {v}"))
        .parse()
        .unwrap_or_else(|e| panic!("RFC 3339 timestamp {v}: {e}"))
}

// ---------------------------------------------------------------------------------------
// GET /auth/sessions

async fn sessions_lists_the_callers_live_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = Agent::new(&app, "agent-register").register("alice").await;
    let (one, _) = Agent::new(&app, "agent-one").login("alice", PASSWORD).await;
    let (two, _) = Agent::new(&app, "agent-two").login("alice", PASSWORD).await;
    let bob = app.register("bob").await;
    app.login("bob", PASSWORD).await;

    let list = sessions(&app, &one).await;
    assert_eq!(list.len(), 3, "{list:?}");
    for s in &list {
        assert_eq!(
            sorted_keys(s),
            [
                "created_at",
                "current",
                "id",
                "ip",
                "last_seen_at",
                "user_agent"
            ],
            "{s}"
        );
        assert!(!s["id"].as_str().unwrap().is_empty());
        assert_eq!(s["ip"], LOCALHOST, "{s}");
        assert!(s["current"].is_boolean());
        assert!(time(&s["last_seen_at"]) >= time(&s["created_at"]), "{s}");
    }
    let ids: BTreeSet<&str> = list.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3, "distinct ids");
    // Newest first.
    let agents: Vec<&str> = list
        .iter()
        .map(|s| s["user_agent"].as_str().unwrap())
        .collect();
    assert_eq!(agents, ["agent-two", "agent-one", "agent-register"]);
    let created: Vec<DateTime<Utc>> = list.iter().map(|s| time(&s["created_at"])).collect();
    assert!(
        created.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {created:?}"
    );

    // Exactly one is current: the one of the token that asked.
    for (token, agent) in [
        (&one, "agent-one"),
        (&two, "agent-two"),
        (&alice.access, "agent-register"),
    ] {
        let list = sessions(&app, token).await;
        let current: Vec<&Value> = list.iter().filter(|s| s["current"] == true).collect();
        assert_eq!(current.len(), 1, "{list:?}");
        assert_eq!(current[0]["user_agent"], agent);
        let listed: BTreeSet<&str> = list.iter().map(|s| s["id"].as_str().unwrap()).collect();
        assert_eq!(listed, ids, "same sessions whichever token asks");
    }

    // Bob sees his own two sessions only; no User-Agent sent means none recorded.
    let bobs = sessions(&app, &bob.access).await;
    assert_eq!(bobs.len(), 2, "{bobs:?}");
    for s in &bobs {
        assert!(
            !ids.contains(s["id"].as_str().unwrap()),
            "alice's session listed for bob"
        );
        assert!(s["user_agent"].is_null(), "{s}");
        assert_eq!(s["ip"], LOCALHOST);
    }
    assert_eq!(bobs.iter().filter(|s| s["current"] == true).count(), 1);

    // A logged-out session is no longer listed.
    let r = app.post("/auth/logout", &json!({}), Some(&two)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let list = sessions(&app, &one).await;
    let agents: Vec<&str> = list
        .iter()
        .map(|s| s["user_agent"].as_str().unwrap())
        .collect();
    assert_eq!(agents, ["agent-one", "agent-register"]);
}

async fn session_routes_require_a_valid_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let sid = current_session_id(&app, &alice.access).await;

    assert_unauthorized(app.get("/auth/sessions", None).await).await;
    assert_unauthorized(app.get("/auth/sessions", Some("not-a-jwt")).await).await;
    assert_unauthorized(app.get("/auth/sessions", Some(&alice.refresh)).await).await;
    let mut tampered = alice.access.clone();
    tampered.pop();
    tampered.push(if alice.access.ends_with('A') {
        'B'
    } else {
        'A'
    });
    assert_unauthorized(app.get("/auth/sessions", Some(&tampered)).await).await;
    assert_unauthorized(app.delete(&format!("/auth/sessions/{sid}"), None).await).await;
    assert_unauthorized(
        app.delete(&format!("/auth/sessions/{sid}"), Some(&alice.refresh))
            .await,
    )
    .await;
    assert_unauthorized(app.post("/auth/logout-all", &json!({}), None).await).await;
    assert_unauthorized(
        app.post("/auth/logout-all", &json!({}), Some("x.y.z"))
            .await,
    )
    .await;
    assert_unauthorized(app.get("/auth/activity", None).await).await;

    // None of that touched the session.
    assert_eq!(me_status(&app, &alice.access).await, StatusCode::OK);
    assert_eq!(sessions(&app, &alice.access).await.len(), 1);

    // Wrong methods.
    let r = app
        .post("/auth/sessions", &json!({}), Some(&alice.access))
        .await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let r = app.get("/auth/logout-all", Some(&alice.access)).await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

// ---------------------------------------------------------------------------------------
// DELETE /auth/sessions/{id}

async fn revoking_another_session_ends_its_tokens_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let other = app.login("alice", PASSWORD).await;
    let (other_access, other_refresh) = (
        other["access_token"].as_str().unwrap().to_owned(),
        other["refresh_token"].as_str().unwrap().to_owned(),
    );
    let mine = current_session_id(&app, &alice.access).await;
    let theirs = current_session_id(&app, &other_access).await;
    assert_ne!(mine, theirs);

    let r = app
        .delete(&format!("/auth/sessions/{theirs}"), Some(&alice.access))
        .await;
    assert_eq!(ok_json(r).await, json!({"message": "Session revoked"}));

    // The very next request with either of its tokens fails.
    assert_unauthorized(app.get("/auth/me", Some(&other_access)).await).await;
    assert_unauthorized(
        app.post(
            "/auth/refresh",
            &json!({"refresh_token": other_refresh}),
            None,
        )
        .await,
    )
    .await;
    assert_unauthorized(
        app.post("/auth/refresh", &json!({"token": other_access}), None)
            .await,
    )
    .await;
    assert_unauthorized(app.get("/auth/sessions", Some(&other_access)).await).await;

    // Mine still works, and is the only one left.
    assert_eq!(me_status(&app, &alice.access).await, StatusCode::OK);
    let list = sessions(&app, &alice.access).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], mine.as_str());
    assert_eq!(refresh_status(&app, &alice.refresh).await, StatusCode::OK);
}

async fn revoking_is_limited_to_own_live_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let bobs = current_session_id(&app, &bob.access).await;

    // Another user's session: 404, as if it did not exist, and it keeps working.
    let r = app
        .delete(&format!("/auth/sessions/{bobs}"), Some(&alice.access))
        .await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(me_status(&app, &bob.access).await, StatusCode::OK);
    assert_eq!(refresh_status(&app, &bob.refresh).await, StatusCode::OK);
    assert_eq!(sessions(&app, &bob.access).await.len(), 1);

    // Ids that are no session at all.
    let long = "a".repeat(1000);
    for id in [
        uuid::Uuid::new_v4().to_string(),
        "not-a-uuid".to_owned(),
        "%27%20OR%20%271%27%3D%271".to_owned(),
        long,
    ] {
        let r = app
            .delete(&format!("/auth/sessions/{id}"), Some(&alice.access))
            .await;
        assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    }
    assert_eq!(me_status(&app, &alice.access).await, StatusCode::OK);
    assert_eq!(me_status(&app, &bob.access).await, StatusCode::OK);

    // Twice: the second time there is no live session of that id.
    let second = app.login("alice", PASSWORD).await;
    let second_access = second["access_token"].as_str().unwrap();
    let sid = current_session_id(&app, second_access).await;
    let r = app
        .delete(&format!("/auth/sessions/{sid}"), Some(&alice.access))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .delete(&format!("/auth/sessions/{sid}"), Some(&alice.access))
        .await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;

    // A session ended by logout cannot be "revoked" again either.
    let third = app.login("alice", PASSWORD).await;
    let third_access = third["access_token"].as_str().unwrap();
    let sid = current_session_id(&app, third_access).await;
    assert_eq!(
        app.post("/auth/logout", &json!({}), Some(third_access))
            .await
            .status(),
        StatusCode::OK
    );
    let r = app
        .delete(&format!("/auth/sessions/{sid}"), Some(&alice.access))
        .await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;

    // Bob cannot revoke alice's either.
    let alices = current_session_id(&app, &alice.access).await;
    let r = app
        .delete(&format!("/auth/sessions/{alices}"), Some(&bob.access))
        .await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(me_status(&app, &alice.access).await, StatusCode::OK);
}

async fn revoking_the_current_session_ends_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let other = app.login("alice", PASSWORD).await;
    let other_access = other["access_token"].as_str().unwrap();
    let mine = current_session_id(&app, &alice.access).await;

    let r = app
        .delete(&format!("/auth/sessions/{mine}"), Some(&alice.access))
        .await;
    assert_eq!(ok_json(r).await, json!({"message": "Session revoked"}));
    assert_unauthorized(app.get("/auth/me", Some(&alice.access)).await).await;
    assert_unauthorized(
        app.delete(&format!("/auth/sessions/{mine}"), Some(&alice.access))
            .await,
    )
    .await;
    assert_eq!(
        refresh_status(&app, &alice.refresh).await,
        StatusCode::UNAUTHORIZED
    );

    // The other session is untouched.
    assert_eq!(me_status(&app, other_access).await, StatusCode::OK);
    let list = sessions(&app, other_access).await;
    assert_eq!(list.len(), 1);
    assert_ne!(list[0]["id"], mine.as_str());
}

// ---------------------------------------------------------------------------------------
// POST /auth/logout-all

async fn logout_all_ends_every_session_of_the_user_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let mut accesses = vec![alice.access.clone()];
    let mut refreshes = vec![alice.refresh.clone()];
    for _ in 0..3 {
        let t = app.login("alice", PASSWORD).await;
        accesses.push(t["access_token"].as_str().unwrap().to_owned());
        refreshes.push(t["refresh_token"].as_str().unwrap().to_owned());
    }
    // One ended already (not counted), one rotated (its new tokens count too).
    assert_eq!(
        app.post("/auth/logout", &json!({}), Some(&accesses[3]))
            .await
            .status(),
        StatusCode::OK
    );
    let rotated = ok_json(
        app.post(
            "/auth/refresh",
            &json!({"refresh_token": refreshes[2]}),
            None,
        )
        .await,
    )
    .await;
    accesses.push(rotated["access_token"].as_str().unwrap().to_owned());
    refreshes.push(rotated["refresh_token"].as_str().unwrap().to_owned());
    assert_eq!(sessions(&app, &alice.access).await.len(), 3);

    let r = app
        .post("/auth/logout-all", &json!({}), Some(&alice.access))
        .await;
    assert_eq!(
        ok_json(r).await,
        json!({"message": "All sessions revoked", "revoked": 3})
    );

    for (i, access) in accesses.iter().enumerate() {
        assert_unauthorized(app.get("/auth/me", Some(access)).await).await;
        assert_eq!(
            app.post("/auth/refresh", &json!({"token": access}), None)
                .await
                .status(),
            StatusCode::UNAUTHORIZED,
            "access #{i} as refresh"
        );
    }
    for (i, refresh) in refreshes.iter().enumerate() {
        assert_eq!(
            refresh_status(&app, refresh).await,
            StatusCode::UNAUTHORIZED,
            "refresh #{i}"
        );
    }
    assert_unauthorized(
        app.post("/auth/logout-all", &json!({}), Some(&alice.access))
            .await,
    )
    .await;

    // Bob is unaffected.
    assert_eq!(me_status(&app, &bob.access).await, StatusCode::OK);
    assert_eq!(sessions(&app, &bob.access).await.len(), 1);
    assert_eq!(refresh_status(&app, &bob.refresh).await, StatusCode::OK);

    // Alice can log in again; a lone session counts 1.
    let fresh = app.login("alice", PASSWORD).await;
    let fresh_access = fresh["access_token"].as_str().unwrap();
    assert_eq!(sessions(&app, fresh_access).await.len(), 1);
    let r = app
        .post("/auth/logout-all", &json!({}), Some(fresh_access))
        .await;
    assert_eq!(
        ok_json(r).await,
        json!({"message": "All sessions revoked", "revoked": 1})
    );
    assert_unauthorized(app.get("/auth/me", Some(fresh_access)).await).await;
}

// ---------------------------------------------------------------------------------------
// last_seen_at

async fn last_seen_at_is_not_written_on_every_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let other = app.login("alice", PASSWORD).await;
    let other_access = other["access_token"].as_str().unwrap();

    let before = sessions(&app, &alice.access).await;
    for s in &before {
        assert_eq!(
            time(&s["last_seen_at"]),
            time(&s["created_at"]),
            "fresh session: {s}"
        );
    }
    for _ in 0..5 {
        assert_eq!(me_status(&app, &alice.access).await, StatusCode::OK);
        assert_eq!(me_status(&app, other_access).await, StatusCode::OK);
        assert_eq!(
            app.get("/credits/balance", Some(&alice.access))
                .await
                .status(),
            StatusCode::OK
        );
        sessions(&app, other_access).await;
    }
    // Give a (wrong) background write the chance to land before looking.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = sessions(&app, &alice.access).await;
    assert_eq!(after.len(), 2);
    for s in &after {
        assert_eq!(
            time(&s["last_seen_at"]),
            time(&s["created_at"]),
            "last_seen_at moved within the {}-second resolution: {s}",
            auth_service::services::auth::LAST_SEEN_RESOLUTION_SECONDS
        );
    }
}

async fn last_seen_at_is_refreshed_once_older_than_the_resolution(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let sid = current_session_id(&app, &alice.access).await;

    // Pretend the session was last seen ten minutes ago.
    let long_ago = Utc::now() - chrono::Duration::minutes(10);
    app.state.store.touch_session(&sid, long_ago).await.unwrap();
    let list = sessions(&app, &alice.access).await;
    let seen = time(&list[0]["last_seen_at"]);
    assert!(
        seen < long_ago + chrono::Duration::seconds(1)
            || seen > long_ago + chrono::Duration::minutes(9),
        "either still the old value or already refreshed: {seen}"
    );

    // That request was activity after the resolution: last_seen_at catches up. The write
    // happens off the request path, so poll for it, in the store (an authenticated poll
    // would itself be activity seen before the write landed).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let refreshed = loop {
        let live = app
            .state
            .store
            .live_sessions(alice.id, Utc::now())
            .await
            .unwrap();
        assert_eq!(live.len(), 1);
        let seen = live[0].last_seen_at;
        if seen > long_ago + chrono::Duration::minutes(9) {
            break seen;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "last_seen_at never refreshed: {seen}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(refreshed <= Utc::now() + chrono::Duration::seconds(1));

    // And then it stays put again.
    for _ in 0..5 {
        assert_eq!(me_status(&app, &alice.access).await, StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let list = sessions(&app, &alice.access).await;
    assert_eq!(time(&list[0]["last_seen_at"]), refreshed);
}

// ---------------------------------------------------------------------------------------
// GET /auth/activity

async fn activity_records_every_security_event(backend: Backend) {
    let app = spawn_app(backend).await;
    let ua = Agent::new(&app, UA);
    let mut secrets: Vec<String> = Vec::new();

    let alice = ua.register("alice").await; // register
    secrets.extend([alice.access.clone(), alice.refresh.clone()]);
    let welcome = app.wait_for_mail(&alice.email, "verify").await;
    let verify_token = welcome.token().unwrap();
    let r = ua
        .post("/auth/verify-email", &json!({"token": verify_token}), None)
        .await; // email_verified
    assert_eq!(r.status(), StatusCode::OK);
    secrets.push(verify_token);

    // Someone else's noise, which must never show up in alice's trail.
    let bob = app.register("bob").await;
    assert_eq!(
        app.login_raw("bob", "bobs wrong password").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login_raw("nobody", "whatever password").await.status(),
        StatusCode::UNAUTHORIZED
    );

    let wrong = "not alices password 123";
    assert_eq!(
        ua.login_raw("alice", wrong).await.status(),
        StatusCode::UNAUTHORIZED
    ); // login_failure
    secrets.push(wrong.into());
    let (a1, r1) = ua.login("alice", PASSWORD).await; // login_success
    let rotated = ok_json(
        ua.post("/auth/refresh", &json!({"refresh_token": r1}), None)
            .await,
    )
    .await;
    let (a1b, r1b) = (
        rotated["access_token"].as_str().unwrap().to_owned(),
        rotated["refresh_token"].as_str().unwrap().to_owned(),
    );
    secrets.extend([a1, r1, a1b.clone(), r1b]);
    assert_eq!(
        ua.post("/auth/logout", &json!({}), Some(&a1b))
            .await
            .status(),
        StatusCode::OK
    ); // logout

    let second = "second password 456";
    let r = ua
        .put(
            "/auth/users/alice/password",
            &json!({"current_password": PASSWORD, "new_password": second}),
            Some(&alice.access),
        )
        .await; // password_change
    assert_eq!(r.status(), StatusCode::OK);
    secrets.extend([PASSWORD.to_owned(), second.to_owned()]);

    let r = ua
        .post(
            "/auth/password-reset-request",
            &json!({"email": alice.email}),
            None,
        )
        .await; // password_reset_request
    assert_eq!(r.status(), StatusCode::OK);
    let reset_token = app
        .wait_for_mail(&alice.email, "reset")
        .await
        .token()
        .unwrap();
    let third = "third password 789";
    let r = ua
        .post(
            "/auth/reset-password",
            &json!({"token": reset_token, "new_password": third}),
            None,
        )
        .await; // password_reset
    assert_eq!(r.status(), StatusCode::OK);
    secrets.extend([reset_token, third.to_owned()]);

    let (a2, r2) = ua.login("alice", third).await; // login_success
    let new_email = "alice.renamed@example.org";
    let r = ua
        .put(
            "/auth/users/alice/email",
            &json!({"new_email": new_email, "current_password": third}),
            Some(&a2),
        )
        .await; // email_change_request
    assert_eq!(r.status(), StatusCode::OK);
    let confirm_token = app
        .wait_for_mail(new_email, "confirm")
        .await
        .token()
        .unwrap();
    let r = ua
        .post("/auth/verify-email", &json!({"token": confirm_token}), None)
        .await; // email_change (completed)
    assert_eq!(r.status(), StatusCode::OK);
    secrets.extend([
        confirm_token,
        new_email.to_owned(),
        "alice.renamed".to_owned(),
        alice.email.clone(),
    ]);

    let (a3, r3) = ua.login("alice", third).await; // login_success
    let sid3 = current_session_id(&app, &a3).await;
    let r = ua
        .delete(&format!("/auth/sessions/{sid3}"), Some(&a2))
        .await; // session_revoke
    assert_eq!(r.status(), StatusCode::OK);
    secrets.extend([a3, r3]);

    let r = ua
        .send(
            Method::POST,
            "/credits/add",
            Some(&json!({"user_id": alice.id, "amount": 10})),
            None,
            Some("internal-key-one"),
        )
        .await; // credits_add
    assert_eq!(r.status(), StatusCode::OK);
    let r = ua
        .post("/credits/use", &json!({"amount": 3}), Some(&a2))
        .await; // credits_use
    assert_eq!(r.status(), StatusCode::OK);
    let r = ua.post("/auth/logout-all", &json!({}), Some(&a2)).await; // session_revoke (all)
    assert_eq!(r.status(), StatusCode::OK);
    secrets.extend([a2, r2]);

    let (a4, r4) = ua.login("alice", third).await; // login_success
    let (rows, total, text) = activity(&app, &a4).await;
    secrets.extend([a4.clone(), r4]);

    let mut expected = vec![
        "register",
        "email_verified",
        "login_failure",
        "login_success",
        "logout",
        "password_change",
        "password_reset_request",
        "password_reset",
        "login_success",
        "email_change_request",
        "email_change",
        "login_success",
        "session_revoke",
        "credits_add",
        "credits_use",
        "session_revoke",
        "login_success",
    ];
    expected.reverse(); // newest first
    assert_eq!(events(&rows), expected, "{text}");
    assert_eq!(total, expected.len() as i64);

    let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "ids newest first: {ids:?}"
    );
    let times: Vec<DateTime<Utc>> = rows.iter().map(|r| time(&r["created_at"])).collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "created_at newest first: {times:?}"
    );
    for row in &rows {
        assert_eq!(
            sorted_keys(row),
            [
                "created_at",
                "details",
                "event",
                "id",
                "ip",
                "user_agent",
                "user_id"
            ],
            "{row}"
        );
        assert_eq!(row["user_id"], alice.id, "{row}");
        assert_eq!(row["ip"], LOCALHOST, "{row}");
        assert_eq!(row["user_agent"], UA, "{row}");
        assert!(row["details"].is_object(), "{row}");
    }

    // Details that say what happened, never a secret.
    let revokes: Vec<&Value> = rows
        .iter()
        .filter(|r| r["event"] == "session_revoke")
        .collect();
    assert_eq!(
        revokes[0]["details"]["all"], true,
        "logout-all: {}",
        revokes[0]
    );
    assert_eq!(
        revokes[1]["details"]["session_id"],
        sid3.as_str(),
        "one session: {}",
        revokes[1]
    );
    let added = rows.iter().find(|r| r["event"] == "credits_add").unwrap();
    let used = rows.iter().find(|r| r["event"] == "credits_use").unwrap();
    assert_eq!(added["details"]["amount"], "10.00", "{added}");
    assert_eq!(
        added["details"]["transaction_type"], "credit_added",
        "{added}"
    );
    assert_eq!(used["details"]["amount"], "3.00", "{used}");
    assert_eq!(used["details"]["transaction_type"], "credit_used", "{used}");
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "activity leaks {secret:?}: {text}"
        );
    }
    assert!(
        !text.to_lowercase().contains("password\":"),
        "no password fields: {text}"
    );

    // Bob's trail holds only his own events (and none of alice's).
    let (bobs, bob_total, _) = activity(&app, &bob.access).await;
    assert_eq!(events(&bobs), ["login_failure", "register"]);
    assert_eq!(bob_total, 2);
    assert!(bobs.iter().all(|r| r["user_id"] == bob.id));
    // The anonymous request carried no User-Agent.
    assert!(bobs.iter().all(|r| r["user_agent"].is_null()), "{bobs:?}");
}

async fn activity_paging_and_validation(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    for _ in 0..5 {
        app.login("alice", PASSWORD).await;
        app.login("bob", PASSWORD).await;
    }
    let (all, total, _) = activity(&app, &alice.access).await;
    assert_eq!(total, 6);
    assert_eq!(all.len(), 6);
    assert!(all.iter().all(|r| r["user_id"] == alice.id));
    assert_eq!(events(&all).last().unwrap(), "register");

    let page = |query: &'static str| {
        let app = &app;
        let token = alice.access.clone();
        async move {
            ok_json(
                app.get(&format!("/auth/activity{query}"), Some(&token))
                    .await,
            )
            .await
        }
    };
    let default = page("").await;
    assert_eq!(default["activities"], Value::Array(all.clone()));
    assert_eq!(default["total_count"], 6);

    let p = page("?skip=2&limit=3").await;
    assert_eq!(p["activities"], Value::Array(all[2..5].to_vec()));
    assert_eq!(p["total_count"], 6);
    let p = page("?limit=1").await;
    assert_eq!(p["activities"], Value::Array(all[..1].to_vec()));
    assert_eq!(p["total_count"], 6);
    let p = page("?skip=5&limit=100").await;
    assert_eq!(p["activities"], Value::Array(all[5..].to_vec()));
    for past_the_end in ["?skip=6", "?skip=1000&limit=100"] {
        let p = page(past_the_end).await;
        assert_eq!(p["activities"], json!([]), "{past_the_end}");
        assert_eq!(p["total_count"], 6, "{past_the_end}");
    }

    for (query, loc) in [
        ("?limit=0", "query.limit"),
        ("?limit=101", "query.limit"),
        ("?limit=-1", "query.limit"),
        ("?limit=abc", "query.limit"),
        ("?limit=1.5", "query.limit"),
        ("?limit=", "query.limit"),
        ("?skip=-1", "query.skip"),
        ("?skip=abc", "query.skip"),
        ("?skip=99999999999999999999", "query.skip"),
    ] {
        let r = app
            .get(&format!("/auth/activity{query}"), Some(&alice.access))
            .await;
        assert_422(r, loc, query).await;
    }

    // Bob's page is his alone.
    let (bobs, bob_total, _) = activity(&app, &bob.access).await;
    assert_eq!(bob_total, 6);
    assert!(bobs.iter().all(|r| r["user_id"] == bob.id));
    let alice_ids: BTreeSet<i64> = all.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert!(bobs
        .iter()
        .all(|r| !alice_ids.contains(&r["id"].as_i64().unwrap())));
    // ?user_id= is not a way into someone else's trail.
    let r = ok_json(
        app.get(
            &format!("/auth/activity?user_id={}", bob.id),
            Some(&alice.access),
        )
        .await,
    )
    .await;
    assert!(
        r["activities"]
            .as_array()
            .unwrap()
            .iter()
            .all(|row| row["user_id"] == alice.id),
        "{r}"
    );
}

async fn refresh_reuse_is_recorded_and_ends_the_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let ua = Agent::new(&app, UA);
    let alice = ua.register("alice").await;
    let (a1, r1) = ua.login("alice", PASSWORD).await;
    let sid = current_session_id(&app, &a1).await;
    let rotated = ok_json(
        ua.post("/auth/refresh", &json!({"refresh_token": r1}), None)
            .await,
    )
    .await;
    let a2 = rotated["access_token"].as_str().unwrap().to_owned();
    let r2 = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(me_status(&app, &a2).await, StatusCode::OK);

    // Past the grace window, the replaced token is a sign of theft.
    let grace = auth_service::services::auth::REFRESH_REUSE_GRACE_SECONDS as u64;
    tokio::time::sleep(Duration::from_secs(grace + 1)).await;
    assert_unauthorized(
        ua.post("/auth/refresh", &json!({"refresh_token": r1}), None)
            .await,
    )
    .await;

    // The whole session is gone: both holders are locked out.
    assert_unauthorized(app.get("/auth/me", Some(&a2)).await).await;
    assert_eq!(refresh_status(&app, &r2).await, StatusCode::UNAUTHORIZED);
    assert_eq!(refresh_status(&app, &r1).await, StatusCode::UNAUTHORIZED);
    // Other sessions are not.
    assert_eq!(me_status(&app, &alice.access).await, StatusCode::OK);
    let list = sessions(&app, &alice.access).await;
    assert!(list.iter().all(|s| s["id"] != sid.as_str()), "{list:?}");
    assert_eq!(list.len(), 1);

    let (rows, _, text) = activity(&app, &alice.access).await;
    let reuse: Vec<&Value> = rows
        .iter()
        .filter(|r| r["event"] == "refresh_reuse_detected")
        .collect();
    assert_eq!(
        reuse.len(),
        1,
        "one row, however often the token is replayed: {text}"
    );
    let row = reuse[0];
    assert_eq!(row["user_id"], alice.id);
    assert_eq!(row["details"]["session_id"], sid.as_str(), "{row}");
    assert_eq!(row["ip"], LOCALHOST);
    assert_eq!(row["user_agent"], UA);
    for secret in [&r1, &r2, &a1, &a2] {
        assert!(!text.contains(secret.as_str()), "activity leaks a token");
    }
}

async fn account_delete_is_recorded_for_admins(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin("root").await;
    let alice = app.verified_user("alice").await;
    let bob = app.register("bob").await;

    // A wrong password deletes nothing and records no deletion.
    let r = app
        .delete(
            "/auth/users/alice?password=wrong%20password%201",
            Some(&alice.access),
        )
        .await;
    assert_error(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let r = app
        .delete(
            &format!(
                "/auth/users/alice?password={}",
                PASSWORD.replace(' ', "%20")
            ),
            Some(&alice.access),
        )
        .await;
    assert_eq!(
        ok_json(r).await,
        json!({"message": "User deleted successfully"})
    );
    assert_unauthorized(app.get("/auth/me", Some(&alice.access)).await).await;

    let r = app
        .get(
            &format!("/admin/activity?user_id={}&limit=100", alice.id),
            Some(&root.access),
        )
        .await;
    let text = r.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    let rows = body["activities"].as_array().unwrap();
    assert_eq!(
        events(rows),
        ["account_delete", "email_verified", "register"],
        "the trail outlives the account: {text}"
    );
    assert_eq!(body["total_count"], 3);
    let deleted = &rows[0];
    assert_eq!(deleted["user_id"], alice.id);
    assert_eq!(deleted["ip"], LOCALHOST);
    assert_eq!(deleted["details"]["by"], alice.id, "{deleted}");
    assert!(!text.contains(PASSWORD), "password in the trail: {text}");
    assert!(
        !text.contains("wrong password"),
        "password in the trail: {text}"
    );

    // A new account with the same name gets a new id and a trail of its own.
    let again = app.register("alice").await;
    assert_ne!(again.id, alice.id);
    let (rows, total, _) = activity(&app, &again.access).await;
    assert_eq!(events(&rows), ["register"]);
    assert_eq!(total, 1);

    // The admin view is for admins.
    let r = app
        .get(
            &format!("/admin/activity?user_id={}", alice.id),
            Some(&bob.access),
        )
        .await;
    assert_error(r, StatusCode::FORBIDDEN, "forbidden").await;
    assert_unauthorized(
        app.get(&format!("/admin/activity?user_id={}", alice.id), None)
            .await,
    )
    .await;
}
