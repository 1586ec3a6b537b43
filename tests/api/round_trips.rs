//! DESIGN §8: every authenticated read is ONE statement: the session check joined with the
//! data it serves. PostgreSQL only: the service reaches it through a proxy in this test
//! that reads the wire protocol the service sends (no TLS: `sslmode=disable`) and records
//! every statement executed (extended-protocol Execute, or simple Query) and every Sync.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::*;

const KEY: &str = "internal-key-one";

/// What the service sent to PostgreSQL.
#[derive(Default)]
struct Traffic {
    /// The SQL of every statement executed, in order.
    statements: Vec<String>,
    /// Sync messages: each ends one request-response exchange (a round trip).
    syncs: usize,
    /// Parse messages: a statement prepared on a connection that had not used it yet.
    parses: usize,
}

/// A TCP proxy in front of PostgreSQL that records the frontend's messages.
struct WireRecorder {
    port: u16,
    traffic: Arc<Mutex<Traffic>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WireRecorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WireRecorder {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let traffic = Arc::new(Mutex::new(Traffic::default()));
        let recorded = traffic.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&target).await else {
                    continue;
                };
                let recorded = recorded.clone();
                tokio::spawn(relay(client, server, recorded));
            }
        });
        Self {
            port,
            traffic,
            task,
        }
    }

    fn take(&self) -> Traffic {
        std::mem::take(&mut *self.traffic.lock().unwrap())
    }
}

async fn relay(client: TcpStream, server: TcpStream, traffic: Arc<Mutex<Traffic>>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let answers = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    });
    let mut parser = FrontendParser::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match client_read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        parser.feed(&buf[..n], &traffic);
        if server_write.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    answers.abort();
}

/// Splits the frontend stream into messages: the first (startup) has no type byte; then
/// each is a type byte and a length that counts itself.
#[derive(Default)]
struct FrontendParser {
    pending: Vec<u8>,
    started: bool,
    /// Prepared statement name → SQL, and the portal bound last → its SQL.
    prepared: HashMap<String, String>,
    portals: HashMap<String, String>,
}

fn cstring(bytes: &[u8]) -> (String, &[u8]) {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    let text = String::from_utf8_lossy(&bytes[..end]).into_owned();
    (text, bytes.get(end + 1..).unwrap_or_default())
}

impl FrontendParser {
    fn feed(&mut self, data: &[u8], traffic: &Mutex<Traffic>) {
        self.pending.extend_from_slice(data);
        loop {
            if !self.started {
                if self.pending.len() < 8 {
                    return;
                }
                let len = u32::from_be_bytes(self.pending[..4].try_into().unwrap()) as usize;
                if self.pending.len() < len {
                    return;
                }
                let code = u32::from_be_bytes(self.pending[4..8].try_into().unwrap());
                // SSLRequest / GSSENCRequest come before the real startup message.
                self.started = code != 80877103 && code != 80877104;
                self.pending.drain(..len);
                continue;
            }
            if self.pending.len() < 5 {
                return;
            }
            let kind = self.pending[0];
            let len = u32::from_be_bytes(self.pending[1..5].try_into().unwrap()) as usize;
            if self.pending.len() < 1 + len {
                return;
            }
            let body: Vec<u8> = self.pending[5..1 + len].to_vec();
            self.pending.drain(..1 + len);
            self.message(kind, &body, traffic);
        }
    }

    fn message(&mut self, kind: u8, body: &[u8], traffic: &Mutex<Traffic>) {
        match kind {
            b'P' => {
                let (name, rest) = cstring(body);
                let (sql, _) = cstring(rest);
                self.prepared.insert(name, sql);
                traffic.lock().unwrap().parses += 1;
            }
            b'B' => {
                let (portal, rest) = cstring(body);
                let (statement, _) = cstring(rest);
                let sql = self.prepared.get(&statement).cloned().unwrap_or_default();
                self.portals.insert(portal, sql);
            }
            b'E' => {
                let (portal, _) = cstring(body);
                let sql = self.portals.get(&portal).cloned().unwrap_or_default();
                traffic.lock().unwrap().statements.push(sql);
            }
            b'Q' => {
                let (sql, _) = cstring(body);
                traffic.lock().unwrap().statements.push(sql);
            }
            b'S' => traffic.lock().unwrap().syncs += 1,
            _ => {}
        }
    }
}

/// host:port of the PostgreSQL server the tests use.
fn server_address() -> String {
    let url = test_database_server();
    let rest = url.split("://").nth(1).unwrap_or(&url);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let host = rest.split(['/', '?']).next().unwrap_or(rest);
    if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    }
}

/// The statements one request made, leaving out the background work that runs meanwhile
/// (the mail outbox worker and the metrics sampler poll `mail_outbox`).
fn statements_of(traffic: &Traffic) -> Vec<&str> {
    traffic
        .statements
        .iter()
        .map(String::as_str)
        .filter(|sql| !is_background(sql))
        .collect()
}

