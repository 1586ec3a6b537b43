//! Holds (DESIGN §15): reserve credits before work whose cost is known afterwards, then
//! capture what it cost (the rest comes back) or release it. Each change is one
//! transaction in the store, run in a task of its own so a client that goes away cannot
//! leave it half done (issue 19 item 0); the request only waits for its answer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{
    check_text, ensure_user, insufficient, reference_conflict, MAX_DESCRIPTION_CHARS,
    MAX_REFERENCE_CHARS,
};
use crate::caller::ClientInfo;
use crate::error::AppError;
use crate::services::audit;
use crate::store::{
    now, CaptureOutcome, CreateHoldOutcome, CreditHold, CreditTransaction, NewHold, ReleaseOutcome,
    Store, StoreError,
};

pub const MIN_TTL_SECONDS: i64 = 60;
pub const MAX_TTL_SECONDS: i64 = 604_800;
pub const DEFAULT_TTL_SECONDS: i64 = 3600;
/// Holds the expiry job marks per transaction (keeps each transaction short).
const EXPIRE_BATCH: i64 = 500;

pub struct HoldRequest {
    pub user_id: i64,
    pub amount: i64,
    pub reference_id: String,
    pub ttl_seconds: Option<i64>,
    pub description: Option<String>,
}

pub struct Held {
    pub hold: CreditHold,
    pub available: i64,
    pub replayed: bool,
}

pub struct Captured {
    pub hold: CreditHold,
    pub transaction: Option<CreditTransaction>,
    pub balance: i64,
    pub replayed: bool,
}

/// Runs one store transaction in its own task: dropping the request's future does not
/// drop the transaction between BEGIN and COMMIT.
async fn detached<T: Send + 'static>(
    store: &Arc<dyn Store>,
    work: impl FnOnce(Arc<dyn Store>) -> Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send>>
        + Send
        + 'static,
) -> Result<T, AppError> {
    let store = Arc::clone(store);
    tokio::spawn(async move { work(store).await })
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("hold task failed: {e}")))?
        .map_err(AppError::from)
}

pub fn hold_not_found() -> AppError {
    AppError::not_found("Hold not found")
}

fn not_active() -> AppError {
    AppError::conflict("hold_not_active", "The hold was released or has expired")
}

pub async fn create(
    store: &Arc<dyn Store>,
    request: HoldRequest,
    client: &ClientInfo,
) -> Result<Held, AppError> {
    check_text(
        "reference_id",
        Some(&request.reference_id),
        MAX_REFERENCE_CHARS,
    )?;
    check_text(
        "description",
        request.description.as_deref(),
        MAX_DESCRIPTION_CHARS,
    )?;
    let ttl = request.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
    if !(MIN_TTL_SECONDS..=MAX_TTL_SECONDS).contains(&ttl) {
        return Err(AppError::validation(
            "body",
            "ttl_seconds",
            format!("Must be between {MIN_TTL_SECONDS} and {MAX_TTL_SECONDS}"),
            "value_error",
        ));
    }
    let created_at = now();
    let hold = NewHold {
        user_id: request.user_id,
        amount: request.amount,
        reference_id: request.reference_id,
        description: request.description,
        created_at,
        expires_at: created_at + chrono::Duration::seconds(ttl),
    };
    let activity = audit::activity(
        audit::CREDITS_HOLD,
        Some(hold.user_id),
        client,
        json!({"amount": hold.amount, "reference_id": hold.reference_id, "ttl_seconds": ttl}),
    );
    let outcome = detached(store, move |store| {
        Box::pin(async move { store.create_hold(&hold, &activity).await })
    })
    .await?;
    match outcome {
        CreateHoldOutcome::Created { hold, available } => Ok(Held {
            hold,
            available,
            replayed: false,
        }),
        CreateHoldOutcome::Replayed { hold, available } => Ok(Held {
            hold,
            available,
            replayed: true,
        }),
        CreateHoldOutcome::Conflict => Err(reference_conflict()),
        CreateHoldOutcome::Insufficient => Err(insufficient()),
        CreateHoldOutcome::NoSuchUser => Err(AppError::user_not_found()),
    }
}

