//! Signing keys (DESIGN §13) as our own verification sees them: ES256 by default, the
//! token's header and claims, JWKS and discovery, rotation across instances, retirement,
//! the switch from HS256, concurrent first starts, and private keys never in the clear.
//! Third-party verifiers judge the same tokens in tests/api/jwks_verifiers.rs.

use std::time::Duration;

use auth_service::services::signing_keys::{cipher::KeyCipher, material};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    es256_is_the_default_and_tokens_follow_the_contract,
    jwks_and_discovery_are_public_and_cached,
    forged_tokens_are_refused,
    rotation_signs_nobody_out_across_instances,
    previous_keys_retire_after_the_window,
    switching_hs256_to_es256_signs_nobody_out,
    instances_starting_at_once_make_one_current_and_one_next,
    admin_keys_list_and_rotate,
    private_keys_are_never_in_the_clear,
);

pub const SECRET: &str = "test-secret-key-that-is-long-enough-0123456789";

pub fn segment(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("three segments");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

pub fn with_alg(alg: &'static str) -> impl FnOnce(&mut std::collections::HashMap<String, String>) {
    move |vars| {
        vars.insert("ALGORITHM".into(), alg.into());
    }
}

pub async fn jwks(app: &TestApp) -> Value {
    ok_json(app.get("/.well-known/jwks.json", None).await).await
}

pub fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

/// Signs `claims` with the stored private key `kid` (decrypted the way the service does):
/// for forgeries a verifier must refuse by their claims, not their signature.
pub async fn sign_with_stored_key(app: &TestApp, kid: &str, claims: &Value) -> String {
    let rows = app.state.store.signing_keys().await.unwrap();
    let row = rows.iter().find(|r| r.kid == kid).expect("stored key");
    let der = KeyCipher::new(SECRET.as_bytes())
        .unwrap()
        .open(&row.kid, &row.private_key_enc)
        .unwrap();
    let alg = material::parse_alg(&row.alg).unwrap();
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &material::encoding_key(alg, &der).unwrap()).unwrap()
}

