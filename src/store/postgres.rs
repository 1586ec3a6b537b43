//! PostgreSQL: the production backend. Many instances may share one database.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
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
use super::sql::{
    claim_webhooks_sql, credit_events_cte, insert_event, DELIVERY_COLUMNS, ENDPOINT_COLUMNS,
};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// A pooled connection idle longer than this is pinged before use; busier ones are not
/// (sqlx's default pings before every use: a second round trip per statement).
pub(super) const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

/// `idle_in_transaction_session_timeout` of the service's sessions: the backstop should a
/// transaction ever be left open between statements (none of ours waits on anything but
/// the database inside one, so a few milliseconds is the norm). PostgreSQL then ends the
/// session, releasing its locks; the pool drops the dead connection at its next use.
pub const IDLE_IN_TRANSACTION_TIMEOUT: &str = "15s";

pub struct PgStore {
    pool: PgPool,
    /// Set for a multi-host DATABASE_URL: the watcher that follows the primary.
    failover: Option<Arc<super::pg_failover::Failover>>,
    /// CREDITS_LOW_BALANCE_THRESHOLD in cents (`credits.low_balance`, DESIGN §16).
    low_balance_threshold: Option<i64>,
}

impl PgStore {
    /// Below this many cents of available credits a change produces `credits.low_balance`.
    pub fn with_low_balance_threshold(mut self, cents: Option<i64>) -> Self {
        self.low_balance_threshold = cents;
        self
    }

    const BACKEND: &'static str = "postgres";

    /// `SKIP LOCKED` lets several instances' workers claim disjoint batches without waiting.
    const CLAIM_MAIL: &'static str = claim_mail_sql!("FOR UPDATE SKIP LOCKED");

    /// Due webhook deliveries, leased (see `claim_webhooks_sql!`).
    const CLAIM_WEBHOOKS: &'static str = claim_webhooks_sql!("FOR UPDATE SKIP LOCKED");

    /// Row locks for a read-then-write in one transaction.
    const LOCK_ROWS: &'static str = "FOR UPDATE";

    /// Locks a user's row for the rest of the transaction (limits counted under it).
    const LOCK_USER: &'static str = "SELECT id FROM users WHERE id = $1 FOR UPDATE";

