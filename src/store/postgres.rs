//! PostgreSQL: the production backend. Many instances may share one database.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::ConnectOptions;

use super::shared::{
    claim_mail_sql, impl_shared_store, insert_grant, insert_mail, CONSUME_TOKEN, SESSION_COLUMNS,
    USER_COLUMNS,
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

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }
}

impl_shared_store!(PgStore, sqlx::Postgres, MIGRATOR);
