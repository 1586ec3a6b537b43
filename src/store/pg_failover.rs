//! Following the writable host of a multi-host DATABASE_URL (pg_auto_failover and the
//! like). The pool is pointed at one host at a time (`Pool::set_connect_options`); a
//! watcher checks that host once a second, and at once when a request saw the connection
//! fail or a write refused as read-only; when the host is gone or read-only it probes the
//! list and re-points the pool. Connections opened before a switch are not reused
//! (`before_acquire` compares their age with the switch), and every new connection is
//! checked to be writable (`after_connect`), so a demoted primary is never written to.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::Notify;

use super::pg_hosts::PgHosts;

/// Woken by any store that saw its database drop a connection or refuse a write as
/// read-only (see `StoreError::from`); every watcher of the process then checks at once.
static TROUBLE: Notify = Notify::const_new();

/// A request saw the connection fail: have the watchers look now rather than in a second.
pub fn report_trouble() {
    TROUBLE.notify_waiters();
}

const CHECK_EVERY: Duration = Duration::from_secs(1);
/// While no host is writable (a standby being promoted), probe this often.
const PROBE_EVERY: Duration = Duration::from_millis(250);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether the server behind `conn` takes writes (libpq's `read-write` test).
pub async fn is_writable(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    let (read_only,): (String,) = sqlx::query_as("SHOW transaction_read_only")
        .fetch_one(conn)
        .await?;
    Ok(read_only == "off")
}

/// What one host answered to a probe.
#[derive(Debug)]
pub enum Probe {
    Writable,
    ReadOnly,
    Unreachable(String),
}

pub async fn probe(options: &PgConnectOptions) -> Probe {
    let attempt = async {
        let mut conn = options.connect().await?;
        let writable = is_writable(&mut conn).await;
        let _ = conn.close().await;
        writable
    };
    match tokio::time::timeout(PROBE_TIMEOUT, attempt).await {
        Ok(Ok(true)) => Probe::Writable,
        Ok(Ok(false)) => Probe::ReadOnly,
        Ok(Err(e)) => Probe::Unreachable(super::connect_error::cause_of_sqlx(&e)),
        Err(_) => Probe::Unreachable(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
    }
}

/// The first host that will do (writable when `writable_only`, else any that answers),
/// probed in the list's order; otherwise what each one answered, for the message.
pub async fn choose(hosts: &PgHosts) -> Result<usize, String> {
    let mut answers = Vec::new();
    for (i, host) in hosts.hosts.iter().enumerate() {
        match probe(&host.options).await {
            Probe::Writable => return Ok(i),
            Probe::ReadOnly if !hosts.writable_only => return Ok(i),
            Probe::ReadOnly => answers.push(format!("{}: read-only (a standby)", host.name)),
            Probe::Unreachable(why) => answers.push(format!("{}: {why}", host.name)),
        }
    }
    Err(format!("no writable host: {}", answers.join("; ")))
}

/// For a URL that needs probing (several hosts, or `target_session_attrs`): the failover
/// state pointed at the host to start on. `None` for a plain one-host URL.
pub async fn open(url: &str) -> anyhow::Result<Option<Arc<Failover>>> {
    let mut hosts = super::pg_hosts::parse(url)?;
    if !hosts.needs_probe() {
        return Ok(None);
    }
    for host in &mut hosts.hosts {
        host.options = host
            .options
            .clone()
            .application_name("auth-service")
            .options([(
                "idle_in_transaction_session_timeout",
                super::postgres::IDLE_IN_TRANSACTION_TIMEOUT,
            )])
            .disable_statement_logging();
    }
    let index = choose(&hosts).await.map_err(|why| {
        anyhow::anyhow!(
            "DATABASE_URL: cannot connect to PostgreSQL at {}: {why}",
            hosts.names()
        )
    })?;
    tracing::info!(primary = %hosts.hosts[index].name, hosts = %hosts.names(), "database primary chosen");
    Ok(Some(Failover::new(hosts, index)))
}

/// The host the pool points at, and when it last changed.
pub struct Failover {
    hosts: PgHosts,
    current: AtomicUsize,
    switched_at: Mutex<Instant>,
    /// Set once the pool exists (its callbacks hold a weak reference to this).
    pool: OnceLock<PgPool>,
}

impl Failover {
    /// The pool is about to be opened on host `current`.
    pub fn new(hosts: PgHosts, current: usize) -> Arc<Self> {
        Arc::new(Self {
            hosts,
            current: AtomicUsize::new(current),
            switched_at: Mutex::new(Instant::now()),
            pool: OnceLock::new(),
        })
    }

    /// The options of the host the pool starts on.
    pub fn current_options(&self) -> PgConnectOptions {
        self.hosts.hosts[self.current.load(Ordering::Acquire)]
            .options
            .clone()
    }

    pub fn writable_only(&self) -> bool {
        self.hosts.writable_only
    }

    /// Hands over the pool and starts the watcher.
    pub fn attach(self: &Arc<Self>, pool: PgPool) {
        if self.pool.set(pool).is_ok() {
            tokio::spawn(watch(Arc::downgrade(self)));
        }
    }

    /// `host:port` of the host in use.
    pub fn primary(&self) -> String {
        let i = self.current.load(Ordering::Acquire);
        self.hosts.hosts[i].name.clone()
    }

    /// A pooled connection opened before the last switch may be to the old primary.
    pub fn predates_switch(&self, age: Duration) -> bool {
        let switched = *self.switched_at.lock().unwrap_or_else(|e| e.into_inner());
        match Instant::now().checked_sub(age) {
            Some(opened) => opened < switched,
            None => true,
        }
    }

    fn switch_to(&self, index: usize) {
        let previous = self.current.swap(index, Ordering::AcqRel);
        if let Some(pool) = self.pool.get() {
            pool.set_connect_options(self.hosts.hosts[index].options.clone());
        }
        *self.switched_at.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        tracing::warn!(
            from = %self.hosts.hosts[previous].name,
            to = %self.hosts.hosts[index].name,
            "database primary switched: the pool now connects to the new host"
        );
    }
}

/// The watcher: one connection of its own to the current host, one cheap statement a
/// second; on failure or read-only, probe the list until a writable host answers.
async fn watch(weak: Weak<Failover>) {
    let mut conn: Option<PgConnection> = None;
    let mut wait = CHECK_EVERY;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = TROUBLE.notified() => {}
        }
        let Some(failover) = weak.upgrade() else {
            return;
        };
        if failover.pool.get().is_none_or(|p| p.is_closed()) {
            return;
        }
        let current = failover.current.load(Ordering::Acquire);
        let healthy = match conn.as_mut() {
            Some(c) => matches!(
                tokio::time::timeout(PROBE_TIMEOUT, is_writable(c)).await,
                Ok(Ok(true))
            ),
            None => false,
        };
        if healthy {
            wait = CHECK_EVERY;
            continue;
        }
        conn = None;
        // The host in use first: a brief blip must not move the pool to another host.
        let options = &failover.hosts.hosts[current].options;
        let found = match connect_writable(options).await {
            Some(c) => Some((current, c)),
            None => {
                let mut found = None;
                for (i, host) in failover.hosts.hosts.iter().enumerate() {
                    if i == current {
                        continue;
                    }
                    if let Some(c) = connect_writable(&host.options).await {
                        found = Some((i, c));
                        break;
                    }
                }
                found
            }
        };
        match found {
            Some((index, c)) => {
                if index != current {
                    failover.switch_to(index);
                }
                conn = Some(c);
                wait = CHECK_EVERY;
            }
            None => {
                tracing::warn!(hosts = %failover.hosts.names(), "no writable database host yet");
                wait = PROBE_EVERY;
            }
        }
    }
}

async fn connect_writable(options: &PgConnectOptions) -> Option<PgConnection> {
    let attempt = async {
        let mut conn = options.connect().await?;
        if is_writable(&mut conn).await? {
            Ok::<_, sqlx::Error>(Some(conn))
        } else {
            let _ = conn.close().await;
            Ok(None)
        }
    };
    match tokio::time::timeout(PROBE_TIMEOUT, attempt).await {
        Ok(Ok(conn)) => conn,
        _ => None,
    }
}

/// A new connection to a read-only server is refused (as a connection failure, so a 503):
/// the pool's options still name a demoted primary; the watcher is woken to re-point it.
pub async fn refuse_read_only(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    if is_writable(conn).await? {
        return Ok(());
    }
    report_trouble();
    Err(sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        "the database host is read-only (a standby); looking for the new primary",
    )))
}
