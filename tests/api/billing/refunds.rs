//! Refunds and disputes take back credits in proportion to what was refunded.

use reqwest::StatusCode;
use serde_json::json;

use super::support::*;
use crate::both_backends;
use crate::helpers::{assert_error, Backend};

/// A 50% refund takes back half; the same refund redelivered nothing more; the full refund
/// the rest. Refunds find subscription invoices by charge too.
async fn partial_then_full_refund(backend: Backend) {
    let stripe = FakeStripe::start(None).await;
    let app = billing_app(backend, &stripe.base).await;
    let admin = app.admin("boss").await;
    create_plan(&app, &admin, "starter", "one_time", "price_starter").await;
    create_plan(&app, &admin, "pro", "subscription", "price_pro").await;
    let user = app.verified_user("buyer").await;
    let t = unix_now();
    let paid = paid_session("cs_r", user.id, "starter", "cus_r", "pi_r");
    assert_eq!(
        deliver(
            &app,
            &event("e_paid", "checkout.session.completed", t, paid)
        )
        .await,
        "applied"
    );
    assert_eq!(balance(&app, &user).await, 100.0);

    let half = event(
        "e_half",
        "charge.refunded",
        t,
        refunded_charge("ch_r", "pi_r", 1000, 500),
    );
    assert_eq!(deliver(&app, &half).await, "applied");
    assert_eq!(balance(&app, &user).await, 50.0);
    let half_again = event(
        "e_half2",
        "charge.refunded",
        t,
        refunded_charge("ch_r", "pi_r", 1000, 500),
    );
    assert_eq!(deliver(&app, &half_again).await, "ignored");
    assert_eq!(balance(&app, &user).await, 50.0);
    let full = event(
        "e_full",
        "charge.refunded",
        t,
        refunded_charge("ch_r", "pi_r", 1000, 1000),
    );
    assert_eq!(deliver(&app, &full).await, "applied");
    assert_eq!(balance(&app, &user).await, 0.0);
    let txs = transactions(&app, &user).await;
    let refunds: Vec<_> = txs
        .iter()
        .filter(|t| t["transaction_type"] == "refund")
        .collect();
    assert_eq!(refunds.len(), 2);
    assert_eq!(refunds[0]["amount"], 50.0);

    // A subscription invoice's charge is found by its charge id.
    let inv = invoice("in_r", "cus_r", "sub_r", "price_pro", "ch_inv");
    assert_eq!(
        deliver(&app, &event("e_inv", "invoice.paid", t, inv)).await,
        "applied"
    );
    assert_eq!(balance(&app, &user).await, 100.0);
    let mut charge = refunded_charge("ch_inv", "pi_other", 900, 300);
    charge["payment_intent"] = json!(null);
    assert_eq!(
        deliver(&app, &event("e_inv_r", "charge.refunded", t, charge)).await,
        "applied"
    );
    assert_eq!(
        balance(&app, &user).await,
        66.67,
        "a third of 100 (33.33, rounded down) taken"
    );
    // A refund of a payment we never saw is unmatched.
    let stray = refunded_charge("ch_none", "pi_none", 500, 500);
    assert_eq!(
        deliver(&app, &event("e_stray", "charge.refunded", t, stray)).await,
        "unmatched"
    );
    let (activity, _) = app
        .state
        .store
        .activities(Some(user.id), 0, 50)
        .await
        .unwrap();
    assert!(
        activity.iter().any(|a| a.event == "billing_clawback"),
        "audited"
    );
    assert_ledger_consistent(&app).await;
}

/// A dispute takes back what is left even when it was spent: the balance may go below
/// zero, and then spending is refused.
async fn dispute_claws_back_the_rest(backend: Backend) {
    let stripe = FakeStripe::start(None).await;
    let app = billing_app(backend, &stripe.base).await;
    let admin = app.admin("boss").await;
    create_plan(&app, &admin, "starter", "one_time", "price_starter").await;
    let user = app.verified_user("buyer").await;
    let t = unix_now();
    let paid = paid_session("cs_d", user.id, "starter", "cus_d", "pi_d");
    assert_eq!(
        deliver(
            &app,
            &event("e_paid", "checkout.session.completed", t, paid)
        )
        .await,
        "applied"
    );
    let r = app
        .post("/credits/use", &json!({"amount": 80}), Some(&user.access))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let quarter = event(
        "e_q",
        "charge.refunded",
        t,
        refunded_charge("ch_d", "pi_d", 1000, 250),
    );
    assert_eq!(deliver(&app, &quarter).await, "applied");
    assert_eq!(balance(&app, &user).await, -5.0);
    let dispute = json!({"id": "dp_1", "object": "dispute", "charge": "ch_d",
        "payment_intent": "pi_d", "amount": 1000, "status": "needs_response"});
    assert_eq!(
        deliver(
            &app,
            &event("e_dp", "charge.dispute.created", t, dispute.clone())
        )
        .await,
        "applied"
    );
    assert_eq!(balance(&app, &user).await, -80.0);
    assert_eq!(
        deliver(&app, &event("e_dp2", "charge.dispute.created", t, dispute)).await,
        "ignored"
    );
    let r = app
        .post("/credits/use", &json!({"amount": 1}), Some(&user.access))
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "insufficient_credits").await;
    assert_eq!(balance(&app, &user).await, -80.0);
    assert_ledger_consistent(&app).await;
}

both_backends!(partial_then_full_refund, dispute_claws_back_the_rest);
