//! Turns a failure to open the database into one message that names DATABASE_URL, where
//! it points (host:port and database, or the SQLite path; never the password) and the
//! cause in words, instead of sqlx's "pool timed out while waiting for an open connection".

use std::path::Path;
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;

/// Where DATABASE_URL points, printable: `postgres://USER@HOST:PORT/DB` or `sqlite://PATH`.
pub fn describe_url(url: &str) -> String {
    if url.starts_with("sqlite:") {
        return url.to_owned();
    }
    if let Ok(hosts) = super::pg_hosts::parse(url) {
        if hosts.hosts.len() > 1 {
            let o = &hosts.hosts[0].options;
            return format!(
                "postgres://{}@{}/{}",
                o.get_username(),
                hosts.names(),
                o.get_database().unwrap_or(o.get_username())
            );
        }
    }
    match PgConnectOptions::from_str(url) {
        Ok(o) => format!(
            "postgres://{}@{}:{}/{}",
            o.get_username(),
            o.get_host(),
            o.get_port(),
            o.get_database().unwrap_or(o.get_username())
        ),
        Err(_) => "postgres://(unparsable URL)".to_owned(),
    }
}

/// The connection error as the operator should read it. A pool that timed out hides
/// the reason (refused, wrong password, …): one direct attempt, bounded, recovers it.
pub async fn explain(url: &str, error: &anyhow::Error) -> anyhow::Error {
    // The multi-host path words its own message (each host and what it answered).
    if error.to_string().starts_with("DATABASE_URL:") {
        return anyhow::anyhow!("{error:#}");
    }
    let timed_out = error.chain().any(|e| {
        matches!(
            e.downcast_ref::<sqlx::Error>(),
            Some(sqlx::Error::PoolTimedOut)
        )
    });
    let mut cause = cause_of(error);
    if timed_out && !url.starts_with("sqlite:") {
        if let Ok(options) = PgConnectOptions::from_str(url) {
            use sqlx::ConnectOptions;
            let attempt =
                tokio::time::timeout(std::time::Duration::from_secs(5), options.connect()).await;
            if let Ok(Err(e)) = attempt {
                cause = cause_of(&anyhow::Error::from(e));
            }
        }
    }
    if url.starts_with("sqlite:") {
        let path = url
            .trim_start_matches("sqlite://")
            .trim_start_matches("sqlite:");
        let path = path.split('?').next().unwrap_or(path);
        return anyhow::anyhow!(
            "DATABASE_URL: cannot open or create the SQLite database {}: {cause}",
            Path::new(path).display()
        );
    }
    let (target, database) = match PgConnectOptions::from_str(url) {
        Ok(o) => (
            format!("{}:{}", o.get_host(), o.get_port()),
            o.get_database().unwrap_or(o.get_username()).to_owned(),
        ),
        Err(_) => ("(unparsable URL)".to_owned(), String::new()),
    };
    anyhow::anyhow!(
        "DATABASE_URL: cannot connect to PostgreSQL at {target} (database {database:?}): {cause}"
    )
}

/// The cause of one connection failure, in words.
pub fn cause_of_sqlx(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Io(io) => io_cause(io),
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("3D000") => "the database does not exist".to_owned(),
            Some("28P01") | Some("28000") => {
                "authentication failed (user or password refused)".to_owned()
            }
            _ => db.message().to_owned(),
        },
        other => other.to_string(),
    }
}

pub(super) fn cause_of(error: &anyhow::Error) -> String {
    for source in error.chain() {
        if let Some(sqlx_error) = source.downcast_ref::<sqlx::Error>() {
            return match sqlx_error {
                sqlx::Error::Database(db) => match db.code().as_deref() {
                    Some("3D000") => "the database does not exist".to_owned(),
                    Some("28P01") | Some("28000") => {
                        "authentication failed (user or password refused)".to_owned()
                    }
                    _ => db.message().to_owned(),
                },
                sqlx::Error::Io(io) => io_cause(io),
                sqlx::Error::PoolTimedOut => "no connection within the timeout".to_owned(),
                sqlx::Error::Tls(e) => format!("TLS failed: {e}"),
                other => other.to_string(),
            };
        }
        if let Some(io) = source.downcast_ref::<std::io::Error>() {
            return io_cause(io);
        }
    }
    error.to_string()
}

fn io_cause(io: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match io.kind() {
        ErrorKind::ConnectionRefused => {
            "connection refused (is the server running on that port?)".to_owned()
        }
        ErrorKind::PermissionDenied => "permission denied".to_owned(),
        ErrorKind::NotFound => "no such file or directory".to_owned(),
        _ if io.to_string().contains("lookup") || io.to_string().contains("resolve") => {
            "unknown host (the name does not resolve)".to_owned()
        }
        _ => io.to_string(),
    }
}
