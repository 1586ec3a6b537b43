//! No server-side request forgery (DESIGN §16): endpoint URLs are `https://` in production,
//! and the addresses a name resolves to are filtered at connect time by the client's own
//! resolver, so a name that resolves to 127.0.0.1 is never connected to. Literal IPs are
//! checked before the request (reqwest does not resolve them).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Loopback, private, link-local, unique-local, unspecified, shared, broadcast,
/// documentation and multicast addresses, and IPv4-mapped/compatible IPv6 forms of them.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4);
            }
            let s = v6.segments();
            // IPv4-compatible (::a.b.c.d, deprecated) and NAT64 (64:ff9b::/96) embed IPv4.
            if s[..6] == [0, 0, 0, 0, 0, 0] || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let v4 =
                    Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
                return forbidden_v4(v4);
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared address space 100.64/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18/15
        || o[0] >= 240
}

/// Why a URL may not be an endpoint, or `None`.
pub fn url_problem(url: &str, production: bool, allow_private: bool) -> Option<String> {
    let parsed = match reqwest::Url::parse(url) {
        Ok(u) => u,
        Err(_) => return Some("url must be an absolute http(s) URL".into()),
    };
    match parsed.scheme() {
        "https" => {}
        "http" if !production => {}
        "http" => return Some("url must use https:// in production".into()),
        _ => return Some("url must use https:// (or http:// outside production)".into()),
    }
    if url.len() > 2048 {
        return Some("url must be at most 2048 characters".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Some("url must not carry credentials".into());
    }
    let Some(host) = parsed.host_str() else {
        return Some("url must name a host".into());
    };
    let literal: Option<IpAddr> = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok();
    if let Some(ip) = literal {
        if !allow_private && is_forbidden(ip) {
            return Some("url must not point at a private, loopback or link-local address".into());
        }
    }
    None
}

/// The client's resolver: the system's, minus forbidden addresses.
pub struct PublicOnlyResolver;

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| !is_forbidden(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!(
                    "{host} resolves only to private, loopback or link-local addresses (refused)"
                )
                .into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_addresses() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(is_forbidden(a.parse().unwrap()), "{a}");
        }
        for a in ["93.184.216.34", "2606:4700::1111", "::ffff:93.184.216.34"] {
            assert!(!is_forbidden(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn urls() {
        assert!(url_problem("http://example.com/h", true, false).is_some());
        assert!(url_problem("https://example.com/h", true, false).is_none());
        assert!(url_problem("http://example.com/h", false, false).is_none());
        assert!(url_problem("ftp://example.com/h", false, false).is_some());
        assert!(url_problem("https://[::ffff:127.0.0.1]/", true, false).is_some());
        assert!(url_problem("https://10.0.0.1/", true, false).is_some());
        assert!(url_problem("https://10.0.0.1/", true, true).is_none());
        assert!(url_problem("https://u:p@example.com/", true, false).is_some());
    }
}
