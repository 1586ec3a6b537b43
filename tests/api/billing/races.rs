//! Issue 19 item 1: refunds and disputes of one payment that arrive together never take
//! back more than was granted, and each delivery is answered 200.

use serde_json::json;

use super::support::*;
use crate::both_backends;
use crate::helpers::{join_all, ok_json, Backend, TestApp, TestUser};

const TRIES: usize = 5;

async fn buy(app: &TestApp, user: &TestUser, n: usize) {
    let paid = paid_session(
        &format!("cs_race_{n}"),
        user.id,
        "starter",
        "cus_race",
        &format!("pi_race_{n}"),
    );
    let e = event(
        &format!("e_paid_{n}"),
        "checkout.session.completed",
        unix_now(),
        paid,
    );
    assert_eq!(deliver(app, &e).await, "applied");
}

/// Sends the events at once; every answer must be 200. Returns the outcomes.
async fn deliver_together(app: &TestApp, events: Vec<serde_json::Value>) -> Vec<String> {
    let answers = join_all(events.iter().map(|e| {
        let body = e.to_string();
        async move {
            let sig = signature(WEBHOOK_SECRET, unix_now(), &body);
            post_webhook(app, &body, Some(&sig)).await
        }
    }))
    .await;
    let mut outcomes = Vec::new();
    for answer in answers {
        let body = ok_json(answer).await;
        outcomes.push(body["outcome"].as_str().unwrap_or_default().to_owned());
    }
    outcomes
}

/// Taken back from the payment `pi_race_{n}`, in credits.
async fn taken_back(app: &TestApp, user: &TestUser, n: usize) -> f64 {
    transactions(app, user)
        .await
        .iter()
        .filter(|t| {
            t["transaction_type"] == "refund"
                && t["description"]
                    .as_str()
                    .is_some_and(|d| d.ends_with(&format!("cs_race_{n}")))
        })
        .map(|t| t["amount"].as_f64().unwrap_or_default())
        .sum()
}

async fn concurrent_refund_and_dispute_take_back_at_most_the_grant(backend: Backend) {
    let stripe = FakeStripe::start(None).await;
    let app = billing_app(backend, &stripe.base).await;
    let admin = app.admin("boss").await;
    create_plan(&app, &admin, "starter", "one_time", "price_starter").await;
    let user = app.verified_user("buyer").await;
    let t = unix_now();
    for n in 0..TRIES {
        buy(&app, &user, n).await;
        let refund = event(
            &format!("e_refund_{n}"),
            "charge.refunded",
            t,
            refunded_charge(&format!("ch_race_{n}"), &format!("pi_race_{n}"), 1000, 500),
        );
        // The same refund told twice (Stripe sends charge.refunded per refund object
        // update; two event ids, one state).
        let refund_again = event(
            &format!("e_refund_again_{n}"),
            "charge.refunded",
            t,
            refunded_charge(&format!("ch_race_{n}"), &format!("pi_race_{n}"), 1000, 500),
        );
        let dispute = event(
            &format!("e_dispute_{n}"),
            "charge.dispute.created",
            t,
            json!({"id": format!("dp_race_{n}"), "object": "dispute",
                "charge": format!("ch_race_{n}"), "payment_intent": format!("pi_race_{n}"),
                "amount": 1000, "status": "needs_response"}),
        );
        let outcomes = deliver_together(&app, vec![refund, refund_again, dispute]).await;
        // Whichever comes first applies; the dispute after a refund takes the rest, a
        // refund after the dispute finds nothing left, the second telling of the refund
        // finds nothing new.
        assert!(
            outcomes.iter().all(|o| o == "applied" || o == "ignored")
                && outcomes.iter().any(|o| o == "applied"),
            "{outcomes:?}"
        );
        assert_eq!(
            taken_back(&app, &user, n).await,
            100.0,
            "try {n}: exactly the 100 credits granted are taken back"
        );
        // A redelivery of one of them (same event id) is a 200 duplicate.
        let redelivered = event(
            &format!("e_refund_{n}"),
            "charge.refunded",
            t,
            refunded_charge(&format!("ch_race_{n}"), &format!("pi_race_{n}"), 1000, 500),
        );
        assert_eq!(deliver(&app, &redelivered).await, "duplicate");
    }
    assert_eq!(balance(&app, &user).await, 0.0);
    assert_ledger_consistent(&app).await;
}

/// Two partial refunds of one payment told at once, and the full refund after: 100 in all.
async fn concurrent_partial_refunds_add_up(backend: Backend) {
    let stripe = FakeStripe::start(None).await;
    let app = billing_app(backend, &stripe.base).await;
    let admin = app.admin("boss").await;
    create_plan(&app, &admin, "starter", "one_time", "price_starter").await;
    let user = app.verified_user("buyer").await;
    let t = unix_now();
    buy(&app, &user, 0).await;
    let partial = |id: &str, refunded: i64| {
        event(
            id,
            "charge.refunded",
            t,
            refunded_charge("ch_race_0", "pi_race_0", 1000, refunded),
        )
    };
    let outcomes = deliver_together(
        &app,
        vec![
            partial("e_a", 300),
            partial("e_b", 600),
            partial("e_c", 600),
        ],
    )
    .await;
    assert!(
        outcomes.iter().all(|o| o == "applied" || o == "ignored"),
        "{outcomes:?}"
    );
    assert_eq!(
        taken_back(&app, &user, 0).await,
        60.0,
        "60% refunded: 60 credits"
    );
    assert_eq!(deliver(&app, &partial("e_d", 1000)).await, "applied");
    assert_eq!(taken_back(&app, &user, 0).await, 100.0);
    assert_eq!(balance(&app, &user).await, 0.0);
    assert_ledger_consistent(&app).await;
}

both_backends!(
    concurrent_refund_and_dispute_take_back_at_most_the_grant,
    concurrent_partial_refunds_add_up
);
