//! The credits ledger: exact (integer cents), atomic (balance and ledger row change in one
//! statement or transaction), idempotent (reference_id per user and type). Changes of
//! one account that arrive together are committed together (group commit, `batch`).

mod batch;
pub mod holds;

pub use batch::CreditBatches;

use chrono::{DateTime, Utc};

use serde_json::json;

use crate::caller::Caller;
use crate::caller::ClientInfo;
use crate::domain::{is_storable, Credits};
use crate::error::AppError;
use crate::services::audit;
use crate::state::AppState;
use crate::store::{
    now, BatchCredit, BatchOutcome, CreditKind, CreditTransaction, NewCredit, Store, StoreError,
};

pub const MAX_REFERENCE_CHARS: usize = 255;
pub const MAX_DESCRIPTION_CHARS: usize = 1000;

/// Whose credits a request acts on. Users act on their own; admins and internal services
/// name any user (`requested`); an admin who names nobody acts on themself.
pub fn account_of(
    caller: &Caller,
    requested: Option<i64>,
    location: &str,
) -> Result<i64, AppError> {
    match caller {
        Caller::Internal => requested.ok_or_else(|| {
            AppError::validation(
                location,
                "user_id",
                "Field required for internal services",
                "missing",
            )
        }),
        Caller::User(user) if user.is_admin() => Ok(requested.unwrap_or(user.user.id)),
        Caller::User(user) => match requested {
            None => Ok(user.user.id),
            Some(id) if id == user.user.id => Ok(id),
            Some(_) => Err(AppError::forbidden(
                "Not allowed to act on another user's credits",
            )),
        },
    }
}

pub fn may_add(caller: &Caller) -> Result<(), AppError> {
    match caller {
        Caller::Internal => Ok(()),
        Caller::User(user) if user.is_admin() => Ok(()),
        Caller::User(_) => Err(AppError::forbidden(
            "Only admins and internal services may add credits",
        )),
    }
}

pub struct Change {
    pub user_id: i64,
    pub kind: CreditKind,
    pub amount: Credits,
    pub reference_id: Option<String>,
    pub description: Option<String>,
}

pub struct Applied {
    pub transaction: CreditTransaction,
    /// True when this was a replay of an earlier request with the same reference_id.
    pub replayed: bool,
}

pub(crate) async fn ensure_user(store: &dyn Store, user_id: i64) -> Result<(), AppError> {
    store
        .user_by_id(user_id)
        .await?
        .ok_or_else(AppError::user_not_found)?;
    Ok(())
}

pub async fn balance(state: &AppState, user_id: i64) -> Result<(i64, DateTime<Utc>), AppError> {
    match state.store.credit_balance(user_id).await? {
        Some(found) => Ok(found),
        None => {
            let user = state
                .store
                .user_by_id(user_id)
                .await?
                .ok_or_else(AppError::user_not_found)?;
            Ok((0, user.created_at))
        }
    }
}

pub async fn apply(
    state: &AppState,
    change: Change,
    client: &ClientInfo,
) -> Result<Applied, AppError> {
    let kind = change.kind.as_str();
    let result = apply_change(state, change, client).await;
    let outcome = match &result {
        Ok(applied) if applied.replayed => "replayed",
        Ok(_) => "success",
        Err(AppError::BadRequest { .. }) => "insufficient",
        Err(AppError::Conflict { .. }) => "conflict",
        Err(AppError::NotFound { .. }) => "not_found",
        Err(AppError::Validation(_)) => "invalid",
        Err(_) => "error",
    };
    crate::telemetry::metrics::credit_operation(kind, outcome);
    result
}

async fn apply_change(
    state: &AppState,
    change: Change,
    client: &ClientInfo,
) -> Result<Applied, AppError> {
    check_text(
        "reference_id",
        change.reference_id.as_deref(),
        MAX_REFERENCE_CHARS,
    )?;
    check_text(
        "description",
        change.description.as_deref(),
        MAX_DESCRIPTION_CHARS,
    )?;
    let event = if change.kind.debits() {
        audit::CREDITS_USE
    } else {
        audit::CREDITS_ADD
    };
    let details = json!({
        "amount": change.amount.to_string(),
        "transaction_type": change.kind.as_str(),
        "reference_id": change.reference_id,
    });
    let activity = audit::activity(event, Some(change.user_id), client, details);
    let credit = NewCredit {
        user_id: change.user_id,
        kind: change.kind,
        amount: change.amount.cents(),
        reference_id: change.reference_id,
        description: change.description,
        created_at: now(),
    };
    // Concurrent changes of one account are committed together (batch.rs); a change
    // that finds its account idle is committed at once, alone.
    state
        .credit_batches
        .apply(&state.store, BatchCredit { credit, activity })
        .await
}

