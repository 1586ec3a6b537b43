//! How the HTTP server treats connections and browsers: the slow-client limits (header
//! read timeout, idle timeout, connection cap) and the CORS origins.

use std::time::Duration;

use axum::http::{HeaderValue, Uri};

use super::{err, ConfigError, Vars};

/// Above this many open connections the server stops accepting; new ones wait in the
/// kernel's backlog until a slot frees.
const MAX_CONNECTIONS_CEILING: usize = 10_000;
/// File descriptors kept for the database pool, logs, mail and the listener itself.
const RESERVED_DESCRIPTORS: u64 = 64;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Time a client has to send a complete request head, counted from the moment the
    /// server starts waiting for it (connection opened, or previous response sent): it
    /// also ends idle keep-alive connections.
    pub header_read_timeout: Duration,
    /// A connection on which no byte moves either way for this long is closed (a stalled
    /// upload, a client that stopped reading its response).
    pub idle_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    pub cors: CorsPolicy,
}

/// Which browser origins may call the API from scripts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsPolicy {
    /// No CORS headers at all (the default).
    Off,
    /// `CORS_ORIGINS=*`: any origin, never with credentials.
    AnyOrigin,
    /// These origins exactly (normalised: lowercase, no trailing slash, no default port).
    Origins(Vec<HeaderValue>),
}

impl ServerConfig {
    pub(super) fn from_vars<F: Fn(&str) -> Option<String>>(
        vars: &Vars<F>,
        db_max_connections: u32,
    ) -> Result<Self, ConfigError> {
        let header_read_timeout = seconds(vars, "HTTP_HEADER_READ_TIMEOUT_SECONDS", 10)?;
        let idle_timeout = seconds(vars, "HTTP_IDLE_TIMEOUT_SECONDS", 60)?;
        let max_connections = match vars.string("MAX_CONNECTIONS") {
            None => default_max_connections(db_max_connections),
            Some(_) => vars.parse("MAX_CONNECTIONS", 0usize)?,
        };
        if !(1..=1_000_000).contains(&max_connections) {
            return Err(err(format!(
                "MAX_CONNECTIONS={max_connections} must be between 1 and 1000000"
            )));
        }
        Ok(Self {
            header_read_timeout,
            idle_timeout,
            max_connections,
            cors: parse_cors(&vars.list("CORS_ORIGINS"))?,
        })
    }
}

fn seconds<F: Fn(&str) -> Option<String>>(
    vars: &Vars<F>,
    name: &str,
    default: u64,
) -> Result<Duration, ConfigError> {
    let value: u64 = vars.parse(name, default)?;
    if !(1..=3600).contains(&value) {
        return Err(err(format!(
            "{name}={value} must be between 1 and 3600 seconds"
        )));
    }
    Ok(Duration::from_secs(value))
}

/// What the process may open (its soft file-descriptor limit) minus what the rest of the
/// service needs, at most `MAX_CONNECTIONS_CEILING`: so a flood of connections meets the
/// cap before the process runs out of descriptors.
fn default_max_connections(db_max_connections: u32) -> usize {
    let reserved = RESERVED_DESCRIPTORS + u64::from(db_max_connections);
    let available = open_files_limit()
        .map(|limit| limit.saturating_sub(reserved))
        .unwrap_or(MAX_CONNECTIONS_CEILING as u64);
    (available as usize).clamp(16, MAX_CONNECTIONS_CEILING)
}

/// The soft RLIMIT_NOFILE, when there is one.
fn open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes into the struct we pass.
        let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
        // rlim_t is u64 on Linux but not on every unix.
        #[allow(clippy::unnecessary_cast)]
        (ok && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur as u64)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// `*` alone, or a list of `scheme://host[:port]` origins. Anything else is refused at
/// start rather than silently never matching.
pub(super) fn parse_cors(raw: &[String]) -> Result<CorsPolicy, ConfigError> {
    if raw.is_empty() {
        return Ok(CorsPolicy::Off);
    }
    if raw.iter().any(|o| o == "*") {
        if raw.len() > 1 {
            return Err(err(
                "CORS_ORIGINS: `*` (any origin) cannot be combined with other origins",
            ));
        }
        return Ok(CorsPolicy::AnyOrigin);
    }
    let mut origins = Vec::with_capacity(raw.len());
    for origin in raw {
        let normalised = normalise_origin(origin).map_err(|why| {
            err(format!(
                "CORS_ORIGINS: {origin:?} is not an origin ({why}); write it as scheme://host[:port], e.g. https://app.example.com"
            ))
        })?;
        if !origins.contains(&normalised) {
            origins.push(normalised);
        }
    }
    Ok(CorsPolicy::Origins(origins))
}

/// The form a browser sends in `Origin`: lowercase scheme and host, the port only when it
/// is not the scheme's default, no path. A single trailing slash is forgiven.
fn normalise_origin(raw: &str) -> Result<HeaderValue, &'static str> {
    let trimmed = raw.strip_suffix('/').unwrap_or(raw);
    if trimmed.ends_with('/') {
        return Err("an origin has no path");
    }
    let uri: Uri = trimmed.parse().map_err(|_| "not a URL")?;
    let scheme = uri
        .scheme_str()
        .map(str::to_ascii_lowercase)
        .ok_or("no scheme")?;
    if scheme != "http" && scheme != "https" {
        return Err("the scheme must be http or https");
    }
    let authority = uri.authority().ok_or("no host")?;
    if authority.as_str().contains('@') {
        return Err("user information is not part of an origin");
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err("an origin has no path or query");
    }
    let host = authority.host().to_ascii_lowercase();
    if host.is_empty() {
        return Err("no host");
    }
    let default_port = if scheme == "https" { 443 } else { 80 };
    let origin = match authority.port_u16() {
        Some(port) if port != default_port => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    };
    HeaderValue::from_str(&origin).map_err(|_| "not a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(raw: &[&str]) -> Result<CorsPolicy, ConfigError> {
        parse_cors(&raw.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    fn origins(raw: &[&str]) -> Vec<String> {
        match cors(raw).unwrap() {
            CorsPolicy::Origins(list) => list
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect(),
            other => panic!("expected origins, got {other:?}"),
        }
    }

    #[test]
    fn origins_are_normalised() {
        assert_eq!(
            origins(&[
                "https://App.Example.com/",
                "http://localhost:3000",
                "https://x.test:443"
            ]),
            [
                "https://app.example.com",
                "http://localhost:3000",
                "https://x.test"
            ]
        );
        assert_eq!(
            origins(&["https://a.test", "https://a.test/"]),
            ["https://a.test"]
        );
    }

    #[test]
    fn star_means_any_origin_alone() {
        assert_eq!(cors(&["*"]).unwrap(), CorsPolicy::AnyOrigin);
        assert_eq!(cors(&[]).unwrap(), CorsPolicy::Off);
        assert!(cors(&["*", "https://a.test"]).is_err());
    }

    #[test]
    fn malformed_origins_are_refused_naming_the_variable() {
        for bad in [
            "app.example.com",
            "https://app.example.com/path",
            "https://app.example.com/?q=1",
            "ftp://app.example.com",
            "https://user@app.example.com",
            "https://",
            "null",
            "https://app.example.com//",
        ] {
            let e = cors(&[bad]).expect_err(bad);
            assert!(e.to_string().contains("CORS_ORIGINS"), "{e}");
        }
    }
}
