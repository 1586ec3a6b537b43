//! Cross-site request forgery defence for the pages' forms, in two independent layers:
//! every state-changing form carries a token bound to the browser (an HMAC with SECRET_KEY
//! of the session id, or of a random pre-session cookie before sign-in), and the request's
//! Origin (else Referer) must be this site. SameSite=Lax cookies are a third layer.

use axum::http::{header, HeaderMap};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::Config;

type HmacSha256 = Hmac<Sha256>;

/// What a token is bound to: a signed-in browser's session, or a visitor's pre-session cookie.
pub enum Binding<'a> {
    Session(&'a str),
    Visitor(&'a str),
}

fn mac(config: &Config, binding: &Binding<'_>) -> HmacSha256 {
    let (kind, value) = match binding {
        Binding::Session(id) => ("session", *id),
        Binding::Visitor(id) => ("visitor", *id),
    };
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = HmacSha256::new_from_slice(config.secret_key.expose().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(b"auth-service web csrf\0");
    mac.update(kind.as_bytes());
    mac.update(b"\0");
    mac.update(value.as_bytes());
    mac
}

pub fn token(config: &Config, binding: &Binding<'_>) -> String {
    hex::encode(mac(config, binding).finalize().into_bytes())
}

pub fn token_matches(config: &Config, binding: &Binding<'_>, presented: &str) -> bool {
    let expected = token(config, binding);
    presented.len() == expected.len() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

/// The request comes from one of our own pages: its Origin (or, when a browser sent none,
/// its Referer) names this site. Requests with neither (not a browser) rely on the token.
pub fn same_origin(config: &Config, headers: &HeaderMap) -> bool {
    let source = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    let Some(source) = source else {
        return true;
    };
    let Some(authority) = authority_of(source) else {
        // "null" (sandboxed frames, some redirects) or garbage.
        return false;
    };
    match &config.web.public_url {
        Some(public) => {
            authority_of(public) == Some(authority) && scheme_of(public) == scheme_of(source)
        }
        None => headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|host| host.eq_ignore_ascii_case(authority)),
    }
}

fn scheme_of(url: &str) -> Option<&str> {
    url.split_once("://").map(|(scheme, _)| scheme)
}

/// `host[:port]` of an absolute http(s) URL.
fn authority_of(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    if !matches!(scheme, "http" | "https") {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    (!authority.is_empty() && !authority.contains('@')).then_some(authority)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn config(public_url: Option<&str>) -> Config {
        let mut vars = vec![("SECRET_KEY", "k".repeat(32))];
        if let Some(url) = public_url {
            vars.push(("PUBLIC_URL", url.to_owned()));
        }
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        })
        .unwrap()
    }

    #[test]
    fn tokens_are_bound_to_their_session() {
        let c = config(None);
        let t = token(&c, &Binding::Session("a"));
        assert!(token_matches(&c, &Binding::Session("a"), &t));
        assert!(!token_matches(&c, &Binding::Session("b"), &t));
        assert!(!token_matches(&c, &Binding::Visitor("a"), &t));
        assert!(!token_matches(&c, &Binding::Session("a"), ""));
        assert!(!token_matches(&c, &Binding::Session("a"), &t[1..]));
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn origin_must_be_this_site() {
        let c = config(None);
        let host = (header::HOST, "127.0.0.1:8080");
        assert!(same_origin(
            &c,
            &headers(&[host.clone(), (header::ORIGIN, "http://127.0.0.1:8080")])
        ));
        assert!(!same_origin(
            &c,
            &headers(&[host.clone(), (header::ORIGIN, "http://evil.test")])
        ));
        assert!(!same_origin(
            &c,
            &headers(&[host.clone(), (header::ORIGIN, "null")])
        ));
        assert!(same_origin(
            &c,
            &headers(&[
                host.clone(),
                (header::REFERER, "http://127.0.0.1:8080/login?x")
            ])
        ));
        assert!(!same_origin(
            &c,
            &headers(&[
                host.clone(),
                (header::REFERER, "http://127.0.0.1:8080.evil.test/")
            ])
        ));
        assert!(same_origin(&c, &headers(&[host])));
        let c = config(Some("https://id.example.org"));
        let host = (header::HOST, "internal:8080");
        assert!(same_origin(
            &c,
            &headers(&[host.clone(), (header::ORIGIN, "https://id.example.org")])
        ));
        assert!(!same_origin(
            &c,
            &headers(&[host, (header::ORIGIN, "http://id.example.org")])
        ));
    }
}
