//! The admins' webhooks page (DESIGN §16, issue 23): an admin registers an endpoint (its
//! secret shown once), sends a test, sees the deliveries and retries one, rotates the
//! secret, changes its events, disables, enables and deletes it — each change visible through the API, each
//! delivery verified by the standardwebhooks library. Bad input and forged forms change
//! nothing; other users get no page.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::both_backends;
use crate::helpers::*;
use crate::web::{csrf_in, location, Visit};
use crate::webhooks_out::{webhook_vars, Receiver};

both_backends!(
    an_admin_manages_endpoints_on_the_page,
    the_page_is_for_admins_and_forms_need_their_token,
);

const PAGE: &str = "/admin/webhooks/manage";

/// The secret the page shows once.
fn shown_secret(page: &str) -> Option<String> {
    let start = page.find("id=\"webhook-secret\">")? + "id=\"webhook-secret\">".len();
    let end = page[start..].find('<')?;
    // As a browser shows it: the template escaped it for HTML.
    let text = page[start..start + end]
        .replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    Some(text)
}

async fn api_endpoints(app: &TestApp, admin: &TestUser) -> Vec<Value> {
    let r = app.get("/admin/webhooks", Some(&admin.access)).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Vec<Value>>().await.unwrap()
}

async fn act(visit: &mut Visit<'_>, fields: &[(&str, &str)]) -> reqwest::Response {
    let csrf = visit.csrf(PAGE).await;
    let mut form = fields.to_vec();
    form.push(("csrf", &csrf));
    visit.post(PAGE, &form).await
}

