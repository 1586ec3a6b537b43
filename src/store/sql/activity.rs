//! The audit trail: SQL shared by both backends.

macro_rules! impl_activity_store {
    ($store:ty, $migrator:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::ActivityStore for $store {
            async fn record_activity(&self, activity: &Activity) -> StoreResult<()> {
                let mut conn = self.writer().acquire().await?;
                insert_activity!(&mut *conn, activity, activity.user_id);
                Ok(())
            }

            async fn activities(
                &self,
                user_id: Option<i64>,
                skip: i64,
                limit: i64,
            ) -> StoreResult<(Vec<ActivityRecord>, i64)> {
                let filter = "($1 IS NULL OR user_id = $1)";
                let rows = sqlx::query_as(&format!(
                    "SELECT id, user_id, event, ip, user_agent, details, created_at FROM user_activity \
                     WHERE {filter} ORDER BY id DESC LIMIT $2 OFFSET $3"
                ))
                .bind(user_id)
                .bind(limit)
                .bind(skip)
                .fetch_all(self.reader())
                .await?;
                let total = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM user_activity WHERE {filter}"))
                    .bind(user_id)
                    .fetch_one(self.reader())
                    .await?;
                Ok((rows, total))
            }
        }
    };
}

pub(in crate::store) use impl_activity_store;
