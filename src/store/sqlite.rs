//! SQLite: the zero-configuration backend. Writes go through a single connection, so
//! writers queue in the pool instead of failing with SQLITE_BUSY; reads use their own pool
//! and, in WAL mode, never wait for the writer.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::ConnectOptions;

use super::credit_batch::BatchPlan;
use super::sql::holds::{impl_hold_store, HELD_SUM, HOLD_COLUMNS, HOLD_STATUS_FILTER};
use super::sql::{
    claim_mail_sql, clawback_target, impl_account_store, impl_activity_store, impl_billing_store,
    impl_credit_store, impl_identity_store, impl_lifecycle_store, impl_mail_store,
    impl_session_store, insert_activity, insert_grant, insert_identity, insert_mail, PaymentRow,
    CONSUME_TOKEN, CREDIT_COLUMNS, EVENT_COLUMNS, IDENTITY_COLUMNS, LEDGER_MISMATCHES,
    LOCK_BALANCE, PLAN_COLUMNS, SESSION_COLUMNS, SUBSCRIPTION_COLUMNS, USER_COLUMNS,
};
use super::*;
// Outgoing webhooks (DESIGN §16).
use super::sql::{claim_webhooks_sql, insert_event, DELIVERY_COLUMNS, ENDPOINT_COLUMNS};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// The migrations this build carries, all pending: `migrate status` for a database file
/// that does not exist yet (looking must not create it).
pub fn unapplied_migrations() -> Vec<MigrationStatus> {
    MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| MigrationStatus {
            version: m.version,
            description: m.description.to_string(),
            applied: false,
        })
        .collect()
}

pub struct SqliteStore {
    reader: SqlitePool,
    writer: SqlitePool,
    /// CREDITS_LOW_BALANCE_THRESHOLD in cents (`credits.low_balance`, DESIGN §16).
    low_balance_threshold: Option<i64>,
}

impl SqliteStore {
    /// Below this many cents of available credits a change produces `credits.low_balance`.
    pub fn with_low_balance_threshold(mut self, cents: Option<i64>) -> Self {
        self.low_balance_threshold = cents;
        self
    }

    const BACKEND: &'static str = "sqlite";

    /// The single writer connection already serialises claims.
    const CLAIM_MAIL: &'static str = claim_mail_sql!("");

    /// Due webhook deliveries, leased (see `claim_webhooks_sql!`).
    const CLAIM_WEBHOOKS: &'static str = claim_webhooks_sql!("");

    /// The single writer connection already serialises read-then-write transactions.
    const LOCK_ROWS: &'static str = "";

    /// Locks a user's row for the rest of the transaction (limits counted under it).
    const LOCK_USER: &'static str = "SELECT id FROM users WHERE id = $1";

