//! The JWT rules of DESIGN §6 and refresh-token rotation, with tokens forged by hand.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    access_token_claims_follow_the_contract,
    alg_none_is_rejected,
    other_algorithms_are_rejected,
    hs512_server_accepts_its_own_tokens,
    tampered_tokens_are_rejected,
    expired_tokens_are_rejected,
    sid_must_be_a_session_of_sub,
    tokens_of_deleted_users_are_rejected,
    tokens_of_revoked_sessions_are_rejected,
    refresh_tokens_rotate_with_a_grace,
    refresh_reuse_after_grace_revokes_the_session,
    concurrent_refreshes_of_one_token,
    access_token_lifetime_follows_config,
    session_lifetime_caps_access_tokens,
);

/// The SECRET_KEY of `helpers::base_vars`.
const SECRET: &str = "test-secret-key-that-is-long-enough-0123456789";

// ---------------------------------------------------------------------------------------
// helpers of this file

/// These tests forge tokens with the shared secret: they run the HS256 install of DESIGN §13
/// (tests/api/signing_keys.rs covers the ES256 default and the other key types).
async fn hs256_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |vars| {
        vars.insert("ALGORITHM".into(), "HS256".into());
    })
    .await
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn b64_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Decodes one dot-separated part of a JWT, without any verification.
fn segment(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("JWT part");
    let bytes = URL_SAFE_NO_PAD.decode(part).expect("base64url JWT part");
    serde_json::from_slice(&bytes).expect("JSON JWT part")
}

fn header_of(token: &str) -> Value {
    segment(token, 0)
}

pub(crate) fn claims_of(token: &str) -> Value {
    segment(token, 1)
}

/// Signs `claims` as a regular JWT.
fn sign(alg: Algorithm, claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

/// Any header, signed with HMAC `alg`: for algorithm-confusion tokens.
fn sign_with_header(header: &Value, claims: &Value, alg: Algorithm, secret: &str) -> String {
    let message = format!("{}.{}", b64_json(header), b64_json(claims));
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(secret.as_bytes()),
        alg,
    )
    .expect("sign");
    format!("{message}.{signature}")
}

/// The claims of `token` re-dated to now, with a new jti: still a perfectly valid token
/// when signed with the server's key and algorithm.
fn fresh(token: &str) -> Value {
    let mut claims = claims_of(token);
    let now = unix_now();
    claims["iat"] = json!(now);
    claims["exp"] = json!(now + 600);
    claims["jti"] = json!(uuid::Uuid::new_v4().to_string());
    claims
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

async fn refresh_raw(app: &TestApp, refresh_token: &str) -> Response {
    app.post(
        "/auth/refresh",
        &json!({ "refresh_token": refresh_token }),
        None,
    )
    .await
}

/// Refreshes and returns (access, refresh), asserting 200.
async fn refresh_ok(app: &TestApp, refresh_token: &str, what: &str) -> (String, String) {
    let r = refresh_raw(app, refresh_token).await;
    assert_eq!(r.status(), StatusCode::OK, "{what}");
    let body = json_of(r).await;
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn assert_401(response: Response, what: &str) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
    assert!(
        response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("bearer")),
        "{what}: WWW-Authenticate: Bearer"
    );
    let body = assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert!(body["detail"].is_string(), "{what}");
}

/// The token grants nothing: not /auth/me, not a refresh, not a logout.
async fn assert_rejected(app: &TestApp, token: &str, what: &str) {
    assert_401(
        app.get("/auth/me", Some(token)).await,
        &format!("{what}: /auth/me"),
    )
    .await;
    let r = app
        .post("/auth/refresh", &json!({ "token": token }), None)
        .await;
    assert_401(r, &format!("{what}: /auth/refresh")).await;
    let r = app.post("/auth/logout", &json!({}), Some(token)).await;
    assert_401(r, &format!("{what}: /auth/logout")).await;
}

/// The token is accepted by /auth/me; returns the profile.
async fn assert_accepted(app: &TestApp, token: &str, what: &str) -> Value {
    let r = app.get("/auth/me", Some(token)).await;
    assert_eq!(r.status(), StatusCode::OK, "{what}");
    json_of(r).await
}

