//! GET /plans and the admin plan endpoints.

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{assert_error, first_loc, ok_json, spawn_app, Backend, TestApp, TestUser};

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
    // The id is the path's: the body cannot carry one, not even the same.
    for id in ["renamed", "monthly"] {
        let r = patch("monthly", json!({"id": id})).await.unwrap();
        assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    }

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
        (json!({"name": "   "}), "body.name"),
        (json!({"name": "\u{1c}\u{3000}\t"}), "body.name"),
        (json!({"name": "x".repeat(101)}), "body.name"),
        (
            json!({"name": format!("{} ", "x".repeat(100))}),
            "body.name",
        ),
        (json!({"name": null}), "body.name"),
        (json!({"kind": null}), "body.kind"),
        (json!({"kind": 1}), "body.kind"),
        (
            json!({"kind": "subscription", "interval": ["month"]}),
            "body.interval",
        ),
        (json!({"price": 646.5}), "body.price"),
        (json!({"price": "646"}), "body.price"),
        (json!({"price": 1e19}), "body.price"),
        (
            json!({"interval": "week", "kind": "subscription"}),
            "body.interval",
        ),
        (
            json!({"interval": null, "kind": "subscription"}),
            "body.interval",
        ),
        (json!({"currency": "ÉUR"}), "body.currency"),
    ];
    for (change, loc) in cases {
        let body = with(plan("p1", "price_1"), &change);
        let r = app.post("/admin/plans", &body, Some(&admin.access)).await;
        let err = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
        assert!(first_loc(&err).starts_with(loc), "{change}: {err}");
    }
    // Every required field, left out.
    for field in [
        "id",
        "name",
        "kind",
        "credits",
        "price",
        "currency",
        "stripe_price_id",
    ] {
        let mut body = plan("p1", "price_1");
        body.as_object_mut().unwrap().remove(field);
        let r = app.post("/admin/plans", &body, Some(&admin.access)).await;
        let err = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
        assert_eq!(first_loc(&err), format!("body.{field}"), "{err}");
        assert_eq!(err["detail"][0]["type"], "missing", "{err}");
    }
    // Not a whole number, though the nearest double is one.
    let raw = r#"{"id": "p1", "name": "P", "kind": "one_time", "credits": 1, "price": 646.0000000000000001,
        "currency": "eur", "stripe_price_id": "price_1"}"#;
    let r = send_raw(&app, "POST", "/admin/plans", raw, &admin.access).await;
    let err = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    assert_eq!(first_loc(&err), "body.price", "{err}");
    let r = send_raw(&app, "POST", "/admin/plans", "{not json", &admin.access).await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    assert!(ok_json(app.get("/plans", None).await)
        .await
        .as_array()
        .unwrap()
        .is_empty());
}

