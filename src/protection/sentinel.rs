//! `REDIS_URL=redis+sentinel://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB]`:
//! the sentinels are asked which server is the master of MASTER_NAME (redis crate's
//! `SentinelClient`); the password and database are the master's. After a failover the
//! circuit (`circuit.rs`) drops its connection and asks the sentinels again.

use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{Client, ConnectionAddr, RedisConnectionInfo};

pub const SCHEME: &str = "redis+sentinel://";

pub fn is_sentinel_url(url: &str) -> bool {
    url.starts_with(SCHEME)
}

/// The parts of a Sentinel URL. Messages name hosts, never the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelUrl {
    pub sentinels: Vec<(String, u16)>,
    pub master_name: String,
    pub db: i64,
    pub username: Option<String>,
    pub password: Option<String>,
}

const DEFAULT_SENTINEL_PORT: u16 = 26379;

pub fn parse(url: &str) -> Result<SentinelUrl, String> {
    let rest = url
        .strip_prefix(SCHEME)
        .ok_or_else(|| format!("not a {SCHEME} URL"))?;
    let rest = rest.split('?').next().unwrap_or(rest);
    let (authority, path) = rest
        .split_once('/')
        .ok_or("the master's name is missing: redis+sentinel://HOST:PORT/MASTER_NAME")?;
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    let (username, password) = match userinfo {
        None => (None, None),
        Some(info) => match info.split_once(':') {
            Some((user, pass)) => (
                (!user.is_empty()).then(|| user.to_owned()),
                Some(pass.to_owned()),
            ),
            None => (Some(info.to_owned()), None),
        },
    };
    let mut sentinels = Vec::new();
    for entry in hosts.split(',') {
        if entry.is_empty() {
            return Err("an empty host in the sentinel list".into());
        }
        let (host, port) = match entry.rsplit_once(':') {
            Some((host, port)) => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("sentinel {host} has port {port:?}, not a port"))?;
                (host, port)
            }
            None => (entry, DEFAULT_SENTINEL_PORT),
        };
        sentinels.push((host.trim_matches(['[', ']']).to_owned(), port));
    }
    let mut segments = path.split('/');
    let master_name = segments.next().unwrap_or_default().to_owned();
    if master_name.is_empty() {
        return Err("the master's name is missing: redis+sentinel://HOST:PORT/MASTER_NAME".into());
    }
    let db = match segments.next() {
        None | Some("") => 0,
        Some(db) => db
            .parse()
            .map_err(|_| format!("database {db:?} is not a number"))?,
    };
    Ok(SentinelUrl {
        sentinels,
        master_name,
        db,
        username,
        password,
    })
}

/// Asks the sentinels for the current master and returns a client for it.
pub async fn master_client(url: &str) -> redis::RedisResult<Client> {
    let parsed = parse(url).map_err(|why| {
        redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "REDIS_URL", why))
    })?;
    let nodes: Vec<redis::ConnectionInfo> = parsed
        .sentinels
        .iter()
        .map(|(host, port)| redis::ConnectionInfo {
            addr: ConnectionAddr::Tcp(host.clone(), *port),
            redis: RedisConnectionInfo::default(),
        })
        .collect();
    let node_info = SentinelNodeConnectionInfo {
        tls_mode: None,
        redis_connection_info: Some(RedisConnectionInfo {
            db: parsed.db,
            username: parsed.username,
            password: parsed.password,
            ..RedisConnectionInfo::default()
        }),
    };
    let mut client = SentinelClient::build(
        nodes,
        parsed.master_name,
        Some(node_info),
        SentinelServerType::Master,
    )?;
    client.async_get_client().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls() {
        let u = parse("redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster").unwrap();
        assert_eq!(
            u.sentinels,
            vec![("127.0.0.1".into(), 26379), ("127.0.0.1".into(), 26380)]
        );
        assert_eq!((u.master_name.as_str(), u.db), ("mymaster", 0));
        let u = parse("redis+sentinel://:pw@s1,s2:1/m/3").unwrap();
        assert_eq!(u.sentinels[0], ("s1".into(), 26379));
        assert_eq!(
            (u.db, u.password.as_deref(), u.username),
            (3, Some("pw"), None)
        );
    }

    #[test]
    fn bad_sentinel_urls_say_why_without_the_password() {
        for (url, expected) in [
            ("redis+sentinel://h:1", "master's name"),
            ("redis+sentinel://h:1/", "master's name"),
            ("redis+sentinel://:secret@h:x/m", "not a port"),
            ("redis+sentinel://:secret@h,,i/m", "empty host"),
            ("redis+sentinel://h/m/x", "not a number"),
        ] {
            let why = parse(url).unwrap_err();
            assert!(why.contains(expected), "{url}: {why}");
            assert!(!why.contains("secret"), "{url}: {why}");
        }
    }
}
