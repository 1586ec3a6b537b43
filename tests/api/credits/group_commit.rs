//! Group commit: concurrent changes of one account are committed together, each still
//! decided on its own in arrival order. To put requests in one batch for certain, a test
//! blocks writes to the balances from outside (as another instance mid-commit would),
//! sends a first change (it commits alone and waits on that lock), lines the others up
//! behind it (the service says how many wait), and lets go: they form the next batch.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use sqlx::{Connection, Executor};

use super::batch_support::*;
use crate::both_backends;
use crate::helpers::*;

both_backends!(
    a_batch_decides_each_change_in_arrival_order,
    adds_and_uses_together_stay_exact,
    the_same_reference_in_one_batch_applies_once,
    a_failed_batch_fails_every_request_and_changes_nothing,
    clients_that_leave_do_not_break_their_batch,
    an_unknown_account_is_404_for_every_change_of_a_batch,
);

async fn a_batch_decides_each_change_in_arrival_order(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register("ordered").await;
    grant(&app, user.id, "3.00").await;
    let u = user.id;
    let (first, batch) = in_one_batch(
        &app,
        u,
        use_of(u, "0.01"),
        vec![
            use_of(u, "2.00"),
            use_of(u, "2.00"),
            ("/credits/add", json!({"user_id": u, "amount": "5"})),
            use_of(u, "2.00"),
            (
                "/credits/add",
                json!({"user_id": u, "amount": 1, "reference_id": "r"}),
            ),
            (
                "/credits/add",
                json!({"user_id": u, "amount": 1, "reference_id": "r"}),
            ),
            (
                "/credits/add",
                json!({"user_id": u, "amount": 2, "reference_id": "r"}),
            ),
            // Another type: another idempotency key.
            (
                "/credits/use",
                json!({"user_id": u, "amount": 1, "reference_id": "r"}),
            ),
            use_of(u, "100"),
        ],
    )
    .await;
    assert_eq!(first.0, StatusCode::OK);
    assert_eq!(cents(&first.1["new_balance"]), 299);
    let seen: Vec<(u16, Option<i64>, bool)> = batch
        .iter()
        .map(|(status, body, replayed)| {
            let balance = (status.is_success()).then(|| cents(&body["new_balance"]));
            (status.as_u16(), balance, *replayed)
        })
        .collect();
    assert_eq!(
        seen,
        [
            (200, Some(99), false),
            (400, None, false),
            (200, Some(599), false),
            (200, Some(399), false),
            (200, Some(499), false),
            (200, Some(499), true),
            (409, None, false),
            (200, Some(399), false),
            (400, None, false),
        ]
    );
    assert_eq!(batch[1].1["code"], "insufficient_credits");
    assert_eq!(batch[6].1["code"], "idempotency_conflict");
    assert_eq!(batch[8].1["code"], "insufficient_credits");
    assert_eq!(batch[5].1, batch[4].1, "the replay answers the original");
    // Ledger ids rise in arrival order.
    let ids: Vec<i64> = [
        &first, &batch[0], &batch[2], &batch[3], &batch[4], &batch[7],
    ]
    .iter()
    .map(|a| a.1["id"].as_i64().unwrap())
    .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(balance_cents(&app, u).await, 399);
    assert_eq!(assert_ledger_exact(&app, u).await, 7);
    // One audit row per applied change.
    let (trail, _) = app.state.store.activities(Some(u), 0, 100).await.unwrap();
    let credit_rows: Vec<_> = trail
        .iter()
        .filter(|a| a.event.starts_with("credits_"))
        .collect();
    assert_eq!(credit_rows.len(), 7, "{trail:?}");
    assert_eq!(
        credit_rows
            .iter()
            .filter(|a| a.event == "credits_add")
            .count(),
        3
    );
}

