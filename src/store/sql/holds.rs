//! Holds: SQL both backends share. Every change of a hold runs in one transaction under
//! the lock of the user's balance row (`LOCK_BALANCE`), so holds, captures, releases and
//! uses of one account are decided one after the other, on every instance. The status
//! changes are also conditional (`WHERE status = 'held'`), so the expiry job, which
//! takes no balance lock, and a capture or release racing it have exactly one winner.

pub(in crate::store) const HOLD_COLUMNS: &str = "id, user_id, amount, status, reference_id, \
     description, created_at, expires_at, captured_amount, transaction_id, settled_at";

/// What active holds of user `$1` reserve at `$2`.
pub(in crate::store) const HELD_SUM: &str = "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) \
     FROM credit_holds WHERE user_id = $1 AND status = 'held' AND expires_at > $2";

/// Rewrites on user `$1`'s balance row (whose lock the transaction holds) what the holds
/// active at `$2` reserve and when the first of them expires (migration 0013): every
/// change of a hold runs it, so a read may trust the row until that expiry; the expiry
/// job runs it too once it has marked an account's holds, so reads trust the row again.
pub(in crate::store) const RECOUNT_HELD: &str = "UPDATE credit_balances SET \
     held = (SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM credit_holds \
     WHERE user_id = $1 AND status = 'held' AND expires_at > $2), \
     held_soonest = (SELECT MIN(expires_at) FROM credit_holds \
     WHERE user_id = $1 AND status = 'held' AND expires_at > $2) \
     WHERE user_id = $1";

/// A status filter at `$2`: `held` and `expired` are decided by the time, not the row.
pub(in crate::store) const HOLD_STATUS_FILTER: &str = "($3 IS NULL \
     OR ($3 = 'held' AND status = 'held' AND expires_at > $2) \
     OR ($3 = 'expired' AND (status = 'expired' OR (status = 'held' AND expires_at <= $2))) \
     OR ($3 IN ('captured', 'released') AND status = $3))";

/// Runs `RECOUNT_HELD` in a hold's transaction.
macro_rules! recount_held {
    ($tx:expr, $user_id:expr, $now:expr) => {
        sqlx::query($crate::store::sql::holds::RECOUNT_HELD)
            .bind($user_id)
            .bind($now)
            .execute($tx)
            .await?
    };
}