fn b64_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Every token a verifier must refuse, built from a live token of ours (its claims are
/// fresh) — each with the reason, for the failure message.
pub async fn forgeries(app: &TestApp, live: &str) -> Vec<(&'static str, String)> {
    let header = segment(live, 0);
    let claims = segment(live, 1);
    let kid = header["kid"].as_str().unwrap().to_owned();
    let set = jwks(app).await;
    let jwk = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap()
        .clone();
    let mut out = Vec::new();
    let mut wrong_iss = claims.clone();
    wrong_iss["iss"] = json!("https://evil.example");
    out.push((
        "wrong iss",
        sign_with_stored_key(app, &kid, &wrong_iss).await,
    ));
    let mut wrong_aud = claims.clone();
    wrong_aud["aud"] = json!("someone-else");
    out.push((
        "wrong aud",
        sign_with_stored_key(app, &kid, &wrong_aud).await,
    ));
    // A key of our own making under a kid nobody published.
    let alg = material::parse_alg(header["alg"].as_str().unwrap()).unwrap();
    let other = material::generate(alg).unwrap();
    let mut h = Header::new(alg);
    h.kid = Some("not-a-published-kid".into());
    out.push((
        "unknown kid",
        jsonwebtoken::encode(
            &h,
            &claims,
            &material::encoding_key(alg, &other.private_der).unwrap(),
        )
        .unwrap(),
    ));
    // The same other key under our real kid: a bad signature.
    h.kid = Some(kid.clone());
    out.push((
        "our kid, another key",
        jsonwebtoken::encode(
            &h,
            &claims,
            &material::encoding_key(alg, &other.private_der).unwrap(),
        )
        .unwrap(),
    ));
    let payload = b64_json(&claims);
    out.push((
        "alg none",
        format!(
            "{}.{payload}.",
            b64_json(&json!({"alg": "none", "typ": "JWT", "kid": kid}))
        ),
    ));
    // Algorithm confusion: HS256 keyed with the public key, as published.
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some(kid.clone());
    for secret in [
        jwk.to_string(),
        jwk["x"].as_str().or(jwk["n"].as_str()).unwrap().to_owned(),
    ] {
        out.push((
            "HS256 signed with the public key",
            jsonwebtoken::encode(&hs, &claims, &EncodingKey::from_secret(secret.as_bytes()))
                .unwrap(),
        ));
    }
    let mut expired = claims.clone();
    expired["iat"] = json!(claims["iat"].as_i64().unwrap() - 7200);
    expired["exp"] = json!(claims["iat"].as_i64().unwrap() - 3600);
    out.push(("expired", sign_with_stored_key(app, &kid, &expired).await));
    out
}

async fn me_ok(base: &str, client: &reqwest::Client, token: &str) -> bool {
    client
        .get(format!("{base}/auth/me"))
        .bearer_auth(token)
        .send()
        .await
        .map(|r| r.status() == StatusCode::OK)
        .unwrap_or(false)
}

async fn es256_is_the_default_and_tokens_follow_the_contract(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    let header = segment(&alice.access, 0);
    assert_eq!(header["alg"], "ES256", "{header}");
    assert_eq!(header["typ"], "JWT");
    let kid = header["kid"].as_str().expect("kid").to_owned();
    let claims = segment(&alice.access, 1);
    assert_eq!(claims["iss"], app.state.config.jwt.issuer.as_str());
    assert_eq!(claims["aud"], "authenticated");
    assert_eq!(claims["email_verified"], false);
    assert_eq!(claims["aal"], "aal1");
    assert_eq!(claims["amr"], json!(["pwd"]));
    for name in ["sub", "sid", "jti", "iat", "exp", "username", "is_admin"] {
        assert!(claims.get(name).is_some(), "{name} missing: {claims}");
    }
    assert_eq!(me_status(&app, &alice.access).await, StatusCode::OK);
    assert!(kids(&jwks(&app).await).contains(&kid));
    // A verified user's next token says so.
    let bob = app.verified_user("bob").await;
    let login = app.login(&bob.username, &bob.password).await;
    let claims = segment(login["access_token"].as_str().unwrap(), 1);
    assert_eq!(claims["email_verified"], true);
    // Reads that check the session in their own statement verify the same token.
    let r = app.get("/credits/balance", Some(&alice.access)).await;
    assert_eq!(r.status(), StatusCode::OK);
}

async fn jwks_and_discovery_are_public_and_cached(backend: Backend) {
    let app = spawn_app(backend).await;
    let r = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "public, max-age=300");
    let set: Value = r.json().await.unwrap();
    let keys = set["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "current and next are published: {set}");
    for key in keys {
        assert_eq!(key["kty"], "EC");
        assert_eq!(key["crv"], "P-256");
        assert_eq!(key["alg"], "ES256");
        assert_eq!(key["use"], "sig");
        assert!(key.get("d").is_none(), "a private part is published: {key}");
    }
    let d = ok_json(app.get("/.well-known/openid-configuration", None).await).await;
    let issuer = app.state.config.jwt.issuer.clone();
    assert_eq!(d["issuer"], issuer.as_str());
    assert_eq!(d["jwks_uri"], format!("{issuer}/.well-known/jwks.json"));
    assert_eq!(
        d["introspection_endpoint"],
        format!("{issuer}/oauth/introspect")
    );
    assert_eq!(d["id_token_signing_alg_values_supported"], json!(["ES256"]));

    // Under HS256 nothing is published.
    let hs = spawn_app_with(backend, with_alg("HS256")).await;
    assert_eq!(jwks(&hs).await, json!({"keys": []}));
    let user = hs.register("carol").await;
    assert_eq!(segment(&user.access, 0)["alg"], "HS256");
}

async fn forged_tokens_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    // The control: the stored key re-signing the token's own claims is accepted, so each
    // refusal below is the server's doing.
    let kid = segment(&alice.access, 0)["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let control = sign_with_stored_key(&app, &kid, &segment(&alice.access, 1)).await;
    assert_eq!(me_status(&app, &control).await, StatusCode::OK);
    for (what, token) in forgeries(&app, &alice.access).await {
        let r = app.get("/auth/me", Some(&token)).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{what} accepted");
        let r = app.get("/credits/balance", Some(&token)).await;
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "{what} accepted by a joined read"
        );
    }
}

async fn rotation_signs_nobody_out_across_instances(backend: Backend) {
    let app = spawn_app(backend).await;
    let other = app.another_instance(|_| {}).await;
    let client = reqwest::Client::new();
    let alice = app.register("alice").await;
    let before = kids(&jwks(&app).await);
    let admin = app.admin("root").await;
    let r = app
        .post("/admin/keys/rotate", &json!({}), Some(&admin.access))
        .await;
    let rotated = ok_json(r).await;
    let new_current = rotated["current_kid"].as_str().unwrap().to_owned();
    assert!(
        before.contains(&new_current),
        "the next key, published before, now signs"
    );
    // Old tokens work on both instances; the rotating instance signs with the new key at
    // once, the other verifies it at once (it had the next key already).
    assert!(me_ok(&app.address, &client, &alice.access).await);
    assert!(me_ok(&other.address, &client, &alice.access).await);
    let fresh = app.login(&alice.username, &alice.password).await;
    let fresh = fresh["access_token"].as_str().unwrap().to_owned();
    assert_eq!(segment(&fresh, 0)["kid"], new_current.as_str());
    assert!(me_ok(&other.address, &client, &fresh).await);
    let after = kids(&jwks(&app).await);
    assert_eq!(after.len(), 3, "next, current and previous: {after:?}");
    assert!(before.iter().all(|k| after.contains(k)));
    // Refreshes keep working (refresh tokens are opaque).
    assert_eq!(refresh_status(&app, &alice.refresh).await, StatusCode::OK);
}

