//! Starts the real application on port 0 with a fresh database per test, on SQLite or
//! PostgreSQL, with mail going to a real SMTP listener inside the test process.

#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use auth_service::app::App;
use auth_service::config::Config;
use auth_service::state::AppState;
use auth_service::store::{now, NewUser};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection};
use tokio::sync::OnceCell;

use crate::smtp::{ReceivedMail, SmtpServer};

pub const PASSWORD: &str = "correct horse battery";
pub const MAIL_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn test_database_server() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn services_required() -> bool {
    std::env::var("REQUIRE_SERVICES").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Where `.ci/setup.d/*.sh` install the outside tools the tests use (localstripe, the
/// OpenID Connect provider, ...): `AUTH_TOOLS_DIR`, else `.tools/` in the repository.
pub fn tools_dir() -> std::path::PathBuf {
    std::env::var_os("AUTH_TOOLS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools"))
}

/// An outside tool at `path` (usually under `tools_dir()`): `Some(path)` when it is there;
/// `None` (the test skips) when it is not, unless REQUIRE_SERVICES=1, where it fails.
pub fn outside_tool(path: std::path::PathBuf, how_to_install: &str) -> Option<std::path::PathBuf> {
    if path.exists() {
        return Some(path);
    }
    assert!(
        !services_required(),
        "REQUIRE_SERVICES=1 but {} is missing ({how_to_install})",
        path.display()
    );
    report_skip(&path.display().to_string(), how_to_install);
    None
}

/// One line per missing tool on the real stderr (the test harness captures `eprintln!`
/// of passing tests, so a skip would otherwise count as a silent pass).
pub fn report_skip(what: &str, how_to_get_it: &str) {
    use std::io::Write;
    static REPORTED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut reported = REPORTED.lock().unwrap_or_else(|e| e.into_inner());
    if reported.iter().any(|r| r == what) {
        return;
    }
    reported.push(what.to_owned());
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: the tests that need {what} ({how_to_get_it}); REQUIRE_SERVICES=1 makes this a failure"
    );
}

impl Backend {
    /// SQLite always; PostgreSQL when its server answers. With REQUIRE_SERVICES=1 a
    /// missing server fails the test instead of skipping it.
    pub async fn available(self) -> bool {
        static POSTGRES: OnceCell<bool> = OnceCell::const_new();
        if self == Backend::Sqlite {
            return true;
        }
        let up = *POSTGRES
            .get_or_init(|| async {
                let attempt = PgConnection::connect(&test_database_server());
                matches!(
                    tokio::time::timeout(Duration::from_secs(5), attempt).await,
                    Ok(Ok(_))
                )
            })
            .await;
        if !up {
            assert!(
                !services_required(),
                "REQUIRE_SERVICES=1 but PostgreSQL at TEST_DATABASE_URL is not reachable"
            );
            report_skip("PostgreSQL", "not reachable at TEST_DATABASE_URL");
        }
        up
    }
}

/// Runs each listed `async fn name(backend: Backend)` as a test per backend:
/// `module::sqlite::name` and `module::postgres::name`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if $crate::helpers::Backend::Postgres.available().await {
                        super::$name($crate::helpers::Backend::Postgres).await;
                    }
                }
            )+
        }
    };
}

/// A throw-away database: a file in a temporary directory, or a new PostgreSQL database
/// dropped when the test ends.
pub struct TestDatabase {
    pub url: String,
    pg_name: Option<String>,
}

impl TestDatabase {
    pub async fn create(backend: Backend, dir: &std::path::Path) -> Self {
        match backend {
            Backend::Sqlite => Self {
                url: format!("sqlite://{}/auth.db", dir.display()),
                pg_name: None,
            },
            Backend::Postgres => {
                let name = format!("authsvc_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = PgConnection::connect(&test_database_server())
                    .await
                    .expect("connect to PostgreSQL");
                conn.execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
                    .await
                    .expect("create test database");
                let server = test_database_server();
                let base = server.split('?').next().unwrap_or(&server);
                let (prefix, _) = base.rsplit_once('/').expect("TEST_DATABASE_URL has a path");
                Self {
                    url: format!("{prefix}/{name}"),
                    pg_name: Some(name),
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        // Drop runs inside the test's runtime; a runtime of its own on another thread
        // can block on the cleanup.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = PgConnection::connect(&test_database_server()).await.ok()?;
                conn.execute(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str())
                    .await
                    .ok()
            })
        })
        .join();
    }
}

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub smtp: SmtpServer,
    pub state: AppState,
    pub backend: Backend,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub db: TestDatabase,
    pub dir: tempfile::TempDir,
    /// The configuration this instance was built from.
    pub vars: HashMap<String, String>,
}

