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

/// Why a form was refused, in words for the person who sent it (DESIGN §11): an address
/// that does not match PUBLIC_URL (or the Host a proxy passed on) is a setup problem
/// when the browser reached this very server at that address, and the text says which
/// setting to change; otherwise it is a stale page or a post from another site.
pub fn refusal_reason(config: &Config, headers: &HeaderMap, token_ok: bool) -> String {
    const RETRY: &str = "Go back, reload the page and try again.";
    if !same_origin(config, headers) {
        let source = headers
            .get(header::ORIGIN)
            .or_else(|| headers.get(header::REFERER))
            .and_then(|v| v.to_str().ok())
            .and_then(|s| Some((scheme_of(s)?, authority_of(s)?)));
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        let Some((scheme, authority)) = source else {
            return format!("The form was sent from a page this service cannot identify. {RETRY}");
        };
        let origin = format!("{scheme}://{authority}");
        let reached_directly = host.is_some_and(|h| h.eq_ignore_ascii_case(authority));
        return match (&config.web.public_url, reached_directly) {
            (Some(public), true) => format!(
                "This page was opened at {origin}, but the service's address is {public} \
                 (PUBLIC_URL). Open {public} and sign in there; if {origin} is the right \
                 address, whoever runs the service should set PUBLIC_URL to it."
            ),
            (None, false) if host.is_some() => format!(
                "This page was opened at {origin}, but the request reached the service under \
                 another name (a proxy in between?). Whoever runs the service should set \
                 PUBLIC_URL to {origin}."
            ),
            _ => format!("The form was sent from another site ({origin}). {RETRY}"),
        };
    }
    let _ = token_ok; // the only other reason a form is refused
    format!(
        "The form's security token is missing or out of date: the page was open a long \
         time, you signed in or out elsewhere, or your browser did not send back this \
         site's cookie. {RETRY}"
    )
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

    #[test]
    fn refusals_say_which_address_to_use() {
        let public = config(Some("http://localhost:8080"));
        let direct = headers(&[
            (header::ORIGIN, "http://127.0.0.1:8080"),
            (header::HOST, "127.0.0.1:8080"),
        ]);
        let text = refusal_reason(&public, &direct, true);
        assert!(text.contains("Open http://localhost:8080"), "{text}");
        assert!(text.contains("PUBLIC_URL"), "{text}");
        // A post from another site is not a setup problem: no advice to change settings.
        let foreign = headers(&[
            (header::ORIGIN, "https://evil.example"),
            (header::HOST, "localhost:8080"),
        ]);
        let text = refusal_reason(&public, &foreign, true);
        assert!(text.contains("another site"), "{text}");
        assert!(!text.contains("set PUBLIC_URL"), "{text}");
        // No PUBLIC_URL, and a proxy passed on another Host: name the setting.
        let proxied = headers(&[
            (header::ORIGIN, "https://auth.example.com"),
            (header::HOST, "backend:8080"),
        ]);
        let text = refusal_reason(&config(None), &proxied, true);
        assert!(
            text.contains("set PUBLIC_URL to https://auth.example.com"),
            "{text}"
        );
        // Same origin, bad token: a stale page.
        let same = headers(&[
            (header::ORIGIN, "http://localhost:8080"),
            (header::HOST, "localhost:8080"),
        ]);
        let text = refusal_reason(&public, &same, false);
        assert!(text.contains("security token"), "{text}");
    }
}
