//! Users, emailed tokens and the schema: SQL shared by both backends (sessions: sessions.rs).

macro_rules! impl_account_store {
    ($store:ty, $migrator:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::AccountStore for $store {
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

            async fn upgrade_password_hash(
                &self,
                user_id: i64,
                current_hash: &str,
                new_hash: &str,
                activity: &Activity,
            ) -> StoreResult<bool> {
                let mut tx = self.writer().begin().await?;
                let done = sqlx::query("UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2")
                    .bind(user_id)
                    .bind(current_hash)
                    .bind(new_hash)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() != 1 {
                    return Ok(false);
                }
                insert_activity!(&mut *tx, activity, Some(user_id));
                tx.commit().await?;
                Ok(true)
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

            async fn create_user(
                &self,
                user: &NewUser,
                grant: Option<&TokenGrant>,
                mail: &[OutgoingMail],
                activity: &Activity,
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
                insert_activity!(&mut *tx, activity, Some(created.id));
                insert_event!(&mut *tx, &Event::user_created(&created));
                tx.commit().await?;
                Ok(created)
            }

            async fn change_password(
                &self,
                user_id: i64,
                hash: &str,
                keep_session: &str,
                activity: &Activity,
            ) -> StoreResult<()> {
                let now = activity.created_at;
                let mut tx = self.writer().begin().await?;
                sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
                    .bind(user_id)
                    .bind(hash)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                let revoked = sqlx::query(
                    "UPDATE sessions SET revoked_at = $3 WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL",
                )
                .bind(user_id)
                .bind(keep_session)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                insert_activity!(&mut *tx, activity, Some(user_id));
                insert_event!(&mut *tx, &Event::sessions_revoked(user_id, "password_change", revoked.rows_affected()));
                tx.commit().await?;
                Ok(())
            }

            async fn delete_user(&self, user_id: i64, activity: &Activity) -> StoreResult<bool> {
                let mut tx = self.writer().begin().await?;
                // The active admins, locked (PostgreSQL; SQLite has one writer): two admins
                // deleting themselves at once cannot each see the other as the one who stays.
                let admins: Vec<i64> = sqlx::query_scalar(&format!(
                    "SELECT id FROM users WHERE is_admin AND is_active ORDER BY id {}",
                    Self::LOCK_ROWS
                ))
                .fetch_all(&mut *tx)
                .await?;
                if admins == [user_id] {
                    return Err(StoreError::LastAdmin);
                }
                let done = sqlx::query("DELETE FROM users WHERE id = $1").bind(user_id).execute(&mut *tx).await?;
                if done.rows_affected() != 1 {
                    return Ok(false);
                }
                insert_activity!(&mut *tx, activity, Some(user_id));
                insert_event!(&mut *tx, &Event::user_deleted(user_id));
                tx.commit().await?;
                Ok(true)
            }

            async fn list_users(&self, search: Option<&str>, skip: i64, limit: i64) -> StoreResult<(Vec<User>, i64)> {
                // LIKE with our own escape character, so '%' and '_' in the search match themselves.
                let pattern = search.map(|s| {
                    let escaped = s.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
                    format!("%{escaped}%")
                });
                let filter = "($1 IS NULL OR username_key LIKE $1 ESCAPE '\\' OR email LIKE $1 ESCAPE '\\')";
                let users = sqlx::query_as(&format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE {filter} ORDER BY id DESC LIMIT $2 OFFSET $3"
                ))
                .bind(&pattern)
                .bind(limit)
                .bind(skip)
                .fetch_all(self.reader())
                .await?;
                let total = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM users WHERE {filter}"))
                    .bind(&pattern)
                    .fetch_one(self.reader())
                    .await?;
                Ok((users, total))
            }

            async fn update_user_flags(
                &self,
                user_id: i64,
                flags: &UserFlags,
                activity: &Activity,
            ) -> StoreResult<Option<User>> {
                let mut tx = self.writer().begin().await?;
                let user: Option<User> = sqlx::query_as(&format!(
                    "UPDATE users SET is_admin = COALESCE($2, is_admin), is_active = COALESCE($3, is_active), \
                     is_verified = COALESCE($4, is_verified), updated_at = $5 WHERE id = $1 RETURNING {USER_COLUMNS}"
                ))
                .bind(user_id)
                .bind(flags.is_admin)
                .bind(flags.is_active)
                .bind(flags.is_verified)
                .bind(activity.created_at)
                .fetch_optional(&mut *tx)
                .await?;
                if user.is_none() {
                    return Ok(None);
                }
                if flags.is_active == Some(false) {
                    // A deactivated account's sessions end for good: reactivation does not
                    // bring tokens issued before it back to life.
                    let revoked = sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
                        .bind(user_id)
                        .bind(activity.created_at)
                        .execute(&mut *tx)
                        .await?;
                    insert_event!(&mut *tx, &Event::sessions_revoked(user_id, "deactivation", revoked.rows_affected()));
                }
                insert_activity!(&mut *tx, activity, Some(user_id));
                if let Some(u) = &user {
                    insert_event!(&mut *tx, &Event::user_updated(u, "flags"));
                }
                tx.commit().await?;
                Ok(user)
            }

            async fn grant_token(
                &self,
                user_id: i64,
                grant: &TokenGrant,
                mail: &[OutgoingMail],
                activity: Option<&Activity>,
            ) -> StoreResult<()> {
                let mut tx = self.writer().begin().await?;
                insert_grant!(&mut *tx, user_id, grant);
                for m in mail {
                    insert_mail!(&mut *tx, m, grant.created_at);
                }
                if let Some(activity) = activity {
                    insert_activity!(&mut *tx, activity, Some(user_id));
                }
                tx.commit().await?;
                Ok(())
            }

            async fn verify_email(
                &self,
                token_hash: &str,
                now: DateTime<Utc>,
                activity: &Activity,
            ) -> StoreResult<Option<bool>> {
                let mut tx = self.writer().begin().await?;
                let token: Option<EmailToken> = sqlx::query_as(CONSUME_TOKEN)
                    .bind(token_hash)
                    .bind(TokenPurpose::VerifyEmail.as_str())
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(token) = token else { return Ok(None) };
                // A link sent to an address the account no longer has proves nothing.
                let done = sqlx::query("UPDATE users SET is_verified = TRUE WHERE id = $1 AND email = $2")
                    .bind(token.user_id)
                    .bind(&token.email)
                    .execute(&mut *tx)
                    .await?;
                let verified = done.rows_affected() == 1;
                if verified {
                    insert_activity!(&mut *tx, activity, Some(token.user_id));
                    insert_event!(&mut *tx, &Event::user_verified(token.user_id, &token.email));
                }
                tx.commit().await?;
                Ok(Some(verified))
            }

            async fn reset_password(
                &self,
                token_hash: &str,
                new_hash: &str,
                activity: &Activity,
            ) -> StoreResult<Option<i64>> {
                let now = activity.created_at;
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
                let revoked = sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
                    .bind(token.user_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                insert_activity!(&mut *tx, activity, Some(token.user_id));
                insert_event!(&mut *tx, &Event::sessions_revoked(token.user_id, "password_reset", revoked.rows_affected()));
                tx.commit().await?;
                Ok(Some(token.user_id))
            }
        }
    };
}

pub(in crate::store) use impl_account_store;
