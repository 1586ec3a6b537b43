//! Reading the original service's PostgreSQL schema, whichever of its column variants a
//! database has (found through information_schema).

use std::str::FromStr;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::Row;

use crate::domain::MAX_CREDITS_CENTS;

/// A row as the original holds it: any column may be NULL or nonsense, the importer checks.
pub struct SourceUser {
    pub id: i64,
    pub username: Option<String>,
    pub email: Option<String>,
    pub password_hash: Option<String>,
    pub is_active: bool,
    pub is_verified: bool,
    pub is_admin: bool,
    pub created_at: Option<DateTime<Utc>>,
}

pub struct SourceTransaction {
    pub id: i64,
    /// Cents as written, before the sign the type gives; `Err` names a value that is not
    /// a finite amount within the service's limits (NaN, ±1e300).
    cents: Result<i64, String>,
    kind: String,
    pub description: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
}

impl SourceTransaction {
    /// Positive for credits in, negative for credits out: by the type when it says so,
    /// else by the sign of the stored amount.
    pub fn signed_cents(&self) -> Result<i64, String> {
        let cents = self.cents.clone()?;
        let kind = self.kind.to_ascii_lowercase();
        let out = ["use", "debit", "spend", "deduct", "withdraw", "consume"]
            .iter()
            .any(|w| kind.contains(w));
        Ok(if out {
            -cents.abs()
        } else if kind.is_empty() {
            cents
        } else {
            cents.abs()
        })
    }
}

pub struct Source {
    pool: PgPool,
    users: Columns,
    balances: Option<(String, Columns)>,
    transactions: Option<(String, Columns)>,
}

/// The columns a table has, to pick among variants.
struct Columns(Vec<String>);

impl Columns {
    fn pick(&self, variants: &[&str]) -> Option<String> {
        variants
            .iter()
            .find(|v| self.0.iter().any(|c| c == *v))
            .map(|v| format!("\"{v}\""))
    }
}

async fn columns(pool: &PgPool, table: &str) -> anyhow::Result<Columns> {
    let rows = sqlx::query(
        "SELECT column_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1",
    )
    .bind(table)
    .fetch_all(pool)
    .await?;
    Ok(Columns(
        rows.iter().map(|r| r.get::<String, _>(0)).collect(),
    ))
}

async fn first_table(pool: &PgPool, names: &[&str]) -> anyhow::Result<Option<(String, Columns)>> {
    for name in names {
        let cols = columns(pool, name).await?;
        if !cols.0.is_empty() {
            return Ok(Some(((*name).to_owned(), cols)));
        }
    }
    Ok(None)
}

/// A decimal or float written as text ("10.5", "10.50", "1e2") in cents, rounded; `Err`
/// for what the service could never hold: NaN, infinities, more than 1e12 either way.
pub fn cents_of(text: &str) -> Result<i64, String> {
    let invalid = || {
        format!(
            "amount {:?} is not a finite number within ±1e12",
            text.trim()
        )
    };
    let value = f64::from_str(text.trim()).map_err(|_| invalid())?;
    let cents = value * 100.0;
    if !cents.is_finite() || cents.abs() > MAX_CREDITS_CENTS as f64 {
        return Err(invalid());
    }
    Ok(cents.round() as i64)
}

impl Source {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let url = url
            .replacen("postgresql+asyncpg://", "postgres://", 1)
            .replacen("postgresql://", "postgres://", 1);
        let options = PgConnectOptions::from_str(&url).context("--from is not a PostgreSQL URL")?;
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "--from: cannot connect to {}: {e}",
                    crate::store::connect_error::describe_url(&url)
                )
            })?;
        let users = columns(&pool, "users").await?;
        if users.0.is_empty() {
            bail!("--from: no `users` table in that database's schema");
        }
        let balances = first_table(
            &pool,
            &["credits", "user_credits", "credit_balances", "balances"],
        )
        .await?;
        let transactions = first_table(&pool, &["credit_transactions", "transactions"]).await?;
        Ok(Self {
            pool,
            users,
            balances,
            transactions,
        })
    }

    pub async fn users(&self) -> anyhow::Result<Vec<SourceUser>> {
        let c = &self.users;
        let need = |variants: &[&str]| {
            c.pick(variants)
                .with_context(|| format!("users has none of the columns {variants:?}"))
        };
        let hash = need(&["hashed_password", "password_hash", "password"])?;
        let flag = |variants: &[&str], default: bool| {
            c.pick(variants).map_or(format!("{default}"), |col| {
                format!("COALESCE({col}, {default})")
            })
        };
        let created = c
            .pick(&["created_at", "date_joined"])
            .map_or("NULL::timestamptz".to_owned(), |col| {
                format!("{col}::timestamptz")
            });
        let sql = format!(
            "SELECT id::bigint, username::text, email::text, {hash}::text, {active}, {verified}, {admin}, {created} \
             FROM users ORDER BY id",
            active = flag(&["is_active"], true),
            verified = flag(&["is_verified", "email_verified", "verified"], false),
            admin = flag(&["is_admin", "is_superuser"], false),
        );
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(|r| SourceUser {
                id: r.get(0),
                username: r.get(1),
                email: r.get(2),
                password_hash: r.get(3),
                is_active: r.get(4),
                is_verified: r.get(5),
                is_admin: r.get(6),
                created_at: r.get(7),
            })
            .collect())
    }

    /// The stored balance, when the original kept one (`Err` when it is not an amount).
    pub async fn balance_of(&self, user_id: i64) -> anyhow::Result<Option<Result<i64, String>>> {
        let Some((table, c)) = &self.balances else {
            return Ok(None);
        };
        let Some(col) = c.pick(&["balance", "credits", "amount"]) else {
            return Ok(None);
        };
        let sql = format!("SELECT {col}::text FROM \"{table}\" WHERE user_id = $1");
        let row = sqlx::query(&sql)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row
            .and_then(|r| r.get::<Option<String>, _>(0))
            .map(|t| cents_of(&t)))
    }

    /// Oldest first.
    pub async fn transactions_of(&self, user_id: i64) -> anyhow::Result<Vec<SourceTransaction>> {
        let Some((table, c)) = &self.transactions else {
            return Ok(Vec::new());
        };
        let kind = c
            .pick(&["transaction_type", "type", "kind"])
            .map_or("''".to_owned(), |col| format!("COALESCE({col}::text, '')"));
        let description = c
            .pick(&["description", "note"])
            .map_or("NULL::text".to_owned(), |col| format!("{col}::text"));
        let created = c
            .pick(&["created_at", "timestamp"])
            .map_or("NULL::timestamptz".to_owned(), |col| {
                format!("{col}::timestamptz")
            });
        let sql =
            format!(
            "SELECT id::bigint, amount::text, {kind}, {description}, {created} FROM \"{table}\" \
             WHERE user_id = $1 ORDER BY {order}, id",
            order = if created.starts_with("NULL") { "id".to_owned() } else { created.clone() },
        );
        let rows = sqlx::query(&sql)
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let amount: Option<String> = r.get(1);
            out.push(SourceTransaction {
                id: r.get(0),
                cents: amount
                    .as_deref()
                    .map_or(Err("amount is NULL".into()), cents_of),
                kind: r.get(2),
                description: r.get(3),
                created_at: r.get(4),
            });
        }
        Ok(out)
    }
}
