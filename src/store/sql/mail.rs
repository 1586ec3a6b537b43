//! The mail outbox: SQL shared by both backends (the claim differs, see `claim_mail_sql!`).

macro_rules! impl_mail_store {
    ($store:ty, $migrator:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::MailStore for $store {
            async fn claim_due_mail(
                &self,
                now: DateTime<Utc>,
                lease: std::time::Duration,
                limit: i64,
                claim: &str,
            ) -> StoreResult<Vec<QueuedMail>> {
                let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
                Ok(sqlx::query_as(Self::CLAIM_MAIL)
                    .bind(now)
                    .bind(now + lease)
                    .bind(limit)
                    .bind(claim)
                    .fetch_all(self.writer())
                    .await?)
            }

            async fn renew_mail_claim(
                &self,
                id: i64,
                claim: &str,
                now: DateTime<Utc>,
                lease: std::time::Duration,
            ) -> StoreResult<bool> {
                let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
                let done = sqlx::query(
                    "UPDATE mail_outbox SET locked_until = $3 WHERE id = $1 AND claim_token = $2 \
                     AND sent_at IS NULL AND locked_until > $4",
                )
                .bind(id)
                .bind(claim)
                .bind(now + lease)
                .bind(now)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn mark_mail_sent(&self, id: i64, claim: &str, now: DateTime<Utc>) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE mail_outbox SET sent_at = $2, locked_until = NULL, claim_token = NULL, last_error = NULL, \
                     text_body = '', html_body = '' WHERE id = $1 AND claim_token = $3 AND sent_at IS NULL",
                )
                .bind(id)
                .bind(now)
                .bind(claim)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn mark_mail_failed(
                &self,
                id: i64,
                claim: &str,
                error: &str,
                retry_at: DateTime<Utc>,
            ) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE mail_outbox SET last_error = $2, next_attempt_at = $3, locked_until = NULL, \
                     claim_token = NULL WHERE id = $1 AND claim_token = $4 AND sent_at IS NULL",
                )
                .bind(id)
                .bind(error)
                .bind(retry_at)
                .bind(claim)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn pending_mail_count(&self) -> StoreResult<i64> {
                Ok(sqlx::query_scalar("SELECT COUNT(*) FROM mail_outbox WHERE sent_at IS NULL")
                    .fetch_one(self.reader())
                    .await?)
            }

        }
    };
}

pub(in crate::store) use impl_mail_store;