pub async fn capture(
    store: &Arc<dyn Store>,
    user_id: i64,
    hold_id: i64,
    amount: i64,
    description: Option<String>,
    client: &ClientInfo,
) -> Result<Captured, AppError> {
    check_text("description", description.as_deref(), MAX_DESCRIPTION_CHARS)?;
    let activity = audit::activity(
        audit::CREDITS_HOLD_CAPTURE,
        Some(user_id),
        client,
        json!({"hold_id": hold_id, "amount": amount}),
    );
    let outcome = detached(store, move |store| {
        Box::pin(async move {
            store
                .capture_hold(user_id, hold_id, amount, description.as_deref(), &activity)
                .await
        })
    })
    .await?;
    match outcome {
        CaptureOutcome::Captured {
            hold,
            transaction,
            balance,
        } => Ok(Captured {
            hold,
            transaction,
            balance,
            replayed: false,
        }),
        CaptureOutcome::Replayed {
            hold,
            transaction,
            balance,
        } => Ok(Captured {
            hold,
            transaction,
            balance,
            replayed: true,
        }),
        CaptureOutcome::Conflict => Err(AppError::conflict(
            "idempotency_conflict",
            "The hold was already captured with a different amount",
        )),
        CaptureOutcome::NotActive => Err(not_active()),
        CaptureOutcome::Exceeds => Err(AppError::bad_request(
            "capture_exceeds_hold",
            "The amount is more than the hold reserved",
        )),
        CaptureOutcome::Insufficient => Err(insufficient()),
        CaptureOutcome::ReferenceTaken => Err(AppError::conflict(
            "idempotency_conflict",
            "The hold's reference_id is already used by a credit_used transaction",
        )),
        CaptureOutcome::NotFound => Err(hold_not_found()),
    }
}

pub async fn release(
    store: &Arc<dyn Store>,
    user_id: i64,
    hold_id: i64,
    client: &ClientInfo,
) -> Result<CreditHold, AppError> {
    let activity = audit::activity(
        audit::CREDITS_HOLD_RELEASE,
        Some(user_id),
        client,
        json!({"hold_id": hold_id}),
    );
    let outcome = detached(store, move |store| {
        Box::pin(async move { store.release_hold(user_id, hold_id, &activity).await })
    })
    .await?;
    match outcome {
        ReleaseOutcome::Released(hold) => Ok(hold),
        ReleaseOutcome::Captured => Err(AppError::conflict(
            "hold_captured",
            "The hold was captured; it cannot be released",
        )),
        ReleaseOutcome::NotActive => Err(not_active()),
        ReleaseOutcome::NotFound => Err(hold_not_found()),
    }
}

pub async fn get(store: &dyn Store, user_id: i64, hold_id: i64) -> Result<CreditHold, AppError> {
    store
        .hold_by_id(user_id, hold_id)
        .await?
        .ok_or_else(hold_not_found)
}

pub async fn list(
    store: &dyn Store,
    user_id: i64,
    status: Option<&str>,
    skip: i64,
    limit: i64,
) -> Result<(Vec<CreditHold>, i64), AppError> {
    ensure_user(store, user_id).await?;
    Ok(store.holds(user_id, status, now(), skip, limit).await?)
}

/// One pass of the expiry job: marks every hold past its expiry, auditing each.
pub async fn expire_once(store: &dyn Store, at: DateTime<Utc>) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        let marked = store.expire_holds(at, EXPIRE_BATCH).await?.len();
        total += marked;
        if (marked as i64) < EXPIRE_BATCH {
            return Ok(total);
        }
    }
}

/// Every instance runs this; marking is conditional on the row, so instances running it
/// at once mark each hold once. Whether a hold counts never waits for it: every decision
/// checks the time itself.
pub async fn run_expiry(store: Arc<dyn Store>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match expire_once(store.as_ref(), now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(holds = n, "marked expired credit holds"),
            Err(e) => tracing::warn!(error = %e, "expiring credit holds failed; will try again"),
        }
    }
}

/// Accounts whose active holds reserve more than their balance: `(user, balance, held)`.
pub async fn overheld(store: &dyn Store) -> Result<Vec<(i64, i64, i64)>, StoreError> {
    store.overheld_accounts(now()).await
}

/// Accounts whose balance row carries another held sum than their holds add up to, while
/// reads trust the row: `(user, on the row, summed)`.
pub async fn stale_held(store: &dyn Store) -> Result<Vec<(i64, i64, i64)>, StoreError> {
    store.stale_held_accounts(now()).await
}
