//! Issue 19 item 0: a client that goes away mid-request never leaves a transaction open.
//!
//! Registrations, spends on one hot account (group-committed), credit grants and billing
//! webhook events are sent over raw TCP and the connection is dropped at a random point:
//! part-way through the body, or a random few hundred microseconds to a few milliseconds
//! after the whole request went out (hyper then drops the request's future). Afterwards no
//! backend of the test database may sit `idle in transaction`, the hot account still
//! answers a spend and a balance read promptly, and every ledger sums to its balance.

use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::StatusCode;
use serde_json::json;
use sqlx::{Connection, PgConnection};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::billing::support::*;
use crate::both_backends;
use crate::helpers::{ok_json, test_database_server, Backend, TestApp};

const ROUNDS: usize = 24;
const PER_ROUND: usize = 16;

/// One request as bytes on the wire.
fn raw_request(path: &str, headers: &[(&str, String)], body: &str) -> Vec<u8> {
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

/// Sends `bytes` and hangs up at a random point: mid-body now and then, mostly a random
/// short while after the request is complete (while the handler runs).
async fn send_and_abandon(port: u16, bytes: Vec<u8>) {
    let (cut, wait) = {
        let mut rng = rand::thread_rng();
        let cut = if rng.gen_bool(0.1) {
            rng.gen_range(1..bytes.len())
        } else {
            bytes.len()
        };
        (cut, Duration::from_micros(rng.gen_range(0..6_000)))
    };
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
        return;
    };
    let _ = stream.write_all(&bytes[..cut]).await;
    tokio::time::sleep(wait).await;
    // Reset rather than close politely: the server sees the peer gone at once.
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// Backends of the test database that sit inside a transaction doing nothing.
async fn idle_in_transaction(app: &TestApp) -> Vec<String> {
    let database = app.db.url.rsplit('/').next().unwrap_or_default().to_owned();
    let mut conn = PgConnection::connect(&test_database_server())
        .await
        .unwrap();
    sqlx::query_scalar(
        "SELECT COALESCE(query, '') FROM pg_stat_activity \
         WHERE datname = $1 AND state LIKE 'idle in transaction%'",
    )
    .bind(database)
    .fetch_all(&mut conn)
    .await
    .unwrap()
}

async fn cancelled_requests_leave_no_open_transaction(backend: Backend) {
    let stripe = FakeStripe::start(None).await;
    let app = billing_app(backend, &stripe.base).await;
    let admin = app.admin("boss").await;
    create_plan(&app, &admin, "starter", "one_time", "price_starter").await;
    let hot = app.register("hot").await;
    let r = app
        .post(
            "/credits/add",
            &json!({"amount": 1_000_000, "user_id": hot.id}),
            Some(&admin.access),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    let t = unix_now();
    for round in 0..ROUNDS {
        let mut sends = Vec::new();
        for i in 0..PER_ROUND {
            let n = round * PER_ROUND + i;
            let bytes = match n % 4 {
                0 => {
                    let body = json!({"username": format!("gone{n}"),
                        "email": format!("gone{n}@example.com"), "password": "correct horse battery"})
                    .to_string();
                    raw_request("/auth/register", &[], &body)
                }
                1 | 2 => {
                    let body =
                        json!({"amount": 1, "reference_id": format!("spend-{n}")}).to_string();
                    raw_request(
                        "/credits/use",
                        &[("authorization", format!("Bearer {}", hot.access))],
                        &body,
                    )
                }
                _ => {
                    let paid = paid_session(
                        &format!("cs_gone_{n}"),
                        hot.id,
                        "starter",
                        "cus_hot",
                        &format!("pi_gone_{n}"),
                    );
                    let body = if n % 8 == 3 {
                        event(
                            &format!("evt_paid_{n}"),
                            "checkout.session.completed",
                            t,
                            paid,
                        )
                    } else {
                        let charge = refunded_charge(
                            &format!("ch_gone_{n}"),
                            &format!("pi_gone_{}", n - 4),
                            1000,
                            500,
                        );
                        event(&format!("evt_refund_{n}"), "charge.refunded", t, charge)
                    }
                    .to_string();
                    let sig = signature(WEBHOOK_SECRET, unix_now(), &body);
                    raw_request("/webhooks/stripe", &[("stripe-signature", sig)], &body)
                }
            };
            sends.push(tokio::spawn(send_and_abandon(app.port, bytes)));
        }
        for send in sends {
            let _ = send.await;
        }
    }

    // Whatever the abandoned requests were doing has had time to finish.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    if backend == Backend::Postgres {
        let stuck = idle_in_transaction(&app).await;
        assert!(
            stuck.is_empty(),
            "connections left idle in transaction: {stuck:?}"
        );
    }

    // The hot account still serves, promptly.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let started = Instant::now();
    let spend = client
        .post(app.url("/credits/use"))
        .bearer_auth(&hot.access)
        .json(&json!({"amount": 1}))
        .send()
        .await
        .expect("a spend after the cancellations answers");
    let spent = ok_json(spend).await;
    let balance = client
        .get(app.url("/credits/balance"))
        .bearer_auth(&hot.access)
        .send()
        .await
        .expect("a balance read answers");
    let balance = ok_json(balance).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "spend and read took {:?}",
        started.elapsed()
    );
    assert_eq!(
        spent["new_balance"], balance["balance"],
        "the spend is visible to the next read"
    );
    assert_ledger_consistent(&app).await;
    if backend == Backend::Postgres {
        assert!(idle_in_transaction(&app).await.is_empty());
    }
}

both_backends!(cancelled_requests_leave_no_open_transaction);