async fn adds_and_uses_together_stay_exact(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register("mixed").await;
    grant(&app, user.id, "5.00").await;
    let requests: Vec<_> = (0..300)
        .map(|i| {
            if i % 3 == 0 {
                send(
                    &app,
                    "/credits/add",
                    json!({"user_id": user.id, "amount": "0.50"}),
                )
            } else {
                send(
                    &app,
                    "/credits/use",
                    json!({"user_id": user.id, "amount": "0.30"}),
                )
            }
        })
        .collect();
    let (mut added, mut used, mut refused) = (0, 0, 0);
    for (i, r) in requests.into_iter().enumerate() {
        let (status, body, _) = r.await.unwrap();
        match (i % 3 == 0, status) {
            (true, StatusCode::OK) => added += 1,
            (false, StatusCode::OK) => used += 1,
            (false, StatusCode::BAD_REQUEST) => {
                assert_eq!(body["code"], "insufficient_credits");
                refused += 1;
            }
            other => panic!("{other:?}: {body}"),
        }
    }
    assert_eq!((added, used + refused), (100, 200));
    assert_eq!(
        balance_cents(&app, user.id).await,
        500 + 50 * added - 30 * used
    );
    assert_eq!(
        assert_ledger_exact(&app, user.id).await,
        1 + 100 + used as usize
    );
}

async fn the_same_reference_in_one_batch_applies_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register("samekey").await;
    grant(&app, user.id, "10").await;
    let u = user.id;
    let job = |amount: &str| {
        (
            "/credits/use",
            json!({"user_id": u, "amount": amount, "reference_id": "job-1"}),
        )
    };
    let mut queued: Vec<_> = (0..20).map(|_| job("0.50")).collect();
    queued.extend((0..5).map(|_| job("0.70")));
    let (first, batch) = in_one_batch(&app, u, use_of(u, "0.01"), queued).await;
    assert_eq!(first.0, StatusCode::OK);
    let original = &batch[0];
    assert_eq!((original.0, original.2), (StatusCode::OK, false));
    for replay in &batch[1..20] {
        assert_eq!((replay.0, replay.2), (StatusCode::OK, true), "{}", replay.1);
        assert_eq!(replay.1, original.1, "the replay answers the original");
    }
    for conflict in &batch[20..] {
        assert_eq!(conflict.0, StatusCode::CONFLICT);
        assert_eq!(conflict.1["code"], "idempotency_conflict");
    }
    assert_eq!(balance_cents(&app, u).await, 1000 - 1 - 50);
    assert_eq!(assert_ledger_exact(&app, u).await, 3);
    // Later, the same key is still a replay (now from the ledger).
    let (status, body, replayed) = send(&app, job("0.50").0, job("0.50").1).await.unwrap();
    assert_eq!((status, replayed), (StatusCode::OK, true));
    assert_eq!(body, original.1);
}

async fn a_failed_batch_fails_every_request_and_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register("doomed").await;
    grant(&app, user.id, "10").await;
    let u = user.id;
    // A ledger row described "poison" makes its transaction fail: on PostgreSQL at COMMIT
    // (a deferred trigger), on SQLite at the insert.
    let setup: &[&str] = match backend {
        Backend::Postgres => &[
            "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN \
             RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql",
            "CREATE CONSTRAINT TRIGGER poison AFTER INSERT ON credit_transactions \
             DEFERRABLE INITIALLY DEFERRED FOR EACH ROW \
             WHEN (NEW.description = 'poison') EXECUTE FUNCTION poison()",
        ],
        Backend::Sqlite => &[
            "CREATE TRIGGER poison BEFORE INSERT ON credit_transactions \
             WHEN NEW.description = 'poison' BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
        ],
    };
    for sql in setup {
        match backend {
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
                c.execute(*sql).await.unwrap();
            }
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
                c.execute(*sql).await.unwrap();
            }
        }
    }
    let mut queued: Vec<_> = (0..10).map(|_| use_of(u, "0.10")).collect();
    queued.push((
        "/credits/use",
        json!({"user_id": u, "amount": "0.10", "description": "poison"}),
    ));
    queued.extend((0..10).map(|_| ("/credits/add", json!({"user_id": u, "amount": "1"}))));
    let (first, batch) = in_one_batch(&app, u, use_of(u, "0.01"), queued).await;
    assert_eq!(first.0, StatusCode::OK);
    for (status, body, _) in &batch {
        assert_eq!(*status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        assert_eq!(body["code"], "internal_error");
        assert!(
            !body.to_string().contains("injected"),
            "no internals: {body}"
        );
    }
    assert_eq!(
        balance_cents(&app, u).await,
        1000 - 1,
        "nothing of the batch applied"
    );
    assert_eq!(assert_ledger_exact(&app, u).await, 2);
    // The account works on: a later batch commits.
    let (first, batch) = in_one_batch(
        &app,
        u,
        use_of(u, "0.01"),
        (0..10).map(|_| use_of(u, "0.10")).collect(),
    )
    .await;
    assert_eq!(first.0, StatusCode::OK);
    assert!(batch.iter().all(|a| a.0 == StatusCode::OK), "{batch:?}");
    assert_eq!(balance_cents(&app, u).await, 1000 - 2 - 100);
    assert_eq!(assert_ledger_exact(&app, u).await, 13);
}