macro_rules! impl_hold_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::HoldStore for $store {
            async fn create_hold(
                &self,
                hold: &NewHold,
                activity: &Activity,
            ) -> StoreResult<CreateHoldOutcome> {
                let mut tx = self.writer().begin().await?;
                let locked: Result<i64, StoreError> = sqlx::query_scalar(LOCK_BALANCE)
                    .bind(hold.user_id)
                    .bind(hold.created_at)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(StoreError::from);
                let balance = match locked {
                    Ok(balance) => balance,
                    Err(StoreError::MissingReference) => return Ok(CreateHoldOutcome::NoSuchUser),
                    Err(e) => return Err(e),
                };
                let held: i64 = sqlx::query_scalar(HELD_SUM)
                    .bind(hold.user_id)
                    .bind(hold.created_at)
                    .fetch_one(&mut *tx)
                    .await?;
                let earlier: Option<CreditHold> = sqlx::query_as(&format!(
                    "SELECT {HOLD_COLUMNS} FROM credit_holds WHERE user_id = $1 AND reference_id = $2"
                ))
                .bind(hold.user_id)
                .bind(&hold.reference_id)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(earlier) = earlier {
                    tx.rollback().await?;
                    return Ok(if earlier.amount == hold.amount {
                        CreateHoldOutcome::Replayed {
                            hold: earlier,
                            available: balance - held,
                        }
                    } else {
                        CreateHoldOutcome::Conflict
                    });
                }
                if balance - held < hold.amount {
                    tx.rollback().await?;
                    return Ok(CreateHoldOutcome::Insufficient);
                }
                let created: CreditHold = sqlx::query_as(&format!(
                    "INSERT INTO credit_holds (user_id, amount, status, reference_id, description, \
                     created_at, expires_at) VALUES ($1, $2, 'held', $3, $4, $5, $6) \
                     RETURNING {HOLD_COLUMNS}"
                ))
                .bind(hold.user_id)
                .bind(hold.amount)
                .bind(&hold.reference_id)
                .bind(&hold.description)
                .bind(hold.created_at)
                .bind(hold.expires_at)
                .fetch_one(&mut *tx)
                .await?;
                $crate::store::sql::holds::recount_held!(&mut *tx, hold.user_id, hold.created_at);
                let crossed = $crate::store::Event::low_balance_crossed(
                    self.low_balance_threshold,
                    hold.user_id,
                    balance - held,
                    balance - held - hold.amount,
                    hold.created_at,
                );
                if let Some(low) = crossed {
                    insert_event!(&mut *tx, &low);
                }
                insert_activity!(&mut *tx, activity, activity.user_id);
                tx.commit().await?;
                Ok(CreateHoldOutcome::Created {
                    hold: created,
                    available: balance - held - hold.amount,
                })
            }

            async fn capture_hold(
                &self,
                user_id: i64,
                hold_id: i64,
                amount: i64,
                description: Option<&str>,
                activity: &Activity,
            ) -> StoreResult<CaptureOutcome> {
                let now = activity.created_at;
                let mut tx = self.writer().begin().await?;
                let balance: i64 = match sqlx::query_scalar(LOCK_BALANCE)
                    .bind(user_id)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(StoreError::from)
                {
                    Ok(balance) => balance,
                    Err(StoreError::MissingReference) => return Ok(CaptureOutcome::NotFound),
                    Err(e) => return Err(e),
                };
                let found: Option<CreditHold> = sqlx::query_as(&format!(
                    "SELECT {HOLD_COLUMNS} FROM credit_holds WHERE id = $1 AND user_id = $2"
                ))
                .bind(hold_id)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(hold) = found else {
                    tx.rollback().await?;
                    return Ok(CaptureOutcome::NotFound);
                };
                if hold.status == $crate::store::CAPTURED {
                    let transaction: Option<CreditTransaction> = match hold.transaction_id {
                        Some(id) => sqlx::query_as(&format!(
                            "SELECT {CREDIT_COLUMNS} FROM credit_transactions WHERE id = $1"
                        ))
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?,
                        None => None,
                    };
                    tx.rollback().await?;
                    return Ok(if hold.captured_amount == Some(amount) {
                        CaptureOutcome::Replayed { hold, transaction, balance }
                    } else {
                        CaptureOutcome::Conflict
                    });
                }
                if hold.status_at(now) != $crate::store::HELD {
                    tx.rollback().await?;
                    return Ok(CaptureOutcome::NotActive);
                }
                if amount > hold.amount {
                    tx.rollback().await?;
                    return Ok(CaptureOutcome::Exceeds);
                }
                if amount > balance {
                    tx.rollback().await?;
                    return Ok(CaptureOutcome::Insufficient);
                }
                // First the hold, conditionally: if the expiry job marked it meanwhile,
                // it wins and nothing is written.
                let settled: Option<CreditHold> = sqlx::query_as(&format!(
                    "UPDATE credit_holds SET status = 'captured', captured_amount = $3, settled_at = $4 \
                     WHERE id = $1 AND user_id = $2 AND status = 'held' AND expires_at > $4 \
                     RETURNING {HOLD_COLUMNS}"
                ))
                .bind(hold_id)
                .bind(user_id)
                .bind(amount)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(mut settled) = settled else {
                    tx.rollback().await?;
                    return Ok(CaptureOutcome::NotActive);
                };
                let mut transaction = None;
                let mut new_balance = balance;
                if amount > 0 {
                    new_balance = balance - amount;
                    let written: Result<CreditTransaction, StoreError> = sqlx::query_as(&format!(
                        "INSERT INTO credit_transactions (user_id, amount, transaction_type, \
                         reference_id, description, balance_after, created_at) \
                         VALUES ($1, $2, 'credit_used', $3, $4, $5, $6) RETURNING {CREDIT_COLUMNS}"
                    ))
                    .bind(user_id)
                    .bind(amount)
                    .bind(&settled.reference_id)
                    .bind(description.or(settled.description.as_deref()))
                    .bind(new_balance)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(StoreError::from);
                    let written = match written {
                        Ok(row) => row,
                        Err(StoreError::DuplicateReference) => {
                            tx.rollback().await?;
                            return Ok(CaptureOutcome::ReferenceTaken);
                        }
                        Err(e) => return Err(e),
                    };
                    insert_event!(&mut *tx, &$crate::store::Event::credit_transaction(&written));
                    sqlx::query(
                        "UPDATE credit_balances SET balance = $2, updated_at = $3 WHERE user_id = $1",
                    )
                    .bind(user_id)
                    .bind(new_balance)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("UPDATE credit_holds SET transaction_id = $2 WHERE id = $1")
                        .bind(hold_id)
                        .bind(written.id)
                        .execute(&mut *tx)
                        .await?;
                    settled.transaction_id = Some(written.id);
                    transaction = Some(written);
                }
                $crate::store::sql::holds::recount_held!(&mut *tx, user_id, now);
                insert_activity!(&mut *tx, activity, activity.user_id);
                tx.commit().await?;
                Ok(CaptureOutcome::Captured {
                    hold: settled,
                    transaction,
                    balance: new_balance,
                })
            }

            async fn release_hold(
                &self,
                user_id: i64,
                hold_id: i64,
                activity: &Activity,
            ) -> StoreResult<ReleaseOutcome> {
                let now = activity.created_at;
                let mut tx = self.writer().begin().await?;
                match sqlx::query_scalar::<_, i64>(LOCK_BALANCE)
                    .bind(user_id)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(StoreError::from)
                {
                    Ok(_) => {}
                    Err(StoreError::MissingReference) => return Ok(ReleaseOutcome::NotFound),
                    Err(e) => return Err(e),
                }
                let released: Option<CreditHold> = sqlx::query_as(&format!(
                    "UPDATE credit_holds SET status = 'released', settled_at = $3 \
                     WHERE id = $1 AND user_id = $2 AND status = 'held' AND expires_at > $3 \
                     RETURNING {HOLD_COLUMNS}"
                ))
                .bind(hold_id)
                .bind(user_id)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(released) = released {
                    $crate::store::sql::holds::recount_held!(&mut *tx, user_id, now);
                    insert_activity!(&mut *tx, activity, activity.user_id);
                    tx.commit().await?;
                    return Ok(ReleaseOutcome::Released(released));
                }
                let found: Option<CreditHold> = sqlx::query_as(&format!(
                    "SELECT {HOLD_COLUMNS} FROM credit_holds WHERE id = $1 AND user_id = $2"
                ))
                .bind(hold_id)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
                tx.rollback().await?;
                Ok(match found {
                    None => ReleaseOutcome::NotFound,
                    Some(hold) if hold.status == $crate::store::RELEASED => {
                        ReleaseOutcome::Released(hold)
                    }
                    Some(hold) if hold.status == $crate::store::CAPTURED => ReleaseOutcome::Captured,
                    Some(_) => ReleaseOutcome::NotActive,
                })
            }

            async fn hold_by_id(&self, user_id: i64, hold_id: i64) -> StoreResult<Option<CreditHold>> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {HOLD_COLUMNS} FROM credit_holds WHERE id = $1 AND user_id = $2"
                ))
                .bind(hold_id)
                .bind(user_id)
                .fetch_optional(self.reader())
                .await?)
            }

            async fn holds(
                &self,
                user_id: i64,
                status: Option<&str>,
                now: DateTime<Utc>,
                skip: i64,
                limit: i64,
            ) -> StoreResult<(Vec<CreditHold>, i64)> {
                let rows = sqlx::query_as(&format!(
                    "SELECT {HOLD_COLUMNS} FROM credit_holds WHERE user_id = $1 AND {HOLD_STATUS_FILTER} \
                     ORDER BY id DESC LIMIT $4 OFFSET $5"
                ))
                .bind(user_id)
                .bind(now)
                .bind(status)
                .bind(limit)
                .bind(skip)
                .fetch_all(self.reader())
                .await?;
                let total: i64 = sqlx::query_scalar(&format!(
                    "SELECT COUNT(*) FROM credit_holds WHERE user_id = $1 AND {HOLD_STATUS_FILTER}"
                ))
                .bind(user_id)
                .bind(now)
                .bind(status)
                .fetch_one(self.reader())
                .await?;
                Ok((rows, total))
            }

            async fn expire_holds(
                &self,
                now: DateTime<Utc>,
                limit: i64,
            ) -> StoreResult<Vec<CreditHold>> {
                let mut tx = self.writer().begin().await?;
                let expired: Vec<CreditHold> = sqlx::query_as(&format!(
                    "UPDATE credit_holds SET status = 'expired', settled_at = $1 \
                     WHERE status = 'held' AND id IN (SELECT id FROM credit_holds \
                     WHERE status = 'held' AND expires_at <= $1 ORDER BY id LIMIT $2) \
                     RETURNING {HOLD_COLUMNS}"
                ))
                .bind(now)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
                for hold in &expired {
                    let activity = Activity {
                        user_id: Some(hold.user_id),
                        event: $crate::store::HOLD_EXPIRED_EVENT,
                        ip: None,
                        user_agent: None,
                        details: serde_json::json!({
                            "hold_id": hold.id,
                            "amount": hold.amount,
                            "reference_id": hold.reference_id,
                        })
                        .to_string(),
                        created_at: now,
                    };
                    insert_activity!(&mut *tx, activity, activity.user_id);
                    insert_event!(&mut *tx, &$crate::store::Event::hold_expired(hold));
                }
                tx.commit().await?;
                // The accounts' balance rows still count what was just marked: each is
                // recounted under its lock, taken first as every hold change takes it, in a
                // transaction of its own (no hold row is locked meanwhile), so reads trust
                // the row again instead of summing the holds until the next hold change.
                let mut users: Vec<i64> = expired.iter().map(|h| h.user_id).collect();
                users.sort_unstable();
                users.dedup();
                for user_id in users {
                    let mut tx = self.writer().begin().await?;
                    let locked = sqlx::query_scalar::<_, i64>(LOCK_BALANCE)
                        .bind(user_id)
                        .bind(now)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(StoreError::from);
                    match locked {
                        Ok(_) => {}
                        // Deleted meanwhile: nothing left to recount.
                        Err(StoreError::MissingReference) => continue,
                        Err(e) => return Err(e),
                    }
                    $crate::store::sql::holds::recount_held!(&mut *tx, user_id, now);
                    tx.commit().await?;
                }
                Ok(expired)
            }

            async fn overheld_accounts(
                &self,
                now: DateTime<Utc>,
            ) -> StoreResult<Vec<(i64, i64, i64)>> {
                Ok(sqlx::query_as(
                    "SELECT h.user_id, COALESCE(MAX(b.balance), 0), CAST(SUM(h.amount) AS BIGINT) \
                     FROM credit_holds h LEFT JOIN credit_balances b ON b.user_id = h.user_id \
                     WHERE h.status = 'held' AND h.expires_at > $1 GROUP BY h.user_id \
                     HAVING CAST(SUM(h.amount) AS BIGINT) > COALESCE(MAX(b.balance), 0) ORDER BY 1",
                )
                .bind(now)
                .fetch_all(self.reader())
                .await?)
            }

            async fn stale_held_accounts(
                &self,
                now: DateTime<Utc>,
            ) -> StoreResult<Vec<(i64, i64, i64)>> {
                Ok(sqlx::query_as(
                    "SELECT user_id, on_row, summed FROM (SELECT b.user_id, \
                     CASE WHEN b.held_soonest IS NULL THEN 0 ELSE b.held END AS on_row, \
                     (SELECT CAST(COALESCE(SUM(h.amount), 0) AS BIGINT) FROM credit_holds h \
                     WHERE h.user_id = b.user_id AND h.status = 'held' AND h.expires_at > $1) AS summed \
                     FROM credit_balances b WHERE b.held_soonest IS NULL OR b.held_soonest > $1) AS c \
                     WHERE on_row <> summed ORDER BY user_id",
                )
                .bind(now)
                .fetch_all(self.reader())
                .await?)
            }
        }
    };
}

pub(in crate::store) use {impl_hold_store, recount_held};
