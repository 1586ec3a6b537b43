//! A log capture proves no password or token is printed: the real binary runs as a
//! subprocess with LOG_LEVEL=trace, a full session goes through it, and its whole output
//! is searched for every secret that crossed the wire.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::smtp::ReceivedMail;

pub const BINARY: &str = env!("CARGO_BIN_EXE_auth-service");
pub const SECRET_KEY: &str = "logs-test-secret-key-that-is-long-enough-0123456789";

/// The variables every subprocess gets (over a cleared environment): SQLite in `dir`,
/// mail written to `dir/mail`, fast hashing, an ephemeral port.
pub fn base_env(dir: &Path) -> HashMap<String, String> {
    [
        ("PATH", std::env::var("PATH").unwrap_or_default()),
        (
            "DATABASE_URL",
            format!("sqlite://{}/auth.db", dir.display()),
        ),
        ("DATA_DIR", dir.display().to_string()),
        ("SECRET_KEY", SECRET_KEY.to_owned()),
        ("PORT", "0".to_owned()),
        ("PASSWORD_HASH", "bcrypt".to_owned()),
        ("BCRYPT_COST", "4".to_owned()),
        ("FRONTEND_URL", "http://frontend.test".to_owned()),
        ("MAIL_POLL_INTERVAL_MS", "100".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The ANSI colour sequences of the human-readable format, removed so text searches see
/// what a reader sees.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The real binary serving on an ephemeral port, its stdout and stderr drained into
/// buffers by two threads. Killed when dropped.
pub struct ServerProcess {
    child: Option<Child>,
    pub port: u16,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

fn drain(
    stream: impl Read + Send + 'static,
    into: Arc<Mutex<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => into
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&line)),
            }
        }
    })
}

impl ServerProcess {
    /// Starts `auth-service` (no subcommand) with exactly `env`, in `dir`, and waits for
    /// its "listening on http://127.0.0.1:PORT" line.
    pub async fn start(env: &HashMap<String, String>, dir: &Path) -> Self {
        Self::start_with_args(&[], env, dir).await
    }

    pub async fn start_with_args(args: &[&str], env: &HashMap<String, String>, dir: &Path) -> Self {
        Self::start_program(BINARY, args, env, dir).await
    }