/// Applies one change on its own: the happy path is one statement. A missing user shows
/// up as a foreign-key violation (add) or as no balance row to debit (use).
async fn apply_alone(store: &dyn Store, change: &BatchCredit) -> Result<Applied, AppError> {
    let credit = &change.credit;
    if let Some(replay) = replay_of(store, credit).await? {
        return Ok(replay);
    }
    match store.apply_credit(credit, &change.activity).await {
        Ok(Some(transaction)) => Ok(Applied {
            transaction,
            replayed: false,
        }),
        Ok(None) if credit.kind.debits() => {
            ensure_user(store, credit.user_id).await?;
            Err(insufficient())
        }
        // An addition finds no row to change only when the sum would not fit in the
        // balance's 64 bits; nothing changed.
        Ok(None) => Err(overflow()),
        // A concurrent request with the same reference won: answer as its replay.
        Err(StoreError::DuplicateReference) => replay_of(store, credit)
            .await?
            .ok_or_else(|| StoreError::DuplicateReference.into()),
        Err(e) => Err(e.into()),
    }
}

/// The earlier transaction with this reference, if any; 409 if it was for another amount.
async fn replay_of(store: &dyn Store, credit: &NewCredit) -> Result<Option<Applied>, AppError> {
    let Some(reference) = credit.reference_id.as_deref() else {
        return Ok(None);
    };
    let Some(earlier) = store
        .credit_by_reference(credit.user_id, credit.kind, reference)
        .await?
    else {
        return Ok(None);
    };
    if earlier.amount != credit.amount {
        return Err(reference_conflict());
    }
    Ok(Some(Applied {
        transaction: earlier,
        replayed: true,
    }))
}

/// The answer to one change of a batch.
fn answer(outcome: BatchOutcome) -> Result<Applied, AppError> {
    match outcome {
        BatchOutcome::Applied(transaction) => Ok(Applied {
            transaction,
            replayed: false,
        }),
        BatchOutcome::Replayed(transaction) => Ok(Applied {
            transaction,
            replayed: true,
        }),
        BatchOutcome::Conflict => Err(reference_conflict()),
        BatchOutcome::Insufficient => Err(insufficient()),
        BatchOutcome::Overflow => Err(overflow()),
        BatchOutcome::NoSuchUser => Err(AppError::user_not_found()),
    }
}

pub(crate) fn insufficient() -> AppError {
    AppError::bad_request("insufficient_credits", "Insufficient credits")
}

fn overflow() -> AppError {
    AppError::bad_request(
        "balance_overflow",
        "The balance cannot hold this many credits",
    )
}

pub(crate) fn reference_conflict() -> AppError {
    AppError::conflict(
        "idempotency_conflict",
        "reference_id was already used with a different amount",
    )
}

pub(crate) fn check_text(
    field: &str,
    value: Option<&str>,
    max_chars: usize,
) -> Result<(), AppError> {
    match value {
        Some("") => Err(AppError::validation(
            "body",
            field,
            "Must not be empty",
            "value_error",
        )),
        Some(v) if !is_storable(v) => Err(AppError::validation(
            "body",
            field,
            "Text must not contain NUL characters",
            "string_nul",
        )),
        Some(v) if v.chars().count() > max_chars => Err(AppError::validation(
            "body",
            field,
            format!("Must be at most {max_chars} characters"),
            "value_error",
        )),
        _ => Ok(()),
    }
}

pub async fn history(
    state: &AppState,
    user_id: i64,
    skip: i64,
    limit: i64,
) -> Result<(Vec<CreditTransaction>, i64), AppError> {
    ensure_user(&*state.store, user_id).await?;
    Ok(state
        .store
        .credit_transactions(user_id, skip, limit)
        .await?)
}
