//! Opening the store: the backend by the URL's scheme, and the start-up path that waits
//! for the database and migrates it.

use std::sync::Arc;

use super::{connect_error, wait, PgStore, SqliteStore, Store};
use crate::config::Config;

/// Opens the backend named by the URL's scheme, and applies pending migrations (fail fast).
pub async fn connect(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let url = &config.database_url;
    let low_balance = config.webhooks.low_balance_threshold;
    let store: Arc<dyn Store> = if config.is_sqlite() {
        Arc::new(
            match SqliteStore::connect(url, config.db_max_connections).await {
                Ok(store) => store.with_low_balance_threshold(low_balance),
                Err(e) => return Err(connect_error::explain(url, &e).await),
            },
        )
    } else {
        Arc::new(
            match PgStore::connect(url, config.db_max_connections).await {
                Ok(store) => store.with_low_balance_threshold(low_balance),
                Err(e) => return Err(connect_error::explain(url, &e).await),
            },
        )
    };
    Ok(store)
}

/// Opens the store and brings the schema up to date: what `serve` does before listening.
/// PostgreSQL may still be starting (containers start together): the first connection is
/// retried with backoff for DATABASE_CONNECT_TIMEOUT_SECONDS. Several instances may run
/// this at once: sqlx's migrator holds a PostgreSQL advisory lock while it migrates, so one
/// applies the migrations and the others then find them applied.
pub async fn connect_and_migrate(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    if !config.is_sqlite() {
        wait::until_reachable(&config.database_url, config.ops.database_connect_timeout).await?;
    }
    let store = connect(config).await?;
    store.migrate_up().await?;
    Ok(store)
}
