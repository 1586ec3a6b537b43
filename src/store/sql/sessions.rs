//! Login sessions: SQL shared by both backends. A session row is what every access token
//! and browser cookie is checked against, so revoking it ends them at once.

macro_rules! impl_session_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::SessionStore for $store {
            async fn create_session(&self, s: &NewSession, activity: Option<&Activity>) -> StoreResult<()> {
                let mut tx = self.writer().begin().await?;
                sqlx::query(
                    "INSERT INTO sessions (id, user_id, refresh_token_hash, created_at, expires_at, last_seen_at, \
                     ip, user_agent, assurance, second_factor_at) \
                     VALUES ($1, $2, $3, $4, $5, $4, $6, $7, $8, $9)",
                )
                .bind(&s.id)
                .bind(s.user_id)
                .bind(&s.refresh_token_hash)
                .bind(s.created_at)
                .bind(s.expires_at)
                .bind(&s.ip)
                .bind(&s.user_agent)
                .bind(&s.assurance)
                .bind(s.second_factor_at)
                .execute(&mut *tx)
                .await?;
                if let Some(activity) = activity {
                    insert_activity!(&mut *tx, activity, Some(s.user_id));
                }
                tx.commit().await?;
                Ok(())
            }

            async fn mark_second_factor(
                &self,
                session_id: &str,
                at: DateTime<Utc>,
            ) -> StoreResult<bool> {
                Ok(sqlx::query(
                    "UPDATE sessions SET second_factor_at = $1 \
                     WHERE id = $2 AND revoked_at IS NULL",
                )
                .bind(at)
                .bind(session_id)
                .execute(self.writer())
                .await?
                .rows_affected()
                    == 1)
            }

            async fn session_with_user(&self, session_id: &str) -> StoreResult<Option<(Session, User)>> {
                // The same columns and row reader as the one-statement reads (sql/reads.rs).
                let row = sqlx::query(super::sql::SESSION_WITH_USER)
                    .bind(session_id)
                    .fetch_optional(self.reader())
                    .await?;
                Ok(match row {
                    Some(row) => caller_in(&row)?,
                    None => None,
                })
            }

            async fn live_sessions(&self, user_id: i64, now: DateTime<Utc>) -> StoreResult<Vec<Session>> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1 AND revoked_at IS NULL \
                     AND expires_at > $2 ORDER BY created_at DESC"
                ))
                .bind(user_id)
                .bind(now)
                .fetch_all(self.reader())
                .await?)
            }

            async fn touch_session(&self, session_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
                sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE id = $1")
                    .bind(session_id)
                    .bind(now)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn rotate_refresh_token(
                &self,
                session_id: &str,
                current_hash: &str,
                new_hash: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<bool> {
                if let Some(one_statement) = Self::ROTATE_REFRESH_TOKEN {
                    let done = sqlx::query(one_statement)
                        .bind(session_id)
                        .bind(current_hash)
                        .bind(new_hash)
                        .bind(now)
                        .execute(self.writer())
                        .await?;
                    return Ok(done.rows_affected() == 1);
                }
                let mut tx = self.writer().begin().await?;
                let done = sqlx::query(
                    "UPDATE sessions SET refresh_token_hash = $3 \
                     WHERE id = $1 AND refresh_token_hash = $2 AND revoked_at IS NULL",
                )
                .bind(session_id)
                .bind(current_hash)
                .bind(new_hash)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Ok(false);
                }
                sqlx::query("INSERT INTO retired_refresh_tokens (token_hash, session_id, retired_at) VALUES ($1, $2, $3)")
                    .bind(current_hash)
                    .bind(session_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn revoke_session(&self, user_id: i64, session_id: &str, activity: &Activity) -> StoreResult<bool> {
                let mut tx = self.writer().begin().await?;
                let done = sqlx::query(
                    "UPDATE sessions SET revoked_at = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
                )
                .bind(session_id)
                .bind(user_id)
                .bind(activity.created_at)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Ok(false);
                }
                insert_activity!(&mut *tx, activity, Some(user_id));
                tx.commit().await?;
                Ok(true)
            }

            async fn revoke_all_sessions(&self, user_id: i64, activity: &Activity) -> StoreResult<u64> {
                let mut tx = self.writer().begin().await?;
                let done = sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
                    .bind(user_id)
                    .bind(activity.created_at)
                    .execute(&mut *tx)
                    .await?;
                insert_activity!(&mut *tx, activity, Some(user_id));
                insert_event!(&mut *tx, &Event::sessions_revoked(user_id, "logout_all", done.rows_affected()));
                tx.commit().await?;
                Ok(done.rows_affected())
            }
        }
    };
}

pub(in crate::store) use impl_session_store;
