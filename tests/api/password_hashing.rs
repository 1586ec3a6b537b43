//! The password hash of DESIGN §4: argon2id (m=19456 KiB, t=2, p=1) by default; a hash of
//! the other kind (bcrypt imported from the original, or argon2 under PASSWORD_HASH=bcrypt)
//! logs in and is replaced at the next successful login, once, even under concurrency.
//! The rest of the suite runs with PASSWORD_HASH=bcrypt at cost 4 to stay fast.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHasher as _, SaltString};
use auth_service::caller::ClientInfo;
use auth_service::services::audit;
use auth_service::store::{now, NewUser};
use reqwest::StatusCode;
use serde_json::Value;

use crate::both_backends;
use crate::helpers::{assert_unauthorized, join_all, spawn_app_with, Backend, TestApp, PASSWORD};

both_backends!(
    default_is_argon2id_with_the_owasp_parameters,
    old_bcrypt_hash_logs_in_and_becomes_argon2id,
    bcrypt_setting_logs_in_an_argon2_account_and_replaces_it,
    wrong_passwords_leave_either_kind_alone,
    concurrent_logins_replace_an_old_hash_once,
);

const ARGON2ID_PREFIX: &str = "$argon2id$v=19$m=19456,t=2,p=1$";

/// An instance with the default hashing (no PASSWORD_HASH, no BCRYPT_COST).
async fn default_hashing(backend: Backend) -> TestApp {
    spawn_app_with(backend, |vars| {
        vars.remove("PASSWORD_HASH");
        vars.remove("BCRYPT_COST");
    })
    .await
}

/// A user stored with `hash`, as `import-fastapi` (or an older configuration) leaves one.
async fn user_with_hash(app: &TestApp, username: &str, hash: String) -> i64 {
    let user = NewUser {
        username: username.to_owned(),
        username_key: username.to_lowercase(),
        email: format!("{username}@example.com"),
        password_hash: hash,
        is_admin: false,
        is_verified: true,
        created_at: now(),
    };
    let activity = audit::plain(audit::REGISTER, None, &ClientInfo::default());
    app.state
        .store
        .create_user(&user, None, &[], &activity)
        .await
        .unwrap()
        .id
}

async fn stored_hash(app: &TestApp, user_id: i64) -> String {
    app.state
        .store
        .user_by_id(user_id)
        .await
        .unwrap()
        .unwrap()
        .password_hash
}

async fn upgrades_recorded(app: &TestApp, user_id: i64) -> Vec<Value> {
    let (rows, _) = app
        .state
        .store
        .activities(Some(user_id), 0, 100)
        .await
        .unwrap();
    rows.into_iter()
        .filter(|a| a.event == audit::PASSWORD_HASH_UPGRADE)
        .map(|a| serde_json::from_str(&a.details).unwrap())
        .collect()
}

fn argon2id_hash(password: &str) -> String {
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string()
}

async fn default_is_argon2id_with_the_owasp_parameters(backend: Backend) {
    let app = default_hashing(backend).await;
    let info: Value = app.get("/test-info", None).await.json().await.unwrap();
    assert_eq!(info["password_hash"], "argon2id");

    let alice = app.register("alice").await;
    let hash = stored_hash(&app, alice.id).await;
    assert!(hash.starts_with(ARGON2ID_PREFIX), "{hash}");
    app.login("alice", PASSWORD).await;
    assert_eq!(
        stored_hash(&app, alice.id).await,
        hash,
        "nothing to upgrade"
    );
    assert!(upgrades_recorded(&app, alice.id).await.is_empty());

    // bcrypt's 72-byte limit does not apply: a 100-byte password registers and logs in;
    // the document states the instance's own limit.
    let long = "p".repeat(100);
    let r = app.register_raw("bob", "bob@example.com", &long).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    app.login("bob", &long).await;
    let doc: Value = app.get("/openapi.json", None).await.json().await.unwrap();
    let password = &doc["components"]["schemas"]["RegisterRequest"]["properties"]["password"];
    assert_eq!(password["maxLength"], 1024, "{password}");

    // Unknown users are checked against a dummy hash of the configured kind: same answer.
    assert_unauthorized(app.login_raw("nobody", PASSWORD).await).await;
}