// ---------------------------------------------------------------------------------------
// claims

async fn access_token_claims_follow_the_contract(backend: Backend) {
    let app = hs256_app(backend).await;
    let alice = app.register("alice").await;
    let header = header_of(&alice.access);
    assert_eq!(header["alg"], "HS256");
    let claims = claims_of(&alice.access);
    assert_eq!(
        claims["sub"],
        alice.id.to_string(),
        "sub is the user id: {claims}"
    );
    assert_eq!(claims["username"], "alice");
    assert_eq!(claims["is_admin"], false);
    let sid = claims["sid"].as_str().expect("sid");
    assert!(!sid.is_empty());
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    let iat = claims["iat"].as_i64().expect("iat");
    let exp = claims["exp"].as_i64().expect("exp");
    assert!((iat - unix_now()).abs() < 60, "iat is now");
    assert_eq!(exp - iat, 3600, "default life is 60 minutes");
    for secret in ["password", "password_hash", "email"] {
        assert!(claims.get(secret).is_none(), "{secret} in the token");
    }

    // A refresh stays in the session with a new jti; a new login is a new session.
    let (refreshed, _) = refresh_ok(&app, &alice.refresh, "refresh").await;
    let refreshed = claims_of(&refreshed);
    assert_eq!(refreshed["sid"], sid);
    assert_ne!(refreshed["jti"], claims["jti"]);
    let login = app.login("alice", PASSWORD).await;
    let login = claims_of(login["access_token"].as_str().unwrap());
    assert_ne!(login["sid"], sid);
    assert_ne!(login["jti"], claims["jti"]);

    let root = app.admin("root").await;
    assert_eq!(claims_of(&root.access)["is_admin"], true);

    // The control of every forgery below: the claims re-signed with the server's key and
    // algorithm are accepted, so a 401 elsewhere is the server's doing, not the forger's.
    let forged = sign(Algorithm::HS256, &fresh(&alice.access), SECRET);
    let me = assert_accepted(&app, &forged, "re-signed with the real key").await;
    assert_eq!(me["id"].as_i64(), Some(alice.id));
}

async fn alg_none_is_rejected(backend: Backend) {
    let app = hs256_app(backend).await;
    let alice = app.register("alice").await;
    let payload = b64_json(&fresh(&alice.access));
    let real_signature = alice.access.rsplit('.').next().unwrap().to_owned();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = b64_json(&json!({"alg": alg, "typ": "JWT"}));
        assert_rejected(&app, &format!("{header}.{payload}."), &format!("alg {alg}")).await;
        assert_rejected(
            &app,
            &format!("{header}.{payload}.{real_signature}"),
            &format!("alg {alg} with a real signature"),
        )
        .await;
        assert_401(
            app.get("/auth/me", Some(&format!("{header}.{payload}")))
                .await,
            "two parts",
        )
        .await;
    }
    // No alg at all, and an unsigned token with the original header.
    let header = b64_json(&json!({"typ": "JWT"}));
    assert_rejected(&app, &format!("{header}.{payload}."), "no alg").await;
    let original_header = alice.access.split('.').next().unwrap();
    assert_rejected(
        &app,
        &format!("{original_header}.{payload}."),
        "empty signature",
    )
    .await;
    // alice's own token is unaffected.
    assert_accepted(&app, &alice.access, "real token").await;
}

async fn other_algorithms_are_rejected(backend: Backend) {
    let app = hs256_app(backend).await;
    let alice = app.register("alice").await;
    let claims = fresh(&alice.access);
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let token = sign(alg, &claims, SECRET);
        assert_eq!(header_of(&token)["alg"], format!("{alg:?}"));
        assert_rejected(&app, &token, &format!("{alg:?} with the right secret")).await;
    }
    // Algorithm confusion: headers naming other algorithms over an HS256 signature with
    // the right key, which only a server trusting the header could accept.
    for alg in ["RS256", "ES256", "PS256", "EdDSA", "HS256 ", "hs256", "HS1"] {
        let token = sign_with_header(
            &json!({"alg": alg, "typ": "JWT"}),
            &claims,
            Algorithm::HS256,
            SECRET,
        );
        assert_rejected(&app, &token, &format!("header alg {alg:?}")).await;
    }
    // An HS256 header over an HS512 signature.
    let token = sign_with_header(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &claims,
        Algorithm::HS512,
        SECRET,
    );
    assert_rejected(&app, &token, "HS256 header, HS512 signature").await;
    // Control: the same claims, header and key under HS256 pass.
    let token = sign_with_header(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &claims,
        Algorithm::HS256,
        SECRET,
    );
    assert_accepted(&app, &token, "hand-made HS256 token").await;
}

