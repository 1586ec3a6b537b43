//! CORS_ORIGINS through the real binary: `*` is "any origin, without credentials" (it used
//! to panic at start), a trailing slash is forgiven, anything malformed is refused at
//! start naming the variable.

use reqwest::StatusCode;

use crate::logs::{base_env, ServerProcess};

async fn server_with(origins: &str) -> (ServerProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(dir.path());
    env.insert("CORS_ORIGINS".into(), origins.into());
    (ServerProcess::start(&env, dir.path()).await, dir)
}

/// The preflight's and the actual request's Access-Control-Allow-Origin for `origin`.
async fn allowed_origin(
    server: &ServerProcess,
    origin: &str,
) -> (Option<String>, Option<String>, bool) {
    let client = reqwest::Client::new();
    let preflight = client
        .request(reqwest::Method::OPTIONS, server.url("/auth/me"))
        .header("origin", origin)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert!(
        preflight.status().is_success(),
        "preflight {}",
        preflight.status()
    );
    let header = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let preflight_origin = header(&preflight, "access-control-allow-origin");
    let actual = client
        .get(server.url("/health"))
        .header("origin", origin)
        .send()
        .await
        .unwrap();
    assert_eq!(actual.status(), StatusCode::OK);
    let credentials = actual
        .headers()
        .contains_key("access-control-allow-credentials")
        || preflight
            .headers()
            .contains_key("access-control-allow-credentials");
    (
        preflight_origin,
        header(&actual, "access-control-allow-origin"),
        credentials,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn star_allows_any_origin_without_credentials() {
    let (server, _dir) = server_with("*").await;
    let (preflight, actual, credentials) =
        allowed_origin(&server, "https://anything.example").await;
    assert_eq!(preflight.as_deref(), Some("*"));
    assert_eq!(actual.as_deref(), Some("*"));
    assert!(!credentials, "never credentials with any origin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listed_origins_match_after_normalising() {
    let (server, _dir) = server_with("https://App.Example.com/, http://localhost:3000").await;
    let (preflight, actual, _) = allowed_origin(&server, "https://app.example.com").await;
    assert_eq!(preflight.as_deref(), Some("https://app.example.com"));
    assert_eq!(actual.as_deref(), Some("https://app.example.com"));
    let (_, actual, _) = allowed_origin(&server, "http://localhost:3000").await;
    assert_eq!(actual.as_deref(), Some("http://localhost:3000"));
    let (_, actual, _) = allowed_origin(&server, "https://evil.example").await;
    assert_eq!(actual, None, "an origin not listed gets no CORS grant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_origins_are_refused_at_start() {
    for bad in [
        "app.example.com",
        "https://app.example.com/app",
        "*, https://app.example.com",
        "ftp://files.example.com",
        "https://app.example.com?x=1",
    ] {
        let out = super::run_to_exit(&[("CORS_ORIGINS", bad)]).await;
        assert_eq!(out.code, Some(2), "CORS_ORIGINS={bad:?}: {out:?}");
        assert!(
            out.stderr.contains("configuration error") && out.stderr.contains("CORS_ORIGINS"),
            "CORS_ORIGINS={bad:?}: {out:?}"
        );
        assert!(!out.stderr.contains("panicked"), "{out:?}");
    }
}
