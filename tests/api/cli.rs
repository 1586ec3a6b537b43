//! The command line, run as the real binary over a cleared environment: `migrate`,
//! `create-admin`, `openapi`, refusing unsafe production settings, and serving by default.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::both_backends;
use crate::helpers::*;
use crate::logs::{base_env, ServerProcess, BINARY};

both_backends!(
    migrate_up_down_status,
    create_admin_creates_a_verified_admin,
    create_admin_promotes_an_existing_user,
    create_admin_takes_admin_password_from_the_environment,
    create_admin_refuses_bad_input,
);

struct CliOutput {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for CliOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit: {}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs the binary with exactly `env` (over a cleared environment) in `dir`; `stdin`
/// is written then closed (None: no standard input at all). Killed after 60 s.
async fn run_cli(
    args: &[&str],
    env: &HashMap<String, String>,
    dir: &Path,
    stdin: Option<&str>,
) -> CliOutput {
    let mut child = Command::new(BINARY)
        .args(args)
        .env_clear()
        .envs(env)
        .current_dir(dir)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the auth-service binary");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        // The process may exit before reading (bad arguments): ignore a broken pipe.
        let _ = pipe.write_all(input.as_bytes());
    }
    let read_all = |mut stream: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stream.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = read_all(Box::new(child.stdout.take().unwrap()));
    let err = read_all(Box::new(child.stderr.take().unwrap()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the binary") {
            break status;
        }
        if tokio::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "auth-service {args:?} did not exit within 60 s:\n{}\n{}",
                out.join().unwrap_or_default(),
                err.join().unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    CliOutput {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// The environment of a CLI run against an existing test app's database.
fn env_for(app: &TestApp) -> HashMap<String, String> {
    let mut env = base_env(app.dir.path());
    env.insert("DATABASE_URL".into(), app.db.url.clone());
    env
}

/// Every (version, state) that `migrate status` prints, state being "applied"/"pending".
fn migration_states(stdout: &str) -> Vec<(i64, String)> {
    stdout
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let v: i64 = words.next()?.parse().ok()?;
            Some((v, words.next().unwrap_or_default().to_owned()))
        })
        .collect()
}

async fn migrate_up_down_status(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::create(backend, dir.path()).await;
    let mut env = base_env(dir.path());
    env.insert("DATABASE_URL".into(), db.url.clone());
    let run = |args: Vec<String>| {
        let env = &env;
        let dir = dir.path();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_cli(&args, env, dir, None).await
        }
    };
    let cmd = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    let status = || async {
        let out = run(cmd("migrate status")).await;
        assert!(out.status.success(), "{out}");
        let states = migration_states(&out.stdout);
        assert!(!states.is_empty(), "status lists the migrations: {out}");
        states
    };

    // Fresh database: everything pending, version 1 first.
    let states = status().await;
    assert_eq!(states[0], (1, "pending".to_owned()), "{states:?}");
    assert!(states.iter().all(|(_, s)| s == "pending"), "{states:?}");
    let versions: Vec<i64> = states.iter().map(|(v, _)| *v).collect();
    let mut sorted = versions.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(versions, sorted, "listed once each, in order");
    let newest = *versions.last().unwrap();

    let out = run(cmd("migrate up")).await;
    assert!(out.status.success(), "{out}");
    let states = status().await;
    assert!(states.iter().all(|(_, s)| s == "applied"), "{states:?}");
    assert_eq!(states.len(), versions.len());

    // Up again changes nothing and succeeds.
    let out = run(cmd("migrate up")).await;
    assert!(out.status.success(), "{out}");
    assert!(status().await.iter().all(|(_, s)| s == "applied"));

    // Down reverts the newest migration only.
    let out = run(cmd("migrate down --yes")).await;
    assert!(out.status.success(), "{out}");
    assert!(
        out.stdout.contains(&newest.to_string()),
        "names the reverted version {newest}: {out}"
    );
    let states = status().await;
    for (v, s) in &states {
        let expected = if *v == newest { "pending" } else { "applied" };
        assert_eq!(s, expected, "version {v} after one down: {states:?}");
    }

    // Down N reverts the rest; version 1 is pending again.
    let out = run(cmd(&format!("migrate down {} --yes", versions.len()))).await;
    assert!(out.status.success(), "{out}");
    assert!(out.stdout.contains('1'), "names version 1: {out}");
    let states = status().await;
    assert_eq!(states[0], (1, "pending".to_owned()), "{states:?}");
    assert!(states.iter().all(|(_, s)| s == "pending"), "{states:?}");

    let out = run(cmd("migrate down --yes")).await;
    assert!(
        out.status.success(),
        "down with nothing applied exits 0: {out}"
    );
    assert!(
        out.stdout.to_lowercase().contains("nothing to revert"),
        "{out}"
    );