async fn hs512_server_accepts_its_own_tokens(backend: Backend) {
    let app = spawn_app_with(backend, |vars| {
        vars.insert("ALGORITHM".into(), "HS512".into());
    })
    .await;
    let alice = app.register("alice").await;
    assert_eq!(header_of(&alice.access)["alg"], "HS512");
    assert_accepted(&app, &alice.access, "registration token").await;
    let (access, refresh) = refresh_ok(&app, &alice.refresh, "refresh").await;
    assert_eq!(header_of(&access)["alg"], "HS512");
    assert_accepted(&app, &access, "refreshed token").await;
    refresh_ok(&app, &refresh, "second refresh").await;
    let login = app.login("alice", PASSWORD).await;
    let login_access = login["access_token"].as_str().unwrap();
    assert_eq!(header_of(login_access)["alg"], "HS512");
    assert_accepted(&app, login_access, "login token").await;

    let claims = fresh(&alice.access);
    assert_accepted(
        &app,
        &sign(Algorithm::HS512, &claims, SECRET),
        "HS512 forged with the key",
    )
    .await;
    for alg in [Algorithm::HS256, Algorithm::HS384] {
        assert_rejected(
            &app,
            &sign(alg, &claims, SECRET),
            &format!("{alg:?} on an HS512 server"),
        )
        .await;
    }
    let header = b64_json(&json!({"alg": "none"}));
    let payload = b64_json(&claims);
    assert_rejected(&app, &format!("{header}.{payload}."), "alg none").await;
}

async fn tampered_tokens_are_rejected(backend: Backend) {
    let app = hs256_app(backend).await;
    let alice = app.register("alice").await;
    let root = app.admin("root").await;
    let parts: Vec<&str> = alice.access.split('.').collect();
    let (header, signature) = (parts[0], parts[2]);
    let claims = claims_of(&alice.access);

    // Edited payloads under the original signature.
    let edits = [
        ("is_admin", json!(true)),
        ("username", json!("root")),
        ("sub", json!(root.id.to_string())),
        ("sid", json!(claims_of(&root.access)["sid"])),
        ("exp", json!(claims["exp"].as_i64().unwrap() + 86_400)),
        ("jti", json!("another-jti")),
    ];
    for (key, value) in edits {
        let edited = with(claims.clone(), key, value);
        let token = format!("{header}.{}.{signature}", b64_json(&edited));
        assert_rejected(&app, &token, &format!("{key} edited")).await;
    }
    // The real payload with broken signatures.
    let payload = parts[1];
    let mut flipped = signature.to_owned().into_bytes();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let root_signature = root.access.rsplit('.').next().unwrap();
    for (sig, what) in [
        (flipped.as_str(), "flipped signature"),
        (&signature[..signature.len() / 2], "truncated signature"),
        (root_signature, "another token's signature"),
        ("!!!!", "not base64"),
    ] {
        assert_rejected(&app, &format!("{header}.{payload}.{sig}"), what).await;
    }
    // Correct shape, wrong key: another secret, a prefix of the secret, an empty one.
    for (secret, what) in [
        (
            "another-secret-key-that-is-long-enough-0123456",
            "another secret",
        ),
        (&SECRET[..SECRET.len() - 1], "secret minus one byte"),
        ("", "empty secret"),
    ] {
        let token = sign(Algorithm::HS256, &fresh(&alice.access), secret);
        assert_rejected(&app, &token, what).await;
    }
    // Garbage in the token's place.
    for token in ["", "a.b.c", "..", "x", &format!("{}.", alice.access)] {
        assert_401(app.get("/auth/me", Some(token)).await, token).await;
    }
    // The real tokens were never harmed.
    let me = assert_accepted(&app, &alice.access, "alice's real token").await;
    assert_eq!(me["is_admin"], false);
    assert_accepted(&app, &root.access, "root's real token").await;
}

