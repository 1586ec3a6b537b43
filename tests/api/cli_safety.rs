//! The command line does not act on a surprise database, and refuses bad configuration
//! with one message naming the variable and the cause (the real binary, cleared
//! environment); `GET /test-info` outside production only.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use reqwest::StatusCode;

use crate::both_backends;
use crate::helpers::*;
use crate::logs::{base_env, BINARY};

both_backends!(test_info_outside_production_only);

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs the binary with exactly `env` in `dir`, standard input closed, bounded to 60 s.
fn run(args: &[&str], env: &HashMap<String, String>, dir: &Path) -> Run {
    let output: Output = Command::new("timeout")
        .arg("60")
        .arg(BINARY)
        .args(args)
        .env_clear()
        .envs(env)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run the binary");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn openapi_needs_no_configuration_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Production without SECRET_KEY would refuse to start a server; printing the document
    // needs no secret at all, and must not generate one into ./data.
    let env: HashMap<String, String> = [
        ("PATH".to_owned(), std::env::var("PATH").unwrap_or_default()),
        ("ENVIRONMENT".to_owned(), "production".to_owned()),
    ]
    .into();
    let out = run(&["openapi"], &env, dir.path());
    assert_eq!(out.code, Some(0), "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("one JSON document");
    assert!(doc["paths"]["/test-info"].is_object());
    assert!(
        entries(dir.path()).is_empty(),
        "created {:?}",
        entries(dir.path())
    );
}

#[test]
fn migrate_status_does_not_create_the_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(dir.path());
    let db = dir.path().join("nested/auth.db");
    env.insert("DATABASE_URL".into(), format!("sqlite://{}", db.display()));
    let out = run(&["migrate", "status"], &env, dir.path());
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout.contains("pending") && !out.stdout.contains("applied"),
        "all pending: {out}"
    );
    assert!(!db.exists() && !dir.path().join("nested").exists(), "{out}");
    assert!(
        out.stderr
            .contains(&format!("database: sqlite://{}", db.display())),
        "{out}"
    );
}

#[test]
fn migrate_down_needs_yes_without_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let env = base_env(dir.path());
    let up = run(&["migrate", "up"], &env, dir.path());
    assert_eq!(up.code, Some(0), "{up}");
    let before = run(&["migrate", "status"], &env, dir.path()).stdout;
    let refused = run(&["migrate", "down"], &env, dir.path());
    assert_ne!(refused.code, Some(0), "{refused}");
    assert!(refused.stderr.contains("--yes"), "{refused}");
    assert_eq!(
        run(&["migrate", "status"], &env, dir.path()).stdout,
        before,
        "nothing reverted"
    );
    let done = run(&["migrate", "down", "--yes"], &env, dir.path());
    assert_eq!(done.code, Some(0), "{done}");
    assert!(done.stdout.contains("reverted"), "{done}");
    assert_ne!(run(&["migrate", "status"], &env, dir.path()).stdout, before);
}

/// A configuration error: non-zero, the variable named, the message printed once, no secret.
fn assert_refused(var: &str, value: &str, expect: &[&str]) {
    assert_refused_by(&["migrate", "status"], var, value, expect);
}

fn assert_refused_by(args: &[&str], var: &str, value: &str, expect: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(dir.path());
    env.insert(var.into(), value.into());
    let out = run(args, &env, dir.path());
    assert_ne!(out.code, Some(0), "{var}={value}: {out}");
    let first_line = out
        .stderr
        .lines()
        .find(|l| l.contains(var))
        .unwrap_or_else(|| panic!("{var} not named: {out}"));
    assert_eq!(
        out.stderr.matches(first_line).count(),
        1,
        "printed once: {out}"
    );
    for text in expect {
        assert!(
            out.stderr.contains(text),
            "{var}={value}: expected {text:?} in {out}"
        );
    }
    assert!(
        !out.stderr.contains("sekret") && !out.stdout.contains("sekret"),
        "password shown: {out}"
    );
    assert!(!out.stderr.contains("pool timed out"), "{out}");
}

#[test]
fn unknown_settings_are_refused() {
    assert_refused("ENVIRONMENT", "staging", &["staging"]);
    assert_refused("LOG_LEVEL", "loud", &["loud"]);
    assert_refused("REDIS_URL", "http://cache:6379", &["REDIS_URL"]);
}

#[test]
fn database_errors_name_the_place_and_the_cause() {
    assert_refused(
        "DATABASE_URL",
        "postgres://u:sekret@127.0.0.1:1/app",
        &["127.0.0.1:1", "connection refused"],
    );
    assert_refused(
        "DATABASE_URL",
        "postgres://u:sekret@no-such-host.invalid:5432/app",
        &["no-such-host.invalid:5432", "unknown host"],
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "not a directory").unwrap();
    let path = file.join("auth.db");
    assert_refused_by(
        &["migrate", "up"],
        "DATABASE_URL",
        &format!("sqlite://{}", path.display()),
        &[&path.display().to_string()],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_postgres_database_is_named() {
    if !Backend::Postgres.available().await {
        return;
    }
    let server = test_database_server();
    let url = format!(
        "{}/no_such_database_{}",
        server
            .trim_end_matches('/')
            .rsplit_once('/')
            .map_or(server.as_str(), |(base, _)| base),
        uuid::Uuid::new_v4().simple()
    );
    assert_refused("DATABASE_URL", &url, &["does not exist"]);
}

#[test]
fn help_lists_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&["--help"], &base_env(dir.path()), dir.path());
    assert_eq!(out.code, Some(0), "{out}");
    for var in [
        "DATABASE_URL",
        "SECRET_KEY",
        "ENVIRONMENT",
        "REDIS_URL",
        "INTERNAL_API_KEYS",
    ] {
        assert!(out.stdout.contains(var), "--help lacks {var}: {out}");
    }
}

async fn test_info_outside_production_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let info = ok_json(app.get("/test-info", None).await).await;
    assert_eq!(info["environment"], "development");
    assert_eq!(info["backend"], backend_name(backend));
    assert_eq!(info["email_verification_required"], true);
    assert_eq!(info["internal_api_keys_configured"], true);
    assert!(
        !info.to_string().contains("internal-key-one"),
        "no secret: {info}"
    );

    let production = spawn_app_with(backend, |vars| {
        vars.insert("ENVIRONMENT".into(), "production".into());
        vars.insert("BCRYPT_COST".into(), "10".into());
    })
    .await;
    let response = production.get("/test-info", None).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}
