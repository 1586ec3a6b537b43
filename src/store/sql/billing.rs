//! Billing: plans, Stripe customers and subscriptions, payments and webhook events. The
//! SQL is shared by both backends; `$conn` is the backend's connection type, so the
//! event's effects run on one transaction.

pub(in crate::store) const PLAN_COLUMNS: &str = "id, name, kind, credits, price, currency, \"interval\", stripe_price_id, active, created_at, updated_at";
pub(in crate::store) const SUBSCRIPTION_COLUMNS: &str = "stripe_subscription_id, user_id, plan_id, status, current_period_end, cancel_at_period_end, last_event_created, updated_at";
pub(in crate::store) const EVENT_COLUMNS: &str =
    "id, event_type, outcome, user_id, detail, stripe_created, received_at";

macro_rules! impl_billing_store {
    ($store:ty, $conn:ty) => {
        $crate::store::sql::billing_effects::impl_billing_effects!($store, $conn);

        #[async_trait::async_trait]
        impl $crate::store::BillingStore for $store {
            async fn plans(&self, active_only: bool) -> StoreResult<Vec<Plan>> {
                let filter = if active_only { "WHERE active = TRUE " } else { "" };
                Ok(sqlx::query_as(&format!(
                    "SELECT {PLAN_COLUMNS} FROM plans {filter}ORDER BY price, id"
                ))
                .fetch_all(self.reader())
                .await?)
            }

            async fn plan_by_id(&self, id: &str) -> StoreResult<Option<Plan>> {
                Ok(sqlx::query_as(&format!("SELECT {PLAN_COLUMNS} FROM plans WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(self.writer())
                    .await?)
            }

            async fn create_plan(&self, p: &Plan) -> StoreResult<Plan> {
                Ok(sqlx::query_as(&format!(
                    "INSERT INTO plans ({PLAN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                     RETURNING {PLAN_COLUMNS}"
                ))
                .bind(&p.id)
                .bind(&p.name)
                .bind(&p.kind)
                .bind(p.credits)
                .bind(p.price)
                .bind(&p.currency)
                .bind(&p.interval)
                .bind(&p.stripe_price_id)
                .bind(p.active)
                .bind(p.created_at)
                .bind(p.updated_at)
                .fetch_one(self.writer())
                .await?)
            }

            async fn update_plan(&self, p: &Plan) -> StoreResult<Option<Plan>> {
                Ok(sqlx::query_as(&format!(
                    "UPDATE plans SET name = $2, kind = $3, credits = $4, price = $5, currency = $6, \
                     \"interval\" = $7, stripe_price_id = $8, active = $9, updated_at = $10 WHERE id = $1 \
                     RETURNING {PLAN_COLUMNS}"
                ))
                .bind(&p.id)
                .bind(&p.name)
                .bind(&p.kind)
                .bind(p.credits)
                .bind(p.price)
                .bind(&p.currency)
                .bind(&p.interval)
                .bind(&p.stripe_price_id)
                .bind(p.active)
                .bind(p.updated_at)
                .fetch_optional(self.writer())
                .await?)
            }

            async fn stripe_customer_of(&self, user_id: i64) -> StoreResult<Option<String>> {
                Ok(sqlx::query_scalar(
                    "SELECT stripe_customer_id FROM billing_customers WHERE user_id = $1",
                )
                .bind(user_id)
                .fetch_optional(self.writer())
                .await?)
            }

            async fn save_stripe_customer(
                &self,
                user_id: i64,
                customer_id: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<String> {
                sqlx::query(
                    "INSERT INTO billing_customers (user_id, stripe_customer_id, created_at) \
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(user_id)
                .bind(customer_id)
                .bind(now)
                .execute(self.writer())
                .await?;
                let stored: Option<String> = self.stripe_customer_of(user_id).await?;
                stored.ok_or(StoreError::MissingReference)
            }

            async fn subscriptions_of(&self, user_id: i64) -> StoreResult<Vec<BillingSubscription>> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {SUBSCRIPTION_COLUMNS} FROM billing_subscriptions WHERE user_id = $1 \
                     ORDER BY updated_at DESC, stripe_subscription_id"
                ))
                .bind(user_id)
                .fetch_all(self.writer())
                .await?)
            }

            async fn set_cancel_at_period_end(
                &self,
                subscription_id: &str,
                cancel: bool,
                now: DateTime<Utc>,
            ) -> StoreResult<()> {
                sqlx::query(
                    "UPDATE billing_subscriptions SET cancel_at_period_end = $2, updated_at = $3 \
                     WHERE stripe_subscription_id = $1",
                )
                .bind(subscription_id)
                .bind(cancel)
                .bind(now)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn apply_stripe_event(
                &self,
                event: &IncomingEvent,
                effect: &EventEffect,
            ) -> StoreResult<(EventOutcome, Option<i64>)> {
                let mut tx = self.writer().begin().await?;
                // The id first: a concurrent delivery of the same event waits here for
                // this transaction and then finds the id taken.
                let fresh: Option<String> = sqlx::query_scalar(
                    "INSERT INTO billing_events (id, event_type, outcome, stripe_created, received_at) \
                     VALUES ($1, $2, 'applied', $3, $4) ON CONFLICT (id) DO NOTHING RETURNING id",
                )
                .bind(&event.id)
                .bind(&event.event_type)
                .bind(event.created)
                .bind(event.received_at)
                .fetch_optional(&mut *tx)
                .await?;
                if fresh.is_none() {
                    tx.rollback().await?;
                    return Ok((EventOutcome::Duplicate, None));
                }
                let (outcome, user_id, detail) = Self::billing_effect(&mut *tx, event, effect, self.low_balance_threshold).await?;
                sqlx::query("UPDATE billing_events SET outcome = $2, user_id = $3, detail = $4 WHERE id = $1")
                    .bind(&event.id)
                    .bind(outcome.as_str())
                    .bind(user_id)
                    .bind(detail)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok((outcome, user_id))
            }

            async fn billing_events(
                &self,
                outcome: Option<&str>,
                skip: i64,
                limit: i64,
            ) -> StoreResult<(Vec<BillingEventRecord>, i64)> {
                let rows = sqlx::query_as(&format!(
                    "SELECT {EVENT_COLUMNS} FROM billing_events WHERE ($1 IS NULL OR outcome = $1) \
                     ORDER BY received_at DESC, id LIMIT $2 OFFSET $3"
                ))
                .bind(outcome)
                .bind(limit)
                .bind(skip)
                .fetch_all(self.reader())
                .await?;
                let total: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM billing_events WHERE ($1 IS NULL OR outcome = $1)",
                )
                .bind(outcome)
                .fetch_one(self.reader())
                .await?;
                Ok((rows, total))
            }
        }
    };
}

pub(in crate::store) use impl_billing_store;