async fn expired_tokens_are_rejected(backend: Backend) {
    let app = hs256_app(backend).await;
    let alice = app.register("alice").await;
    let now = unix_now();
    let base = fresh(&alice.access);
    let expired = [
        (now - 3600 - 10, now - 10, "expired 10 s ago"),
        (now - 7200, now - 3600, "expired an hour ago"),
        (now - 86_400 * 400, now - 86_400 * 399, "expired last year"),
    ];
    for (iat, exp, what) in expired {
        let claims = with(with(base.clone(), "iat", json!(iat)), "exp", json!(exp));
        assert_rejected(&app, &sign(Algorithm::HS256, &claims, SECRET), what).await;
    }
    // exp is required, and must be a number of seconds.
    let token = sign(Algorithm::HS256, &without(base.clone(), "exp"), SECRET);
    assert_rejected(&app, &token, "no exp").await;
    for bad in [json!("tomorrow"), json!(null), json!(now.to_string() + "0")] {
        let claims = with(base.clone(), "exp", bad.clone());
        assert_rejected(
            &app,
            &sign(Algorithm::HS256, &claims, SECRET),
            &format!("exp {bad}"),
        )
        .await;
    }
    // Control: still valid for a minute.
    let claims = with(base, "exp", json!(now + 60));
    assert_accepted(
        &app,
        &sign(Algorithm::HS256, &claims, SECRET),
        "valid for a minute",
    )
    .await;
}

async fn sid_must_be_a_session_of_sub(backend: Backend) {
    let app = hs256_app(backend).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let root = app.admin("root").await;
    let bob_sid = claims_of(&bob.access)["sid"].clone();
    let root_sid = claims_of(&root.access)["sid"].clone();

    // alice's identity on bob's (or an admin's) live session.
    for (sid, what) in [(bob_sid.clone(), "bob's sid"), (root_sid, "root's sid")] {
        let claims = with(fresh(&alice.access), "sid", sid);
        assert_rejected(&app, &sign(Algorithm::HS256, &claims, SECRET), what).await;
    }
    // bob's session with alice's id, and with root's id and admin flag.
    let claims = with(fresh(&bob.access), "sub", json!(alice.id.to_string()));
    let claims = with(claims, "username", json!("alice"));
    assert_rejected(
        &app,
        &sign(Algorithm::HS256, &claims, SECRET),
        "sub alice, sid bob",
    )
    .await;
    let claims = with(fresh(&bob.access), "sub", json!(root.id.to_string()));
    let claims = with(
        with(claims, "username", json!("root")),
        "is_admin",
        json!(true),
    );
    assert_rejected(
        &app,
        &sign(Algorithm::HS256, &claims, SECRET),
        "sub root, sid bob",
    )
    .await;
    // Sessions that do not exist, subjects that are not ids, missing claims.
    let cases = [
        with(
            fresh(&alice.access),
            "sid",
            json!(uuid::Uuid::new_v4().to_string()),
        ),
        with(fresh(&alice.access), "sid", json!("")),
        with(fresh(&alice.access), "sid", json!("' OR '1'='1")),
        without(fresh(&alice.access), "sid"),
        with(fresh(&alice.access), "sub", json!("abc")),
        with(fresh(&alice.access), "sub", json!("")),
        with(fresh(&alice.access), "sub", json!("999999")),
        without(fresh(&alice.access), "sub"),
    ];
    for claims in cases {
        let token = sign(Algorithm::HS256, &claims, SECRET);
        assert_rejected(&app, &token, &format!("claims {claims}")).await;
    }
    // Control: alice on her own session, bob on his.
    let me = assert_accepted(
        &app,
        &sign(Algorithm::HS256, &fresh(&alice.access), SECRET),
        "alice",
    )
    .await;
    assert_eq!(me["username"], "alice");
    let me = assert_accepted(
        &app,
        &sign(Algorithm::HS256, &fresh(&bob.access), SECRET),
        "bob",
    )
    .await;
    assert_eq!(me["username"], "bob");
}

