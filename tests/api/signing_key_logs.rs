//! The private halves of the signing keys never reach the log (DESIGN §13), even at
//! LOG_LEVEL=DEBUG with every request logged: the real binary starts (generating its
//! keys), an admin rotates twice, tokens are issued and verified; then each key's private
//! half, decrypted from the database with the SECRET_KEY, is searched for in everything
//! the process printed, in every usual spelling (base64, base64url, hex, PEM marker).

use auth_service::services::signing_keys::cipher::KeyCipher;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::Connection;

use crate::helpers::PASSWORD;
use crate::logs::{base_env, strip_ansi, ServerProcess, BINARY, SECRET_KEY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_keys_never_reach_the_log_even_at_debug() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(dir.path());
    env.insert("ALGORITHM".into(), "ES256".into());
    env.insert("LOG_LEVEL".into(), "DEBUG".into());
    env.insert("REQUIRE_EMAIL_VERIFICATION".into(), "false".into());
    let server = ServerProcess::start(&env, dir.path()).await;

    let created = std::process::Command::new(BINARY)
        .args([
            "create-admin",
            "--username",
            "keyadmin",
            "--email",
            "k@example.com",
        ])
        .env_clear()
        .envs(env.iter().filter(|(k, _)| k.as_str() != "PORT"))
        .env("ADMIN_PASSWORD", PASSWORD)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let client = reqwest::Client::new();
    let login: Value = client
        .post(server.url("/auth/login"))
        .form(&[("username", "keyadmin"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().expect("a token").to_owned();
    for _ in 0..2 {
        let r = client
            .post(server.url("/admin/keys/rotate"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let me = client
        .get(server.url("/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        me.status(),
        StatusCode::OK,
        "a token signed before the rotations"
    );

    let mut db = sqlx::SqliteConnection::connect(&env["DATABASE_URL"])
        .await
        .unwrap();
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT kid, private_key_enc FROM signing_keys")
            .fetch_all(&mut db)
            .await
            .unwrap();
    assert!(
        rows.len() >= 4,
        "the first pair and two rotations: {}",
        rows.len()
    );
    let cipher = KeyCipher::new(SECRET_KEY.as_bytes()).unwrap();
    // Give the process a moment to flush what it logged for the last requests.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let output = strip_ansi(&server.output());
    assert!(
        output.contains("/admin/keys/rotate"),
        "requests are logged at DEBUG"
    );
    assert!(!output.contains("PRIVATE KEY"), "no PEM in the log");
    for (kid, sealed) in &rows {
        let der = cipher.open(kid, sealed).unwrap();
        // ring's P-256 PKCS#8 document: 36 bytes of structure, the 32-byte private scalar,
        // then the public point. The whole document and the scalar alone are searched.
        assert_eq!(der.len(), 138, "a P-256 PKCS#8 document");
        for bytes in [&der[..], &der[36..68]] {
            for spelling in [
                STANDARD.encode(bytes),
                URL_SAFE_NO_PAD.encode(bytes),
                hex::encode(bytes),
            ] {
                assert!(
                    !output.contains(&spelling),
                    "a private key of {kid} is in the log"
                );
            }
        }
    }
}