    /// Rotation in one statement (one round trip instead of four): the retired row is
    /// written only if the session's token was still `$2`; concurrent rotations have one
    /// winner (the loser's UPDATE re-checks the row after the winner commits).
    const ROTATE_REFRESH_TOKEN: Option<&'static str> = Some(
        "WITH rotated AS (UPDATE sessions SET refresh_token_hash = $3 \
         WHERE id = $1 AND refresh_token_hash = $2 AND revoked_at IS NULL RETURNING id) \
         INSERT INTO retired_refresh_tokens (token_hash, session_id, retired_at) \
         SELECT $2, id, $4 FROM rotated",
    );

    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        // A multi-host URL (failover) gets a pool pointed at the host probing chose.
        let failover = super::pg_failover::open(url).await?;
        let options = match &failover {
            Some(f) => f.current_options(),
            None => PgConnectOptions::from_str(url)?,
        }
        .application_name("auth-service")
        .options([(
            "idle_in_transaction_session_timeout",
            IDLE_IN_TRANSACTION_TIMEOUT,
        )])
        .disable_statement_logging();
        let watched = failover.as_ref().map(Arc::downgrade);
        let checked = watched.clone();
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(5))
            // A read is one round trip: no ping before each statement on a connection in
            // steady use, only on one that sat idle (the server may have gone meanwhile).
            .test_before_acquire(false)
            .after_connect(move |conn, _meta| {
                let checked = checked.clone();
                Box::pin(async move {
                    match checked.and_then(|w| w.upgrade()) {
                        Some(f) if f.writable_only() => {
                            super::pg_failover::refuse_read_only(conn).await
                        }
                        _ => Ok(()),
                    }
                })
            })
            .before_acquire(move |conn, meta| {
                let watched = watched.clone();
                Box::pin(async move {
                    // Opened before a failover switch: maybe to the old primary; drop it.
                    let stale = watched
                        .and_then(|w| w.upgrade())
                        .is_some_and(|f| f.predates_switch(meta.age));
                    if stale {
                        return Ok(false);
                    }
                    if meta.idle_for > PING_WHEN_IDLE_FOR {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(options)
            .await?;
        if let Some(f) = &failover {
            f.attach(pool.clone());
        }
        Ok(Self {
            pool,
            failover,
            low_balance_threshold: None,
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// One statement per change: the balance update, the ledger insert and the audit row
    /// commit or fail together, in a single round trip. Row locks serialise concurrent
    /// changes of one balance; the debit's `balance >= amount` is re-checked after each wait.
    async fn apply_credit_atomically(
        &self,
        c: &NewCredit,
        activity: &Activity,
    ) -> StoreResult<Option<CreditTransaction>> {
        let change = if c.kind.debits() {
            "UPDATE credit_balances SET balance = balance - $2, updated_at = $5 \
             WHERE user_id = $1 AND balance >= $2 RETURNING balance"
        } else {
            "INSERT INTO credit_balances (user_id, balance, updated_at) VALUES ($1, $2, $5) \
             ON CONFLICT (user_id) DO UPDATE SET balance = credit_balances.balance + EXCLUDED.balance, \
             updated_at = EXCLUDED.updated_at \
             WHERE credit_balances.balance <= 9223372036854775807 - EXCLUDED.balance RETURNING balance"
        };
        let sql = format!(
            "WITH changed AS ({change}), \
             recorded AS (INSERT INTO credit_transactions (user_id, amount, transaction_type, reference_id, \
             description, balance_after, created_at) SELECT $1, $2, $6, $3, $4, balance, $5 FROM changed \
             RETURNING {CREDIT_COLUMNS}), \
             audited AS (INSERT INTO user_activity (user_id, event, ip, user_agent, details, created_at) \
             SELECT $1, $7, $8, $9, $10, $5 FROM recorded){events} \
             SELECT {CREDIT_COLUMNS} FROM recorded",
            events = credit_events_cte!()
        );
        Ok(sqlx::query_as(&sql)
            .bind(c.user_id)
            .bind(c.amount)
            .bind(&c.reference_id)
            .bind(&c.description)
            .bind(c.created_at)
            .bind(c.kind.as_str())
            .bind(activity.event)
            .bind(&activity.ip)
            .bind(&activity.user_agent)
            .bind(&activity.details)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The ledger rows of this user with any of these (type, reference_id) keys: one
    /// statement whatever the number of keys.
    async fn credits_by_keys(
        conn: &mut sqlx::PgConnection,
        user_id: i64,
        keys: &[(&str, &str)],
    ) -> StoreResult<Vec<CreditTransaction>> {
        let (kinds, references): (Vec<&str>, Vec<&str>) = keys.iter().copied().unzip();
        Ok(sqlx::query_as(&format!(
            "SELECT {CREDIT_COLUMNS} FROM credit_transactions WHERE user_id = $1 \
             AND (transaction_type, reference_id) IN (SELECT * FROM UNNEST($2::TEXT[], $3::TEXT[]))"
        ))
        .bind(user_id)
        .bind(kinds)
        .bind(references)
        .fetch_all(conn)
        .await?)
    }

    /// A batch's ledger rows, audit rows and new balance in one statement (arrays, so
    /// one round trip and one prepared statement whatever the batch size). Rows are
    /// inserted in the batch's order, so their ids rise in that order; they come back
    /// sorted by id.
    async fn write_credit_batch(
        conn: &mut sqlx::PgConnection,
        user_id: i64,
        plan: &BatchPlan,
        batch: &[BatchCredit],
    ) -> StoreResult<Vec<CreditTransaction>> {
        let mut amounts = Vec::new();
        let mut kinds = Vec::new();
        let mut references = Vec::new();
        let mut descriptions = Vec::new();
        let mut balances = Vec::new();
        let mut times = Vec::new();
        let mut events = Vec::new();
        let mut ips = Vec::new();
        let mut agents = Vec::new();
        let mut details = Vec::new();
        let mut logged = Vec::new();
        let mut updated_at = None;
        for (change, balance_after) in plan.writes(batch) {
            let (c, a) = (&change.credit, &change.activity);
            amounts.push(c.amount);
            kinds.push(c.kind.as_str());
            references.push(c.reference_id.as_deref());
            descriptions.push(c.description.as_deref());
            balances.push(balance_after);
            times.push(c.created_at);
            events.push(a.event);
            ips.push(a.ip.as_deref());
            agents.push(a.user_agent.as_deref());
            details.push(a.details.as_str());
            logged.push(a.created_at);
            updated_at = updated_at.max(Some(c.created_at));
        }
        let sql = format!(
            "WITH recorded AS (INSERT INTO credit_transactions (user_id, amount, transaction_type, \
             reference_id, description, balance_after, created_at) \
             SELECT $1, t.amount, t.kind, t.reference_id, t.description, t.balance_after, t.created_at \
             FROM UNNEST($2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::BIGINT[], $7::TIMESTAMPTZ[]) \
             WITH ORDINALITY AS t(amount, kind, reference_id, description, balance_after, created_at, n) \
             ORDER BY t.n RETURNING {CREDIT_COLUMNS}), \
             audited AS (INSERT INTO user_activity (user_id, event, ip, user_agent, details, created_at) \
             SELECT $1, a.event, a.ip, a.user_agent, a.details, a.created_at \
             FROM UNNEST($8::TEXT[], $9::TEXT[], $10::TEXT[], $11::TEXT[], $12::TIMESTAMPTZ[]) \
             WITH ORDINALITY AS a(event, ip, user_agent, details, created_at, n) ORDER BY a.n), \
             balanced AS (UPDATE credit_balances SET balance = $13, updated_at = $14 WHERE user_id = $1){events} \
             SELECT {CREDIT_COLUMNS} FROM recorded ORDER BY id",
            events = credit_events_cte!()
        );
        Ok(sqlx::query_as(&sql)
            .bind(user_id)
            .bind(amounts)
            .bind(kinds)
            .bind(references)
            .bind(descriptions)
            .bind(balances)
            .bind(times)
            .bind(events)
            .bind(ips)
            .bind(agents)
            .bind(details)
            .bind(logged)
            .bind(plan.balance)
            .bind(updated_at)
            .fetch_all(conn)
            .await?)
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }
}

impl PoolStore for PgStore {
    fn pool_connections(&self) -> PoolConnections {
        PoolConnections {
            size: self.pool.size(),
            idle: self.pool.num_idle() as u32,
            max: self.pool.options().get_max_connections(),
        }
    }

    fn primary_host(&self) -> Option<String> {
        self.failover.as_ref().map(|f| f.primary())
    }
}

impl_account_store!(PgStore, MIGRATOR);
impl_mail_store!(PgStore, MIGRATOR);
impl_credit_store!(PgStore, MIGRATOR);
impl_hold_store!(PgStore);
impl_activity_store!(PgStore, MIGRATOR);
impl_identity_store!(PgStore);
super::sql::impl_mfa_store!(PgStore);
super::sql::impl_signing_key_store!(
    PgStore,
    sqlx::Postgres,
    "LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE"
);
impl_lifecycle_store!(PgStore);
impl_session_store!(PgStore);
super::sql::impl_webhook_store!(PgStore);
impl_billing_store!(PgStore, sqlx::PgConnection);
super::sql::impl_read_store!(PgStore, sqlx::postgres::PgRow);
