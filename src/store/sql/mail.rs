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
            ) -> StoreResult<Vec<QueuedMail>> {
                let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
                Ok(sqlx::query_as(Self::CLAIM_MAIL)
                    .bind(now)
                    .bind(now + lease)
                    .bind(limit)
                    .fetch_all(self.writer())
                    .await?)
            }

            async fn mark_mail_sent(&self, id: i64, now: DateTime<Utc>) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE mail_outbox SET sent_at = $2, locked_until = NULL, last_error = NULL, \
                     text_body = '', html_body = '' WHERE id = $1",
                )
                .bind(id)
                .bind(now)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn mark_mail_failed(&self, id: i64, error: &str, retry_at: DateTime<Utc>) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE mail_outbox SET last_error = $2, next_attempt_at = $3, locked_until = NULL WHERE id = $1",
                )
                .bind(id)
                .bind(error)
                .bind(retry_at)
                .execute(self.writer())
                .await?;
                Ok(())
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
