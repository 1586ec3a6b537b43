//! Signing keys: SQL shared by both backends.

pub(in crate::store) const SIGNING_KEY_COLUMNS: &str =
    "kid, alg, state, public_jwk, private_key_enc, created_at, \
     activated_at, deactivated_at, retired_at, hs_accepted_until";

/// A unique violation means another instance changed the keys first: not an error.
pub(in crate::store) fn lost_race(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// `$lock` is the statement that opens a key change by taking the table's write lock, so
/// changes from every instance run one after the other (none fails for another's).
macro_rules! impl_signing_key_store {
    ($store:ty, $db:ty, $lock:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::SigningKeyStore for $store {
            async fn signing_keys(&self) -> StoreResult<Vec<$crate::store::SigningKeyRow>> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {} FROM signing_keys ORDER BY created_at, kid",
                    $crate::store::sql::SIGNING_KEY_COLUMNS
                ))
                .fetch_all(self.writer())
                .await?)
            }

            async fn change_signing_keys(
                &self,
                seen_current: Option<&str>,
                change: &$crate::store::KeyChange,
                now: DateTime<Utc>,
            ) -> StoreResult<bool> {
                use $crate::store::{KeyChange, NewSigningKey};
                let mut tx = self.writer().begin().await?;
                // The lock first: two instances changing keys at once wait for each other
                // instead of failing (SQLite: upgrading a read lock, "database is locked";
                // PostgreSQL: a unique violation or a deadlock between the two).
                sqlx::query($lock).execute(&mut *tx).await?;
                // The guard: the current key is still the one the caller saw.
                let current: Option<(String, Option<DateTime<Utc>>)> = sqlx::query_as(
                    "SELECT kid, hs_accepted_until FROM signing_keys WHERE state = 'current'",
                )
                .fetch_optional(&mut *tx)
                .await?;
                if current.as_ref().map(|c| c.0.as_str()) != seen_current {
                    return Ok(false);
                }
                let demoted = sqlx::query(
                    "UPDATE signing_keys SET state = 'previous', deactivated_at = $1 \
                     WHERE state = 'current' AND kid = $2",
                )
                .bind(now)
                .bind(seen_current)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if seen_current.is_some() && demoted != 1 {
                    return Ok(false);
                }
                async fn insert(
                    tx: &mut sqlx::Transaction<'_, $db>,
                    key: &NewSigningKey,
                    state: &str,
                    now: DateTime<Utc>,
                    hs_until: Option<DateTime<Utc>>,
                ) -> Result<(), sqlx::Error> {
                    let activated = (state == "current").then_some(now);
                    sqlx::query(
                        "INSERT INTO signing_keys (kid, alg, state, public_jwk, private_key_enc, created_at, \
                         activated_at, hs_accepted_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(&key.kid)
                    .bind(&key.alg)
                    .bind(state)
                    .bind(&key.public_jwk)
                    .bind(&key.private_key_enc)
                    .bind(now)
                    .bind(activated)
                    .bind(hs_until)
                    .execute(&mut **tx)
                    .await?;
                    Ok(())
                }
                let result: Result<(), sqlx::Error> = async {
                    match change {
                        KeyChange::Start { current: new_current, next, hs_accepted_until } => {
                            sqlx::query("UPDATE signing_keys SET state = 'retired', retired_at = $1 WHERE state = 'next'")
                                .bind(now)
                                .execute(&mut *tx)
                                .await?;
                            let live: bool = sqlx::query_scalar(
                                "SELECT EXISTS (SELECT 1 FROM sessions WHERE revoked_at IS NULL AND expires_at > $1)",
                            )
                            .bind(now)
                            .fetch_one(&mut *tx)
                            .await?;
                            let hs_until = live.then_some(*hs_accepted_until);
                            insert(&mut tx, new_current, "current", now, hs_until).await?;
                            insert(&mut tx, next, "next", now, hs_until).await?;
                        }
                        KeyChange::Rotate { next } => {
                            let hs_until = current.as_ref().and_then(|c| c.1);
                            let promoted = sqlx::query(
                                "UPDATE signing_keys SET state = 'current', activated_at = $1 WHERE state = 'next'",
                            )
                            .bind(now)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                            if promoted != 1 {
                                return Err(sqlx::Error::RowNotFound);
                            }
                            insert(&mut tx, next, "next", now, hs_until).await?;
                        }
                        KeyChange::Stop => {
                            sqlx::query("UPDATE signing_keys SET state = 'retired', retired_at = $1 WHERE state = 'next'")
                                .bind(now)
                                .execute(&mut *tx)
                                .await?;
                        }
                    }
                    Ok(())
                }
                .await;
                match result {
                    Ok(()) => {}
                    Err(e) if $crate::store::sql::lost_race(&e) || matches!(e, sqlx::Error::RowNotFound) => {
                        return Ok(false)
                    }
                    Err(e) => return Err(e.into()),
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn retire_signing_keys(&self, cutoff: DateTime<Utc>, now: DateTime<Utc>) -> StoreResult<u64> {
                Ok(sqlx::query(
                    "UPDATE signing_keys SET state = 'retired', retired_at = $1 \
                     WHERE state = 'previous' AND deactivated_at <= $2",
                )
                .bind(now)
                .bind(cutoff)
                .execute(self.writer())
                .await?
                .rows_affected())
            }
        }
    };
}

pub(in crate::store) use impl_signing_key_store;
