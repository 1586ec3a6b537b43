//! Outgoing webhooks: endpoints, deliveries and the claim of due deliveries (SQL shared
//! by both backends; the claim's row lock differs, see `claim_webhooks_sql!`).

pub(in crate::store) const ENDPOINT_COLUMNS: &str =
    "id, url, events, description, enabled, secret_enc, \
     old_secret_enc, old_secret_expires_at, disabled_reason, failing_since, created_at, updated_at";

/// Fans an event out to every enabled endpoint subscribed to its type: one pending
/// delivery each, due at once. Done at insert (not by the worker) so the subscriptions
/// that count are those at the moment of the change, and the worker has one table to claim.
pub(in crate::store) const FAN_OUT_EVENT: &str = "INSERT INTO webhook_deliveries \
     (event_id, endpoint_id, status, attempts, next_attempt_at, created_at) \
     SELECT $1, id, 'pending', 0, $3, $3 FROM webhook_endpoints \
     WHERE enabled = TRUE AND (events = '*' OR events LIKE '%,' || $2 || ',%')";

pub(in crate::store) const DELIVERY_COLUMNS: &str =
    "d.id, d.event_id, e.event_type, d.endpoint_id, d.status, d.attempts, \
     d.last_status_code, d.last_error, d.next_attempt_at, d.created_at, d.delivered_at";

/// Leases due deliveries of enabled endpoints; `$lock` is the dialect's row-locking clause.
macro_rules! claim_webhooks_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE webhook_deliveries SET locked_until = $2, claim_token = $4, attempts = attempts + 1 ",
            "WHERE id IN (SELECT d.id FROM webhook_deliveries d WHERE d.status = 'pending' ",
            "AND d.next_attempt_at <= $1 AND (d.locked_until IS NULL OR d.locked_until <= $1) ",
            "AND EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.id = d.endpoint_id AND w.enabled = TRUE) ",
            "ORDER BY d.next_attempt_at, d.id LIMIT $3 ",
            $lock,
            ")"
        )
    };
}