async fn previous_keys_retire_after_the_window(backend: Backend) {
    let app = spawn_app_with(backend, |vars| {
        vars.insert("ACCESS_TOKEN_EXPIRE_SECONDS".into(), "2".into());
        vars.insert("SIGNING_KEY_RETIRE_GRACE_SECONDS".into(), "1".into());
        vars.insert("SIGNING_KEYS_REFRESH_SECONDS".into(), "1".into());
    })
    .await;
    let alice = app.register("alice").await;
    let old_kid = segment(&alice.access, 0)["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let kept = app.state.tokens.signing_keys().rotate().await.unwrap();
    app.state.tokens.reload().await.unwrap();
    assert!(
        kids(&jwks(&app).await).contains(&old_kid),
        "previous still published"
    );
    assert_eq!(
        me_status(&app, &alice.access).await,
        StatusCode::OK,
        "its tokens still work"
    );
    // A token the retired key signs with a far expiry (as a thief of it would) must fail.
    let mut claims = segment(&alice.access, 1);
    claims["exp"] = json!(claims["iat"].as_i64().unwrap() + 3600);
    let stolen = sign_with_stored_key(&app, &old_kid, &claims).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let published = kids(&jwks(&app).await);
        if !published.contains(&old_kid) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "previous key never retired"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(me_status(&app, &stolen).await, StatusCode::UNAUTHORIZED);
    let listed = app.state.tokens.signing_keys().list().await.unwrap();
    let old = listed.iter().find(|k| k.kid == old_kid).unwrap();
    assert_eq!(old.state, "retired");
    assert!(old.retired_at.is_some());
    assert!(listed.iter().any(|k| k.kid == kept && k.state == "current"));
}

async fn switching_hs256_to_es256_signs_nobody_out(backend: Backend) {
    let hs = spawn_app_with(backend, with_alg("HS256")).await;
    let alice = hs.register("alice").await;
    assert_eq!(segment(&alice.access, 0)["alg"], "HS256");
    let client = reqwest::Client::new();
    // The new configuration starts on the same database while the old instance still runs.
    let es = hs.another_instance(with_alg("ES256")).await;
    assert!(
        me_ok(&es.address, &client, &alice.access).await,
        "HS256 token signed out"
    );
    let r = client
        .post(es.url("/auth/refresh"))
        .json(&json!({"refresh_token": alice.refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let pair: Value = r.json().await.unwrap();
    let es_token = pair["access_token"].as_str().unwrap().to_owned();
    assert_eq!(segment(&es_token, 0)["alg"], "ES256");
    // The old HS256 instance verifies the new tokens too (it reads the keys on an unknown kid).
    assert!(me_ok(&hs.address, &client, &es_token).await);
    assert!(me_ok(&es.address, &client, &es_token).await);
    // A fresh ES256 install with no live sessions accepts no HS256 token at all.
    let fresh = spawn_app(backend).await;
    let bob = fresh.register("bob").await;
    let mut claims = segment(&bob.access, 1);
    claims["iss"] = json!(fresh.state.config.jwt.issuer);
    let hs_token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(me_status(&fresh, &hs_token).await, StatusCode::UNAUTHORIZED);
}

async fn instances_starting_at_once_make_one_current_and_one_next(backend: Backend) {
    // An HS256 instance creates the database without keys; three ES256 instances then
    // start at the same moment on it.
    let hs = spawn_app_with(backend, with_alg("HS256")).await;
    assert!(hs.state.store.signing_keys().await.unwrap().is_empty());
    let (a, b, c) = tokio::join!(
        hs.another_instance(with_alg("ES256")),
        hs.another_instance(with_alg("ES256")),
        hs.another_instance(with_alg("ES256")),
    );
    let rows = hs.state.store.signing_keys().await.unwrap();
    let states: Vec<&str> = rows.iter().map(|r| r.state.as_str()).collect();
    assert_eq!(
        states.iter().filter(|s| **s == "current").count(),
        1,
        "{states:?}"
    );
    assert_eq!(
        states.iter().filter(|s| **s == "next").count(),
        1,
        "{states:?}"
    );
    assert_eq!(rows.len(), 2, "{states:?}");
    let client = reqwest::Client::new();
    let r = client
        .post(a.url("/auth/register"))
        .json(&json!({"username": "dave", "email": "dave@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let token = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(me_ok(&b.address, &client, &token).await);
    assert!(me_ok(&c.address, &client, &token).await);
}

async fn admin_keys_list_and_rotate(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.register("alice").await;
    assert_eq!(
        app.get("/admin/keys", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/admin/keys", Some(&alice.access)).await.status(),
        StatusCode::FORBIDDEN
    );
    let r = app
        .post("/admin/keys/rotate", &json!({}), Some(&alice.access))
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let admin = app.admin("root").await;
    let listed = ok_json(app.get("/admin/keys", Some(&admin.access)).await).await;
    let keys = listed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    for key in keys {
        assert_eq!(
            sorted_keys(key),
            [
                "activated_at",
                "alg",
                "created_at",
                "deactivated_at",
                "kid",
                "retired_at",
                "state"
            ]
        );
    }
    // Concurrent rotations run one after the other: each is a whole rotation (200) or, when
    // others kept winning, a clear 409; never a 500. Each 200 demoted exactly one key.
    let empty = json!({});
    let rotations =
        join_all((0..6).map(|_| app.post("/admin/keys/rotate", &empty, Some(&admin.access)))).await;
    let mut rotated = 0;
    for r in rotations {
        if r.status() == StatusCode::OK {
            rotated += 1;
        } else {
            assert_error(r, StatusCode::CONFLICT, "rotation_in_progress").await;
        }
    }
    assert!(rotated >= 1);
    let rows = app.state.store.signing_keys().await.unwrap();
    assert_eq!(rows.iter().filter(|r| r.state == "current").count(), 1);
    assert_eq!(rows.iter().filter(|r| r.state == "next").count(), 1);
    assert_eq!(
        rows.iter().filter(|r| r.state == "previous").count(),
        rotated,
        "{rows:?}"
    );
    assert_eq!(me_status(&app, &alice.access).await, StatusCode::OK);
    // Under HS256 there is nothing to rotate: a clear 400.
    let hs = spawn_app_with(backend, with_alg("HS256")).await;
    let root = hs.admin("root").await;
    let r = hs
        .post("/admin/keys/rotate", &json!({}), Some(&root.access))
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "no_signing_keys").await;
}

async fn private_keys_are_never_in_the_clear(backend: Backend) {
    let app = spawn_app_with(backend, with_alg("EdDSA")).await;
    let admin = app.admin("root").await;
    ok_json(
        app.post("/admin/keys/rotate", &json!({}), Some(&admin.access))
            .await,
    )
    .await;
    let cipher = KeyCipher::new(SECRET.as_bytes()).unwrap();
    let rows = app.state.store.signing_keys().await.unwrap();
    let mut secrets = Vec::new();
    for row in &rows {
        let der = cipher.open(&row.kid, &row.private_key_enc).unwrap();
        // The DER, and the 32-byte Ed25519 seed inside it (after ring's 16-byte PKCS#8
        // prefix; the public key follows it), in every usual spelling.
        let seed = &der[16..48];
        for bytes in [&der[..], seed] {
            secrets.push(STANDARD.encode(bytes));
            secrets.push(URL_SAFE_NO_PAD.encode(bytes));
            secrets.push(hex::encode(bytes));
        }
    }
    let listed = app
        .get("/admin/keys", Some(&admin.access))
        .await
        .text()
        .await
        .unwrap();
    let published = app
        .get("/.well-known/jwks.json", None)
        .await
        .text()
        .await
        .unwrap();
    let dump = format!("{rows:?}");
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_auth-service"))
        .args(["keys", "list"])
        .env_clear()
        .envs(app.vars.iter())
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let cli_out = format!(
        "{}{}",
        String::from_utf8_lossy(&cli.stdout),
        String::from_utf8_lossy(&cli.stderr)
    );
    for row in &rows {
        assert!(
            cli_out.contains(&row.kid),
            "keys list names every key: {cli_out}"
        );
    }
    for secret in &secrets {
        for (place, text) in [
            ("GET /admin/keys", &listed),
            ("JWKS", &published),
            ("database rows", &dump),
            ("keys list", &cli_out),
        ] {
            assert!(!text.contains(secret.as_str()), "private key in {place}");
        }
    }
}
