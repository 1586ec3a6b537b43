//! Multi-host PostgreSQL URLs, libpq style, as `pg_autoctl show uri` prints them:
//! `postgres://user:pw@h1:5432,h2:5433/auth?target_session_attrs=read-write`. sqlx parses
//! one host only (its issue 2290), so the host list is split here into one sqlx option set
//! per host; the rest of the URL (user, password, database, sslmode, ...) is sqlx's to read.
//! Messages name hosts and ports, never the password.

use std::str::FromStr;

use anyhow::bail;
use sqlx::postgres::PgConnectOptions;

/// One host of the list: printable `host:port` and the options to connect to it alone.
#[derive(Debug, Clone)]
pub struct PgHost {
    pub name: String,
    pub options: PgConnectOptions,
}

/// The hosts of DATABASE_URL, in the order given, and whether only a writable one will do.
#[derive(Debug, Clone)]
pub struct PgHosts {
    pub hosts: Vec<PgHost>,
    /// `target_session_attrs=read-write` (or `primary`): connect only where writes go.
    pub writable_only: bool,
}

impl PgHosts {
    /// True when the pool must be pointed at a host chosen by probing (and re-pointed
    /// after a failover); a plain one-host URL is handed to sqlx as it is.
    pub fn needs_probe(&self) -> bool {
        self.hosts.len() > 1 || self.writable_only
    }

    /// `h1:5432,h2:5433`, for messages.
    pub fn names(&self) -> String {
        let names: Vec<&str> = self.hosts.iter().map(|h| h.name.as_str()).collect();
        names.join(",")
    }
}

const DEFAULT_PORT: u16 = 5432;

/// Parses a `postgres://` or `postgresql://` URL with one or several hosts.
pub fn parse(url: &str) -> anyhow::Result<PgHosts> {
    let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    else {
        bail!("DATABASE_URL: not a postgres:// URL");
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, q.split('#').next().unwrap_or_default()),
        None => (rest.split('#').next().unwrap_or_default(), ""),
    };
    let (authority, path) = match before_query.find('/') {
        Some(i) => (&before_query[..i], &before_query[i..]),
        None => (before_query, ""),
    };
    let (userinfo, host_list) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };

    let mut host_param = None;
    let mut port_param = None;
    let mut writable_only = false;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "host" => host_param = Some(percent_decode(value)),
            "port" => port_param = Some(percent_decode(value)),
            "target_session_attrs" => {
                writable_only = match value {
                    "any" => false,
                    "read-write" | "primary" => true,
                    other => bail!(
                        "DATABASE_URL: target_session_attrs={other} is not supported: the \
                         service writes, so use read-write (or primary, or any)"
                    ),
                }
            }
            _ => kept.push(pair),
        }
    }

    let mut entries: Vec<(String, Option<String>)> = Vec::new();
    if let Some(hosts) = &host_param {
        // One host before the path and host= (a Unix socket directory, commonly): host=
        // wins and the port before the path still applies, as libpq and sqlx read it.
        // Several hosts before the path and host= are ambiguous.
        if host_list.contains(',') {
            bail!("DATABASE_URL: give the hosts either before the path or as host=, not both");
        }
        let authority_port = if host_list.is_empty() {
            None
        } else {
            split_host_port(host_list)?.1
        };
        for host in hosts.split(',') {
            if host.is_empty() {
                bail!("DATABASE_URL: an empty host in host={hosts}");
            }
            entries.push((host.to_owned(), authority_port.clone()));
        }
    } else if !host_list.is_empty() {
        for entry in host_list.split(',') {
            entries.push(split_host_port(entry)?);
        }
    } else {
        entries.push(("localhost".to_owned(), None));
    }

    let listed_ports: Vec<&str> = match &port_param {
        Some(p) => p.split(',').collect(),
        None => Vec::new(),
    };
    if listed_ports.len() > 1 && listed_ports.len() != entries.len() {
        bail!(
            "DATABASE_URL: port= lists {} ports for {} hosts (give one, or one per host)",
            listed_ports.len(),
            entries.len()
        );
    }

    let mut hosts = Vec::with_capacity(entries.len());
    for (i, (host, port)) in entries.into_iter().enumerate() {
        let port_text = port.or_else(|| {
            listed_ports
                .get(if listed_ports.len() == 1 { 0 } else { i })
                .map(|p| (*p).to_owned())
        });
        let port = match port_text {
            None => DEFAULT_PORT,
            Some(text) => match text.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => bail!("DATABASE_URL: host {host} has port {text:?}, not a port number"),
            },
        };
        let name = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let single = single_host_url(userinfo, &host, port, path, &kept);
        let options = PgConnectOptions::from_str(&single).map_err(|e| {
            // sqlx's message names the part it refused, not the URL; the password stays out.
            anyhow::anyhow!("DATABASE_URL: host {name}: {e}")
        })?;
        hosts.push(PgHost { name, options });
    }
    Ok(PgHosts {
        hosts,
        writable_only,
    })
}

