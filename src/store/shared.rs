//! The implementation both backends share. The SQL below is valid in PostgreSQL and SQLite
//! alike (`$n` parameters, `RETURNING`, `TRUE`/`FALSE`); `impl_shared_store!` expands the
//! same method bodies for each pool type, because sqlx's executors are concrete per
//! database and generic bounds over them would cost more clarity than this macro does.
//! Each backend supplies `reader()`/`writer()` pools and the few dialect-specific pieces.

pub(super) const USER_COLUMNS: &str =
    "id, username, email, password_hash, is_admin, is_active, is_verified, created_at, updated_at";

pub(super) const SESSION_COLUMNS: &str =
    "id, user_id, refresh_token_hash, previous_refresh_hash, rotated_at, \
     created_at, expires_at, last_seen_at, revoked_at, ip, user_agent";

/// Leases the due mail (unsent, due, not leased by a live worker); `$lock` is the
/// dialect's row-locking clause for the inner select.
macro_rules! claim_mail_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE mail_outbox SET locked_until = $2, attempts = attempts + 1 WHERE id IN (",
            "SELECT id FROM mail_outbox WHERE sent_at IS NULL AND next_attempt_at <= $1 ",
            "AND (locked_until IS NULL OR locked_until <= $1) ORDER BY id LIMIT $3 ",
            $lock,
            ") RETURNING id, recipient, subject, text_body, html_body, attempts"
        )
    };
}