async fn tokens_of_deleted_users_are_rejected(backend: Backend) {
    let app = hs256_app(backend).await;
    let alice = app.verified_user("alice").await;
    let bob = app.register("bob").await;
    let second = app.login("alice", PASSWORD).await;
    let second_access = second["access_token"].as_str().unwrap().to_owned();
    let second_refresh = second["refresh_token"].as_str().unwrap().to_owned();
    let forged_later = fresh(&alice.access);

    let r = app
        .delete(
            "/auth/users/alice?password=correct%20horse%20battery",
            Some(&alice.access),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        json_of(r).await,
        json!({"message": "User deleted successfully"})
    );

    assert_rejected(&app, &alice.access, "deleting session's token").await;
    assert_rejected(&app, &second_access, "other session's token").await;
    assert_401(refresh_raw(&app, &alice.refresh).await, "refresh token").await;
    assert_401(
        refresh_raw(&app, &second_refresh).await,
        "other refresh token",
    )
    .await;
    let forged = sign(Algorithm::HS256, &forged_later, SECRET);
    assert_rejected(&app, &forged, "correctly signed token of the deleted user").await;
    assert_401(app.login_raw("alice", PASSWORD).await, "login").await;

    // The name is free again; the new alice is someone else, and the old tokens stay dead.
    let new_alice = app.register("alice").await;
    assert_ne!(new_alice.id, alice.id);
    assert_rejected(&app, &alice.access, "old token after re-registration").await;
    let forged = sign(
        Algorithm::HS256,
        &with(forged_later, "sub", json!(new_alice.id.to_string())),
        SECRET,
    );
    assert_rejected(&app, &forged, "old session, new alice's id").await;
    assert_accepted(&app, &new_alice.access, "new alice").await;
    assert_accepted(&app, &bob.access, "bob is unaffected").await;
}

async fn tokens_of_revoked_sessions_are_rejected(backend: Backend) {
    let app = hs256_app(backend).await;
    let alice = app.register("alice").await;
    let other = app.login("alice", PASSWORD).await;
    let other_access = other["access_token"].as_str().unwrap().to_owned();
    let (refreshed_access, refreshed_refresh) = refresh_ok(&app, &alice.refresh, "refresh").await;
    let r = app
        .post("/auth/logout", &json!({}), Some(&refreshed_access))
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    assert_rejected(&app, &alice.access, "older token of the session").await;
    assert_rejected(&app, &refreshed_access, "token that logged out").await;
    assert_401(
        refresh_raw(&app, &refreshed_refresh).await,
        "current refresh token",
    )
    .await;
    assert_401(
        refresh_raw(&app, &alice.refresh).await,
        "previous refresh token",
    )
    .await;
    // A brand-new, correctly signed token for the revoked session: the session row decides.
    let forged = sign(Algorithm::HS256, &fresh(&alice.access), SECRET);
    assert_rejected(&app, &forged, "fresh token of a revoked session").await;
    // The other session lives on.
    assert_accepted(&app, &other_access, "other session").await;
    let forged = sign(Algorithm::HS256, &fresh(&other_access), SECRET);
    assert_accepted(&app, &forged, "fresh token of the live session").await;
}

// ---------------------------------------------------------------------------------------
// refresh rotation

async fn refresh_tokens_rotate_with_a_grace(backend: Backend) {
    let app = hs256_app(backend).await;
    let alice = app.register("alice").await;
    let sid = claims_of(&alice.access)["sid"].clone();
    let r1 = alice.refresh.clone();

    let (a2, r2) = refresh_ok(&app, &r1, "R1").await;
    assert_ne!(r2, r1, "refresh tokens rotate");
    // A client that lost the answer retries with R1 within the grace: accepted, same session.
    let (a2b, r2b) = refresh_ok(&app, &r1, "R1 again within the grace").await;
    assert_ne!(r2b, r1);
    assert_ne!(r2b, r2);
    assert_eq!(claims_of(&a2b)["sid"], sid);
    let (a3, r3) = refresh_ok(&app, &r2b, "the retried answer's refresh token").await;
    assert_eq!(claims_of(&a3)["sid"], sid);
    let (a4, _) = refresh_ok(&app, &r3, "R3").await;
    // Nothing was revoked: every access token of the session still works.
    for (token, what) in [
        (&alice.access, "A1"),
        (&a2, "A2"),
        (&a2b, "A2'"),
        (&a3, "A3"),
        (&a4, "A4"),
    ] {
        assert_eq!(me_status(&app, token).await, StatusCode::OK, "{what}");
    }
    // Refresh tokens are not interchangeable between sessions or users.
    let bob = app.register("bob").await;
    let (bob_access, _) = refresh_ok(&app, &bob.refresh, "bob").await;
    assert_eq!(claims_of(&bob_access)["sub"], bob.id.to_string());
    assert_ne!(claims_of(&bob_access)["sid"], sid);
}

