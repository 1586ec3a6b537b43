//! Holds (DESIGN §15): credits reserved for work priced afterwards. The types and the
//! store trait; the SQL both backends share is in `sql/holds.rs`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Activity, CreditTransaction, StoreResult};

/// A hold as stored. `status` is what the row says; a `held` row past `expires_at` no
/// longer counts (see `HoldStatus::at`).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CreditHold {
    pub id: i64,
    pub user_id: i64,
    pub amount: i64,
    pub status: String,
    pub reference_id: String,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub captured_amount: Option<i64>,
    pub transaction_id: Option<i64>,
    pub settled_at: Option<DateTime<Utc>>,
}

pub const HELD: &str = "held";
pub const CAPTURED: &str = "captured";
pub const RELEASED: &str = "released";
pub const EXPIRED: &str = "expired";

/// The audit event the expiry job writes for each hold it marks.
pub const HOLD_EXPIRED_EVENT: &str = "credits_hold_expired";

impl CreditHold {
    /// The status at `now`: a `held` row past its expiry is `expired` even before the
    /// background job marks it so.
    pub fn status_at(&self, now: DateTime<Utc>) -> &str {
        if self.status == HELD && self.expires_at <= now {
            EXPIRED
        } else {
            &self.status
        }
    }
}

pub struct NewHold {
    pub user_id: i64,
    pub amount: i64,
    pub reference_id: String,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug)]
pub enum CreateHoldOutcome {
    /// Held; `available` is what can still be spent right after.
    Created {
        hold: CreditHold,
        available: i64,
    },
    /// The reference_id was used for a hold of the same amount: that hold, unchanged.
    Replayed {
        hold: CreditHold,
        available: i64,
    },
    Conflict,
    Insufficient,
    NoSuchUser,
}

#[derive(Debug)]
pub enum CaptureOutcome {
    Captured {
        hold: CreditHold,
        transaction: Option<CreditTransaction>,
        balance: i64,
    },
    /// Captured before with the same amount.
    Replayed {
        hold: CreditHold,
        transaction: Option<CreditTransaction>,
        balance: i64,
    },
    /// Captured before with another amount.
    Conflict,
    /// Released or expired.
    NotActive,
    Exceeds,
    /// The balance fell below the captured amount meanwhile (a refund or dispute took
    /// credits back): spending never takes the balance below zero.
    Insufficient,
    /// The hold's reference_id is taken by a `credit_used` row of /credits/use.
    ReferenceTaken,
    NotFound,
}

#[derive(Debug)]
pub enum ReleaseOutcome {
    /// Released now, or released before (idempotent).
    Released(CreditHold),
    Captured,
    NotActive,
    NotFound,
}

#[async_trait]
pub trait HoldStore: Send + Sync + 'static {
    /// Under the lock of the user's balance row: holds `amount` if the balance minus what
    /// active holds reserve covers it. Writes the hold and its audit row in one
    /// transaction.
    async fn create_hold(
        &self,
        hold: &NewHold,
        activity: &Activity,
    ) -> StoreResult<CreateHoldOutcome>;
    /// Under the balance lock: settles an active hold for `amount` (one `credit_used` row
    /// when `amount > 0`), with its audit row, in one transaction.
    async fn capture_hold(
        &self,
        user_id: i64,
        hold_id: i64,
        amount: i64,
        description: Option<&str>,
        activity: &Activity,
    ) -> StoreResult<CaptureOutcome>;
    async fn release_hold(
        &self,
        user_id: i64,
        hold_id: i64,
        activity: &Activity,
    ) -> StoreResult<ReleaseOutcome>;
    async fn hold_by_id(&self, user_id: i64, hold_id: i64) -> StoreResult<Option<CreditHold>>;
    /// Newest first and the total. `status` filters by the status at `now`.
    async fn holds(
        &self,
        user_id: i64,
        status: Option<&str>,
        now: DateTime<Utc>,
        skip: i64,
        limit: i64,
    ) -> StoreResult<(Vec<CreditHold>, i64)>;
    /// Marks up to `limit` holds past their expiry `expired`, each with an audit row, in
    /// one transaction; a hold another instance marked first is skipped. Returns those
    /// this call marked.
    async fn expire_holds(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<CreditHold>>;
    /// Accounts whose active holds reserve more than their balance (`ledger verify`).
    async fn overheld_accounts(&self, now: DateTime<Utc>) -> StoreResult<Vec<(i64, i64, i64)>>;
    /// Accounts whose balance row says its holds reserve another sum than they do, while a
    /// read would trust the row (`ledger verify`): `(user, on the row, summed)`.
    async fn stale_held_accounts(&self, now: DateTime<Utc>) -> StoreResult<Vec<(i64, i64, i64)>>;
}
