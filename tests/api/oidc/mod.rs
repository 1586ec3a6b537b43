//! Sign in with OpenID Connect providers (DESIGN §10), against oauth2-mock-server (a real
//! provider from npm, started per test) and, for tokens it cannot make (another key,
//! `alg: none`, ES256), a provider the test controls (`controlled.rs`).

mod attacks;
mod controlled;
mod flows;
mod rules;

use std::collections::HashMap;
use std::process::Stdio;

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};

use crate::helpers::{outside_tool, tools_dir, TestApp};

pub const CLIENT_ID: &str = "auth-service-test";
pub const CLIENT_SECRET: &str = "test-client-secret";

/// Adds provider `name` with `issuer` to a test configuration.
pub fn add_provider(vars: &mut HashMap<String, String>, name: &str, issuer: &str) {
    let list = vars.entry("OIDC_PROVIDERS".into()).or_default();
    if !list.is_empty() {
        list.push(',');
    }
    list.push_str(name);
    let prefix = format!("OIDC_{}_", name.to_ascii_uppercase());
    for (key, value) in [
        ("ISSUER", issuer.to_owned()),
        ("CLIENT_ID", CLIENT_ID.to_owned()),
        ("CLIENT_SECRET", CLIENT_SECRET.to_owned()),
        ("DISPLAY_NAME", format!("{name} IdP")),
    ] {
        vars.insert(format!("{prefix}{key}"), value);
    }
}

/// oauth2-mock-server in a child process; it exits with the test (killed on drop, and it
/// also exits when its stdin closes, should the test die without dropping it).
pub struct MockProvider {
    pub issuer: String,
    child: std::process::Child,
    client: reqwest::Client,
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl MockProvider {
    /// `None` (the test skips) when the tool is not installed, unless REQUIRE_SERVICES=1.
    pub async fn start() -> Option<Self> {
        let module = outside_tool(
            tools_dir().join("oidc-provider/node_modules/oauth2-mock-server"),
            "bash .ci/setup.d/40-oidc-provider.sh",
        )?;
        let launcher = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/support/oidc-provider.mjs");
        let mut child = std::process::Command::new("node")
            .arg(launcher)
            .arg(module)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start node (is Node.js installed?)");
        let stdout = child.stdout.take().expect("stdout");
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        });
        let line = tokio::time::timeout(std::time::Duration::from_secs(30), line)
            .await
            .expect("the provider starts within 30 s")
            .unwrap()
            .expect("read the provider's port");
        let started: Value = serde_json::from_str(&line).expect("the launcher prints its port");
        let port = started["port"].as_u64().expect("port");
        Some(Self {
            issuer: format!("http://127.0.0.1:{port}"),
            child,
            client: reqwest::Client::new(),
        })
    }

    /// Claims merged into every token signed from now on (replacing earlier ones).
    pub async fn set_claims(&self, claims: Value) {
        let r = self
            .client
            .post(format!("{}/__control/claims", self.issuer))
            .json(&claims)
            .send()
            .await
            .expect("control request");
        assert!(r.status().is_success(), "control: {}", r.status());
    }

    /// A user of this provider: subject and verified email.
    pub async fn sign_in_as(&self, sub: &str, email: &str) {
        self.set_claims(json!({"sub": sub, "email": email, "email_verified": true}))
            .await;
    }
}

/// POST /auth/oauth/{provider}/authorize; returns (authorization_url, state).
pub async fn authorize(
    app: &TestApp,
    provider: &str,
    body: Value,
    token: Option<&str>,
) -> (String, String) {
    let r = app
        .post(&format!("/auth/oauth/{provider}/authorize"), &body, token)
        .await;
    assert_eq!(
        r.headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap()),
        Some("no-store")
    );
    let body = crate::helpers::ok_json(r).await;
    (
        body["authorization_url"].as_str().unwrap().to_owned(),
        body["state"].as_str().unwrap().to_owned(),
    )
}

/// Walks the provider's authorization endpoint as a browser would (no redirects followed)
/// and returns the code from the redirect back to us, after checking the state came back.
pub async fn browser_code(authorization_url: &str, state: &str) -> String {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = browser
        .get(authorization_url)
        .send()
        .await
        .expect("authorize");
    assert_eq!(r.status(), StatusCode::FOUND, "the provider redirects back");
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let url = reqwest::Url::parse(&location).unwrap();
    let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(query.get("state").map(String::as_str), Some(state));
    query.get("code").expect("code in the redirect").clone()
}

pub async fn callback(
    app: &TestApp,
    provider: &str,
    code: &str,
    state: &str,
    token: Option<&str>,
) -> Response {
    app.post(
        &format!("/auth/oauth/{provider}/callback"),
        &json!({"code": code, "state": state}),
        token,
    )
    .await
}

/// A whole login through the provider: authorize, the browser's round trip, callback.
pub async fn login_via(app: &TestApp, provider: &str) -> Response {
    let (url, state) = authorize(app, provider, json!({}), None).await;
    let code = browser_code(&url, &state).await;
    callback(app, provider, &code, &state, None).await
}

/// Runs SQL on the app's database (both backends accept it).
pub async fn exec_sql(app: &TestApp, sql: &str) {
    use sqlx::Connection;
    match app.backend {
        crate::helpers::Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
            sqlx::query(sql).execute(&mut conn).await.unwrap();
        }
        crate::helpers::Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
            sqlx::query(sql).execute(&mut conn).await.unwrap();
        }
    }
}

/// Events of the user's activity, newest first.
pub async fn events(app: &TestApp, access: &str) -> Vec<Value> {
    let page =
        crate::helpers::ok_json(app.get("/auth/activity?limit=100", Some(access)).await).await;
    page["activities"]
        .as_array()
        .or_else(|| page["items"].as_array())
        .cloned()
        .unwrap_or_default()
}