    /// Like `start_with_args`, with another program in front (`sh -c '...; exec …'`).
    pub async fn start_program(
        program: &str,
        args: &[&str],
        env: &HashMap<String, String>,
        dir: &Path,
    ) -> Self {
        let mut child = Command::new(program)
            .args(args)
            .env_clear()
            .envs(env)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the auth-service binary");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            drain(child.stdout.take().unwrap(), stdout.clone()),
            drain(child.stderr.take().unwrap(), stderr.clone()),
        ];
        let mut server = Self {
            child: Some(child),
            port: 0,
            stdout,
            stderr,
            readers,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let output = strip_ansi(&server.output());
            let marker = "listening on http://127.0.0.1:";
            if let Some(i) = output.find(marker) {
                let digits: String = output[i + marker.len()..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                if let Ok(port) = digits.parse::<u16>() {
                    if port != 0 {
                        server.port = port;
                        return server;
                    }
                }
            }
            if let Ok(Some(status)) = server.child.as_mut().unwrap().try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "auth-service exited ({status}) before listening:\n{}",
                    server.output()
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "auth-service did not log its address:\n{}",
                server.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The process id, for reading its /proc entries.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Everything printed so far, stdout then stderr.
    pub fn output(&self) -> String {
        format!(
            "{}{}",
            self.stdout.lock().unwrap(),
            self.stderr.lock().unwrap()
        )
    }

    /// Kills the process and returns (stdout, stderr) in full.
    pub fn stop(mut self) -> (String, String) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        let out = self.stdout.lock().unwrap().clone();
        let err = self.stderr.lock().unwrap().clone();
        (out, err)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits for a `.eml` file in `dir/mail` whose subject contains `subject` and returns
/// the token of its link.
async fn mailed_token(dir: &Path, subject: &str) -> String {
    let mail_dir = dir.join("mail");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(entries) = std::fs::read_dir(&mail_dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_none_or(|e| e != "eml") {
                    continue;
                }
                let Ok(raw) = std::fs::read_to_string(&path) else {
                    continue;
                };
                let mail = ReceivedMail {
                    from: String::new(),
                    to: Vec::new(),
                    raw,
                };
                if mail
                    .subject()
                    .to_lowercase()
                    .contains(&subject.to_lowercase())
                {
                    if let Some(token) = mail.token() {
                        return token;
                    }
                }
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no mail with subject containing {subject:?} in {}",
            mail_dir.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Records a secret; for a JWT its signature too (a logger could print parts of it).
fn remember(secrets: &mut Vec<(String, String)>, what: &str, token: &str) {
    secrets.push((what.to_owned(), token.to_owned()));
    if let Some((_, sig)) = token.rsplit_once('.') {
        if sig.len() >= 16 {
            secrets.push((format!("{what} signature"), sig.to_owned()));
        }
    }
}

const DISTINCT_PASSWORD: &str = "Zebra-Quokka-7731-Mango";
const NEW_PASSWORD: &str = "Walrus-Okapi-5519-Papaya";

/// Drives a whole session through the server; returns every secret that crossed the wire.
async fn session(server: &ServerProcess, dir: &Path) -> Vec<(String, String)> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut secrets: Vec<(String, String)> = vec![
        ("password".into(), DISTINCT_PASSWORD.into()),
        ("new password".into(), NEW_PASSWORD.into()),
    ];

    let r = client
        .post(server.url("/auth/register"))
        .json(&json!({"username": "logcheck", "email": "logcheck@example.com", "password": DISTINCT_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let registered: Value = r.json().await.unwrap();
    remember(
        &mut secrets,
        "register access token",
        registered["access_token"].as_str().unwrap(),
    );
    remember(
        &mut secrets,
        "register refresh token",
        registered["refresh_token"].as_str().unwrap(),
    );

    let r = client
        .post(server.url("/auth/login"))
        .form(&[("username", "logcheck"), ("password", DISTINCT_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let tokens: Value = r.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    remember(&mut secrets, "access token", &access);
    remember(&mut secrets, "refresh token", &refresh);

    // A failed login with a password that is not the user's: it must not be printed either.
    let r = client
        .post(server.url("/auth/login"))
        .json(&json!({"username": "logcheck", "password": "Wrong-Guess-Penguin-4242"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    secrets.push(("wrong password".into(), "Wrong-Guess-Penguin-4242".into()));

    let r = client
        .get(server.url("/auth/me"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let r = client
        .post(server.url("/auth/refresh"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let refreshed: Value = r.json().await.unwrap();
    let access = refreshed["access_token"].as_str().unwrap().to_owned();
    remember(&mut secrets, "refreshed access token", &access);
    remember(
        &mut secrets,
        "refreshed refresh token",
        refreshed["refresh_token"].as_str().unwrap(),
    );

    let r = client
        .post(server.url("/auth/password-reset-request"))
        .json(&json!({"email": "logcheck@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // The password as a query parameter: unverified, so refused, but the URL was seen.
    let r = client
        .delete(server.url(&format!(
            "/auth/users/logcheck?password={DISTINCT_PASSWORD}"
        )))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert!(
        matches!(r.status(), StatusCode::FORBIDDEN | StatusCode::OK),
        "{}",
        r.status()
    );

    let verify_token = mailed_token(dir, "verify").await;
    remember(&mut secrets, "verification token", &verify_token);
    let r = client
        .post(server.url("/auth/verify-email"))
        .json(&json!({"token": verify_token}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The clicked-link form carries the token in the query string (used by now: 400).
    let r = client
        .get(server.url(&format!("/auth/verify-email?token={verify_token}")))
        .send()
        .await
        .unwrap();
    assert!(
        matches!(r.status(), StatusCode::OK | StatusCode::BAD_REQUEST),
        "{}",
        r.status()
    );

    let reset_token = mailed_token(dir, "reset").await;
    remember(&mut secrets, "reset token", &reset_token);
    let r = client
        .post(server.url("/auth/reset-password"))
        .json(&json!({"token": reset_token, "new_password": NEW_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // An invalid token is not logged either.
    let r = client
        .get(server.url("/auth/me"))
        .bearer_auth("Forged-Token-Kangaroo-9981")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    secrets.push(("forged token".into(), "Forged-Token-Kangaroo-9981".into()));

    // Settle: the outbox worker and the response logs get their lines out.
    tokio::time::sleep(Duration::from_millis(300)).await;
    secrets
}

fn assert_no_secrets(output: &str, secrets: &[(String, String)]) {
    for (what, secret) in secrets {
        assert!(
            !output.contains(secret.as_str()),
            "the {what} appears in the log output:\n{output}"
        );
    }
    for needle in [
        "Authorization: Bearer",
        "authorization: Bearer",
        "Bearer ey",
    ] {
        assert!(
            !output.contains(needle),
            "{needle:?} appears in the log output:\n{output}"
        );
    }
}

async fn run_session(json_logs: bool) -> (String, String, Vec<(String, String)>) {
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(dir.path());
    env.insert("LOG_LEVEL".into(), "trace".into());
    if json_logs {
        env.insert("JSON_LOGS".into(), "true".into());
    }
    let server = ServerProcess::start(&env, dir.path()).await;
    let secrets = session(&server, dir.path()).await;
    let (stdout, stderr) = server.stop();
    (stdout, stderr, secrets)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_plain_logs() {
    let (stdout, stderr, secrets) = run_session(false).await;
    let output = strip_ansi(&format!("{stdout}{stderr}"));
    assert!(!output.trim().is_empty(), "logging was on");
    // Logging really was on: the requests' paths are there.
    for path in [
        "/auth/register",
        "/auth/login",
        "/auth/me",
        "/auth/refresh",
        "/auth/users/logcheck",
        "/auth/verify-email",
        "/auth/reset-password",
    ] {
        assert!(output.contains(path), "no log line names {path}:\n{output}");
    }
    assert_no_secrets(&output, &secrets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_json_logs_and_every_line_is_json() {
    let (stdout, stderr, secrets) = run_session(true).await;
    assert!(!stdout.trim().is_empty(), "logging was on");
    let mut lines = 0;
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let parsed: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
        assert!(parsed.is_object(), "{line}");
        lines += 1;
    }
    assert!(lines > 5, "only {lines} log lines");
    for path in [
        "/auth/register",
        "/auth/login",
        "/auth/me",
        "/auth/users/logcheck",
    ] {
        assert!(stdout.contains(path), "no log line names {path}:\n{stdout}");
    }
    assert_no_secrets(&format!("{stdout}{stderr}"), &secrets);
}
