//! Outgoing events (DESIGN §16): the event catalogue as data, the endpoint and delivery
//! rows, and the store methods the admin API and the delivery worker need. Events are
//! written by `insert_event!` (sql/mod.rs) inside the transaction of the change they report.

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::{CreditTransaction, OutgoingMail, StoreResult, User};

/// Every event type a subscription may name.
pub const EVENT_TYPES: &[&str] = &[
    "user.created",
    "user.verified",
    "user.updated",
    "user.deleted",
    "session.revoked",
    "credits.transaction",
    "credits.low_balance",
    "credits.hold.expired",
    "billing.payment.succeeded",
    "billing.payment.refunded",
    "billing.subscription.updated",
    "webhook.test",
];

/// The timestamp format of payloads (RFC 3339, UTC, microseconds); PostgreSQL's
/// `webhook_ts!` renders the same.
pub fn event_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// One event: its id is the `webhook-id` every delivery of it carries.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub event_type: &'static str,
    pub created_at: DateTime<Utc>,
    pub data: Value,
}

impl Event {
    pub fn new(event_type: &'static str, data: Value) -> Self {
        Self {
            id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
            event_type,
            created_at: Utc::now(),
            data,
        }
    }

    /// The body POSTed to endpoints: `{"type","timestamp","data"}`.
    pub fn payload(&self) -> String {
        json!({"type": self.event_type, "timestamp": event_time(self.created_at), "data": self.data})
            .to_string()
    }

    fn user(event_type: &'static str, u: &User) -> Self {
        Self::new(
            event_type,
            json!({"user_id": u.id, "username": u.username, "email": u.email,
                "is_admin": u.is_admin, "is_active": u.is_active, "is_verified": u.is_verified}),
        )
    }

    pub fn user_created(u: &User) -> Self {
        Self::user("user.created", u)
    }

    pub fn user_verified(user_id: i64, email: &str) -> Self {
        Self::new("user.verified", json!({"user_id": user_id, "email": email}))
    }

    /// A confirmed change of address (the new one is verified with it).
    pub fn user_email_changed(user_id: i64, email: &str) -> Self {
        Self::new(
            "user.updated",
            json!({"user_id": user_id, "email": email, "is_verified": true, "change": "email"}),
        )
    }

    /// `change` names what changed (`email`, `flags`).
    pub fn user_updated(u: &User, change: &str) -> Self {
        let mut e = Self::user("user.updated", u);
        e.data["change"] = json!(change);
        e
    }

    pub fn user_deleted(user_id: i64) -> Self {
        Self::new("user.deleted", json!({"user_id": user_id}))
    }

    /// `reason`: logout_all, password_change, password_reset, deactivation.
    pub fn sessions_revoked(user_id: i64, reason: &str, count: u64) -> Self {
        Self::new(
            "session.revoked",
            json!({"user_id": user_id, "reason": reason, "sessions": count}),
        )
    }

    /// One per ledger row. The id is derived from the row's, so PostgreSQL's one-statement
    /// credit paths (`credit_events_cte!`) produce the very same event in SQL.
    pub fn credit_transaction(t: &CreditTransaction) -> Self {
        Self {
            id: format!("msg_credit_{}", t.id),
            event_type: "credits.transaction",
            created_at: t.created_at,
            data: json!({"id": t.id, "user_id": t.user_id, "amount_cents": t.amount,
                "transaction_type": t.transaction_type, "reference_id": t.reference_id,
                "description": t.description, "balance_after_cents": t.balance_after,
                "created_at": event_time(t.created_at)}),
        }
    }

    pub fn payment_succeeded(
        user_id: i64,
        reference: &str,
        amount: i64,
        currency: &str,
        credits: i64,
        plan_id: &str,
    ) -> Self {
        Self::new(
            "billing.payment.succeeded",
            json!({"user_id": user_id, "reference": reference, "amount": amount, "currency": currency,
                "credits_cents": credits, "plan_id": plan_id}),
        )
    }

    /// `amount_refunded`: the payment's total refunded so far (smallest currency unit).
    pub fn payment_refunded(
        user_id: i64,
        reference: &str,
        amount_refunded: i64,
        credits: i64,
    ) -> Self {
        Self::new(
            "billing.payment.refunded",
            json!({"user_id": user_id, "reference": reference, "amount_refunded": amount_refunded,
                "credits_clawed_back_cents": credits}),
        )
    }

    pub fn subscription_updated(
        user_id: i64,
        subscription_id: &str,
        status: &str,
        cancel_at_period_end: bool,
    ) -> Self {
        Self::new(
            "billing.subscription.updated",
            json!({"user_id": user_id, "subscription_id": subscription_id, "status": status,
                "cancel_at_period_end": cancel_at_period_end}),
        )
    }

    /// Written by the hold-expiry job in the transaction that marks the hold expired.
    /// What an account can spend went from at least `threshold` to below it.
    pub fn low_balance(user_id: i64, available: i64, threshold: i64, at: DateTime<Utc>) -> Self {
        let mut event = Self::new(
            "credits.low_balance",
            json!({"user_id": user_id, "available_cents": available, "threshold_cents": threshold}),
        );
        event.created_at = at;
        event
    }