/// Sleeps past the grace (REFRESH_REUSE_GRACE_SECONDS = 10) once.
async fn refresh_reuse_after_grace_revokes_the_session(backend: Backend) {
    let app = hs256_app(backend).await;
    // Session A rotates once, session B twice, session C never.
    let a = app.register("alice").await;
    let (a_access2, a_refresh2) = refresh_ok(&app, &a.refresh, "A: R1").await;
    let b = app.login("alice", PASSWORD).await;
    let b_refresh1 = b["refresh_token"].as_str().unwrap().to_owned();
    let (_, b_refresh2) = refresh_ok(&app, &b_refresh1, "B: R1").await;
    let (b_access3, b_refresh3) = refresh_ok(&app, &b_refresh2, "B: R2").await;
    let c = app.login("alice", PASSWORD).await;
    let c_access = c["access_token"].as_str().unwrap().to_owned();
    let c_refresh = c["refresh_token"].as_str().unwrap().to_owned();

    tokio::time::sleep(Duration::from_secs(11)).await;

    // A's rotated R1 comes back after the grace: refused, and the whole session is revoked.
    assert_401(refresh_raw(&app, &a.refresh).await, "A: R1 after the grace").await;
    assert_401(
        app.get("/auth/me", Some(&a_access2)).await,
        "A: newest access token",
    )
    .await;
    assert_401(
        app.get("/auth/me", Some(&a.access)).await,
        "A: first access token",
    )
    .await;
    assert_401(
        refresh_raw(&app, &a_refresh2).await,
        "A: newest refresh token",
    )
    .await;
    // Other sessions of the same user are not touched.
    assert_eq!(
        me_status(&app, &c_access).await,
        StatusCode::OK,
        "C: access"
    );
    refresh_ok(&app, &c_refresh, "C: refresh").await;
    // B's R1 was rotated twice before coming back: it is just as much a reused token.
    assert_401(
        refresh_raw(&app, &b_refresh1).await,
        "B: R1 after the grace",
    )
    .await;
    assert_401(
        app.get("/auth/me", Some(&b_access3)).await,
        "B: session revoked after reuse of a token rotated twice",
    )
    .await;
    assert_401(
        refresh_raw(&app, &b_refresh3).await,
        "B: newest refresh token",
    )
    .await;
}

async fn concurrent_refreshes_of_one_token(backend: Backend) {
    let app = hs256_app(backend).await;
    for round in 0..3 {
        let user = app.register(&format!("user{round}")).await;
        let racers = if round == 0 { 2 } else { 6 };
        let mut tasks = Vec::new();
        for _ in 0..racers {
            let client = app.client.clone();
            let url = app.url("/auth/refresh");
            let token = user.refresh.clone();
            tasks.push(tokio::spawn(async move {
                let r = client
                    .post(url)
                    .json(&json!({ "refresh_token": token }))
                    .send()
                    .await
                    .expect("request");
                let status = r.status();
                (status, r.json::<Value>().await.expect("JSON body"))
            }));
        }
        let mut issued = Vec::new();
        for task in tasks {
            let (status, body) = task.await.unwrap();
            match status {
                StatusCode::OK => issued.push((
                    body["access_token"].as_str().unwrap().to_owned(),
                    body["refresh_token"].as_str().unwrap().to_owned(),
                )),
                StatusCode::UNAUTHORIZED => assert_eq!(body["code"], "unauthorized"),
                other => panic!("round {round}: concurrent refresh answered {other}: {body}"),
            }
        }
        assert!(
            !issued.is_empty(),
            "round {round}: at least one refresh succeeds"
        );
        for (access, _) in &issued {
            assert_eq!(
                me_status(&app, access).await,
                StatusCode::OK,
                "round {round}"
            );
        }
        let mut working = 0;
        for (_, refresh) in &issued {
            let r = refresh_raw(&app, refresh).await;
            match r.status() {
                StatusCode::OK => working += 1,
                StatusCode::UNAUTHORIZED => {}
                other => panic!("round {round}: refresh of an issued token answered {other}"),
            }
        }
        assert!(working >= 1, "round {round}: an issued refresh token works");
        assert_eq!(
            me_status(&app, &user.access).await,
            StatusCode::OK,
            "round {round}: session alive"
        );
    }
}

