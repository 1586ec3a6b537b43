//! Who is asking: the socket peer, unless that peer is a trusted proxy, in which case the
//! right-most address in X-Forwarded-For that is not itself a trusted proxy.

use std::net::IpAddr;

use ipnet::IpNet;

/// Parses TRUSTED_PROXIES entries: CIDRs ("10.0.0.0/8") or single addresses.
pub fn parse_trusted(entries: &[String]) -> Result<Vec<IpNet>, String> {
    entries
        .iter()
        .map(|e| {
            e.parse::<IpNet>()
                .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("TRUSTED_PROXIES: {e:?} is not an address or CIDR"))
        })
        .collect()
}

pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(header) = forwarded_for else {
        return peer;
    };
    let mut nearest = peer;
    for entry in header.split(',').rev() {
        let Some(ip) = parse_entry(entry) else {
            // Garbage in the chain: trust nothing left of it.
            return nearest;
        };
        if !is_trusted(&ip) {
            return ip;
        }
        nearest = ip;
    }
    nearest
}

/// An X-Forwarded-For entry: an address, possibly with a port ("1.2.3.4:5", "[::1]:5").
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse()
        .ok()
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|rest| rest.split(']').next())
                .and_then(|ip| ip.parse().ok())
        })
        .or_else(|| entry.rsplit_once(':').and_then(|(ip, _)| ip.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peers_are_taken_as_they_are() {
        let trusted = parse_trusted(&["10.0.0.0/8".into()]).unwrap();
        assert_eq!(
            client_ip(ip("203.0.113.9"), Some("1.1.1.1"), &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(client_ip(ip("203.0.113.9"), None, &[]), ip("203.0.113.9"));
    }

    #[test]
    fn trusted_peers_yield_the_rightmost_untrusted_entry() {
        let trusted = parse_trusted(&["10.0.0.0/8".into(), "192.168.1.1".into()]).unwrap();
        let peer = ip("10.0.0.5");
        assert_eq!(
            client_ip(peer, Some("6.6.6.6, 1.2.3.4, 10.1.1.1"), &trusted),
            ip("1.2.3.4")
        );
        assert_eq!(
            client_ip(peer, Some("1.2.3.4:5555"), &trusted),
            ip("1.2.3.4")
        );
        assert_eq!(
            client_ip(peer, Some("[2001:db8::1]:443"), &trusted),
            ip("2001:db8::1")
        );
        assert_eq!(client_ip(peer, None, &trusted), peer);
        assert_eq!(client_ip(peer, Some("10.2.2.2"), &trusted), ip("10.2.2.2"));
        assert_eq!(
            client_ip(peer, Some("1.2.3.4, garbage, 10.9.9.9"), &trusted),
            ip("10.9.9.9")
        );
    }

    #[test]
    fn bad_entries_are_configuration_errors() {
        assert!(parse_trusted(&["not-an-ip".into()]).is_err());
        assert!(parse_trusted(&["10.0.0.0/33".into()]).is_err());
    }
}
