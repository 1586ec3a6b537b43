//! Pending email changes, rate-limited mailed tokens, admin creation and promotion, and
//! pruning: SQL shared by both backends (`Self::LOCK_USER` is the dialect's row lock).

macro_rules! impl_lifecycle_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::LifecycleStore for $store {
            async fn grant_token_limited(
                &self,
                user_id: i64,
                grant: &TokenGrant,
                mail: &[OutgoingMail],
                activity: &Activity,
                min_interval: chrono::Duration,
                per_hour: i64,
            ) -> StoreResult<bool> {
                let now = grant.created_at;
                let mut tx = self.writer().begin().await?;
                // Serialises concurrent requests for one user, so the counts below are exact.
                sqlx::query(Self::LOCK_USER).bind(user_id).fetch_optional(&mut *tx).await?;
                let count_since = |since: DateTime<Utc>| {
                    sqlx::query_scalar::<_, i64>(
                        "SELECT COUNT(*) FROM email_tokens WHERE user_id = $1 AND purpose = $2 AND created_at > $3",
                    )
                    .bind(user_id)
                    .bind(grant.purpose.as_str())
                    .bind(since)
                };
                let last_hour = count_since(now - chrono::Duration::hours(1)).fetch_one(&mut *tx).await?;
                let last_interval = count_since(now - min_interval).fetch_one(&mut *tx).await?;
                if last_hour >= per_hour || last_interval > 0 {
                    return Ok(false);
                }
                insert_grant!(&mut *tx, user_id, grant);
                for m in mail {
                    insert_mail!(&mut *tx, m, now);
                }
                insert_activity!(&mut *tx, activity, Some(user_id));
                tx.commit().await?;
                Ok(true)
            }

            async fn create_admin(&self, user: &NewUser) -> StoreResult<User> {
                Ok(sqlx::query_as(&format!(
                    "INSERT INTO users (username, username_key, email, password_hash, is_admin, is_active, \
                     is_verified, created_at, updated_at) VALUES ($1, $2, $3, $4, TRUE, TRUE, TRUE, $5, $5) \
                     RETURNING {USER_COLUMNS}"
                ))
                .bind(&user.username)
                .bind(&user.username_key)
                .bind(&user.email)
                .bind(&user.password_hash)
                .bind(user.created_at)
                .fetch_one(self.writer())
                .await?)
            }

            async fn promote_admin(
                &self,
                username_key: &str,
                email: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<Option<User>> {
                Ok(sqlx::query_as(&format!(
                    "UPDATE users SET is_admin = TRUE, is_verified = TRUE, is_active = TRUE, updated_at = $3 \
                     WHERE username_key = $1 AND email = $2 RETURNING {USER_COLUMNS}"
                ))
                .bind(username_key)
                .bind(email)
                .bind(now)
                .fetch_optional(self.writer())
                .await?)
            }

            async fn request_email_change(
                &self,
                user_id: i64,
                change: &EmailChange,
                activity: &Activity,
            ) -> StoreResult<()> {
                let now = change.confirm.created_at;
                let mut tx = self.writer().begin().await?;
                sqlx::query("UPDATE users SET pending_email = $2, updated_at = $3 WHERE id = $1")
                    .bind(user_id)
                    .bind(&change.confirm.email)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                // The links of an earlier pending change stop working.
                sqlx::query(
                    "UPDATE email_tokens SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL \
                     AND purpose IN ('change_email', 'cancel_email_change')",
                )
                .bind(user_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                insert_grant!(&mut *tx, user_id, change.confirm);
                insert_grant!(&mut *tx, user_id, change.cancel);
                for m in &change.mail {
                    insert_mail!(&mut *tx, m, now);
                }
                insert_activity!(&mut *tx, activity, Some(user_id));
                tx.commit().await?;
                Ok(())
            }

            async fn pending_email(&self, user_id: i64) -> StoreResult<Option<String>> {
                let pending: Option<Option<String>> =
                    sqlx::query_scalar("SELECT pending_email FROM users WHERE id = $1")
                        .bind(user_id)
                        .fetch_optional(self.reader())
                        .await?;
                Ok(pending.flatten())
            }

            async fn confirm_email_change(
                &self,
                token_hash: &str,
                now: DateTime<Utc>,
                activity: &Activity,
            ) -> StoreResult<Option<i64>> {
                let mut tx = self.writer().begin().await?;
                let token: Option<EmailToken> = sqlx::query_as(CONSUME_TOKEN)
                    .bind(token_hash)
                    .bind(TokenPurpose::ChangeEmail.as_str())
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(token) = token else { return Ok(None) };
                // Only the change this link was sent for; a unique violation (someone took
                // the address meanwhile) rolls everything back, the link included.
                let done = sqlx::query(
                    "UPDATE users SET email = pending_email, pending_email = NULL, is_verified = TRUE, \
                     updated_at = $3 WHERE id = $1 AND pending_email = $2",
                )
                .bind(token.user_id)
                .bind(&token.email)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    tx.commit().await?;
                    return Ok(None);
                }
                // Links mailed to the old address (verification, reset, cancel) stop working.
                sqlx::query("UPDATE email_tokens SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL")
                    .bind(token.user_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                insert_activity!(&mut *tx, activity, Some(token.user_id));
                insert_event!(&mut *tx, &Event::user_email_changed(token.user_id, &token.email));
                tx.commit().await?;
                Ok(Some(token.user_id))
            }

            async fn cancel_email_change(
                &self,
                token_hash: &str,
                now: DateTime<Utc>,
                activity: &Activity,
            ) -> StoreResult<bool> {
                let mut tx = self.writer().begin().await?;
                let token: Option<EmailToken> = sqlx::query_as(CONSUME_TOKEN)
                    .bind(token_hash)
                    .bind(TokenPurpose::CancelEmailChange.as_str())
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(token) = token else { return Ok(false) };
                let done = sqlx::query(
                    "UPDATE users SET pending_email = NULL, updated_at = $3 WHERE id = $1 AND pending_email = $2",
                )
                .bind(token.user_id)
                .bind(&token.email)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    tx.commit().await?;
                    return Ok(false);
                }
                sqlx::query(
                    "UPDATE email_tokens SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL \
                     AND purpose = 'change_email'",
                )
                .bind(token.user_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                insert_activity!(&mut *tx, activity, Some(token.user_id));
                tx.commit().await?;
                Ok(true)
            }

            async fn prune(
                &self,
                now: DateTime<Utc>,
                audit_before: Option<DateTime<Utc>>,
            ) -> StoreResult<PruneReport> {
                // Ended sessions can never be used again; their retired refresh hashes go
                // with them (ON DELETE CASCADE). Retired hashes of live sessions stay: they
                // are how reuse of a stolen token is recognised.
                let sessions = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR revoked_at IS NOT NULL")
                    .bind(now)
                    .execute(self.writer())
                    .await?
                    .rows_affected();
                // Used or expired links, once older than the longest window that counts
                // them (the hourly limit on mailed links).
                let email_tokens = sqlx::query(
                    "DELETE FROM email_tokens WHERE (used_at IS NOT NULL OR expires_at <= $1) AND created_at <= $2",
                )
                .bind(now)
                .bind(now - chrono::Duration::hours(1))
                .execute(self.writer())
                .await?
                .rows_affected();
                let activities = match audit_before {
                    Some(before) => sqlx::query("DELETE FROM user_activity WHERE created_at < $1")
                        .bind(before)
                        .execute(self.writer())
                        .await?
                        .rows_affected(),
                    None => 0,
                };
                let sent_mail = sqlx::query("DELETE FROM mail_outbox WHERE sent_at IS NOT NULL AND sent_at <= $1")
                    .bind(now - chrono::Duration::days($crate::store::SENT_MAIL_KEPT_DAYS))
                    .execute(self.writer())
                    .await?
                    .rows_affected();
                Ok(PruneReport { sessions, email_tokens, activities, sent_mail })
            }
        }
    };
}

pub(in crate::store) use impl_lifecycle_store;
