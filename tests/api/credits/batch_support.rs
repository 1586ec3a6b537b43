//! What the group-commit tests share: lining requests up in one batch, and checking that
//! a ledger is an unbroken chain that ends at the balance (the crash test uses it too).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::{Connection, Executor};

use crate::helpers::*;

pub const KEY: &str = "internal-key-one";

/// A connection of the test's own that blocks every write to the balances while held.
pub enum WriteBlock {
    Postgres(sqlx::PgConnection),
    Sqlite(sqlx::SqliteConnection),
}

impl WriteBlock {
    pub async fn hold(app: &TestApp) -> Self {
        match app.backend {
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
                c.execute("BEGIN").await.unwrap();
                // Conflicts with every writer's lock, not with readers'.
                c.execute("LOCK TABLE credit_balances IN EXCLUSIVE MODE")
                    .await
                    .unwrap();
                Self::Postgres(c)
            }
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
                // The write lock: the service's writer waits (busy timeout) until COMMIT.
                c.execute("BEGIN IMMEDIATE").await.unwrap();
                Self::Sqlite(c)
            }
        }
    }

    pub async fn release(self) {
        match self {
            Self::Postgres(mut c) => {
                c.execute("COMMIT").await.unwrap();
            }
            Self::Sqlite(mut c) => {
                c.execute("COMMIT").await.unwrap();
            }
        }
    }
}

/// Waits until the account's queue is in the given state (`None`: no commit in flight).
pub async fn wait_for_queue(app: &TestApp, user_id: i64, expected: Option<usize>) {
    for _ in 0..1000 {
        if app.state.credit_batches.waiting(user_id) == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "queue of user {user_id}: expected {expected:?}, have {:?}",
        app.state.credit_batches.waiting(user_id)
    );
}

/// One answered change: status, body, whether it was a replay.
pub type Answered = (StatusCode, Value, bool);

/// Sends a credit change as an internal service, in a task of its own.
pub fn send(app: &TestApp, path: &str, body: Value) -> tokio::task::JoinHandle<Answered> {
    let request = app
        .client
        .post(app.url(path))
        .header("X-API-Key", KEY)
        .json(&body);
    tokio::spawn(async move {
        let r = request.send().await.unwrap();
        let status = r.status();
        let replayed = r
            .headers()
            .get("idempotent-replayed")
            .is_some_and(|v| v == "true");
        (status, r.json().await.unwrap(), replayed)
    })
}

/// Holds writes, starts `first` (it waits on the lock, alone), then sends `queued` one
/// after the other, each only once the one before is in the queue (so the arrival order is
/// known), and lets go. Returns the answers: first, then the queued in order.
pub async fn in_one_batch(
    app: &TestApp,
    user_id: i64,
    first: (&str, Value),
    queued: Vec<(&str, Value)>,
) -> (Answered, Vec<Answered>) {
    let block = WriteBlock::hold(app).await;
    let first = send(app, first.0, first.1);
    wait_for_queue(app, user_id, Some(0)).await;
    let mut pending = Vec::new();
    for (i, (path, body)) in queued.into_iter().enumerate() {
        pending.push(send(app, path, body));
        wait_for_queue(app, user_id, Some(i + 1)).await;
    }
    block.release().await;
    let first = first.await.unwrap();
    let mut answers = Vec::new();
    for p in pending {
        answers.push(p.await.unwrap());
    }
    (first, answers)
}

pub async fn grant(app: &TestApp, user_id: i64, amount: &str) {
    let (status, body, _) = send(
        app,
        "/credits/add",
        json!({"user_id": user_id, "amount": amount}),
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
}

pub async fn balance_cents(app: &TestApp, user_id: i64) -> i64 {
    let body: Value = app
        .client
        .get(app.url(&format!("/credits/balance?user_id={user_id}")))
        .header("X-API-Key", KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    cents(&body["balance"])
}

pub fn cents(amount: &Value) -> i64 {
    (amount.as_f64().expect("an amount") * 100.0).round() as i64
}

/// Every ledger row of the user, oldest first, read over HTTP at `base`.
pub async fn ledger_rows(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    user_id: i64,
) -> Vec<Value> {
    let mut rows = Vec::new();
    loop {
        let page: Value = client
            .get(format!(
                "{base}/credits/transactions?skip={}&limit=100&user_id={user_id}",
                rows.len()
            ))
            .header("X-API-Key", key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let batch = page["transactions"].as_array().unwrap().clone();
        if batch.is_empty() {
            break;
        }
        rows.extend(batch);
    }
    rows.sort_by_key(|t| t["id"].as_i64().unwrap());
    rows
}

/// Checks that each row's balance_after is the previous one's plus or minus its amount
/// (the first starts from zero); returns the last balance_after (0 without rows).
pub fn assert_unbroken_chain(rows: &[Value]) -> i64 {
    let mut balance = 0;
    for row in rows {
        let amount = cents(&row["amount"]);
        balance += match row["transaction_type"].as_str().unwrap() {
            "credit_used" | "refund" => -amount,
            _ => amount,
        };
        assert_eq!(cents(&row["new_balance"]), balance, "chain broken at {row}");
    }
    balance
}

/// The ledger is a chain that ends at the balance; returns the number of rows.
pub async fn assert_ledger_exact(app: &TestApp, user_id: i64) -> usize {
    let rows = ledger_rows(&app.client, &app.address, KEY, user_id).await;
    let end = assert_unbroken_chain(&rows);
    assert_eq!(
        end,
        balance_cents(app, user_id).await,
        "ledger ends at the balance"
    );
    assert!(app
        .state
        .store
        .ledger_mismatches()
        .await
        .unwrap()
        .is_empty());
    rows.len()
}

pub fn use_of(user_id: i64, amount: &str) -> (&'static str, Value) {
    (
        "/credits/use",
        json!({"user_id": user_id, "amount": amount}),
    )
}
