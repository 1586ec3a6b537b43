//! Pending authorizations and linked identities: SQL shared by both backends.

pub(in crate::store) const IDENTITY_COLUMNS: &str =
    "id, provider, subject, user_id, email, linked_at";

macro_rules! impl_identity_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::IdentityStore for $store {
            async fn save_oauth_state(&self, s: &OAuthState) -> StoreResult<()> {
                let mut tx = self.writer().begin().await?;
                sqlx::query("DELETE FROM oauth_states WHERE expires_at <= $1")
                    .bind(s.created_at)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO oauth_states (state_hash, provider, intent, user_id, nonce_hash, redirect_uri, \
                     created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&s.state_hash)
                .bind(&s.provider)
                .bind(&s.intent)
                .bind(s.user_id)
                .bind(&s.nonce_hash)
                .bind(&s.redirect_uri)
                .bind(s.created_at)
                .bind(s.expires_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn take_oauth_state(&self, state_hash: &str) -> StoreResult<Option<OAuthState>> {
                Ok(sqlx::query_as(
                    "DELETE FROM oauth_states WHERE state_hash = $1 RETURNING state_hash, provider, intent, \
                     user_id, nonce_hash, redirect_uri, created_at, expires_at",
                )
                .bind(state_hash)
                .fetch_optional(self.writer())
                .await?)
            }

            async fn user_by_identity(
                &self,
                provider: &str,
                subject: &str,
            ) -> StoreResult<Option<(Identity, User)>> {
                let identity: Option<Identity> = sqlx::query_as(&format!(
                    "SELECT {IDENTITY_COLUMNS} FROM identities WHERE provider = $1 AND subject = $2"
                ))
                .bind(provider)
                .bind(subject)
                .fetch_optional(self.reader())
                .await?;
                let Some(identity) = identity else { return Ok(None) };
                let user: Option<User> = sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
                    .bind(identity.user_id)
                    .fetch_optional(self.reader())
                    .await?;
                Ok(user.map(|user| (identity, user)))
            }

            async fn identities_of(&self, user_id: i64) -> StoreResult<Vec<Identity>> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {IDENTITY_COLUMNS} FROM identities WHERE user_id = $1 ORDER BY linked_at, id"
                ))
                .bind(user_id)
                .fetch_all(self.reader())
                .await?)
            }

            async fn identities_of_users(&self, user_ids: &[i64]) -> StoreResult<Vec<Identity>> {
                if user_ids.is_empty() {
                    return Ok(Vec::new());
                }
                let params: Vec<String> = (1..=user_ids.len()).map(|i| format!("${i}")).collect();
                let sql = format!(
                    "SELECT {IDENTITY_COLUMNS} FROM identities WHERE user_id IN ({}) ORDER BY linked_at, id",
                    params.join(", ")
                );
                let mut query = sqlx::query_as(&sql);
                for id in user_ids {
                    query = query.bind(*id);
                }
                Ok(query.fetch_all(self.reader()).await?)
            }

            async fn link_identity(
                &self,
                user_id: i64,
                identity: &NewIdentity,
                activity: &Activity,
            ) -> StoreResult<LinkOutcome> {
                let mut tx = self.writer().begin().await?;
                let existing: Vec<(i64, String)> = sqlx::query_as(
                    "SELECT user_id, subject FROM identities WHERE provider = $1 AND (subject = $2 OR user_id = $3)",
                )
                .bind(&identity.provider)
                .bind(&identity.subject)
                .bind(user_id)
                .fetch_all(&mut *tx)
                .await?;
                if let Some((owner, _)) = existing.iter().find(|(_, subject)| *subject == identity.subject) {
                    return Ok(if *owner == user_id {
                        LinkOutcome::AlreadyLinked
                    } else {
                        LinkOutcome::IdentityInUse
                    });
                }
                if !existing.is_empty() {
                    return Ok(LinkOutcome::ProviderAlreadyLinked);
                }
                insert_identity!(&mut *tx, user_id, identity);
                insert_activity!(&mut *tx, activity, Some(user_id));
                tx.commit().await?;
                Ok(LinkOutcome::Linked)
            }

            async fn create_user_with_identity(
                &self,
                user: &NewUser,
                identity: &NewIdentity,
                mail: &[OutgoingMail],
                activities: &[Activity],
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
                insert_identity!(&mut *tx, created.id, identity);
                for m in mail {
                    insert_mail!(&mut *tx, m, user.created_at);
                }
                for activity in activities {
                    insert_activity!(&mut *tx, activity, Some(created.id));
                }
                insert_event!(&mut *tx, &Event::user_created(&created));
                tx.commit().await?;
                Ok(created)
            }

            async fn unlink_identity(
                &self,
                user_id: i64,
                provider: &str,
                activity: &Activity,
            ) -> StoreResult<UnlinkOutcome> {
                let mut tx = self.writer().begin().await?;
                // A no-op write takes the account's row lock (PostgreSQL); SQLite's single
                // writer already serialises. Concurrent unlinks of one account queue here.
                let has_password: Option<bool> = sqlx::query_scalar(
                    "UPDATE users SET updated_at = updated_at WHERE id = $1 RETURNING password_hash <> ''",
                )
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(has_password) = has_password else {
                    return Ok(UnlinkOutcome::NotLinked);
                };
                let providers: Vec<String> =
                    sqlx::query_scalar("SELECT provider FROM identities WHERE user_id = $1")
                        .bind(user_id)
                        .fetch_all(&mut *tx)
                        .await?;
                if !providers.iter().any(|p| p == provider) {
                    return Ok(UnlinkOutcome::NotLinked);
                }
                if !has_password && providers.len() < 2 {
                    return Ok(UnlinkOutcome::LastSignInMethod);
                }
                sqlx::query("DELETE FROM identities WHERE user_id = $1 AND provider = $2")
                    .bind(user_id)
                    .bind(provider)
                    .execute(&mut *tx)
                    .await?;
                insert_activity!(&mut *tx, activity, Some(user_id));
                tx.commit().await?;
                Ok(UnlinkOutcome::Unlinked)
            }
        }
    };
}

macro_rules! insert_identity {
    ($conn:expr, $user_id:expr, $identity:expr) => {
        sqlx::query(
            "INSERT INTO identities (provider, subject, user_id, email, linked_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&$identity.provider)
        .bind(&$identity.subject)
        .bind($user_id)
        .bind(&$identity.email)
        .bind($identity.linked_at)
        .execute($conn)
        .await?
    };
}

pub(in crate::store) use {impl_identity_store, insert_identity};
