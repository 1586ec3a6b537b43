//! The credits ledger: SQL shared by both backends. Per backend: the atomic single
//! change, and the idempotency look-up and the writes of a group commit
//! (`credits_by_keys`, `write_credit_batch`).

/// Locks the user's balance row for the rest of the transaction, creating it at zero for
/// an account that never had credits (a foreign-key violation when the user does not
/// exist). A write, so on SQLite it takes the write lock before anything is read (a read
/// first would make a later write fail instead of waiting, should another process write).
/// On PostgreSQL, batches of other instances, billing's and single changes wait here.
pub(in crate::store) const LOCK_BALANCE: &str =
    "INSERT INTO credit_balances (user_id, balance, updated_at) VALUES ($1, 0, $2) \
     ON CONFLICT (user_id) DO UPDATE SET balance = credit_balances.balance RETURNING balance";

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

            async fn apply_credit_batch(
                &self,
                user_id: i64,
                batch: &[BatchCredit],
            ) -> StoreResult<Vec<BatchOutcome>> {
                let Some(first) = batch.first() else {
                    return Ok(Vec::new());
                };
                let mut tx = self.writer().begin().await?;
                let locked: Result<i64, StoreError> = sqlx::query_scalar(LOCK_BALANCE)
                    .bind(user_id)
                    .bind(first.credit.created_at)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(StoreError::from);
                let opening = match locked {
                    Ok(balance) => balance,
                    Err(StoreError::MissingReference) => {
                        return Ok(vec![BatchOutcome::NoSuchUser; batch.len()]);
                    }
                    Err(e) => return Err(e),
                };
                let mut keys: Vec<(&str, &str)> = batch
                    .iter()
                    .filter_map(|c| {
                        Some((c.credit.kind.as_str(), c.credit.reference_id.as_deref()?))
                    })
                    .collect();
                keys.sort_unstable();
                keys.dedup();
                let existing = if keys.is_empty() {
                    Vec::new()
                } else {
                    Self::credits_by_keys(&mut *tx, user_id, &keys).await?
                };
                // Uses spend only what active holds do not reserve (DESIGN §15).
                let held: i64 = sqlx::query_scalar($crate::store::sql::holds::HELD_SUM)
                    .bind(user_id)
                    .bind(first.credit.created_at)
                    .fetch_one(&mut *tx)
                    .await?;
                let plan = BatchPlan::with_held(opening, held, &existing, batch);
                if !plan.has_writes() {
                    // Also undoes a zero balance row the lock created.
                    tx.rollback().await?;
                    return plan.outcomes(batch, Vec::new());
                }
                let rows = Self::write_credit_batch(&mut *tx, user_id, &plan, batch).await?;
                // Rows come in the batch's order: each is one step of the available sum.
                let mut before = opening - held;
                for row in &rows {
                    let after = row.balance_after - held;
                    let crossed = $crate::store::Event::low_balance_crossed(
                        self.low_balance_threshold,
                        user_id,
                        before,
                        after,
                        row.created_at,
                    );
                    if let Some(low) = crossed {
                        insert_event!(&mut *tx, &low);
                    }
                    before = after;
                }
                let outcomes = plan.outcomes(batch, rows)?;
                tx.commit().await?;
                Ok(outcomes)
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
