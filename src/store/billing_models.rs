//! Rows and changes of the billing area (plans, Stripe customers, subscriptions, payments,
//! webhook events).

use chrono::{DateTime, Utc};

/// A plan: how many credits a Stripe Price buys. Never deleted, only deactivated.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Plan {
    pub id: String,
    pub name: String,
    /// `one_time` or `subscription`.
    pub kind: String,
    /// Credits in cents.
    pub credits: i64,
    /// Price in the currency's minor units.
    pub price: i64,
    pub currency: String,
    /// `month` or `year` for subscriptions.
    pub interval: Option<String>,
    pub stripe_price_id: String,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BillingSubscription {
    pub stripe_subscription_id: String,
    pub user_id: i64,
    pub plan_id: Option<String>,
    pub status: String,
    pub current_period_end: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
    pub last_event_created: i64,
    pub updated_at: DateTime<Utc>,
}

impl BillingSubscription {
    /// Statuses in which the user already pays for (or is about to pay for) a subscription.
    pub fn is_live(&self) -> bool {
        matches!(
            self.status.as_str(),
            "active" | "trialing" | "past_due" | "incomplete" | "unpaid"
        )
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BillingEventRecord {
    pub id: String,
    pub event_type: String,
    pub outcome: String,
    pub user_id: Option<i64>,
    pub detail: Option<String>,
    pub stripe_created: i64,
    pub received_at: DateTime<Utc>,
}

/// What became of a webhook event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    Applied,
    /// Its id was recorded before: nothing changed.
    Duplicate,
    /// A type (or a state) that changes nothing.
    Ignored,
    /// No user could be found for it: kept for admins.
    Unmatched,
}

impl EventOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Duplicate => "duplicate",
            Self::Ignored => "ignored",
            Self::Unmatched => "unmatched",
        }
    }
}

/// The identity of a verified event, recorded with its effects.
#[derive(Debug, Clone)]
pub struct IncomingEvent {
    pub id: String,
    pub event_type: String,
    /// `created` of the event (unix seconds): orders subscription updates.
    pub created: i64,
    pub received_at: DateTime<Utc>,
}

/// Who an event is about: the Stripe customer and, when the object carries it, the user id
/// we put into its metadata / client_reference_id.
#[derive(Debug, Clone, Default)]
pub struct EventOwner {
    pub customer_id: Option<String>,
    pub user_id: Option<i64>,
}

/// A payment that buys credits: a paid one-time checkout session or a paid invoice.
#[derive(Debug, Clone)]
pub struct PaymentGrant {
    pub owner: EventOwner,
    /// `cs_…` or `in_…`: one grant per reference, however many events name it.
    pub reference: String,
    pub kind: super::CreditKind,
    /// The plan by id (checkout metadata) or else by the Stripe price of the line item.
    pub plan_id: Option<String>,
    pub price_id: Option<String>,
    pub payment_intent: Option<String>,
    pub charge_id: Option<String>,
    pub amount: i64,
    pub currency: String,
    /// For invoices: the subscription the period belongs to.
    pub subscription_id: Option<String>,
}

/// A subscription's state as an event describes it.
#[derive(Debug, Clone)]
pub struct SubscriptionState {
    pub owner: EventOwner,
    pub subscription_id: String,
    pub status: String,
    pub plan_id: Option<String>,
    pub price_id: Option<String>,
    pub current_period_end: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
}

/// The effect of a verified event, parsed from its object; the store applies it in the
/// same transaction as the record of the event id.
#[derive(Debug, Clone)]
pub enum EventEffect {
    Grant(PaymentGrant),
    Subscription(SubscriptionState),
    /// The subscription's invoice failed: `past_due`, no credit change.
    PaymentFailed {
        owner: EventOwner,
        subscription_id: String,
    },
    /// Cumulative `amount_refunded` of a charge: only the newly refunded part is taken back.
    Refund {
        charge_id: String,
        payment_intent: Option<String>,
        invoice_id: Option<String>,
        amount: i64,
        amount_refunded: i64,
    },
    /// Takes back whatever is left of the disputed payment.
    Dispute {
        dispute_id: String,
        charge_id: Option<String>,
        payment_intent: Option<String>,
    },
    /// A known type in a state that grants nothing (an unpaid session), or an unknown type.
    Ignore(&'static str),
}