/// The configuration every test starts from: fast hashing, mail to the test's SMTP listener.
pub fn base_vars(db_url: &str, dir: &std::path::Path, smtp_port: u16) -> HashMap<String, String> {
    [
        ("DATABASE_URL", db_url.to_owned()),
        ("DATA_DIR", dir.display().to_string()),
        (
            "SECRET_KEY",
            "test-secret-key-that-is-long-enough-0123456789".into(),
        ),
        ("PORT", "0".into()),
        // Fast hashing where a test is not about hashing (argon2id at 19 MiB is slow in
        // debug builds); tests/api/password_hashing.rs covers the default.
        ("PASSWORD_HASH", "bcrypt".into()),
        ("BCRYPT_COST", "4".into()),
        ("DB_MAX_CONNECTIONS", "8".into()),
        ("MAIL_SERVER", "127.0.0.1".into()),
        ("MAIL_PORT", smtp_port.to_string()),
        ("MAIL_STARTTLS", "false".into()),
        ("MAIL_SSL_TLS", "false".into()),
        ("MAIL_FROM", "auth-service <noreply@example.com>".into()),
        ("MAIL_POLL_INTERVAL_MS", "100".into()),
        ("MAIL_RETRY_BASE_MS", "100".into()),
        ("FRONTEND_URL", "http://frontend.test".into()),
        (
            "INTERNAL_API_KEYS",
            "internal-key-one,internal-key-two".into(),
        ),
        // Tests make many requests from one address; the protection tests set their own limits.
        ("RATE_LIMIT_AUTH_PER_MINUTE", "100000".into()),
        ("RATE_LIMIT_DEFAULT_PER_MINUTE", "100000".into()),
        // Tests of shared counters must not fall back to in-process ones because a loaded
        // machine answered slowly; the Redis stall test sets its own short timeout.
        ("REDIS_TIMEOUT_MS", "1000".into()),
        // Keeps each test's counters apart when it uses the shared Redis.
        (
            "REDIS_KEY_PREFIX",
            format!("authsvc-test:{}:", uuid::Uuid::new_v4().simple()),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The Redis the tests may use: REDIS_URL, else the local default.
pub fn test_redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Whether Redis answers; with REQUIRE_SERVICES=1 a missing Redis fails the test.
pub async fn redis_available() -> bool {
    static REDIS: OnceCell<bool> = OnceCell::const_new();
    let up = *REDIS
        .get_or_init(|| async {
            let Ok(client) = redis::Client::open(test_redis_url()) else {
                return false;
            };
            let ping = async {
                let mut conn = client.get_multiplexed_async_connection().await?;
                redis::cmd("PING").query_async::<String>(&mut conn).await
            };
            matches!(
                tokio::time::timeout(Duration::from_secs(5), ping).await,
                Ok(Ok(_))
            )
        })
        .await;
    if !up {
        assert!(
            !services_required(),
            "REQUIRE_SERVICES=1 but Redis at REDIS_URL is not reachable"
        );
        report_skip("Redis", "not reachable at REDIS_URL");
    }
    up
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(
    backend: Backend,
    customize: impl FnOnce(&mut HashMap<String, String>),
) -> TestApp {
    let smtp = SmtpServer::start().await;
    spawn_app_with_smtp(backend, smtp, customize).await
}

pub async fn spawn_app_with_smtp(
    backend: Backend,
    smtp: SmtpServer,
    customize: impl FnOnce(&mut HashMap<String, String>),
) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = TestDatabase::create(backend, dir.path()).await;
    let mut vars = base_vars(&db.url, dir.path(), smtp.port());
    customize(&mut vars);
    let (address, port, state, shutdown) = start_instance(&vars).await;
    TestApp {
        address,
        port,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        smtp,
        state,
        backend,
        shutdown: Some(shutdown),
        db,
        dir,
        vars,
    }
}

/// Builds and starts one instance from `vars`; the sender stops it.
async fn start_instance(
    vars: &HashMap<String, String>,
) -> (String, u16, AppState, tokio::sync::oneshot::Sender<()>) {
    let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("valid test configuration");
    let app = App::build(config).await.expect("app builds");
    let port = app.port();
    let state = app.state().clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    (format!("http://127.0.0.1:{port}"), port, state, tx)
}

/// Another instance of the service on the same database and configuration (with
/// `customize` applied): what a load balancer would have behind it.
pub struct Instance {
    pub address: String,
    pub state: AppState,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Instance {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A registered user and the tokens registration returned.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub password: String,
    pub access: String,
    pub refresh: String,
}

impl TestApp {
    /// Starts another instance on this app's database and configuration.
    pub async fn another_instance(
        &self,
        customize: impl FnOnce(&mut HashMap<String, String>),
    ) -> Instance {
        let mut vars = self.vars.clone();
        customize(&mut vars);
        let (address, _, state, shutdown) = start_instance(&vars).await;
        Instance {
            address,
            state,
            _shutdown: shutdown,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    pub async fn post(&self, path: &str, body: &Value, token: Option<&str>) -> Response {
        let mut req = self.client.post(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    pub async fn put(&self, path: &str, body: &Value, token: Option<&str>) -> Response {
        let mut req = self.client.put(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Response {
        let mut req = self.client.delete(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    pub async fn register_raw(&self, username: &str, email: &str, password: &str) -> Response {
        self.post(
            "/auth/register",
            &json!({"username": username, "email": email, "password": password}),
            None,
        )
        .await
    }

    /// Registers `username` (email `<username>@example.com`) and returns its tokens.
    pub async fn register(&self, username: &str) -> TestUser {
        let email = format!("{}@example.com", username.to_lowercase());
        let response = self.register_raw(username, &email, PASSWORD).await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "register {username}"
        );
        let body: Value = response.json().await.unwrap();
        let access = body["access_token"].as_str().unwrap().to_owned();
        let me: Value = self
            .get("/auth/me", Some(&access))
            .await
            .json()
            .await
            .unwrap();
        TestUser {
            id: me["id"].as_i64().unwrap(),
            username: username.to_owned(),
            email,
            password: PASSWORD.to_owned(),
            access,
            refresh: body["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    /// Registers a user and verifies their address by following the mailed link.
    pub async fn verified_user(&self, username: &str) -> TestUser {
        let user = self.register(username).await;
        let mail = self.smtp.wait_for(&user.email, "verify", MAIL_WAIT).await;
        let token = mail.token().expect("verification mail has a token");
        let r = self
            .post("/auth/verify-email", &json!({"token": token}), None)
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        user
    }

    /// An admin made the way `create-admin` makes one, then logged in.
    pub async fn admin(&self, username: &str) -> TestUser {
        let email = format!("{username}@example.com");
        let hash = bcrypt::hash(PASSWORD, 4).unwrap();
        let new_user = NewUser {
            username: username.to_owned(),
            username_key: username.to_lowercase(),
            email: email.clone(),
            password_hash: hash,
            is_admin: true,
            is_verified: true,
            created_at: now(),
        };
        let (user, _) = self.state.store.upsert_admin(&new_user).await.unwrap();
        let tokens = self.login(username, PASSWORD).await;
        TestUser {
            id: user.id,
            username: username.to_owned(),
            email,
            password: PASSWORD.to_owned(),
            access: tokens["access_token"].as_str().unwrap().to_owned(),
            refresh: tokens["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    pub async fn login_raw(&self, username: &str, password: &str) -> Response {
        self.client
            .post(self.url("/auth/login"))
            .form(&[("username", username), ("password", password)])
            .send()
            .await
            .unwrap()
    }

    pub async fn login(&self, username: &str, password: &str) -> Value {
        let r = self.login_raw(username, password).await;
        assert_eq!(r.status(), StatusCode::OK, "login {username}");
        r.json().await.unwrap()
    }

    pub async fn wait_for_mail(&self, to: &str, subject: &str) -> ReceivedMail {
        self.smtp.wait_for(to, subject, MAIL_WAIT).await
    }
}

/// Asserts the status and the contract's error shape; returns the body.
pub async fn assert_error(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status, "status");
    assert!(
        response.headers().contains_key("x-request-id"),
        "x-request-id on errors too"
    );
    let body: Value = response.json().await.expect("JSON error body");
    assert_eq!(body["code"], code, "error code in {body}");
    if status != StatusCode::UNPROCESSABLE_ENTITY {
        assert!(body["detail"].is_string(), "detail is a message: {body}");
    } else {
        assert!(body["detail"].is_array(), "422 detail is a list: {body}");
    }
    body
}

/// The `loc` of the first 422 entry, joined with dots ("body.email").
pub fn first_loc(body: &Value) -> String {
    body["detail"][0]["loc"]
        .as_array()
        .map(|parts| {
            parts
                .iter()
                .map(|p| p.as_str().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
                .join(".")
        })
        .unwrap_or_default()
}

/// The JSON body of a response, whatever its status.
pub async fn json_of(response: Response) -> Value {
    response.json().await.expect("JSON body")
}

/// Asserts 200 and returns the JSON body (printing it when the status is wrong).
pub async fn ok_json(response: Response) -> Value {
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "body: {text}");
    serde_json::from_str(&text).expect("JSON body")
}

/// 401 with the contract's shape and `WWW-Authenticate: Bearer`; returns the body.
pub async fn assert_unauthorized(response: Response) -> Value {
    let www = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let www = www.expect("401 carries WWW-Authenticate");
    assert!(
        www.to_ascii_lowercase().starts_with("bearer"),
        "WWW-Authenticate: {www}"
    );
    body
}

/// The status of GET /auth/me with this access token.
pub async fn me_status(app: &TestApp, access: &str) -> StatusCode {
    app.get("/auth/me", Some(access)).await.status()
}

/// The status of POST /auth/refresh with this refresh token.
pub async fn refresh_status(app: &TestApp, refresh: &str) -> StatusCode {
    app.post("/auth/refresh", &json!({"refresh_token": refresh}), None)
        .await
        .status()
}

/// The keys of a JSON object, sorted.
pub fn sorted_keys(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

/// Percent-encodes a query-string value.
pub fn enc(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Runs futures concurrently on this task and collects their outputs in order.
pub async fn join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<_> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut waiting = false;
        for (future, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *output = Some(v),
                    std::task::Poll::Pending => waiting = true,
                }
            }
        }
        if waiting {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|o| o.expect("every future finished"))
        .collect()
}