    /// No data-modifying CTEs: rotation is a transaction on the writer connection.
    const ROTATE_REFRESH_TOKEN: Option<&'static str> = None;

    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit that was answered survives a crash of the machine, not only of the process.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .disable_statement_logging();
        if let Some(parent) = options.get_filename().parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent)?;
            }
        }
        create_private(options.get_filename())?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            // A writer that saw the disk full is closed, not reused (see fault.rs).
            .after_release(|_, meta| {
                Box::pin(async move { Ok(!super::fault::storage_full_since(meta.age)) })
            })
            .before_acquire(|_, meta| {
                Box::pin(async move { Ok(!super::fault::storage_full_since(meta.age)) })
            })
            .connect_with(options.clone())
            .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self {
            reader,
            writer,
            low_balance_threshold: None,
        })
    }

    /// SQLite has no data-modifying CTEs: a transaction on the single writer connection.
    async fn apply_credit_atomically(
        &self,
        c: &NewCredit,
        activity: &Activity,
    ) -> StoreResult<Option<CreditTransaction>> {
        let change = if c.kind.debits() {
            "UPDATE credit_balances SET balance = balance - $2, updated_at = $3 \
             WHERE user_id = $1 AND balance >= $2 RETURNING balance"
        } else {
            "INSERT INTO credit_balances (user_id, balance, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET balance = credit_balances.balance + excluded.balance, \
             updated_at = excluded.updated_at \
             WHERE credit_balances.balance <= 9223372036854775807 - excluded.balance RETURNING balance"
        };
        let mut tx = self.writer.begin().await?;
        let balance: Option<i64> = sqlx::query_scalar(change)
            .bind(c.user_id)
            .bind(c.amount)
            .bind(c.created_at)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(balance) = balance else {
            return Ok(None);
        };
        let row = sqlx::query_as(&format!(
            "INSERT INTO credit_transactions (user_id, amount, transaction_type, reference_id, description, \
             balance_after, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {CREDIT_COLUMNS}"
        ))
        .bind(c.user_id)
        .bind(c.amount)
        .bind(c.kind.as_str())
        .bind(&c.reference_id)
        .bind(&c.description)
        .bind(balance)
        .bind(c.created_at)
        .fetch_one(&mut *tx)
        .await?;
        insert_activity!(&mut *tx, activity, Some(c.user_id));
        insert_event!(&mut *tx, &Event::credit_transaction(&row));
        tx.commit().await?;
        Ok(Some(row))
    }

    /// The ledger rows of this user with any of these (type, reference_id) keys. One
    /// cached statement per key: SQLite runs in-process, so a statement costs no round
    /// trip (the commit's disk flush is what a batch shares).
    async fn credits_by_keys(
        conn: &mut sqlx::SqliteConnection,
        user_id: i64,
        keys: &[(&str, &str)],
    ) -> StoreResult<Vec<CreditTransaction>> {
        let sql = format!(
            "SELECT {CREDIT_COLUMNS} FROM credit_transactions \
             WHERE user_id = $1 AND transaction_type = $2 AND reference_id = $3"
        );
        let mut found = Vec::new();
        for (kind, reference) in keys {
            let row: Option<CreditTransaction> = sqlx::query_as(&sql)
                .bind(user_id)
                .bind(kind)
                .bind(reference)
                .fetch_optional(&mut *conn)
                .await?;
            found.extend(row);
        }
        Ok(found)
    }

    /// A batch's ledger rows (in the batch's order, so their ids rise in that order),
    /// audit rows and new balance, on the transaction of the single writer connection.
    async fn write_credit_batch(
        conn: &mut sqlx::SqliteConnection,
        user_id: i64,
        plan: &BatchPlan,
        batch: &[BatchCredit],
    ) -> StoreResult<Vec<CreditTransaction>> {
        let insert = format!(
            "INSERT INTO credit_transactions (user_id, amount, transaction_type, reference_id, description, \
             balance_after, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {CREDIT_COLUMNS}"
        );
        let mut rows = Vec::new();
        let mut updated_at = None;
        for (change, balance_after) in plan.writes(batch) {
            let c = &change.credit;
            let row: CreditTransaction = sqlx::query_as(&insert)
                .bind(user_id)
                .bind(c.amount)
                .bind(c.kind.as_str())
                .bind(&c.reference_id)
                .bind(&c.description)
                .bind(balance_after)
                .bind(c.created_at)
                .fetch_one(&mut *conn)
                .await?;
            insert_activity!(&mut *conn, change.activity, Some(user_id));
            insert_event!(&mut *conn, &Event::credit_transaction(&row));
            rows.push(row);
            updated_at = updated_at.max(Some(c.created_at));
        }
        sqlx::query("UPDATE credit_balances SET balance = $2, updated_at = $3 WHERE user_id = $1")
            .bind(user_id)
            .bind(plan.balance)
            .bind(updated_at)
            .execute(&mut *conn)
            .await?;
        Ok(rows)
    }

    fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }
}

/// Creates the database file readable by the service's user only (0600), before SQLite
/// opens it: SQLite gives the -wal and -shm files the database file's mode. An existing
/// file keeps the mode its operator gave it.
fn create_private(path: &std::path::Path) -> std::io::Result<()> {
    if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Both pools together: the writer's single connection and the readers.
impl PoolStore for SqliteStore {
    fn pool_connections(&self) -> PoolConnections {
        let pools = [&self.writer, &self.reader];
        PoolConnections {
            size: pools.iter().map(|p| p.size()).sum(),
            idle: pools.iter().map(|p| p.num_idle() as u32).sum(),
            max: pools
                .iter()
                .map(|p| p.options().get_max_connections())
                .sum(),
        }
    }
}

impl_account_store!(SqliteStore, MIGRATOR);
impl_mail_store!(SqliteStore, MIGRATOR);
impl_credit_store!(SqliteStore, MIGRATOR);
impl_hold_store!(SqliteStore);
impl_activity_store!(SqliteStore, MIGRATOR);
impl_identity_store!(SqliteStore);
super::sql::impl_mfa_store!(SqliteStore);
super::sql::impl_signing_key_store!(
    SqliteStore,
    sqlx::Sqlite,
    "UPDATE signing_keys SET state = state WHERE 1 = 0"
);
impl_lifecycle_store!(SqliteStore);
impl_session_store!(SqliteStore);
super::sql::impl_webhook_store!(SqliteStore);
impl_billing_store!(SqliteStore, sqlx::SqliteConnection);
super::sql::impl_read_store!(SqliteStore, sqlx::sqlite::SqliteRow);
