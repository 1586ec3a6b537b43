//! The service's own web pages (DESIGN §11): server-rendered HTML over the same services
//! as the API, a cookie session on the sessions table (`session.rs`), CSRF-protected forms
//! (`csrf.rs`). Templates and the stylesheet are compiled into the binary.

pub mod csrf;
mod pages;
mod render;
pub mod session;

use std::sync::LazyLock;

use axum::extract::{Path, Request};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

use crate::state::AppState;

pub use render::{FormErrors, Page};

const STYLESHEET: &str = include_str!("../../static/app.css");
/// 16×16, the accent colour; browsers ask for /favicon.ico on every page.
const FAVICON: &[u8] = include_bytes!("../../static/favicon.ico");

/// The stylesheet's URL carries a hash of its content, so it can be cached for a year and
/// a new build is fetched at once.
static STYLESHEET_NAME: LazyLock<String> = LazyLock::new(|| {
    let digest = hex::encode(Sha256::digest(STYLESHEET.as_bytes()));
    format!("app.{}.css", &digest[..12])
});

pub fn stylesheet_url() -> String {
    format!("/static/{}", *STYLESHEET_NAME)
}

/// The pages' routes; empty when WEB_UI=false (their paths then answer 404).
pub fn router(state: &AppState) -> Router<AppState> {
    if !state.config.web.enabled {
        return Router::new();
    }
    // Parse every template now: a broken one stops the start, not a request.
    render::templates();
    pages::router()
        .route("/static/{file}", get(static_file))
        .route("/favicon.ico", get(favicon))
        .layer(axum::middleware::from_fn(page_headers))
}

async fn favicon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/x-icon"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        FAVICON,
    )
        .into_response()
}

/// The 404 for a browser (it asked for HTML) on an unknown address, when the pages are
/// on: a page with a way back instead of the API's JSON error.
pub fn not_found_page(state: &AppState, request: &axum::http::request::Parts) -> Option<Response> {
    let wants_html = request
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if !state.config.web.enabled || request.method != axum::http::Method::GET || !wants_html {
        return None;
    }
    let mut response = Page::new("message.html")
        .status(StatusCode::NOT_FOUND)
        .with("title", "Page not found")
        .with("text", "There is no page at this address.")
        .with("link", ("/", "Go to the start page"))
        .into_response();
    add_page_headers(response.headers_mut());
    Some(response)
}

async fn static_file(Path(file): Path<String>) -> Response {
    if file != *STYLESHEET_NAME {
        return StatusCode::NOT_FOUND.into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        STYLESHEET,
    )
        .into_response()
}

const CSP: &str = "default-src 'self'; frame-ancestors 'none'; form-action 'self'; \
                   base-uri 'none'; object-src 'none'";

/// The policy of a page whose forms end in a redirect to another site (a sign-in
/// provider, Stripe Checkout): Chromium and Safari check `form-action` against the
/// redirect a form post answers with, not only against the form's own action, so those
/// origins are named next to 'self'. Only origins (scheme, host, port) are kept; anything
/// that is not an absolute http(s) URL is left out.
pub fn csp_with_form_targets<'a>(targets: impl IntoIterator<Item = &'a str>) -> HeaderValue {
    let mut origins: Vec<String> = Vec::new();
    for target in targets {
        let Ok(url) = reqwest::Url::parse(target) else {
            continue;
        };
        if !matches!(url.scheme(), "http" | "https") {
            continue;
        }
        let origin = url.origin().ascii_serialization();
        if origin != "null" && !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    if origins.is_empty() {
        return HeaderValue::from_static(CSP);
    }
    let policy = CSP.replace(
        "form-action 'self'",
        &format!("form-action 'self' {}", origins.join(" ")),
    );
    // Serialised origins are plain ASCII without separators: always a valid value.
    HeaderValue::from_str(&policy).unwrap_or_else(|_| HeaderValue::from_static(CSP))
}

/// Sets the page's policy to `csp_with_form_targets(targets)`.
pub fn allow_form_targets<'a>(
    mut response: Response,
    targets: impl IntoIterator<Item = &'a str>,
) -> Response {
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        csp_with_form_targets(targets),
    );
    response
}

/// Headers on every page: no framing, no inline script, no caching of pages that show
/// personal data and CSRF tokens, no Referer leaking a mailed link's query.
async fn page_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    add_page_headers(response.headers_mut());
    response
}

fn add_page_headers(headers: &mut axum::http::HeaderMap) {
    let set = |headers: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str| {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    };
    set(headers, header::CONTENT_SECURITY_POLICY, CSP);
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // Not "no-referrer": with it browsers send `Origin: null` on form posts.
    set(headers, header::REFERRER_POLICY, "same-origin");
    set(headers, header::CACHE_CONTROL, "no-store");
}