macro_rules! impl_shared_store {
    ($store:ty, $db:ty, $migrator:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            fn backend(&self) -> &'static str {
                Self::BACKEND
            }

            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(self.reader()).await?;
                Ok(())
            }

            async fn migrate_up(&self) -> anyhow::Result<()> {
                $migrator.run(self.writer()).await?;
                Ok(())
            }

            async fn migrate_down(&self, steps: usize) -> anyhow::Result<Vec<i64>> {
                use sqlx::migrate::Migrate;
                let mut applied = {
                    let mut conn = self.writer().acquire().await?;
                    conn.ensure_migrations_table().await?;
                    conn.list_applied_migrations().await?
                };
                applied.sort_by_key(|m| m.version);
                let steps = steps.min(applied.len());
                if steps == 0 {
                    return Ok(Vec::new());
                }
                let keep = applied.len() - steps;
                let target = if keep == 0 { 0 } else { applied[keep - 1].version };
                $migrator.undo(self.writer(), target).await?;
                Ok(applied[keep..].iter().rev().map(|m| m.version).collect())
            }

            async fn migration_status(&self) -> anyhow::Result<Vec<MigrationStatus>> {
                use sqlx::migrate::Migrate;
                let applied = {
                    let mut conn = self.writer().acquire().await?;
                    conn.ensure_migrations_table().await?;
                    conn.list_applied_migrations().await?
                };
                Ok($migrator
                    .iter()
                    .filter(|m| m.migration_type.is_up_migration())
                    .map(|m| MigrationStatus {
                        version: m.version,
                        description: m.description.to_string(),
                        applied: applied.iter().any(|a| a.version == m.version),
                    })
                    .collect())
            }

            async fn create_user(
                &self,
                user: &NewUser,
                grant: Option<&TokenGrant>,
                mail: &[OutgoingMail],
            ) -> StoreResult<User> {
                let mut tx = self.writer().begin().await?;
                let created: User = sqlx::query_as(&format!(
                    "INSERT INTO users (username, username_key, email, password_hash, is_admin, is_active, \
                     is_verified, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, TRUE, $6, $7, $7) \
                     RETURNING {USER_COLUMNS}"
                ))
                .bind(&user.username)
                .bind(&user.username_key)
                .bind(&user.email)
                .bind(&user.password_hash)
                .bind(user.is_admin)
                .bind(user.is_verified)
                .bind(user.created_at)
                .fetch_one(&mut *tx)
                .await?;
                if let Some(grant) = grant {
                    insert_grant!(&mut *tx, created.id, grant);
                }
                for m in mail {
                    insert_mail!(&mut *tx, m, user.created_at);
                }
                tx.commit().await?;
                Ok(created)
            }

            async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>> {
                Ok(sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(self.reader())
                    .await?)
            }

            async fn user_by_username(&self, username_key: &str) -> StoreResult<Option<User>> {
                Ok(sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE username_key = $1"))
                    .bind(username_key)
                    .fetch_optional(self.reader())
                    .await?)
            }

            async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
                Ok(sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1"))
                    .bind(email)
                    .fetch_optional(self.reader())
                    .await?)
            }

            async fn user_by_login(&self, identifier: &str) -> StoreResult<Option<User>> {
                // A username cannot contain '@', so at most one row matches either column.
                Ok(sqlx::query_as(&format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE username_key = $1 OR email = $1 LIMIT 1"
                ))
                .bind(identifier)
                .fetch_optional(self.reader())
                .await?)
            }

            async fn set_password_hash(&self, user_id: i64, hash: &str) -> StoreResult<()> {
                sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
                    .bind(user_id)
                    .bind(hash)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn change_password(
                &self,
                user_id: i64,
                hash: &str,
                keep_session: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<()> {
                let mut tx = self.writer().begin().await?;
                sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
                    .bind(user_id)
                    .bind(hash)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "UPDATE sessions SET revoked_at = $3 WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL",
                )
                .bind(user_id)
                .bind(keep_session)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn change_email(
                &self,
                user_id: i64,
                email: &str,
                grant: &TokenGrant,
                mail: &[OutgoingMail],
            ) -> StoreResult<User> {
                let now = grant.created_at;
                let mut tx = self.writer().begin().await?;
                let user: User = sqlx::query_as(&format!(
                    "UPDATE users SET email = $2, is_verified = FALSE, updated_at = $3 WHERE id = $1 \
                     RETURNING {USER_COLUMNS}"
                ))
                .bind(user_id)
                .bind(email)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                // Links mailed to the old address must not act on the account any more.
                sqlx::query("UPDATE email_tokens SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL")
                    .bind(user_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                insert_grant!(&mut *tx, user_id, grant);
                for m in mail {
                    insert_mail!(&mut *tx, m, now);
                }
                tx.commit().await?;
                Ok(user)
            }

            async fn delete_user(&self, user_id: i64) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM users WHERE id = $1").bind(user_id).execute(self.writer()).await?;
                Ok(done.rows_affected() == 1)
            }

            async fn upsert_admin(&self, user: &NewUser) -> StoreResult<(User, bool)> {
                let mut tx = self.writer().begin().await?;
                let promoted: Option<User> = sqlx::query_as(&format!(
                    "UPDATE users SET is_admin = TRUE, is_verified = TRUE, is_active = TRUE, updated_at = $2 \
                     WHERE username_key = $1 RETURNING {USER_COLUMNS}"
                ))
                .bind(&user.username_key)
                .bind(user.created_at)
                .fetch_optional(&mut *tx)
                .await?;
                let result = match promoted {
                    Some(existing) => (existing, false),
                    None => {
                        let created: User = sqlx::query_as(&format!(
                            "INSERT INTO users (username, username_key, email, password_hash, is_admin, is_active, \
                             is_verified, created_at, updated_at) VALUES ($1, $2, $3, $4, TRUE, TRUE, TRUE, $5, $5) \
                             RETURNING {USER_COLUMNS}"
                        ))
                        .bind(&user.username)
                        .bind(&user.username_key)
                        .bind(&user.email)
                        .bind(&user.password_hash)
                        .bind(user.created_at)
                        .fetch_one(&mut *tx)
                        .await?;
                        (created, true)
                    }
                };
                tx.commit().await?;
                Ok(result)
            }

            async fn create_session(&self, s: &NewSession) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO sessions (id, user_id, refresh_token_hash, created_at, expires_at, last_seen_at, \
                     ip, user_agent) VALUES ($1, $2, $3, $4, $5, $4, $6, $7)",
                )
                .bind(&s.id)
                .bind(s.user_id)
                .bind(&s.refresh_token_hash)
                .bind(s.created_at)
                .bind(s.expires_at)
                .bind(&s.ip)
                .bind(&s.user_agent)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn session_with_user(&self, session_id: &str) -> StoreResult<Option<(Session, User)>> {
                use sqlx::{FromRow, Row};
                let row = sqlx::query(
                    "SELECT s.id, s.user_id, s.refresh_token_hash, s.previous_refresh_hash, s.rotated_at, \
                     s.created_at, s.expires_at, s.last_seen_at, s.revoked_at, s.ip, s.user_agent, \
                     u.username AS u_username, u.email AS u_email, u.password_hash AS u_password_hash, \
                     u.is_admin AS u_is_admin, u.is_active AS u_is_active, u.is_verified AS u_is_verified, \
                     u.created_at AS u_created_at, u.updated_at AS u_updated_at \
                     FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1",
                )
                .bind(session_id)
                .fetch_optional(self.reader())
                .await?;
                let Some(row) = row else { return Ok(None) };
                let session = Session::from_row(&row)?;
                let user = User {
                    id: session.user_id,
                    username: row.try_get("u_username")?,
                    email: row.try_get("u_email")?,
                    password_hash: row.try_get("u_password_hash")?,
                    is_admin: row.try_get("u_is_admin")?,
                    is_active: row.try_get("u_is_active")?,
                    is_verified: row.try_get("u_is_verified")?,
                    created_at: row.try_get("u_created_at")?,
                    updated_at: row.try_get("u_updated_at")?,
                };
                Ok(Some((session, user)))
            }

            async fn session_by_refresh_hash(&self, hash: &str) -> StoreResult<Option<Session>> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions \
                     WHERE refresh_token_hash = $1 OR previous_refresh_hash = $1 LIMIT 1"
                ))
                .bind(hash)
                .fetch_optional(self.reader())
                .await?)
            }

            async fn rotate_refresh_token(
                &self,
                session_id: &str,
                current_hash: &str,
                new_hash: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE sessions SET previous_refresh_hash = refresh_token_hash, refresh_token_hash = $3, \
                     rotated_at = $4 WHERE id = $1 AND refresh_token_hash = $2 AND revoked_at IS NULL",
                )
                .bind(session_id)
                .bind(current_hash)
                .bind(new_hash)
                .bind(now)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn reissue_refresh_token(
                &self,
                session_id: &str,
                previous_hash: &str,
                new_hash: &str,
            ) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE sessions SET refresh_token_hash = $3 \
                     WHERE id = $1 AND previous_refresh_hash = $2 AND revoked_at IS NULL",
                )
                .bind(session_id)
                .bind(previous_hash)
                .bind(new_hash)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn revoke_session(&self, session_id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
                let done = sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                    .bind(session_id)
                    .bind(now)
                    .execute(self.writer())
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn grant_token(&self, user_id: i64, grant: &TokenGrant, mail: &[OutgoingMail]) -> StoreResult<()> {
                let mut tx = self.writer().begin().await?;
                insert_grant!(&mut *tx, user_id, grant);
                for m in mail {
                    insert_mail!(&mut *tx, m, grant.created_at);
                }
                tx.commit().await?;
                Ok(())
            }

            async fn latest_token_created_at(
                &self,
                user_id: i64,
                purpose: TokenPurpose,
            ) -> StoreResult<Option<DateTime<Utc>>> {
                Ok(sqlx::query_scalar(
                    "SELECT created_at FROM email_tokens WHERE user_id = $1 AND purpose = $2 \
                     ORDER BY created_at DESC LIMIT 1",
                )
                .bind(user_id)
                .bind(purpose.as_str())
                .fetch_optional(self.reader())
                .await?)
            }

            async fn consume_token(
                &self,
                hash: &str,
                purpose: TokenPurpose,
                now: DateTime<Utc>,
            ) -> StoreResult<Option<EmailToken>> {
                Ok(sqlx::query_as(CONSUME_TOKEN)
                    .bind(hash)
                    .bind(purpose.as_str())
                    .bind(now)
                    .fetch_optional(self.writer())
                    .await?)
            }

            async fn mark_verified(&self, user_id: i64, email: &str) -> StoreResult<bool> {
                let done = sqlx::query("UPDATE users SET is_verified = TRUE WHERE id = $1 AND email = $2")
                    .bind(user_id)
                    .bind(email)
                    .execute(self.writer())
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn reset_password(
                &self,
                token_hash: &str,
                new_hash: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<Option<i64>> {
                let mut tx = self.writer().begin().await?;
                let token: Option<EmailToken> = sqlx::query_as(CONSUME_TOKEN)
                    .bind(token_hash)
                    .bind(TokenPurpose::ResetPassword.as_str())
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(token) = token else {
                    return Ok(None);
                };
                sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
                    .bind(token.user_id)
                    .bind(new_hash)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "UPDATE email_tokens SET used_at = $2 WHERE user_id = $1 AND purpose = 'reset_password' \
                     AND used_at IS NULL",
                )
                .bind(token.user_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
                    .bind(token.user_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(Some(token.user_id))
            }

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

            async fn credit_balance(&self, user_id: i64) -> StoreResult<Option<(i64, DateTime<Utc>)>> {
                Ok(sqlx::query_as("SELECT balance, updated_at FROM credit_balances WHERE user_id = $1")
                    .bind(user_id)
                    .fetch_optional(self.reader())
                    .await?)
            }

            async fn credit_by_reference(
                &self,
                user_id: i64,
                kind: CreditKind,
                reference_id: &str,
            ) -> StoreResult<Option<CreditTransaction>> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {CREDIT_COLUMNS} FROM credit_transactions \
                     WHERE user_id = $1 AND transaction_type = $2 AND reference_id = $3"
                ))
                .bind(user_id)
                .bind(kind.as_str())
                .bind(reference_id)
                .fetch_optional(self.writer())
                .await?)
            }

            async fn apply_credit(&self, credit: &NewCredit) -> StoreResult<Option<CreditTransaction>> {
                self.apply_credit_atomically(credit).await
            }

            async fn credit_transactions(
                &self,
                user_id: i64,
                skip: i64,
                limit: i64,
            ) -> StoreResult<(Vec<CreditTransaction>, i64)> {
                let rows = sqlx::query_as(&format!(
                    "SELECT {CREDIT_COLUMNS} FROM credit_transactions WHERE user_id = $1 \
                     ORDER BY id DESC LIMIT $2 OFFSET $3"
                ))
                .bind(user_id)
                .bind(limit)
                .bind(skip)
                .fetch_all(self.reader())
                .await?;
                let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM credit_transactions WHERE user_id = $1")
                    .bind(user_id)
                    .fetch_one(self.reader())
                    .await?;
                Ok((rows, total))
            }

            async fn ledger_mismatches(&self) -> StoreResult<Vec<LedgerMismatch>> {
                Ok(sqlx::query_as(LEDGER_MISMATCHES).fetch_all(self.reader()).await?)
            }
        }
    };
}

