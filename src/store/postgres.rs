//! PostgreSQL: the production backend. Many instances may share one database.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::ConnectOptions;

use super::shared::{
    claim_mail_sql, impl_shared_store, insert_grant, insert_mail, CONSUME_TOKEN, CREDIT_COLUMNS,
    LEDGER_MISMATCHES, SESSION_COLUMNS, USER_COLUMNS,
};
use super::*;

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    const BACKEND: &'static str = "postgres";

    /// `SKIP LOCKED` lets several instances' workers claim disjoint batches without waiting.
    const CLAIM_MAIL: &'static str = claim_mail_sql!("FOR UPDATE SKIP LOCKED");

    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url)?
            .application_name("auth-service")
            .disable_statement_logging();
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// One statement per change: the balance update and the ledger insert commit or fail
    /// together, in a single round trip. Row locks serialise concurrent changes of one
    /// balance; the debit's `balance >= amount` is re-checked after each wait.
    async fn apply_credit_atomically(
        &self,
        c: &NewCredit,
    ) -> StoreResult<Option<CreditTransaction>> {
        let change = if c.kind.debits() {
            "UPDATE credit_balances SET balance = balance - $2, updated_at = $5 \
             WHERE user_id = $1 AND balance >= $2 RETURNING balance"
        } else {
            "INSERT INTO credit_balances (user_id, balance, updated_at) VALUES ($1, $2, $5) \
             ON CONFLICT (user_id) DO UPDATE SET balance = credit_balances.balance + EXCLUDED.balance, \
             updated_at = EXCLUDED.updated_at RETURNING balance"
        };
        let sql = format!(
            "WITH changed AS ({change}) \
             INSERT INTO credit_transactions (user_id, amount, transaction_type, reference_id, description, \
             balance_after, created_at) SELECT $1, $2, $6, $3, $4, balance, $5 FROM changed \
             RETURNING {CREDIT_COLUMNS}"
        );
        Ok(sqlx::query_as(&sql)
            .bind(c.user_id)
            .bind(c.amount)
            .bind(&c.reference_id)
            .bind(&c.description)
            .bind(c.created_at)
            .bind(c.kind.as_str())
            .fetch_optional(&self.pool)
            .await?)
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }
}

impl_shared_store!(PgStore, sqlx::Postgres, MIGRATOR);
