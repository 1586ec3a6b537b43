//! Start-up against a database that may not be up yet (containers start together): retry
//! the first connection with backoff for DATABASE_CONNECT_TIMEOUT_SECONDS, logging each
//! try, then give up naming host:port, never the URL (it may hold the password).

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use tokio::time::Instant;

const FIRST_DELAY: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(5);
/// One try's limit: a host that drops packets must not eat the whole wait in one try.
const TRY_TIMEOUT: Duration = Duration::from_secs(5);

/// Waits until one connection to the PostgreSQL server at `url` succeeds. A single
/// connection per try (not a pool, which retries internally and reports only "timed out")
/// so each log line says why this try failed.
pub async fn until_reachable(url: &str, timeout: Duration) -> anyhow::Result<()> {
    let hosts = super::pg_hosts::parse(url)?;
    if hosts.needs_probe() {
        // Several hosts: wait until one of them takes writes (a failover may be under way).
        return with_backoff(&hosts.names(), timeout, || async {
            super::pg_failover::choose(&hosts)
                .await
                .map(drop)
                .map_err(|why| anyhow::anyhow!(why))
        })
        .await;
    }
    let options = PgConnectOptions::from_str(url)?.disable_statement_logging();
    let host = database_host(url);
    let deadline = Instant::now() + timeout;
    with_backoff(&host, timeout, || async {
        let limit = TRY_TIMEOUT.min(deadline.saturating_duration_since(Instant::now()));
        let limit = limit.max(Duration::from_millis(100));
        match tokio::time::timeout(limit, PgConnection::connect_with(&options)).await {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                Ok(())
            }
            Ok(Err(error)) => Err(error.into()),
            Err(_) => anyhow::bail!("no answer within {} ms", limit.as_millis()),
        }
    })
    .await
}

/// `host:port` of a PostgreSQL URL (the socket path for a Unix socket), for messages.
pub fn database_host(url: &str) -> String {
    if let Ok(hosts) = super::pg_hosts::parse(url) {
        if hosts.hosts.len() > 1 {
            return hosts.names();
        }
    }
    match PgConnectOptions::from_str(url) {
        Ok(options) => format!("{}:{}", options.get_host(), options.get_port()),
        Err(_) => "the configured host".to_owned(),
    }
}

/// Runs `attempt` until it succeeds or `timeout` has passed since the first try, with
/// doubling delays (250 ms up to 5 s). The last error is returned, with `host` named.
pub async fn with_backoff<T, F, Fut>(
    host: &str,
    timeout: Duration,
    mut attempt: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut delay = FIRST_DELAY;
    let mut tries = 0u32;
    loop {
        tries += 1;
        let error = match attempt().await {
            Ok(value) => {
                if tries > 1 {
                    tracing::info!(host, tries, "database reachable");
                }
                return Ok(value);
            }
            Err(error) => error,
        };
        // sqlx's message repeats the server's (its source): the cause in words, once.
        let cause = super::connect_error::cause_of(&error);
        if is_permanent(&error) {
            // The server answered and refused: waiting cannot change that.
            anyhow::bail!("database at {host} refused the connection: {cause} (not retried)");
        }
        let now = Instant::now();
        if now >= deadline {
            anyhow::bail!(
                "database at {host} not reachable after {tries} tries in {} s: {cause}",
                timeout.as_secs()
            );
        }
        let wait = delay.min(deadline - now);
        tracing::warn!(
            host,
            try_number = tries,
            retry_in_ms = wait.as_millis() as u64,
            "database not reachable yet: {cause}"
        );
        tokio::time::sleep(wait).await;
        delay = (delay * 2).min(MAX_DELAY);
    }
}

/// A refusal by a server that is up — the database does not exist, the user or password is
/// wrong — as opposed to one not up yet (refused, unreachable, starting up: those retry).
fn is_permanent(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|e| match e.downcast_ref::<sqlx::Error>() {
            Some(sqlx::Error::Database(db)) => {
                matches!(db.code().as_deref(), Some("3D000" | "28P01" | "28000"))
            }
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_is_named_without_the_password() {
        let host = database_host("postgres://user:hunter2@db.internal:6543/auth");
        assert_eq!(host, "db.internal:6543");
        assert_eq!(database_host("postgres://db/auth"), "db:5432");
    }

    #[tokio::test]
    async fn gives_up_after_the_timeout_naming_the_host() {
        let mut calls = 0;
        let result: anyhow::Result<()> = with_backoff("db:5432", Duration::from_secs(1), || {
            calls += 1;
            async { anyhow::bail!("refused") }
        })
        .await;
        let message = format!("{:#}", result.unwrap_err());
        assert!(
            message.contains("db:5432") && message.contains("refused"),
            "{message}"
        );
        assert!(calls >= 3, "{calls} tries");
    }
}
