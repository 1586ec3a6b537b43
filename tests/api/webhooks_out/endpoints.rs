//! The admin API of endpoints, and the SSRF rules.

use std::time::Duration;

use serde_json::{json, Value};

use super::{webhook_vars, Receiver};
use crate::both_backends;
use crate::helpers::{assert_error, first_loc, spawn_app_with, Backend};

/// Create shows the secret once; list/get/patch never do; bad input is a 422 that
/// changes nothing; non-admins get 403; unknown ids 404.
async fn endpoints_are_managed_by_admins(backend: Backend) {
    let app = spawn_app_with(backend, webhook_vars).await;
    let admin = app.admin("epadmin").await;
    let user = app.register("epuser").await;
    let body = json!({"url": "http://127.0.0.1:9/hook", "events": ["user.created", "credits.transaction"], "description": "ops"});
    let r = app.post("/admin/webhooks", &body, Some(&user.access)).await;
    assert_error(r, reqwest::StatusCode::FORBIDDEN, "forbidden").await;
    let r = app
        .post("/admin/webhooks", &body, Some(&admin.access))
        .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let secret = created["secret"].as_str().unwrap();
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    assert!(raw.len() >= 24);
    assert_eq!(
        created["events"],
        json!(["user.created", "credits.transaction"])
    );
    let id = created["id"].as_i64().unwrap();
    let list: Value = app
        .get("/admin/webhooks", Some(&admin.access))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(list[0].get("secret").is_none());
    let one: Value = app
        .get(&format!("/admin/webhooks/{id}"), Some(&admin.access))
        .await
        .json()
        .await
        .unwrap();
    assert!(one.get("secret").is_none());
    assert_eq!(one["description"], "ops");
    for (bad, field) in [
        (json!({"url": "ftp://example.com/", "events": ["*"]}), "url"),
        (json!({"url": "not a url", "events": ["*"]}), "url"),
        (
            json!({"url": "http://example.com/", "events": ["user.nope"]}),
            "events",
        ),
        (
            json!({"url": "http://example.com/", "events": []}),
            "events",
        ),
        (
            json!({"url": "http://example.com/", "events": ["*"], "description": "x".repeat(501)}),
            "description",
        ),
    ] {
        let r = app.post("/admin/webhooks", &bad, Some(&admin.access)).await;
        let body = assert_error(
            r,
            reqwest::StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
        )
        .await;
        assert!(first_loc(&body).contains(field), "{bad} → {body}");
    }
    let r = app
        .client
        .patch(app.url(&format!("/admin/webhooks/{id}")))
        .bearer_auth(&admin.access)
        .json(&json!({"enabled": false, "events": ["*"], "description": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let patched: Value = r.json().await.unwrap();
    assert_eq!(patched["enabled"], false);
    assert_eq!(patched["events"], json!(["*"]));
    assert!(patched["description"].is_null());
    assert!(patched.get("secret").is_none());
    let r = app.get("/admin/webhooks/999999", Some(&admin.access)).await;
    assert_error(r, reqwest::StatusCode::NOT_FOUND, "not_found").await;
    let r = app
        .get(
            &format!("/admin/webhooks/{id}/deliveries?status=bogus"),
            Some(&admin.access),
        )
        .await;
    assert_error(
        r,
        reqwest::StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    )
    .await;
    let r = app
        .post(
            &format!("/admin/webhooks/{id}/deliveries/424242/retry"),
            &json!({}),
            Some(&admin.access),
        )
        .await;
    assert_error(r, reqwest::StatusCode::NOT_FOUND, "not_found").await;
    let r = app
        .delete(&format!("/admin/webhooks/{id}"), Some(&admin.access))
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .delete(&format!("/admin/webhooks/{id}"), Some(&admin.access))
        .await;
    assert_error(r, reqwest::StatusCode::NOT_FOUND, "not_found").await;
}

/// Without WEBHOOK_ALLOW_PRIVATE_NETWORKS: literal private, loopback, link-local and
/// IPv4-mapped addresses are refused at creation, and a name resolving to loopback
/// (`localhost`) is refused at connect time: the receiver never sees a request.
async fn private_networks_are_refused(backend: Backend) {
    let Some(receiver) = Receiver::start("ok") else {
        return;
    };
    let app = spawn_app_with(backend, |v| {
        webhook_vars(v);
        v.insert("WEBHOOK_ALLOW_PRIVATE_NETWORKS".into(), "false".into());
    })
    .await;
    let admin = app.admin("ssrfadmin").await;
    for url in [
        "http://127.0.0.1/hook",
        "http://10.0.0.5/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[fe80::1]/hook",
        "http://[fd00::1]/hook",
        "http://0.0.0.0/hook",
    ] {
        let r = app
            .post(
                "/admin/webhooks",
                &json!({"url": url, "events": ["*"]}),
                Some(&admin.access),
            )
            .await;
        assert_error(
            r,
            reqwest::StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
        )
        .await;
    }
    let via_name = receiver.url.replace("127.0.0.1", "localhost");
    let r = app
        .post(
            "/admin/webhooks",
            &json!({"url": via_name, "events": ["webhook.test"]}),
            Some(&admin.access),
        )
        .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    receiver.set_secrets(&[created["secret"].as_str().unwrap()]);
    let id = created["id"].as_i64().unwrap();
    app.post(
        &format!("/admin/webhooks/{id}/test"),
        &json!({}),
        Some(&admin.access),
    )
    .await;
    let mut last = Value::Null;
    for _ in 0..100 {
        let list: Value = app
            .get(
                &format!("/admin/webhooks/{id}/deliveries"),
                Some(&admin.access),
            )
            .await
            .json()
            .await
            .unwrap();
        last = list[0].clone();
        if last["attempts"].as_i64().unwrap_or(0) >= 1 && last["last_error"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        last["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("refused")
            || last["last_error"]
                .as_str()
                .unwrap_or("")
                .contains("private"),
        "{last}"
    );
    assert_ne!(last["status"], "delivered");
    assert!(
        receiver.requests().is_empty(),
        "a loopback name was connected to"
    );
}

both_backends!(
    endpoints_are_managed_by_admins,
    private_networks_are_refused
);