// ---------------------------------------------------------------------------------------
// lifetimes

fn assert_lifetime(body: &Value, max_seconds: i64, what: &str) -> Value {
    let expires_in = body["expires_in"].as_i64().expect("expires_in");
    assert!(
        expires_in <= max_seconds && expires_in > max_seconds - 60,
        "{what}: expires_in {expires_in}, expected about {max_seconds}"
    );
    let claims = claims_of(body["access_token"].as_str().unwrap());
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert!(
        exp - iat <= max_seconds,
        "{what}: exp - iat = {}",
        exp - iat
    );
    assert!(
        exp - iat > max_seconds - 60,
        "{what}: exp - iat = {}",
        exp - iat
    );
    assert!(
        exp <= unix_now() + max_seconds,
        "{what}: exp in the future by at most the life"
    );
    claims
}

async fn access_token_lifetime_follows_config(backend: Backend) {
    let app = spawn_app_with(backend, |vars| {
        vars.insert("ACCESS_TOKEN_EXPIRE_MINUTES".into(), "60".into());
    })
    .await;
    let r = app
        .register_raw("alice", "alice@example.com", PASSWORD)
        .await;
    let body = json_of(r).await;
    assert_lifetime(&body, 3600, "register, 60 min");
    let login = app.login("alice", PASSWORD).await;
    assert_lifetime(&login, 3600, "login, 60 min");
    let r = refresh_raw(&app, login["refresh_token"].as_str().unwrap()).await;
    assert_lifetime(&json_of(r).await, 3600, "refresh, 60 min");

    let short = spawn_app_with(backend, |vars| {
        vars.insert("ACCESS_TOKEN_EXPIRE_MINUTES".into(), "5".into());
    })
    .await;
    let login = {
        short.register("bob").await;
        short.login("bob", PASSWORD).await
    };
    assert_lifetime(&login, 300, "login, 5 min");
    let r = short
        .post(
            "/auth/refresh",
            &json!({ "token": login["access_token"] }),
            None,
        )
        .await;
    assert_lifetime(&json_of(r).await, 300, "refresh by access token, 5 min");
}

/// An access token never outlives its session, however long access tokens are configured.
async fn session_lifetime_caps_access_tokens(backend: Backend) {
    let app = spawn_app_with(backend, |vars| {
        vars.insert(
            "ACCESS_TOKEN_EXPIRE_MINUTES".into(),
            (3 * 24 * 60).to_string(),
        );
        vars.insert("SESSION_LIFETIME_DAYS".into(), "1".into());
    })
    .await;
    let day = 86_400;
    let r = app
        .register_raw("alice", "alice@example.com", PASSWORD)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let body = json_of(r).await;
    let first = assert_lifetime(&body, day, "register");
    let session_start = first["iat"].as_i64().unwrap();

    // Refreshes (by refresh token, by access token) never go past the session's end.
    let r = refresh_raw(&app, body["refresh_token"].as_str().unwrap()).await;
    let refreshed = json_of(r).await;
    let claims = assert_lifetime(&refreshed, day, "refresh");
    assert!(
        claims["exp"].as_i64().unwrap() <= session_start + day,
        "refresh within the session"
    );
    let r = app
        .post(
            "/auth/refresh",
            &json!({ "token": refreshed["access_token"] }),
            None,
        )
        .await;
    let claims = assert_lifetime(&json_of(r).await, day, "refresh by access token");
    assert!(claims["exp"].as_i64().unwrap() <= session_start + day);

    let login = app.login("alice", PASSWORD).await;
    assert_lifetime(&login, day, "login");
}
