//! GET /plans and the admin plan endpoints.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{assert_error, first_loc, ok_json, spawn_app, Backend};

fn plan(id: &str, price_id: &str) -> Value {
    json!({"id": id, "name": "Starter pack", "kind": "one_time", "credits": "12.50",
        "price": 499, "currency": "EUR", "stripe_price_id": price_id})
}

async fn admins_manage_plans(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin("boss").await;
    let r = app
        .post(
            "/admin/plans",
            &plan("starter", "price_a"),
            Some(&admin.access),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["credits"], 12.5);
    assert_eq!(created["currency"], "eur", "stored lowercased");
    assert_eq!(created["interval"], Value::Null);
    assert_eq!(created["active"], true);
    let mut sub = plan("monthly", "price_b");
    sub["kind"] = json!("subscription");
    sub["interval"] = json!("month");
    sub["price"] = json!(999);
    let r = app.post("/admin/plans", &sub, Some(&admin.access)).await;
    assert_eq!(r.status(), StatusCode::CREATED);

    // Duplicates: same id, same Stripe price.
    let r = app
        .post(
            "/admin/plans",
            &plan("starter", "price_c"),
            Some(&admin.access),
        )
        .await;
    assert_error(r, StatusCode::CONFLICT, "plan_exists").await;
    let r = app
        .post(
            "/admin/plans",
            &plan("other", "price_a"),
            Some(&admin.access),
        )
        .await;
    assert_error(r, StatusCode::CONFLICT, "plan_exists").await;

    let public = ok_json(app.get("/plans", None).await).await;
    assert_eq!(public.as_array().unwrap().len(), 2);
    assert_eq!(public[0]["id"], "starter", "cheapest first");

    // Deactivate: gone from /plans, still listed for admins, never deleted.
    let patch = |id: &str, body: Value| {
        app.client
            .patch(app.url(&format!("/admin/plans/{id}")))
            .bearer_auth(&admin.access)
            .json(&body)
            .send()
    };
    let r = patch("starter", json!({"active": false, "name": "Retired"}))
        .await
        .unwrap();
    let updated = ok_json(r).await;
    assert_eq!(updated["active"], false);
    assert_eq!(updated["name"], "Retired");
    assert_eq!(updated["stripe_price_id"], "price_a");
    let public = ok_json(app.get("/plans", None).await).await;
    assert_eq!(public.as_array().unwrap().len(), 1);
    let all = ok_json(app.get("/admin/plans", Some(&admin.access)).await).await;
    assert_eq!(all.as_array().unwrap().len(), 2);
    let r = patch("monthly", json!({"stripe_price_id": "price_a"}))
        .await
        .unwrap();
    assert_error(r, StatusCode::CONFLICT, "plan_exists").await;
    let r = patch("missing", json!({"active": true})).await.unwrap();
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = patch("monthly", json!({"interval": "week"})).await.unwrap();
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    let r = patch("monthly", json!({"id": "renamed"})).await.unwrap();
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;

    // Plain users and anonymous callers.
    let user = app.verified_user("plain").await;
    let r = app
        .post("/admin/plans", &plan("x", "price_x"), Some(&user.access))
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app.post("/admin/plans", &plan("x", "price_x"), None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = app.get("/admin/plans", Some(&user.access)).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

async fn plan_validation(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin("boss").await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"id": "Upper"}), "body.id"),
        (json!({"id": ""}), "body.id"),
        (json!({"id": "a/b"}), "body.id"),
        (json!({"name": ""}), "body.name"),
        (json!({"name": "x\u{0}y"}), "body.name"),
        (json!({"kind": "lifetime"}), "body.kind"),
        (json!({"credits": 0}), "body.credits"),
        (json!({"credits": 1.234}), "body.credits"),
        (json!({"credits": -5}), "body.credits"),
        (json!({"price": -1}), "body.price"),
        (json!({"price": 1.5}), "body.price"),
        (json!({"price": 100_000_000}), "body.price"),
        (json!({"currency": "euro"}), "body.currency"),
        (json!({"currency": "e1r"}), "body.currency"),
        (json!({"interval": "month"}), "body.interval"),
        (json!({"kind": "subscription"}), "body.interval"),
        (
            json!({"stripe_price_id": "price with space"}),
            "body.stripe_price_id",
        ),
        (json!({"stripe_price_id": null}), "body.stripe_price_id"),
        (json!({"unknown_field": 1}), "body"),
    ];
    for (change, loc) in cases {
        let mut body = plan("p1", "price_1");
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = app.post("/admin/plans", &body, Some(&admin.access)).await;
        let err = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
        assert!(first_loc(&err).starts_with(loc), "{change}: {err}");
    }
    let r = app
        .client
        .post(app.url("/admin/plans"))
        .bearer_auth(&admin.access)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    assert!(ok_json(app.get("/plans", None).await)
        .await
        .as_array()
        .unwrap()
        .is_empty());
}

both_backends!(admins_manage_plans, plan_validation);
