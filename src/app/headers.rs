//! Headers every response carries, the CORS policy, and which request ids are believed.

use std::time::Duration;

use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::config::CorsPolicy;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A client's request id longer than this, or with other characters than
/// `[A-Za-z0-9._-]`, is replaced by a new one (it goes into logs and back into headers).
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// Browser hardening on every response. Each is set only when the handler did not set
/// its own (the docs page and web pages bring their own Content-Security-Policy).
pub fn security_headers(router: Router) -> Router {
    const DEFAULTS: [(HeaderName, &str); 4] = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        // JSON answers are never a page: nothing may load or run from them.
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ),
    ];
    DEFAULTS.into_iter().fold(router, |router, (name, value)| {
        router.layer(SetResponseHeaderLayer::if_not_present(
            name,
            HeaderValue::from_static(value),
        ))
    })
}

/// Drops a client-supplied `X-Request-ID` that is too long or has unsafe characters, so
/// the request-id layer generates a fresh one instead.
pub async fn sanitize_request_id(mut request: Request) -> Request {
    let acceptable = request
        .headers()
        .get(&X_REQUEST_ID)
        .is_none_or(|value| acceptable_request_id(value.as_bytes()));
    if !acceptable {
        request.headers_mut().remove(&X_REQUEST_ID);
    }
    request
}

fn acceptable_request_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `None` when CORS is off. `*` allows any origin, never with credentials (browsers
/// refuse that combination, and the API authenticates with headers, not cookies).
pub fn cors_layer(policy: &CorsPolicy) -> Option<CorsLayer> {
    let allow_origin = match policy {
        CorsPolicy::Off => return None,
        CorsPolicy::AnyOrigin => AllowOrigin::any(),
        CorsPolicy::Origins(origins) => AllowOrigin::list(origins.iter().cloned()),
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-api-key"),
            ])
            .expose_headers([X_REQUEST_ID.clone(), header::RETRY_AFTER])
            .max_age(Duration::from_secs(600)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_must_be_short_and_plain() {
        assert!(acceptable_request_id(b"abc-123_DEF.4"));
        assert!(acceptable_request_id(&[b'a'; MAX_REQUEST_ID_LEN]));
        assert!(!acceptable_request_id(&[b'a'; MAX_REQUEST_ID_LEN + 1]));
        assert!(!acceptable_request_id(b""));
        for bad in [
            &b"a b"[..],
            b"a\"b",
            b"<script>",
            b"a/b",
            b"a%0d",
            b"\xc3\xa9",
        ] {
            assert!(!acceptable_request_id(bad), "{bad:?}");
        }
    }
}
