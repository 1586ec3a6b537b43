//! A body with several bad fields gets a 422 naming each of them (as the pages and the
//! original's validation do), not only the first serde met; and such a request changes
//! nothing.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    every_bad_field_of_a_body_is_reported,
    one_bad_field_is_reported_once,
);

async fn register(app: &TestApp, body: Value) -> (StatusCode, Value) {
    let response = app
        .client
        .post(app.url("/auth/register"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// `(field, type)` of each entry of a 422's `detail`, sorted (the order follows the body's
/// keys, which a client's JSON library may reorder).
fn fields(body: &Value) -> Vec<(String, String)> {
    let mut fields: Vec<_> = body["detail"]
        .as_array()
        .unwrap_or_else(|| panic!("no detail: {body}"))
        .iter()
        .map(|e| {
            (
                e["loc"][1].as_str().unwrap_or("").to_owned(),
                e["type"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    fields.sort();
    fields
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<_> = expected
        .iter()
        .map(|(f, t)| (f.to_string(), t.to_string()))
        .collect();
    pairs.sort();
    pairs
}

async fn every_bad_field_of_a_body_is_reported(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, body) = register(
        &app,
        json!({"username": "a", "email": "not-an-email", "password": "short"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "validation_error");
    assert_eq!(
        fields(&body),
        pairs(&[
            ("username", "value_error"),
            ("email", "value_error"),
            ("password", "value_error")
        ]),
        "{body}"
    );
    // Two bad fields and a missing one.
    let (status, body) = register(&app, json!({"email": 7, "password": "short"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        fields(&body),
        pairs(&[
            ("email", "type_error"),
            ("password", "value_error"),
            ("username", "missing")
        ]),
        "{body}"
    );
    // Nothing was created: the name is still free.
    let (status, body) = register(
        &app,
        json!({"username": "newbie", "email": "newbie@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn one_bad_field_is_reported_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, body) = register(
        &app,
        json!({"username": "fine_name", "email": "fine@example.com", "password": "short"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        fields(&body),
        pairs(&[("password", "value_error")]),
        "{body}"
    );
    let (status, body) = register(&app, json!({"username": "fine_name"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(fields(&body), pairs(&[("email", "missing")]), "{body}");
    // Broken JSON is one whole-body error.
    let response = app
        .client
        .post(app.url("/auth/register"))
        .header("content-type", "application/json")
        .body("{\"username\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["detail"].as_array().map(Vec::len), Some(1), "{body}");
}