/// `host[:port]`, `[v6addr][:port]`; an empty entry is an error naming its neighbours.
fn split_host_port(entry: &str) -> anyhow::Result<(String, Option<String>)> {
    if entry.is_empty() {
        bail!("DATABASE_URL: an empty entry in the host list");
    }
    if let Some(inner) = entry.strip_prefix('[') {
        let Some((addr, after)) = inner.split_once(']') else {
            bail!("DATABASE_URL: host {entry} opens [ without closing it");
        };
        return match after {
            "" => Ok((addr.to_owned(), None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((addr.to_owned(), Some(port.to_owned()))),
                None => bail!("DATABASE_URL: host [{addr}] is followed by {after:?}"),
            },
        };
    }
    match entry.split_once(':') {
        Some(("", _)) => bail!("DATABASE_URL: a port without a host"),
        Some((host, port)) => Ok((host.to_owned(), Some(port.to_owned()))),
        None => Ok((entry.to_owned(), None)),
    }
}

fn single_host_url(
    userinfo: Option<&str>,
    host: &str,
    port: u16,
    path: &str,
    kept: &[&str],
) -> String {
    let mut user = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
    let mut query: Vec<String> = kept.iter().map(|p| (*p).to_owned()).collect();
    let authority = if host.starts_with('/') {
        // A Unix socket directory: sqlx reads it from host=, with an empty authority, and
        // an empty authority cannot carry a user (the URL parser refuses `user@/db`), so
        // the user and password (still percent-encoded) move to the query too.
        if let Some(info) = userinfo {
            let (name, password) = match info.split_once(':') {
                Some((name, password)) => (name, Some(password)),
                None => (info, None),
            };
            query.push(format!("user={name}"));
            if let Some(password) = password {
                query.push(format!("password={password}"));
            }
            user.clear();
        }
        query.push(format!("host={host}"));
        query.push(format!("port={port}"));
        String::new()
    } else if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{}", query.join("&"))
    };
    format!("postgres://{user}{authority}{path}{query}")
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(url: &str) -> Vec<(String, u16, String)> {
        parse(url)
            .unwrap()
            .hosts
            .into_iter()
            .map(|h| {
                let o = h.options;
                (
                    o.get_host().to_owned(),
                    o.get_port(),
                    o.get_database().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn pg_autoctl_uri_with_two_hosts() {
        let url = "postgres://autoctl@127.0.0.1:55433,127.0.0.1:55434/auth?target_session_attrs=read-write&sslmode=prefer";
        let parsed = parse(url).unwrap();
        assert!(parsed.writable_only && parsed.needs_probe());
        assert_eq!(parsed.names(), "127.0.0.1:55433,127.0.0.1:55434");
        assert_eq!(
            hosts(url),
            vec![
                ("127.0.0.1".into(), 55433, "auth".into()),
                ("127.0.0.1".into(), 55434, "auth".into())
            ]
        );
        assert_eq!(parsed.hosts[1].options.get_username(), "autoctl");
    }

    #[test]
    fn a_socket_directory_in_host_wins_over_the_host_before_the_path() {
        let url = "postgres://postgres@127.0.0.1:5433/auth?host=/var/run/postgresql";
        assert_eq!(
            hosts(url),
            vec![("/var/run/postgresql".into(), 5433, "auth".into())]
        );
        let parsed = parse("postgres://al%40ice:p%3Ass@db:5432/auth?host=/run/pg").unwrap();
        let options = &parsed.hosts[0].options;
        assert_eq!(options.get_username(), "al@ice");
    }

    #[test]
    fn one_host_is_not_probed_unless_asked() {
        let parsed = parse("postgres://u:p@db/auth").unwrap();
        assert!(!parsed.needs_probe());
        assert_eq!(parsed.names(), "db:5432");
        assert!(parse("postgresql://db/auth?target_session_attrs=primary")
            .unwrap()
            .needs_probe());
        assert!(
            !parse("postgres://db/auth?target_session_attrs=any")
                .unwrap()
                .writable_only
        );
    }

    #[test]
    fn hosts_without_ports_use_port_param_or_default() {
        assert_eq!(
            hosts("postgres://a,b:6000/x"),
            vec![
                ("a".into(), 5432, "x".into()),
                ("b".into(), 6000, "x".into())
            ]
        );
        assert_eq!(
            hosts("postgres://a,b/x?port=7000"),
            vec![
                ("a".into(), 7000, "x".into()),
                ("b".into(), 7000, "x".into())
            ]
        );
        assert_eq!(
            hosts("postgres:///x?host=a,b&port=1,2"),
            vec![("a".into(), 1, "x".into()), ("b".into(), 2, "x".into())]
        );
    }

    #[test]
    fn ipv6_and_unix_socket_hosts() {
        let parsed = parse("postgres://u@[::1]:5433,[fe80::2]/d").unwrap();
        assert_eq!(parsed.names(), "[::1]:5433,[fe80::2]:5432");
        let parsed = parse("postgres:///d?host=%2Fvar%2Frun%2Fpostgresql").unwrap();
        assert_eq!(parsed.names(), "/var/run/postgresql:5432");
        assert!(parsed.hosts[0].options.get_socket().is_some());
    }

    #[test]
    fn password_and_other_parameters_reach_every_host() {
        let parsed =
            parse("postgres://u:s%40cret@a:1,b:2/d?sslmode=disable&application_name=x").unwrap();
        for host in &parsed.hosts {
            assert_eq!(host.options.get_username(), "u");
            assert_eq!(host.options.get_database(), Some("d"));
        }
    }

    #[test]
    fn bad_urls_name_the_host_never_the_password() {
        for (url, expected) in [
            ("postgres://u:hunter2@a:1,b:notaport/d", "host b has port"),
            ("postgres://u:hunter2@a:1,,b:2/d", "empty entry"),
            ("postgres://u:hunter2@a:99999/d", "host a has port"),
            ("postgres://u:hunter2@[::1:5432/d", "opens ["),
            ("postgres://u:hunter2@:5432/d", "port without a host"),
            (
                "postgres://u:hunter2@a,b,c/d?port=1,2",
                "2 ports for 3 hosts",
            ),
            (
                "postgres://u:hunter2@a/d?target_session_attrs=read-only",
                "not supported",
            ),
            ("postgres://u:hunter2@a,c/d?host=b", "not both"),
            ("mysql://u:hunter2@a/d", "not a postgres"),
        ] {
            let message = format!("{:#}", parse(url).unwrap_err());
            assert!(message.contains(expected), "{url}: {message}");
            assert!(!message.contains("hunter2"), "{url}: {message}");
        }
    }
}