/// Statements of the background jobs (mail outbox, webhook deliveries, hold expiry,
/// signing-key refresh), which run on their own schedule, not for a request.
fn is_background(sql: &str) -> bool {
    [
        "mail_outbox",
        "webhook_deliveries",
        "UPDATE credit_holds",
        "signing_keys",
    ]
    .iter()
    .any(|table| sql.contains(table))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_authenticated_read_is_one_statement() {
    if !Backend::Postgres.available().await {
        return;
    }
    let recorder = WireRecorder::start(server_address()).await;
    let proxy = format!("127.0.0.1:{}", recorder.port);
    let app = spawn_app_with(Backend::Postgres, |vars| {
        let direct = vars["DATABASE_URL"].clone();
        let name = direct.rsplit('/').next().unwrap().to_owned();
        vars.insert(
            "DATABASE_URL".into(),
            format!("postgres://postgres@{proxy}/{name}?sslmode=disable"),
        );
    })
    .await;
    let alice = app.register("alice").await;
    let admin = app.admin("root").await;
    let add = app
        .client
        .post(app.url("/credits/add"))
        .header("X-API-Key", KEY)
        .json(&json!({"amount": 5, "user_id": alice.id}))
        .send()
        .await
        .unwrap();
    assert_eq!(add.status(), StatusCode::OK);

    let reads: Vec<(&str, String, Option<&str>, bool)> = vec![
        ("own profile", "/auth/me".into(), Some(&alice.access), false),
        (
            "another user's profile (admin)",
            format!("/auth/me?user_id={}", alice.id),
            Some(&admin.access),
            false,
        ),
        (
            "own balance",
            "/credits/balance".into(),
            Some(&alice.access),
            false,
        ),
        (
            "a balance with no balance row",
            "/credits/balance".into(),
            Some(&admin.access),
            false,
        ),
        (
            "another user's balance (admin)",
            format!("/credits/balance?user_id={}", alice.id),
            Some(&admin.access),
            false,
        ),
        (
            "a balance (internal service)",
            format!("/credits/balance?user_id={}", alice.id),
            None,
            true,
        ),
        (
            "own transactions",
            "/credits/transactions?limit=10".into(),
            Some(&alice.access),
            false,
        ),
        (
            "transactions (internal service)",
            format!("/credits/transactions?user_id={}", alice.id),
            None,
            true,
        ),
        (
            "own sessions",
            "/auth/sessions".into(),
            Some(&alice.access),
            false,
        ),
    ];
    let get = |path: &str, token: Option<&str>, internal: bool| {
        let mut request = app.client.get(app.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if internal {
            request = request.header("X-API-Key", KEY);
        }
        request.send()
    };
    // Every statement prepared on every pooled connection first (sqlx's first use of a
    // statement on a connection prepares it: one more exchange, still one Execute).
    for _ in 0..3 {
        for (what, path, token, internal) in &reads {
            let r = get(path, *token, *internal).await.unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{what}");
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    for (what, path, token, internal) in &reads {
        recorder.take();
        let r = get(path, *token, *internal).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{what}");
        let _: Value = r.json().await.unwrap();
        // Statements sent after the answer (none expected) are counted with this request.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let traffic = recorder.take();
        let statements = statements_of(&traffic);
        assert_eq!(
            statements.len(),
            1,
            "{what}: one statement, got {statements:#?}"
        );
    }

    // Round trips: in steady use a connection is not pinged before a statement (sqlx's
    // default), only checked when it comes back to the pool. A burst of reads, after one
    // that leaves every pooled connection recently used (a connection idle for over a
    // second is pinged first, by design), costs at most two exchanges per statement (its
    // own and the check on release), plus one per statement prepared on a new connection.
    let burst = || async {
        for (what, path, token, internal) in &reads {
            let r = get(path, *token, *internal).await.unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{what}");
        }
    };
    burst().await;
    recorder.take();
    burst().await;
    burst().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let traffic = recorder.take();
    assert!(statements_of(&traffic).len() == 2 * reads.len());
    let allowed = 2 * traffic.statements.len() + traffic.parses + 2;
    assert!(
        traffic.syncs <= allowed,
        "{} exchanges for {} statements ({} prepares): a ping before each statement?",
        traffic.syncs,
        traffic.statements.len(),
        traffic.parses
    );

    // A refresh: one statement finds the session and its user, one rotates the token.
    recorder.take();
    let r = app
        .post(
            "/auth/refresh",
            &json!({"refresh_token": alice.refresh}),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let traffic = recorder.take();
    let statements = statements_of(&traffic);
    assert_eq!(statements.len(), 2, "read and rotation: {statements:#?}");
    assert!(
        statements[0].starts_with("SELECT") && statements[0].contains("JOIN users"),
        "the session with its user: {}",
        statements[0]
    );
    assert!(
        statements[1].starts_with("WITH rotated"),
        "{}",
        statements[1]
    );
}