/// `base` with the fields of `change` set.
fn with(mut base: Value, change: &Value) -> Value {
    for (k, v) in change.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

/// A request with a body as written (serde_json would turn 646.0000000000000001 into 646.0).
async fn send_raw(app: &TestApp, method: &str, path: &str, body: &str, token: &str) -> Response {
    app.client
        .request(method.parse().unwrap(), app.url(path))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

/// What the document allows is accepted: whole numbers in any notation, a one-time plan with
/// a null interval, null `active`, names trimmed, currencies in any case.
async fn plan_creation_accepts_what_the_document_allows(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin("boss").await;
    let cases: Vec<(Value, i64)> = vec![
        (json!({"price": 646.0}), 646),
        (json!({"price": 6.46e2}), 646),
        (json!({"price": 0}), 0),
        (json!({"price": 99_999_999}), 99_999_999),
        (json!({"interval": null, "active": null}), 499),
    ];
    for (n, (change, price)) in cases.into_iter().enumerate() {
        let body = with(plan(&format!("p{n}"), &format!("price_{n}")), &change);
        let created = ok_json_status(
            app.post("/admin/plans", &body, Some(&admin.access)).await,
            StatusCode::CREATED,
        )
        .await;
        assert_eq!(created["price"], price, "{change}");
        assert_eq!(created["active"], true);
        assert_eq!(created["interval"], Value::Null);
    }
    // Written by hand: exponent and fraction notations of whole numbers.
    for (n, literal) in ["6460e-1", "646.000", "6.46E+2"].into_iter().enumerate() {
        let raw = format!(
            r#"{{"id": "raw{n}", "name": "  Raw\u001c ", "kind": "subscription", "interval": "year",
            "credits": 646.0, "price": {literal}, "currency": "Usd", "stripe_price_id": "price_raw{n}"}}"#
        );
        let r = send_raw(&app, "POST", "/admin/plans", &raw, &admin.access).await;
        let created = ok_json_status(r, StatusCode::CREATED).await;
        assert_eq!(created["price"], 646, "{literal}");
        assert_eq!(created["credits"], 646.0);
        assert_eq!(created["name"], "Raw");
        assert_eq!(created["currency"], "usd");
        assert_eq!(created["interval"], "year");
    }
    let name = "é".repeat(100);
    let body = with(plan("long", "price_long"), &json!({"name": name}));
    let created = ok_json_status(
        app.post("/admin/plans", &body, Some(&admin.access)).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(created["name"], name.as_str());
}

/// The plan as the admin list shows it.
async fn stored(app: &TestApp, admin: &TestUser, id: &str) -> Value {
    let all = ok_json(app.get("/admin/plans", Some(&admin.access)).await).await;
    all.as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .cloned()
        .unwrap()
}

async fn ok_json_status(r: Response, status: StatusCode) -> Value {
    let got = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(got, status, "{body}");
    body
}

/// PATCH: at least one field; field rules are 422; a change that does not fit the stored
/// plan's kind is 400 `plan_kind_conflict`; kind and interval change together.
async fn plan_updates_and_kind_conflicts(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin("boss").await;
    for (id, kind) in [("pack", "one_time"), ("pro", "subscription")] {
        let mut body = with(plan(id, &format!("price_{id}")), &json!({"kind": kind}));
        if kind == "subscription" {
            body["interval"] = json!("month");
        }
        let r = app.post("/admin/plans", &body, Some(&admin.access)).await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let patch = |id: &str, body: Value| {
        app.client
            .patch(app.url(&format!("/admin/plans/{id}")))
            .bearer_auth(&admin.access)
            .json(&body)
            .send()
    };
    // Nothing to change: 422, on a plan that exists or not (the body is checked first).
    for body in [
        json!({}),
        json!({"name": null}),
        json!({"interval": null, "active": null}),
    ] {
        for id in ["pack", "missing"] {
            let r = patch(id, body.clone()).await.unwrap();
            let err = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
            assert_eq!(first_loc(&err), "body", "{body}: {err}");
        }
    }
    // Field rules, as on create.
    for (body, loc) in [
        (json!({"price": 646.5}), "body.price"),
        (json!({"price": -1}), "body.price"),
        (json!({"name": " "}), "body.name"),
        (json!({"currency": "eu"}), "body.currency"),
        (json!({"credits": 0}), "body.credits"),
        (
            json!({"kind": "one_time", "interval": "month"}),
            "body.interval",
        ),
        (json!({"interval": "week"}), "body.interval"),
    ] {
        let r = patch("pro", body.clone()).await.unwrap();
        let err = assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
        assert!(first_loc(&err).starts_with(loc), "{body}: {err}");
    }
    let before = stored(&app, &admin, "pro").await;

    // Changes the stored kind rules out: 400, nothing written.
    for body in [
        json!({"interval": "year"}),
        json!({"interval": "month", "name": "Renamed"}),
        json!({"kind": "subscription"}),
    ] {
        let r = patch("pack", body.clone()).await.unwrap();
        let err = assert_error(r, StatusCode::BAD_REQUEST, "plan_kind_conflict").await;
        assert!(
            err["detail"].as_str().unwrap().contains("one_time"),
            "{err}"
        );
    }
    assert_eq!(stored(&app, &admin, "pack").await["name"], "Starter pack");
    assert_eq!(stored(&app, &admin, "pack").await["interval"], Value::Null);

    // Whole numbers in any notation; null leaves a field alone.
    let r = patch("pro", json!({"price": 700.0, "name": null}))
        .await
        .unwrap();
    let updated = ok_json(r).await;
    assert_eq!(updated["price"], 700);
    assert_eq!(updated["name"], before["name"]);
    let r = send_raw(
        &app,
        "PATCH",
        "/admin/plans/pro",
        r#"{"price": 7.1e2}"#,
        &admin.access,
    )
    .await;
    assert_eq!(ok_json(r).await["price"], 710);
    let r = send_raw(
        &app,
        "PATCH",
        "/admin/plans/pro",
        r#"{"price": 710.00000000000000001}"#,
        &admin.access,
    )
    .await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;

    // A subscription keeps its interval unless given one; kind alone is fine for it.
    let r = patch("pro", json!({"interval": "year"})).await.unwrap();
    assert_eq!(ok_json(r).await["interval"], "year");
    let r = patch("pro", json!({"kind": "subscription"})).await.unwrap();
    assert_eq!(ok_json(r).await["interval"], "year");
    // one_time clears the interval; back to a subscription names one.
    let r = patch("pro", json!({"kind": "one_time", "interval": null}))
        .await
        .unwrap();
    let updated = ok_json(r).await;
    assert_eq!(
        (updated["kind"].clone(), updated["interval"].clone()),
        (json!("one_time"), Value::Null)
    );
    let r = patch("pro", json!({"kind": "subscription", "interval": "month"}))
        .await
        .unwrap();
    let updated = ok_json(r).await;
    assert_eq!(updated["kind"], "subscription");
    assert_eq!(updated["interval"], "month");
    assert_eq!(updated["price"], 710, "untouched fields kept");
}

both_backends!(
    admins_manage_plans,
    plan_validation,
    plan_creation_accepts_what_the_document_allows,
    plan_updates_and_kind_conflicts,
);
