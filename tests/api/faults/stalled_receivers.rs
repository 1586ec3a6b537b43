//! Outside receivers that accept a connection and never answer (DESIGN §17): requests
//! stay fast or fail within a bound, and once the receiver answers again what was owed
//! is delivered, once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

use crate::billing::support::{billing_app, create_plan};
use crate::helpers::*;
use crate::smtp::SmtpServer;

/// Accepts connections and holds them open without a byte; dropped, it closes them all.
struct Stall {
    port: u16,
    task: tokio::task::JoinHandle<()>,
    held: Arc<Mutex<Vec<TcpStream>>>,
}

impl Stall {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = Arc::new(Mutex::new(Vec::new()));
        let keep = held.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                keep.lock().unwrap().push(socket);
            }
        });
        Self { port, task, held }
    }

    fn connections(&self) -> usize {
        self.held.lock().unwrap().len()
    }
}

impl Drop for Stall {
    fn drop(&mut self) {
        self.task.abort();
        self.held.lock().unwrap().clear();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_that_never_answers_delays_no_request_and_the_mail_goes_once_it_returns() {
    let stall = Stall::start().await;
    let port = stall.port;
    let app = spawn_app_with(Backend::Sqlite, |vars| {
        vars.insert("MAIL_PORT".into(), port.to_string());
    })
    .await;
    let started = Instant::now();
    let r = app
        .register_raw("patient", "patient@example.com", "password123")
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "registering waited {:?} on SMTP",
        started.elapsed()
    );
    // The worker is stuck on the silent server meanwhile; requests still answer at once.
    for _ in 0..20 {
        if stall.connections() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stall.connections() > 0, "the worker never tried to send");
    let started = Instant::now();
    assert_eq!(app.get("/health", None).await.status(), StatusCode::OK);
    assert!(started.elapsed() < Duration::from_secs(1));

    // The server comes back on the same port: the mail is delivered, once.
    drop(stall);
    let smtp = SmtpServer::start_on(port).await;
    smtp.wait_for("patient@example.com", "", Duration::from_secs(20))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(smtp.messages_to("patient@example.com").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_that_never_answers_is_a_bounded_502() {
    let stall = Stall::start().await;
    let app = billing_app(Backend::Sqlite, &format!("http://127.0.0.1:{}", stall.port)).await;
    let admin = app.admin("boss").await;
    create_plan(&app, &admin, "starter", "one_time", "price_starter").await;
    let user = app.verified_user("waiting").await;
    let started = Instant::now();
    let r = app
        .post(
            "/billing/checkout",
            &json!({"plan_id": "starter"}),
            Some(&user.access),
        )
        .await;
    let waited = started.elapsed();
    // billing_app sets STRIPE_TIMEOUT_SECONDS=10: the bound, plus a little.
    assert!(waited < Duration::from_secs(12), "waited {waited:?}");
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert!(stall.connections() > 0);
    // No credit or purchase was recorded for the unanswered call.
    let balance = ok_json(app.get("/credits/balance", Some(&user.access)).await).await;
    assert_eq!(balance["balance"], json!(0.0), "{balance}");
}