async fn clients_that_leave_do_not_break_their_batch(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register("leaver").await;
    grant(&app, user.id, "10").await;
    let u = user.id;
    let block = WriteBlock::hold(&app).await;
    let first = send(
        &app,
        "/credits/use",
        json!({"user_id": u, "amount": "0.01"}),
    );
    wait_for_queue(&app, u, Some(0)).await;
    let pending: Vec<_> = (0..10)
        .map(|_| {
            send(
                &app,
                "/credits/use",
                json!({"user_id": u, "amount": "0.10"}),
            )
        })
        .collect();
    wait_for_queue(&app, u, Some(10)).await;
    // Half the clients go away (their connections close) while their changes wait.
    for request in &pending[..5] {
        request.abort();
    }
    first.abort();
    tokio::time::sleep(Duration::from_millis(100)).await;
    block.release().await;
    for request in pending.into_iter().skip(5) {
        assert_eq!(request.await.unwrap().0, StatusCode::OK);
    }
    wait_for_queue(&app, u, None).await;
    // Every change committed with its batch, answered or not.
    assert_eq!(balance_cents(&app, u).await, 1000 - 1 - 100);
    assert_eq!(assert_ledger_exact(&app, u).await, 12);
    let (status, _, _) = send(
        &app,
        "/credits/use",
        json!({"user_id": u, "amount": "0.01"}),
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::OK);
}

async fn an_unknown_account_is_404_for_every_change_of_a_batch(backend: Backend) {
    let app = spawn_app(backend).await;
    let u = 987_654;
    let mut queued: Vec<_> = (0..5).map(|_| use_of(u, "1")).collect();
    queued.extend((0..5).map(|_| ("/credits/add", json!({"user_id": u, "amount": "1"}))));
    queued.push((
        "/credits/add",
        json!({"user_id": u, "amount": "1", "reference_id": "x"}),
    ));
    let (first, batch) = in_one_batch(&app, u, use_of(u, "1"), queued).await;
    for (status, body, _) in std::iter::once(&first).chain(&batch) {
        assert_eq!(*status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["code"], "not_found");
    }
    assert!(app.state.store.credit_balance(u).await.unwrap().is_none());
}

/// Two instances on one PostgreSQL database spend from and add to one account at once:
/// their batches serialise on the balance row, and the result is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_account_stay_exact() {
    if !Backend::Postgres.available().await {
        return;
    }
    let app = spawn_app(Backend::Postgres).await;
    let other = app.another_instance(|_| {}).await;
    let user = app.register("shared_hot").await;
    grant(&app, user.id, "10.00").await;
    let bases = [app.address.clone(), other.address.clone()];
    let requests: Vec<_> = (0..250)
        .map(|i| {
            let (path, amount) = if i % 5 == 0 {
                ("/credits/add", "0.10")
            } else {
                ("/credits/use", "0.10")
            };
            let request = app
                .client
                .post(format!("{}{path}", bases[i % 2]))
                .header("X-API-Key", KEY)
                .json(&json!({"user_id": user.id, "amount": amount}));
            tokio::spawn(async move {
                let r = request.send().await.unwrap();
                (path, r.status())
            })
        })
        .collect();
    let (mut used, mut refused) = (0, 0);
    for r in requests {
        match r.await.unwrap() {
            ("/credits/add", status) => assert_eq!(status, StatusCode::OK),
            (_, StatusCode::OK) => used += 1,
            (_, StatusCode::BAD_REQUEST) => refused += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(used + refused, 200);
    // 10.00 to start and 50 × 0.10 added: at least the first 100 uses fit, at most 150.
    assert!((100..=150).contains(&used), "{used}");
    assert_eq!(balance_cents(&app, user.id).await, 1000 + 500 - 10 * used);
    assert_eq!(
        assert_ledger_exact(&app, user.id).await,
        1 + 50 + used as usize
    );
}