    /// `credits.low_balance` when a change took `user_id`'s available credits from
    /// `before` to `after` across the threshold (`None`: the event is off).
    pub fn low_balance_crossed(
        threshold: Option<i64>,
        user_id: i64,
        before: i64,
        after: i64,
        at: DateTime<Utc>,
    ) -> Option<Self> {
        let threshold = threshold?;
        (before >= threshold && after < threshold)
            .then(|| Self::low_balance(user_id, after, threshold, at))
    }

    pub fn hold_expired(hold: &super::CreditHold) -> Self {
        Self::new(
            "credits.hold.expired",
            json!({"user_id": hold.user_id, "hold_id": hold.id, "amount_cents": hold.amount,
                "reference_id": hold.reference_id, "expires_at": event_time(hold.expires_at)}),
        )
    }

    pub fn test() -> Self {
        Self::new(
            "webhook.test",
            json!({"message": "This is a test event from auth-service"}),
        )
    }
}

/// A registered endpoint; `secret_enc` and `old_secret_enc` are encrypted at rest.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookEndpoint {
    pub id: i64,
    pub url: String,
    /// `*` or `,type,type,` (see `subscription_column`).
    pub events: String,
    pub description: Option<String>,
    pub enabled: bool,
    pub secret_enc: String,
    pub old_secret_enc: Option<String>,
    pub old_secret_expires_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl WebhookEndpoint {
    pub fn event_types(&self) -> Vec<String> {
        if self.events == "*" {
            return vec!["*".to_owned()];
        }
        self.events
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// The stored form of a subscription: `*`, or the types between commas so that
/// `LIKE '%,' || type || ',%'` matches exactly one whole type on both backends.
pub fn subscription_column(types: &[String]) -> String {
    if types.iter().any(|t| t == "*") {
        return "*".to_owned();
    }
    format!(",{},", types.join(","))
}

/// What a new or changed endpoint stores.
#[derive(Debug, Clone)]
pub struct WebhookEndpointChange {
    pub url: Option<String>,
    pub events: Option<String>,
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookDelivery {
    pub id: i64,
    pub event_id: String,
    pub event_type: String,
    pub endpoint_id: i64,
    pub status: String,
    pub attempts: i64,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// A claimed delivery with all the worker needs to send it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueDelivery {
    pub id: i64,
    pub event_id: String,
    pub payload: String,
    pub endpoint_id: i64,
    pub url: String,
    pub secret_enc: String,
    pub old_secret_enc: Option<String>,
    pub old_secret_expires_at: Option<DateTime<Utc>>,
    pub attempts: i64,
}

/// The outcome of one attempt, recorded under the claim.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    pub status_code: Option<i64>,
    pub error: Option<String>,
    /// `None`: delivered. `Some(Some(at))`: retry at. `Some(None)`: no retry left (failed).
    pub retry: Option<Option<DateTime<Utc>>>,
}

#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    async fn create_endpoint(
        &self,
        url: &str,
        events: &str,
        description: Option<&str>,
        secret_enc: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<WebhookEndpoint>;
    async fn endpoints(&self) -> StoreResult<Vec<WebhookEndpoint>>;
    async fn endpoint(&self, id: i64) -> StoreResult<Option<WebhookEndpoint>>;
    async fn update_endpoint(
        &self,
        id: i64,
        change: &WebhookEndpointChange,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<WebhookEndpoint>>;
    async fn delete_endpoint(&self, id: i64) -> StoreResult<bool>;
    /// The current secret becomes the old one (signing alongside until `old_until`).
    async fn rotate_endpoint_secret(
        &self,
        id: i64,
        secret_enc: &str,
        old_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    async fn deliveries(
        &self,
        endpoint_id: i64,
        status: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<WebhookDelivery>>;
    /// Makes a delivery due now again (whatever its state).
    async fn retry_delivery(
        &self,
        endpoint_id: i64,
        delivery_id: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Writes an event on its own (the test event), fanned out like every other; returns
    /// how many deliveries it produced.
    async fn record_event(&self, event: &Event) -> StoreResult<u64>;
    /// Queues `event` for this endpoint only.
    async fn record_event_for(&self, event: &Event, endpoint_id: i64) -> StoreResult<()>;
    async fn claim_due_deliveries(
        &self,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        limit: i64,
        claim: &str,
    ) -> StoreResult<Vec<DueDelivery>>;
    async fn record_attempt(
        &self,
        delivery_id: i64,
        claim: &str,
        outcome: &AttemptOutcome,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// After a failed attempt: marks the endpoint failing (since now, if it was not) and
    /// disables it when it has been failing since before `disable_before`. Returns the
    /// endpoint when this call disabled it (so admins are told once).
    async fn endpoint_failed(
        &self,
        endpoint_id: i64,
        now: DateTime<Utc>,
        disable_before: DateTime<Utc>,
    ) -> StoreResult<Option<WebhookEndpoint>>;
    async fn endpoint_succeeded(&self, endpoint_id: i64) -> StoreResult<()>;
    async fn pending_webhook_count(&self) -> StoreResult<i64>;
    /// Emails of the active admins (told when an endpoint is disabled).
    async fn admin_emails(&self) -> StoreResult<Vec<String>>;
    /// Queues mail on its own (the notice that an endpoint was disabled).
    async fn queue_mail(&self, mail: &[OutgoingMail], now: DateTime<Utc>) -> StoreResult<()>;
}