pub(super) const CREDIT_COLUMNS: &str =
    "id, user_id, amount, transaction_type, reference_id, description, balance_after, created_at";

/// The signed effect of a ledger row on the balance.
macro_rules! ledger_delta {
    () => {
        "CASE WHEN t.transaction_type IN ('credit_used', 'refund') THEN -t.amount ELSE t.amount END"
    };
}

/// Balances that differ from the sum of their ledger, and ledgers without a balance row.
pub(super) const LEDGER_MISMATCHES: &str = concat!(
    "SELECT b.user_id, b.balance, CAST(COALESCE(SUM(",
    ledger_delta!(),
    "), 0) AS BIGINT) AS ledger_sum ",
    "FROM credit_balances b LEFT JOIN credit_transactions t ON t.user_id = b.user_id ",
    "GROUP BY b.user_id, b.balance ",
    "HAVING b.balance <> CAST(COALESCE(SUM(",
    ledger_delta!(),
    "), 0) AS BIGINT) ",
    "UNION ALL ",
    "SELECT t.user_id, CAST(0 AS BIGINT) AS balance, CAST(SUM(",
    ledger_delta!(),
    ") AS BIGINT) AS ledger_sum ",
    "FROM credit_transactions t ",
    "WHERE NOT EXISTS (SELECT 1 FROM credit_balances b WHERE b.user_id = t.user_id) ",
    "GROUP BY t.user_id ",
    "ORDER BY 1"
);

/// Marks a usable token used and returns it, in one statement: two concurrent uses of
/// the same token cannot both succeed.
pub(super) const CONSUME_TOKEN: &str = "UPDATE email_tokens SET used_at = $3 \
     WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3 \
     RETURNING id, user_id, purpose, email, created_at, expires_at, used_at";

macro_rules! insert_grant {
    ($conn:expr, $user_id:expr, $grant:expr) => {
        sqlx::query(
            "INSERT INTO email_tokens (user_id, purpose, token_hash, email, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind($user_id)
        .bind($grant.purpose.as_str())
        .bind(&$grant.token_hash)
        .bind(&$grant.email)
        .bind($grant.created_at)
        .bind($grant.expires_at)
        .execute($conn)
        .await?
    };
}

macro_rules! insert_mail {
    ($conn:expr, $mail:expr, $now:expr) => {
        sqlx::query(
            "INSERT INTO mail_outbox (recipient, subject, text_body, html_body, created_at, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(&$mail.recipient)
        .bind(&$mail.subject)
        .bind(&$mail.text_body)
        .bind(&$mail.html_body)
        .bind($now)
        .execute($conn)
        .await?
    };
}

pub(super) use {claim_mail_sql, impl_shared_store, insert_grant, insert_mail};