async fn an_admin_manages_endpoints_on_the_page(backend: Backend) {
    let Some(receiver) = Receiver::start("ok") else {
        return;
    };
    let app = spawn_app_with(backend, webhook_vars).await;
    let admin = app.admin("hookpageadmin").await;
    let mut visit = Visit::new(&app);
    visit.sign_in("hookpageadmin").await;
    let first = visit.get(PAGE).await;
    assert_eq!(first.status(), StatusCode::OK);
    let body = first.text().await.unwrap();
    assert!(body.contains("name=\"csrf\""), "{body}");
    let admin_page = visit.get("/admin").await.text().await.unwrap();
    assert!(admin_page.contains(&format!("href=\"{PAGE}\"")));
    // A browser opening the API's address lands on the page.
    let r = app
        .client
        .get(app.url("/admin/webhooks"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), PAGE);

    // A bad URL: the form again with the reason, nothing registered.
    let r = act(
        &mut visit,
        &[
            ("action", "create"),
            ("url", "ftp://example.com/hook"),
            ("events", ""),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("ftp:&#x2f;&#x2f;example.com") || page.contains("ftp://example.com"),
        "the value is kept: {page}"
    );
    assert!(shown_secret(&page).is_none());
    assert!(api_endpoints(&app, &admin).await.is_empty());
    let r = act(
        &mut visit,
        &[
            ("action", "create"),
            ("url", &receiver.url),
            ("events", "user.created, nonsense"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("nonsense"));
    assert!(api_endpoints(&app, &admin).await.is_empty());

    // Registered: the secret is on the answer page, once.
    let r = act(
        &mut visit,
        &[
            ("action", "create"),
            ("url", &receiver.url),
            ("events", "user.created, webhook.test"),
            ("description", "crm"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let secret = shown_secret(&r.text().await.unwrap()).expect("secret shown");
    assert!(secret.starts_with("whsec_"), "{secret}");
    receiver.set_secrets(&[&secret]);
    let listed = api_endpoints(&app, &admin).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0]["events"],
        serde_json::json!(["user.created", "webhook.test"])
    );
    assert_eq!(listed[0]["description"], "crm");
    let id = listed[0]["id"].as_i64().unwrap().to_string();
    let page = visit.get(PAGE).await.text().await.unwrap();
    // (Templates escape "/": look for the host and port.)
    let host = receiver
        .url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap();
    assert!(
        page.contains(host) && shown_secret(&page).is_none(),
        "never shown again"
    );

    // A test event and a registration arrive, verified with that secret.
    let r = act(&mut visit, &[("action", "test"), ("endpoint_id", &id)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    app.register("hookedperson").await;
    let seen = receiver
        .wait_until(Duration::from_secs(15), |r| {
            ["webhook.test", "user.created"]
                .iter()
                .all(|t| r.iter().any(|x| x["type"] == *t))
        })
        .await;
    assert!(seen.iter().any(|x| x["type"] == "webhook.test"), "{seen:?}");
    assert!(
        seen.iter()
            .all(|x| x["verified_with"] == serde_json::json!([0])),
        "{seen:?}"
    );

    // The deliveries, and a retry of one: it arrives again with the same id.
    let deliveries = visit
        .get(&format!("{PAGE}?deliveries={id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        deliveries.contains("webhook.test") && deliveries.contains("delivered"),
        "{deliveries}"
    );
    let api: Vec<Value> = app
        .get(
            &format!("/admin/webhooks/{id}/deliveries"),
            Some(&admin.access),
        )
        .await
        .json()
        .await
        .unwrap();
    let test = api
        .iter()
        .find(|d| d["event_type"] == "webhook.test")
        .expect("test delivery");
    let delivery_id = test["id"].as_i64().unwrap().to_string();
    let event_id = test["event_id"].as_str().unwrap().to_owned();
    let r = act(
        &mut visit,
        &[
            ("action", "retry"),
            ("endpoint_id", &id),
            ("delivery_id", &delivery_id),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let seen = receiver
        .wait_until(Duration::from_secs(15), |r| {
            r.iter().filter(|x| x["id"] == event_id).count() >= 2
        })
        .await;
    assert_eq!(
        seen.iter().filter(|x| x["id"] == event_id).count(),
        2,
        "{seen:?}"
    );

    // Rotation shows a new secret; both verify while they overlap.
    let r = act(&mut visit, &[("action", "rotate"), ("endpoint_id", &id)]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let rotated = shown_secret(&r.text().await.unwrap()).expect("new secret shown");
    assert_ne!(rotated, secret);

    // Change the events and the description; a bad URL changes nothing.
    let r = act(
        &mut visit,
        &[
            ("action", "update"),
            ("endpoint_id", &id),
            ("url", &receiver.url),
            ("events", "*"),
            ("description", "billing"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let changed = &api_endpoints(&app, &admin).await[0];
    assert_eq!(
        (changed["events"].clone(), changed["description"].clone()),
        (serde_json::json!(["*"]), "billing".into())
    );
    let r = act(
        &mut visit,
        &[
            ("action", "update"),
            ("endpoint_id", &id),
            ("url", "ftp://example.com/x"),
            ("events", "user.created"),
            ("description", ""),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let unchanged = &api_endpoints(&app, &admin).await[0];
    assert_eq!(
        (unchanged["url"].as_str(), unchanged["events"].clone()),
        (Some(receiver.url.as_str()), serde_json::json!(["*"]))
    );

    // Disable, enable, delete: the API sees each.
    let r = act(&mut visit, &[("action", "disable"), ("endpoint_id", &id)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(api_endpoints(&app, &admin).await[0]["enabled"], false);
    let r = act(&mut visit, &[("action", "enable"), ("endpoint_id", &id)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(api_endpoints(&app, &admin).await[0]["enabled"], true);
    // Unknown endpoints and actions are refused readably.
    let r = act(
        &mut visit,
        &[("action", "delete"), ("endpoint_id", "999999")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = act(&mut visit, &[("action", "explode"), ("endpoint_id", &id)]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(api_endpoints(&app, &admin).await.len(), 1);
    let r = act(&mut visit, &[("action", "delete"), ("endpoint_id", &id)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(api_endpoints(&app, &admin).await.is_empty());
}

async fn the_page_is_for_admins_and_forms_need_their_token(backend: Backend) {
    let app = spawn_app_with(backend, webhook_vars).await;
    let admin = app.admin("tokenadmin").await;
    app.verified_user("plainuser").await;
    let mut user = Visit::new(&app);
    user.sign_in("plainuser").await;
    assert_eq!(user.get(PAGE).await.status(), StatusCode::FORBIDDEN);
    let csrf = csrf_in(&user.get("/account").await.text().await.unwrap());
    let r = user
        .post(
            PAGE,
            &[
                ("action", "create"),
                ("url", "http://127.0.0.1:9/x"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let mut visit = Visit::new(&app);
    visit.sign_in("tokenadmin").await;
    let r = visit
        .post(
            PAGE,
            &[
                ("action", "create"),
                ("url", "http://127.0.0.1:9/x"),
                ("csrf", "forged"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(api_endpoints(&app, &admin).await.is_empty());
}