async fn old_bcrypt_hash_logs_in_and_becomes_argon2id(backend: Backend) {
    let app = default_hashing(backend).await;
    let old = bcrypt::hash(PASSWORD, 4).unwrap();
    let id = user_with_hash(&app, "imported", old.clone()).await;

    app.login("imported", PASSWORD).await;
    let new = stored_hash(&app, id).await;
    assert!(
        new.starts_with(ARGON2ID_PREFIX),
        "replaced by argon2id: {new}"
    );
    let upgrades = upgrades_recorded(&app, id).await;
    assert_eq!(upgrades.len(), 1, "{upgrades:?}");
    assert_eq!(upgrades[0]["from"], "bcrypt");
    assert_eq!(upgrades[0]["to"], "argon2id");
    assert!(
        !upgrades[0].to_string().contains('$'),
        "no hash in the audit row"
    );

    // The new hash works, and nothing is replaced again.
    app.login("imported", PASSWORD).await;
    assert_eq!(stored_hash(&app, id).await, new);
    assert_eq!(upgrades_recorded(&app, id).await.len(), 1);
}

async fn bcrypt_setting_logs_in_an_argon2_account_and_replaces_it(backend: Backend) {
    // helpers' configuration: PASSWORD_HASH=bcrypt, BCRYPT_COST=4.
    let app = spawn_app_with(backend, |_| {}).await;
    let id = user_with_hash(&app, "carol", argon2id_hash(PASSWORD)).await;

    app.login("carol", PASSWORD).await;
    let new = stored_hash(&app, id).await;
    assert!(new.starts_with("$2b$04$"), "replaced by bcrypt: {new}");
    let upgrades = upgrades_recorded(&app, id).await;
    assert_eq!(upgrades.len(), 1, "{upgrades:?}");
    assert_eq!(
        (&upgrades[0]["from"], &upgrades[0]["to"]),
        (&Value::from("argon2id"), &Value::from("bcrypt"))
    );
    app.login("carol", PASSWORD).await;
    assert_eq!(stored_hash(&app, id).await, new);

    // A password bcrypt cannot take (over 72 bytes) still logs in with its argon2 hash,
    // which is kept: replacing it would truncate the password.
    let long = "q".repeat(80);
    let long_hash = argon2id_hash(&long);
    let dave = user_with_hash(&app, "dave", long_hash.clone()).await;
    app.login("dave", &long).await;
    assert_eq!(stored_hash(&app, dave).await, long_hash);
    assert_unauthorized(app.login_raw("dave", &"q".repeat(72)).await).await;
}

async fn wrong_passwords_leave_either_kind_alone(backend: Backend) {
    let app = default_hashing(backend).await;
    let bcrypt_hash = bcrypt::hash(PASSWORD, 4).unwrap();
    let old = user_with_hash(&app, "old", bcrypt_hash.clone()).await;
    let current = app.register("current").await;
    let argon_hash = stored_hash(&app, current.id).await;

    for (username, id, hash) in [
        ("old", old, &bcrypt_hash),
        ("current", current.id, &argon_hash),
    ] {
        assert_unauthorized(app.login_raw(username, "wrong password").await).await;
        assert_eq!(
            &stored_hash(&app, id).await,
            hash,
            "{username}: hash unchanged"
        );
        assert!(upgrades_recorded(&app, id).await.is_empty());
    }
}

async fn concurrent_logins_replace_an_old_hash_once(backend: Backend) {
    let app = default_hashing(backend).await;
    let id = user_with_hash(&app, "busy", bcrypt::hash(PASSWORD, 4).unwrap()).await;

    // Four at once: the throttle counts a login before its hash is checked, and five
    // unfinished attempts would already be answered 429.
    let statuses =
        join_all((0..4).map(|_| async { app.login_raw("busy", PASSWORD).await.status() })).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "every login succeeds: {statuses:?}"
    );
    let new = stored_hash(&app, id).await;
    assert!(new.starts_with(ARGON2ID_PREFIX), "{new}");
    assert_eq!(upgrades_recorded(&app, id).await.len(), 1, "replaced once");
    app.login("busy", PASSWORD).await;
}
