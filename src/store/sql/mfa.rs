//! Authenticators, recovery codes and pending second steps: SQL shared by both backends.

macro_rules! impl_mfa_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::MfaStore for $store {
            async fn totp_of(&self, user_id: i64) -> StoreResult<Option<TotpRow>> {
                Ok(sqlx::query_as(
                    "SELECT user_id, secret, created_at, confirmed_at, last_step FROM mfa_totp \
                     WHERE user_id = $1",
                )
                .bind(user_id)
                .fetch_optional(self.writer())
                .await?)
            }

            async fn begin_totp(
                &self,
                user_id: i64,
                secret: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<bool> {
                let mut tx = self.writer().begin().await?;
                sqlx::query("DELETE FROM mfa_totp WHERE user_id = $1 AND confirmed_at IS NULL")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
                let inserted = sqlx::query(
                    "INSERT INTO mfa_totp (user_id, secret, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (user_id) DO NOTHING",
                )
                .bind(user_id)
                .bind(secret)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                tx.commit().await?;
                Ok(inserted == 1)
            }

            async fn confirm_totp(
                &self,
                user_id: i64,
                step: i64,
                code_hashes: &[String],
                now: DateTime<Utc>,
            ) -> StoreResult<bool> {
                let mut tx = self.writer().begin().await?;
                let confirmed = sqlx::query(
                    "UPDATE mfa_totp SET confirmed_at = $2, last_step = $3 \
                     WHERE user_id = $1 AND confirmed_at IS NULL",
                )
                .bind(user_id)
                .bind(now)
                .bind(step)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if confirmed != 1 {
                    return Ok(false);
                }
                sqlx::query("DELETE FROM mfa_recovery_codes WHERE user_id = $1")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
                for hash in code_hashes {
                    sqlx::query(
                        "INSERT INTO mfa_recovery_codes (code_hash, user_id, created_at) \
                         VALUES ($1, $2, $3)",
                    )
                    .bind(hash)
                    .bind(user_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn use_totp_step(&self, user_id: i64, step: i64) -> StoreResult<bool> {
                Ok(sqlx::query(
                    "UPDATE mfa_totp SET last_step = $2 WHERE user_id = $1 \
                     AND confirmed_at IS NOT NULL AND (last_step IS NULL OR last_step < $2)",
                )
                .bind(user_id)
                .bind(step)
                .execute(self.writer())
                .await?
                .rows_affected()
                    == 1)
            }

            async fn remove_totp(&self, user_id: i64) -> StoreResult<bool> {
                let mut tx = self.writer().begin().await?;
                let removed = sqlx::query("DELETE FROM mfa_totp WHERE user_id = $1")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query("DELETE FROM mfa_recovery_codes WHERE user_id = $1")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(removed == 1)
            }

            async fn replace_recovery_codes(
                &self,
                user_id: i64,
                code_hashes: &[String],
                now: DateTime<Utc>,
            ) -> StoreResult<()> {
                let mut tx = self.writer().begin().await?;
                sqlx::query("DELETE FROM mfa_recovery_codes WHERE user_id = $1")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
                for hash in code_hashes {
                    sqlx::query(
                        "INSERT INTO mfa_recovery_codes (code_hash, user_id, created_at) \
                         VALUES ($1, $2, $3)",
                    )
                    .bind(hash)
                    .bind(user_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn use_recovery_code(
                &self,
                user_id: i64,
                code_hash: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<bool> {
                Ok(sqlx::query(
                    "UPDATE mfa_recovery_codes SET used_at = $3 \
                     WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
                )
                .bind(user_id)
                .bind(code_hash)
                .bind(now)
                .execute(self.writer())
                .await?
                .rows_affected()
                    == 1)
            }

            async fn recovery_codes_left(&self, user_id: i64) -> StoreResult<i64> {
                let (n,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM mfa_recovery_codes WHERE user_id = $1 AND used_at IS NULL",
                )
                .bind(user_id)
                .fetch_one(self.writer())
                .await?;
                Ok(n)
            }

            async fn save_mfa_token(
                &self,
                token_hash: &str,
                user_id: i64,
                first_factor: &str,
                now: DateTime<Utc>,
                expires_at: DateTime<Utc>,
            ) -> StoreResult<()> {
                let mut tx = self.writer().begin().await?;
                sqlx::query("DELETE FROM mfa_tokens WHERE expires_at <= $1")
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO mfa_tokens (token_hash, user_id, created_at, expires_at, \
                     first_factor) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(token_hash)
                .bind(user_id)
                .bind(now)
                .bind(expires_at)
                .bind(first_factor)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn mfa_token_user(
                &self,
                token_hash: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<Option<(i64, String)>> {
                Ok(sqlx::query_as(
                    "SELECT user_id, first_factor FROM mfa_tokens \
                     WHERE token_hash = $1 AND expires_at > $2",
                )
                .bind(token_hash)
                .bind(now)
                .fetch_optional(self.writer())
                .await?)
            }

            async fn consume_mfa_token(&self, token_hash: &str) -> StoreResult<bool> {
                Ok(sqlx::query("DELETE FROM mfa_tokens WHERE token_hash = $1")
                    .bind(token_hash)
                    .execute(self.writer())
                    .await?
                    .rows_affected()
                    == 1)
            }
        }
    };
}

pub(in crate::store) use impl_mfa_store;
