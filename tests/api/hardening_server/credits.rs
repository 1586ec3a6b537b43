//! Credit amounts are written exactly at any size (they went through f64 and came out
//! wrong above ~7e13 cents), and an addition that would overflow the balance is refused
//! with a clear 400 that changes nothing (it was a 500 "bigint out of range").

use reqwest::StatusCode;
use serde_json::{json, Value};

use auth_service::caller::ClientInfo;
use auth_service::services::audit;
use auth_service::store::{now, CreditKind, NewCredit};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    amounts_are_written_exactly,
    an_overflowing_addition_changes_nothing
);

async fn internal_post(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .header("x-api-key", "internal-key-one")
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn internal_get_text(app: &TestApp, path: &str) -> String {
    let r = app
        .client
        .get(app.url(path))
        .header("x-api-key", "internal-key-one")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.text().await.unwrap()
}

/// Puts `cents` on the user's balance directly through the store (the API caps one
/// addition at 1e12 credits; a balance can grow far beyond with many).
async fn seed_balance(app: &TestApp, user_id: i64, cents: i64) {
    let credit = NewCredit {
        user_id,
        kind: CreditKind::Added,
        amount: cents,
        reference_id: None,
        description: Some("seed".into()),
        created_at: now(),
    };
    let activity = audit::plain(audit::CREDITS_ADD, Some(user_id), &ClientInfo::default());
    app.state
        .store
        .apply_credit(&credit, &activity)
        .await
        .unwrap()
        .expect("seeded");
}

async fn amounts_are_written_exactly(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register("exact_amounts").await;
    // 7e13 cents and one, through the API: 700000000000.01 credits.
    let r = internal_post(
        &app,
        "/credits/add",
        json!({"user_id": user.id, "amount": "700000000000.01"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(text.contains(r#""amount":700000000000.01"#), "{text}");
    assert!(text.contains(r#""new_balance":700000000000.01"#), "{text}");

    // Far beyond what a double holds to the cent.
    seed_balance(
        &app,
        user.id,
        9_000_000_000_000_000_000 - 70_000_000_000_001,
    )
    .await;
    let balance = internal_get_text(&app, &format!("/credits/balance?user_id={}", user.id)).await;
    assert!(
        balance.contains(r#""balance":90000000000000000,"#),
        "{balance}"
    );
    let r = internal_post(
        &app,
        "/credits/add",
        json!({"user_id": user.id, "amount": "0.07"}),
    )
    .await;
    let text = r.text().await.unwrap();
    assert!(
        text.contains(r#""new_balance":90000000000000000.07"#),
        "{text}"
    );
    let history =
        internal_get_text(&app, &format!("/credits/transactions?user_id={}", user.id)).await;
    assert!(
        history.contains(r#""amount":89999299999999999.99"#),
        "{history}"
    );
    // Still valid JSON that parses.
    let parsed: Value = serde_json::from_str(&history).unwrap();
    assert_eq!(parsed["total_count"], 3);
}

async fn an_overflowing_addition_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.register("overflow").await;
    seed_balance(&app, user.id, i64::MAX - 100).await;
    let balance_path = format!("/credits/balance?user_id={}", user.id);
    let before = internal_get_text(&app, &balance_path).await;
    assert!(
        before.contains(r#""balance":92233720368547757.07"#),
        "{before}"
    );

    // Up to the last cent fits.
    let r = internal_post(
        &app,
        "/credits/add",
        json!({"user_id": user.id, "amount": "0.99"}),
    )
    .await;
    let text = r.text().await.unwrap();
    assert!(
        text.contains(r#""new_balance":92233720368547758.06"#),
        "{text}"
    );

    for amount in ["0.02", "1000000000000"] {
        let r = internal_post(
            &app,
            "/credits/add",
            json!({"user_id": user.id, "amount": amount, "reference_id": format!("ovf-{amount}")}),
        )
        .await;
        let body = assert_error(r, StatusCode::BAD_REQUEST, "balance_overflow").await;
        assert!(
            body["detail"].as_str().unwrap().contains("balance"),
            "{body}"
        );
    }
    let after = internal_get_text(&app, &balance_path).await;
    assert!(
        after.contains(r#""balance":92233720368547758.06"#),
        "{after}"
    );
    let history: Value = serde_json::from_str(
        &internal_get_text(&app, &format!("/credits/transactions?user_id={}", user.id)).await,
    )
    .unwrap();
    assert_eq!(
        history["total_count"], 2,
        "no ledger row for the refused additions"
    );
    // Spending still works on the huge balance.
    let r = internal_post(
        &app,
        "/credits/use",
        json!({"user_id": user.id, "amount": "0.06"}),
    )
    .await;
    let text = r.text().await.unwrap();
    assert!(
        text.contains(r#""new_balance":92233720368547758"#),
        "{text}"
    );
}