    // The down script really removed the schema: up applies cleanly again, and the
    // schema works (an admin can be created in it).
    let out = run(cmd("migrate up")).await;
    assert!(out.status.success(), "{out}");
    assert!(status().await.iter().all(|(_, s)| s == "applied"));
    let out = run_cli(
        &[
            "create-admin",
            "--username",
            "root",
            "--email",
            "root@example.com",
        ],
        &env,
        dir.path(),
        Some("root-password-123\n"),
    )
    .await;
    assert!(out.status.success(), "{out}");

    // Bad arguments are refused with a non-zero exit.
    for args in [
        &["migrate", "down", "many"][..],
        &["migrate", "sideways"][..],
        &["migrate"][..],
        &["no-such-command"][..],
    ] {
        let out = run_cli(args, &env, dir.path(), None).await;
        assert!(!out.status.success(), "{args:?}: {out}");
        assert!(!out.stderr.is_empty(), "{args:?} explains itself: {out}");
    }
    drop(db);
}

async fn me(app: &TestApp, username: &str, password: &str) -> Value {
    let tokens = app.login(username, password).await;
    let r = app.get("/auth/me", tokens["access_token"].as_str()).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

fn create_admin_args<'a>(username: &'a str, email: &'a str) -> Vec<&'a str> {
    vec!["create-admin", "--username", username, "--email", email]
}

async fn create_admin_creates_a_verified_admin(backend: Backend) {
    let app = spawn_app(backend).await;
    let out = run_cli(
        &create_admin_args("root", "Root@Example.com"),
        &env_for(&app),
        app.dir.path(),
        Some("root-password-123\nignored second line\n"),
    )
    .await;
    assert!(out.status.success(), "{out}");
    assert!(
        !out.stdout.contains("root-password-123") && !out.stderr.contains("root-password-123"),
        "the password is not echoed: {out}"
    );

    let me = me(&app, "root", "root-password-123").await;
    assert_eq!(me["username"], "root");
    assert_eq!(me["email"], "root@example.com", "stored lowercased");
    assert_eq!(me["is_admin"], true);
    assert_eq!(me["is_verified"], true);
    // Only the first line is the password.
    assert_eq!(
        app.login_raw("root", "root-password-123\nignored second line")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    // Signing in by email works too, and the admin can do admin things.
    let tokens = app.login("root@example.com", "root-password-123").await;
    let other = app.register("someone").await;
    let r = app
        .get(
            &format!("/auth/me?user_id={}", other.id),
            tokens["access_token"].as_str(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["username"], "someone");
}

async fn create_admin_promotes_an_existing_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let bob = app.register("bob").await;
    let is_admin = |access: String| {
        let app = &app;
        async move { me_json(app, &access).await["is_admin"].clone() }
    };
    assert_eq!(is_admin(bob.access.clone()).await, false);

    // Without --promote an existing account is refused, whatever the email.
    for email in ["bob@example.com", "ops@corp.example"] {
        let out = run_cli(
            &create_admin_args("bob", email),
            &env_for(&app),
            app.dir.path(),
            Some("operators-password-1\n"),
        )
        .await;
        assert!(!out.status.success(), "{out}");
        assert!(out.stderr.contains("already exists"), "{out}");
        assert!(out.stderr.contains("--promote"), "{out}");
    }
    // With --promote but another email (the takeover of issue 8): refused too.
    let mut args = create_admin_args("BOB", "ops@corp.example");
    args.push("--promote");
    let out = run_cli(
        &args,
        &env_for(&app),
        app.dir.path(),
        Some("operators-password-1\n"),
    )
    .await;
    assert!(!out.status.success(), "{out}");
    assert!(out.stderr.contains("does not match"), "{out}");
    assert_eq!(is_admin(bob.access.clone()).await, false, "nothing changed");
    assert_eq!(
        app.login_raw("bob", "operators-password-1").await.status(),
        StatusCode::UNAUTHORIZED,
        "the operator's password was not set on the account"
    );

    // --promote with the account's own email (any case of the username): promoted, and
    // the account keeps its own password.
    let mut args = create_admin_args("BOB", "Bob@Example.com");
    args.push("--promote");
    let out = run_cli(&args, &env_for(&app), app.dir.path(), None).await;
    assert!(out.status.success(), "{out}");
    assert!(out.stdout.contains("promoted bob"), "{out}");
    assert!(out.stdout.contains("password is unchanged"), "{out}");
    let me = me_json(&app, &bob.access).await;
    assert_eq!(me["is_admin"], true, "{me}");
    assert_eq!(me["id"], bob.id, "the same account");
    assert_eq!(
        app.login_raw("bob", PASSWORD).await.status(),
        StatusCode::OK
    );
    let dup = app.register_raw("bob", "bob2@example.com", PASSWORD).await;
    assert_eq!(dup.status(), StatusCode::CONFLICT);

    // --promote for a name that has no account creates it (with the given password).
    let mut args = create_admin_args("carol", "carol@example.com");
    args.push("--promote");
    let out = run_cli(
        &args,
        &env_for(&app),
        app.dir.path(),
        Some("carols-password-1\n"),
    )
    .await;
    assert!(out.status.success(), "{out}");
    let tokens = app.login("carol", "carols-password-1").await;
    let me = me_json(&app, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(me["is_admin"], true, "{me}");
}

async fn me_json(app: &TestApp, access: &str) -> Value {
    app.get("/auth/me", Some(access))
        .await
        .json()
        .await
        .unwrap()
}

async fn create_admin_takes_admin_password_from_the_environment(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut env = env_for(&app);
    env.insert("ADMIN_PASSWORD".into(), "eve-env-password-1".into());
    let out = run_cli(
        &create_admin_args("eve", "eve@example.com"),
        &env,
        app.dir.path(),
        None,
    )
    .await;
    assert!(out.status.success(), "{out}");
    let me = me(&app, "eve", "eve-env-password-1").await;
    assert_eq!(me["is_admin"], true);
    assert_eq!(me["is_verified"], true);
}

async fn create_admin_refuses_bad_input(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("taken").await;
    let env = env_for(&app);
    let too_long = format!("{}\n", "p".repeat(73));
    let cases: [(&str, &str, Option<&str>, &str); 9] = [
        ("short username", "ab", Some("good-password-1\n"), "ab"),
        (
            "bad characters",
            "bad name!",
            Some("good-password-1\n"),
            "bad name!",
        ),
        ("bad email", "dave", Some("good-password-1\n"), "dave"),
        ("short password", "erin", Some("tiny7\n"), "erin"),
        ("empty standard input", "frank", Some(""), "frank"),
        ("empty password line", "grace", Some("\n"), "grace"),
        ("no standard input", "heidi", None, "heidi"),
        (
            "password over 72 bytes",
            "ivan",
            Some(too_long.as_str()),
            "ivan",
        ),
        (
            "email of another account",
            "judy",
            Some("good-password-1\n"),
            "judy",
        ),
    ];
    for (case, username, stdin, login) in cases {
        let email = match case {
            "bad email" => "not-an-email".to_owned(),
            "email of another account" => "TAKEN@example.com".to_owned(),
            _ => format!("{}@example.com", username.replace(' ', "")),
        };
        let out = run_cli(
            &create_admin_args(username, &email),
            &env,
            app.dir.path(),
            stdin,
        )
        .await;
        assert!(!out.status.success(), "{case}: {out}");
        assert!(!out.stderr.trim().is_empty(), "{case}: says why: {out}");
        assert!(
            !out.stderr.contains("tiny7") && !out.stdout.contains("tiny7"),
            "{case}: the password is not echoed: {out}"
        );
        // Nothing was created: the name cannot sign in with any of the passwords given.
        for password in ["good-password-1", "tiny7"] {
            assert_eq!(
                app.login_raw(login, password).await.status(),
                StatusCode::UNAUTHORIZED,
                "{case}"
            );
        }
        let r = app
            .client
            .get(app.url(&format!("/auth/users/{}", login.replace(' ', "%20"))))
            .header("X-API-Key", "internal-key-one")
            .send()
            .await
            .unwrap();
        assert_ne!(r.status(), StatusCode::OK, "{case}: an account exists");
    }
    // The owner of the email was not touched.
    let taken = me(&app, "taken", PASSWORD).await;
    assert_eq!(taken["is_admin"], false);

    // Missing arguments.
    for args in [
        &["create-admin"][..],
        &["create-admin", "--username", "kim"][..],
        &["create-admin", "--email", "kim@example.com"][..],
    ] {
        let out = run_cli(args, &env, app.dir.path(), Some("good-password-1\n")).await;
        assert!(!out.status.success(), "{args:?}: {out}");
    }
    assert_eq!(
        app.login_raw("kim", "good-password-1").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_prints_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_cli(&["openapi"], &base_env(dir.path()), dir.path(), None).await;
    assert!(out.status.success(), "{out}");
    let doc: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!("stdout is one JSON document ({e}): {out}");
    });
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    assert!(doc["paths"]["/auth/register"].is_object());
    assert!(doc["paths"]["/health"].is_object());
    // The same document a server with the default configuration serves (argon2id: new
    // passwords up to 1024 characters).
    let app = spawn_app_with(Backend::Sqlite, |vars| {
        vars.remove("PASSWORD_HASH");
    })
    .await;
    let served: Value = app.get("/openapi.json", None).await.json().await.unwrap();
    assert_eq!(doc, served);
    let password = &doc["components"]["schemas"]["RegisterRequest"]["properties"]["password"];
    assert_eq!(password["maxLength"], 1024, "{password}");
    // Under PASSWORD_HASH=bcrypt (the suite's setting) the served document says 72.
    let bcrypt_app = spawn_app(Backend::Sqlite).await;
    let served: Value = bcrypt_app
        .get("/openapi.json", None)
        .await
        .json()
        .await
        .unwrap();
    for (schema, field) in [
        ("RegisterRequest", "password"),
        ("ResetPasswordRequest", "new_password"),
        ("ChangePasswordRequest", "new_password"),
    ] {
        let property = &served["components"]["schemas"][schema]["properties"][field];
        assert_eq!(property["maxLength"], 72, "{schema}.{field}: {property}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_requires_a_long_secret_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(dir.path());
    env.insert("ENVIRONMENT".into(), "production".into());
    env.insert("BCRYPT_COST".into(), "12".into());

    // A good key: production starts (proves the failures below are about the key).
    env.insert(
        "SECRET_KEY".into(),
        "a-production-secret-key-of-more-than-32-bytes".into(),
    );
    let out = run_cli(&["migrate", "status"], &env, dir.path(), None).await;
    assert!(out.status.success(), "{out}");

    // (`openapi` needs no configuration at all: see cli_safety.)
    for (case, key) in [("missing", None), ("short", Some("short-key-1234567"))] {
        match key {
            Some(k) => env.insert("SECRET_KEY".into(), k.into()),
            None => env.remove("SECRET_KEY"),
        };
        for args in [&[][..], &["migrate", "status"][..]] {
            let out = run_cli(args, &env, dir.path(), None).await;
            assert!(!out.status.success(), "{case} key, {args:?}: {out}");
            assert!(
                out.stderr.contains("SECRET_KEY"),
                "{case} key, {args:?}: the message names SECRET_KEY: {out}"
            );
            if let Some(k) = key {
                assert!(
                    !out.stderr.contains(k) && !out.stdout.contains(k),
                    "the key is not printed: {out}"
                );
            }
        }
    }
    // No key was generated behind the operator's back.
    assert!(!dir.path().join("secret_key").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn development_generates_and_keeps_a_secret_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(dir.path());
    env.remove("SECRET_KEY");
    let out = run_cli(&["migrate", "status"], &env, dir.path(), None).await;
    assert!(out.status.success(), "{out}");
    let key = std::fs::read_to_string(dir.path().join("secret_key"))
        .expect("the generated key is persisted under DATA_DIR");
    assert!(key.trim().len() >= 32, "key of {} bytes", key.trim().len());
    assert!(
        !out.stdout.contains(key.trim()) && !out.stderr.contains(key.trim()),
        "the generated key is not printed"
    );
    let out = run_cli(&["migrate", "status"], &env, dir.path(), None).await;
    assert!(out.status.success(), "{out}");
    let again = std::fs::read_to_string(dir.path().join("secret_key")).unwrap();
    assert_eq!(key, again, "the key survives restarts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_env_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("from-dot-env.db");
    std::fs::write(
        dir.path().join(".env"),
        format!(
            "DATABASE_URL=sqlite://{}\nSECRET_KEY=dot-env-secret-key-long-enough-0123456789\n",
            db_path.display()
        ),
    )
    .unwrap();
    let mut env = base_env(dir.path());
    env.remove("DATABASE_URL");
    env.remove("SECRET_KEY");
    let out = run_cli(&["migrate", "up"], &env, dir.path(), None).await;
    assert!(out.status.success(), "{out}");
    assert!(db_path.exists(), "DATABASE_URL came from .env");
    assert!(
        !dir.path().join("secret_key").exists(),
        "SECRET_KEY came from .env"
    );
    // The process environment wins over .env.
    let other = dir.path().join("from-env.db");
    env.insert(
        "DATABASE_URL".into(),
        format!("sqlite://{}", other.display()),
    );
    let out = run_cli(&["migrate", "up"], &env, dir.path(), None).await;
    assert!(out.status.success(), "{out}");
    assert!(other.exists());
}

async fn serves_health(args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_with_args(args, &base_env(dir.path()), dir.path()).await;
    let r = reqwest::get(server.url("/health")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    // Migrations ran at start: registration works on the fresh database.
    let r = reqwest::Client::new()
        .post(server.url("/auth/register"))
        .json(&serde_json::json!({"username": "first", "email": "first@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let (stdout, stderr) = server.stop();
    assert!(
        !stdout.contains(PASSWORD) && !stderr.contains(PASSWORD),
        "no password in the output"
    );
    assert!(dir.path().join("auth.db").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_subcommand_serves() {
    serves_health(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_subcommand_serves() {
    serves_health(&["serve"]).await;
}