/// Writes `$event` (a `&Event`) and its deliveries on `$conn`, the transaction of the
/// change it reports: the event exists exactly when the change committed.
macro_rules! insert_event {
    ($conn:expr, $event:expr) => {{
        let event: &$crate::store::Event = $event;
        sqlx::query("INSERT INTO webhook_events (id, event_type, payload, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&event.id)
            .bind(event.event_type)
            .bind(event.payload())
            .bind(event.created_at)
            .execute(&mut *$conn)
            .await?;
        sqlx::query($crate::store::sql::FAN_OUT_EVENT)
            .bind(&event.id)
            .bind(event.event_type)
            .bind(event.created_at)
            .execute(&mut *$conn)
            .await?
    }};
}

/// PostgreSQL's one-statement credit paths: the `credits.transaction` event of each row of
/// the `recorded` CTE and its deliveries, as further CTEs. Renders exactly
/// `Event::credit_transaction` (same id, payload fields and timestamp format).
macro_rules! credit_events_cte {
    () => {
        concat!(
            ", evented AS (INSERT INTO webhook_events (id, event_type, payload, created_at) ",
            "SELECT 'msg_credit_' || r.id, 'credits.transaction', json_build_object(",
            "'type', 'credits.transaction', 'timestamp', to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), ",
            "'data', json_build_object('id', r.id, 'user_id', r.user_id, 'amount_cents', r.amount, ",
            "'transaction_type', r.transaction_type, 'reference_id', r.reference_id, 'description', r.description, ",
            "'balance_after_cents', r.balance_after, ",
            "'created_at', to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')))::text, ",
            "r.created_at FROM recorded r RETURNING id, created_at), ",
            "fanned AS (INSERT INTO webhook_deliveries (event_id, endpoint_id, status, attempts, next_attempt_at, created_at) ",
            "SELECT ev.id, w.id, 'pending', 0, ev.created_at, ev.created_at FROM evented ev CROSS JOIN webhook_endpoints w ",
            "WHERE w.enabled = TRUE AND (w.events = '*' OR w.events LIKE '%,credits.transaction,%')) "
        )
    };
}

macro_rules! impl_webhook_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::WebhookStore for $store {
            async fn create_endpoint(
                &self,
                url: &str,
                events: &str,
                description: Option<&str>,
                secret_enc: &str,
                now: DateTime<Utc>,
            ) -> StoreResult<WebhookEndpoint> {
                Ok(sqlx::query_as(&format!(
                    "INSERT INTO webhook_endpoints (url, events, description, enabled, secret_enc, created_at, updated_at) \
                     VALUES ($1, $2, $3, TRUE, $4, $5, $5) RETURNING {ENDPOINT_COLUMNS}"
                ))
                .bind(url)
                .bind(events)
                .bind(description)
                .bind(secret_enc)
                .bind(now)
                .fetch_one(self.writer())
                .await?)
            }

            async fn endpoints(&self) -> StoreResult<Vec<WebhookEndpoint>> {
                Ok(sqlx::query_as(&format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY id"))
                    .fetch_all(self.writer())
                    .await?)
            }

            async fn endpoint(&self, id: i64) -> StoreResult<Option<WebhookEndpoint>> {
                Ok(sqlx::query_as(&format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(self.writer())
                    .await?)
            }

            async fn update_endpoint(
                &self,
                id: i64,
                change: &WebhookEndpointChange,
                now: DateTime<Utc>,
            ) -> StoreResult<Option<WebhookEndpoint>> {
                // Re-enabling clears the failure record, so the 5-day clock starts afresh.
                Ok(sqlx::query_as(&format!(
                    "UPDATE webhook_endpoints SET url = COALESCE($2, url), events = COALESCE($3, events), \
                     description = CASE WHEN $4 THEN $5 ELSE description END, \
                     enabled = COALESCE($6, enabled), \
                     disabled_reason = CASE WHEN $6 THEN NULL ELSE disabled_reason END, \
                     failing_since = CASE WHEN $6 THEN NULL ELSE failing_since END, \
                     updated_at = $7 WHERE id = $1 RETURNING {ENDPOINT_COLUMNS}"
                ))
                .bind(id)
                .bind(&change.url)
                .bind(&change.events)
                .bind(change.description.is_some())
                .bind(change.description.clone().flatten())
                .bind(change.enabled)
                .bind(now)
                .fetch_optional(self.writer())
                .await?)
            }

            async fn delete_endpoint(&self, id: i64) -> StoreResult<bool> {
                let done = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1")
                    .bind(id)
                    .execute(self.writer())
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn rotate_endpoint_secret(
                &self,
                id: i64,
                secret_enc: &str,
                old_until: DateTime<Utc>,
                now: DateTime<Utc>,
            ) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE webhook_endpoints SET old_secret_enc = secret_enc, old_secret_expires_at = $3, \
                     secret_enc = $2, updated_at = $4 WHERE id = $1",
                )
                .bind(id)
                .bind(secret_enc)
                .bind(old_until)
                .bind(now)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn deliveries(
                &self,
                endpoint_id: i64,
                status: Option<&str>,
                limit: i64,
            ) -> StoreResult<Vec<WebhookDelivery>> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id \
                     WHERE d.endpoint_id = $1 AND ($2 IS NULL OR d.status = $2) ORDER BY d.id DESC LIMIT $3"
                ))
                .bind(endpoint_id)
                .bind(status)
                .bind(limit)
                .fetch_all(self.writer())
                .await?)
            }

            async fn retry_delivery(
                &self,
                endpoint_id: i64,
                delivery_id: i64,
                now: DateTime<Utc>,
            ) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $3, locked_until = NULL, \
                     claim_token = NULL WHERE id = $1 AND endpoint_id = $2",
                )
                .bind(delivery_id)
                .bind(endpoint_id)
                .bind(now)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn record_event(&self, event: &Event) -> StoreResult<u64> {
                let mut tx = self.writer().begin().await?;
                let fanned = insert_event!(&mut *tx, event);
                tx.commit().await?;
                Ok(fanned.rows_affected())
            }

            async fn record_event_for(&self, event: &Event, endpoint_id: i64) -> StoreResult<()> {
                let mut tx = self.writer().begin().await?;
                sqlx::query("INSERT INTO webhook_events (id, event_type, payload, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(&event.id)
                    .bind(event.event_type)
                    .bind(event.payload())
                    .bind(event.created_at)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO webhook_deliveries (event_id, endpoint_id, status, attempts, next_attempt_at, created_at) \
                     VALUES ($1, $2, 'pending', 0, $3, $3)",
                )
                .bind(&event.id)
                .bind(endpoint_id)
                .bind(event.created_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn claim_due_deliveries(
                &self,
                now: DateTime<Utc>,
                lease: std::time::Duration,
                limit: i64,
                claim: &str,
            ) -> StoreResult<Vec<DueDelivery>> {
                let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
                sqlx::query(Self::CLAIM_WEBHOOKS)
                    .bind(now)
                    .bind(now + lease)
                    .bind(limit)
                    .bind(claim)
                    .execute(self.writer())
                    .await?;
                Ok(sqlx::query_as(
                    "SELECT d.id, d.event_id, e.payload, d.endpoint_id, w.url, w.secret_enc, w.old_secret_enc, \
                     w.old_secret_expires_at, d.attempts FROM webhook_deliveries d \
                     JOIN webhook_events e ON e.id = d.event_id JOIN webhook_endpoints w ON w.id = d.endpoint_id \
                     WHERE d.claim_token = $1 AND d.status = 'pending' ORDER BY d.id",
                )
                .bind(claim)
                .fetch_all(self.writer())
                .await?)
            }

            async fn record_attempt(
                &self,
                delivery_id: i64,
                claim: &str,
                outcome: &AttemptOutcome,
                now: DateTime<Utc>,
            ) -> StoreResult<bool> {
                let (status, next) = match outcome.retry {
                    None => ("delivered", None),
                    Some(Some(at)) => ("pending", Some(at)),
                    Some(None) => ("failed", None),
                };
                let done = sqlx::query(
                    "UPDATE webhook_deliveries SET status = $3, next_attempt_at = COALESCE($4, next_attempt_at), \
                     last_status_code = $5, last_error = $6, \
                     delivered_at = CASE WHEN $3 = 'delivered' THEN $7 ELSE delivered_at END, \
                     locked_until = NULL, claim_token = NULL WHERE id = $1 AND claim_token = $2",
                )
                .bind(delivery_id)
                .bind(claim)
                .bind(status)
                .bind(next)
                .bind(outcome.status_code)
                .bind(&outcome.error)
                .bind(now)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn endpoint_failed(
                &self,
                endpoint_id: i64,
                now: DateTime<Utc>,
                disable_before: DateTime<Utc>,
            ) -> StoreResult<Option<WebhookEndpoint>> {
                sqlx::query("UPDATE webhook_endpoints SET failing_since = $2 WHERE id = $1 AND failing_since IS NULL")
                    .bind(endpoint_id)
                    .bind(now)
                    .execute(self.writer())
                    .await?;
                Ok(sqlx::query_as(&format!(
                    "UPDATE webhook_endpoints SET enabled = FALSE, updated_at = $3, \
                     disabled_reason = 'every delivery failed for 5 days' \
                     WHERE id = $1 AND enabled = TRUE AND failing_since <= $2 RETURNING {ENDPOINT_COLUMNS}"
                ))
                .bind(endpoint_id)
                .bind(disable_before)
                .bind(now)
                .fetch_optional(self.writer())
                .await?)
            }

            async fn endpoint_succeeded(&self, endpoint_id: i64) -> StoreResult<()> {
                sqlx::query("UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL")
                    .bind(endpoint_id)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn pending_webhook_count(&self) -> StoreResult<i64> {
                Ok(sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'")
                    .fetch_one(self.reader())
                    .await?)
            }

            async fn admin_emails(&self) -> StoreResult<Vec<String>> {
                Ok(sqlx::query_scalar("SELECT email FROM users WHERE is_admin = TRUE AND is_active = TRUE ORDER BY id")
                    .fetch_all(self.reader())
                    .await?)
            }

            async fn queue_mail(&self, mail: &[OutgoingMail], now: DateTime<Utc>) -> StoreResult<()> {
                let mut tx = self.writer().begin().await?;
                for m in mail {
                    insert_mail!(&mut *tx, m, now);
                }
                tx.commit().await?;
                Ok(())
            }
        }
    };
}

pub(in crate::store) use {
    claim_webhooks_sql, credit_events_cte, impl_webhook_store, insert_event,
};
