//! The credits ledger: SQL shared by both backends (the atomic change is per backend).

macro_rules! impl_credit_store {
    ($store:ty, $migrator:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::CreditStore for $store {
            async fn credit_balance(
                &self,
                user_id: i64,
            ) -> StoreResult<Option<(i64, DateTime<Utc>)>> {
                Ok(sqlx::query_as(
                    "SELECT balance, updated_at FROM credit_balances WHERE user_id = $1",
                )
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

            async fn apply_credit(
                &self,
                credit: &NewCredit,
                activity: &Activity,
            ) -> StoreResult<Option<CreditTransaction>> {
                self.apply_credit_atomically(credit, activity).await
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
                let total: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM credit_transactions WHERE user_id = $1",
                )
                .bind(user_id)
                .fetch_one(self.reader())
                .await?;
                Ok((rows, total))
            }

            async fn ledger_mismatches(&self) -> StoreResult<Vec<LedgerMismatch>> {
                Ok(sqlx::query_as(LEDGER_MISMATCHES)
                    .fetch_all(self.reader())
                    .await?)
            }
        }
    };
}

pub(in crate::store) use impl_credit_store;
