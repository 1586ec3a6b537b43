//! Response headers: browser hardening everywhere, no caching of tokens, a CSP on /docs
//! that still lets the vendored Swagger UI load, and request ids that are safe to echo.

use reqwest::{Response, StatusCode};
use serde_json::json;

use crate::helpers::*;

fn header(r: &Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

fn assert_hardened(r: &Response, what: &str) {
    assert_eq!(
        header(r, "x-content-type-options").as_deref(),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(
        header(r, "x-frame-options").as_deref(),
        Some("DENY"),
        "{what}"
    );
    assert_eq!(
        header(r, "referrer-policy").as_deref(),
        Some("no-referrer"),
        "{what}"
    );
}

fn assert_no_store(r: &Response, what: &str) {
    assert_eq!(
        header(r, "cache-control").as_deref(),
        Some("no-store"),
        "{what}"
    );
    assert_eq!(header(r, "pragma").as_deref(), Some("no-cache"), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_the_hardening_headers() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.register("hdr_user").await;
    let responses = [
        ("health", app.get("/health", None).await),
        ("me", app.get("/auth/me", Some(&user.access)).await),
        ("401", app.get("/auth/me", Some("not-a-token")).await),
        ("404", app.get("/no/such/path", None).await),
        ("405", app.delete("/health", None).await),
        ("422", app.post("/auth/register", &json!({}), None).await),
        ("docs asset", app.get("/docs/swagger-ui.css", None).await),
        ("openapi", app.get("/openapi.json", None).await),
    ];
    for (what, r) in &responses {
        assert_hardened(r, what);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_responses_are_not_stored() {
    let app = spawn_app(Backend::Sqlite).await;
    let r = app
        .register_raw("nostore", "nostore@example.com", PASSWORD)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_no_store(&r, "register");
    let r = app.login_raw("nostore", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_no_store(&r, "login");
    let refresh = json_of(r).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .post("/auth/refresh", &json!({"refresh_token": refresh}), None)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_no_store(&r, "refresh");
    // Not forced onto everything: a plain read keeps its own caching headers.
    let r = app.get("/health", None).await;
    assert_ne!(header(&r, "cache-control").as_deref(), Some("no-store"));
}

/// The attribute values `name="..."` in `html`.
fn attribute_values(html: &str, name: &str) -> Vec<String> {
    let marker = format!("{name}=\"");
    html.match_indices(&marker)
        .map(|(i, _)| {
            let rest = &html[i + marker.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_page_has_a_csp_that_lets_its_own_assets_load() {
    let app = spawn_app(Backend::Sqlite).await;
    let r = app.get("/docs", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_hardened(&r, "docs");
    let csp = header(&r, "content-security-policy").expect("/docs carries a CSP");
    let directive = |name: &str| {
        csp.split(';')
            .map(str::trim)
            .find(|d| d.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in {csp}"))
            .to_owned()
    };
    let scripts = directive("script-src");
    assert!(
        scripts.contains("'self'") && !scripts.contains("unsafe"),
        "{scripts}"
    );
    assert!(directive("style-src").contains("'self'"));
    assert!(
        directive("connect-src").contains("'self'"),
        "the UI fetches /openapi.json"
    );
    assert!(directive("frame-ancestors").contains("'none'"));
    let html = r.text().await.unwrap();

    // No inline script: every <script> has a src.
    assert_eq!(
        html.matches("<script").count(),
        html.matches("<script src=").count(),
        "inline script in {html}"
    );
    let assets: Vec<String> = attribute_values(&html, "src")
        .into_iter()
        .chain(attribute_values(&html, "href"))
        .collect();
    assert!(assets.len() >= 3, "{html}");
    for asset in &assets {
        assert!(
            asset.starts_with('/') && !asset.starts_with("//"),
            "{asset} is not same-origin"
        );
        let r = app.get(asset, None).await;
        assert_eq!(r.status(), StatusCode::OK, "{asset}");
        let kind = header(&r, "content-type").unwrap_or_default();
        let expected = if asset.ends_with(".css") {
            "text/css"
        } else {
            "javascript"
        };
        assert!(kind.contains(expected), "{asset}: {kind}");
    }
    // The starter script loads the document from this origin, which is there.
    let starter = app
        .get("/docs/swagger-initializer.js", None)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        starter.contains("SwaggerUIBundle") && starter.contains("dataset.spec"),
        "{starter}"
    );
    assert!(html.contains(r#"data-spec="/openapi.json""#), "{html}");
    assert_eq!(
        app.get("/openapi.json", None).await.status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_short_plain_request_ids_are_echoed() {
    let app = spawn_app(Backend::Sqlite).await;
    let with_id = |id: String| {
        let request = app
            .client
            .get(app.url("/health"))
            .header("x-request-id", id);
        async move { request.send().await.unwrap() }
    };
    for good in ["abc-123_DEF.4".to_owned(), "a".repeat(64)] {
        let r = with_id(good.clone()).await;
        assert_eq!(header(&r, "x-request-id"), Some(good));
    }
    for bad in [
        "a".repeat(65),
        "abc def".to_owned(),
        "<script>alert(1)</script>".to_owned(),
        "id\"quoted".to_owned(),
        "a/b".to_owned(),
    ] {
        let r = with_id(bad.clone()).await;
        let echoed = header(&r, "x-request-id").expect("a request id is always set");
        assert_ne!(echoed, bad);
        assert!(
            uuid::Uuid::parse_str(&echoed).is_ok(),
            "a fresh id replaces {bad:?}: {echoed}"
        );
    }
}
