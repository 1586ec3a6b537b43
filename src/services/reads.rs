//! Authenticated reads in one round trip (DESIGN §8): each reads the caller's session
//! together with the data it serves (`store::ReadStore`), then applies the same rules, in
//! the same order, as a separate session check followed by the read would: 401 for a bad
//! session, then 403 for another user's data, then 404 for an unknown user.

use chrono::{DateTime, Utc};

use crate::caller::{AccessClaims, Caller, ReadCaller};
use crate::error::AppError;
use crate::services::{auth, credits};
use crate::state::AppState;
use crate::store::{now, CallerRow, CreditTransaction, Session, User};

/// The caller as [`Caller`], once its session (read with the data) passed the checks.
fn admit(state: &AppState, caller: &ReadCaller, found: CallerRow) -> Result<Caller, AppError> {
    match caller {
        ReadCaller::Internal => Ok(Caller::Internal),
        ReadCaller::User(claims) => auth::admit(state, claims, found).map(Caller::User),
    }
}

/// `error` (bad input found before the read), unless the caller is not authenticated:
/// that answer (401) comes first, as when the session was checked before anything else.
pub async fn refuse_after_check(
    state: &AppState,
    caller: &ReadCaller,
    error: AppError,
) -> AppError {
    match caller {
        ReadCaller::Internal => error,
        ReadCaller::User(claims) => match auth::admit_session(state, claims).await {
            Ok(_) => error,
            Err(unauthenticated) => unauthenticated,
        },
    }
}

/// The account a read names before the caller is known: the requested one, else the
/// token's own user; internal services must name one (422, as `credits::account_of`).
fn target_of(caller: &ReadCaller, requested: Option<i64>) -> Result<(Option<&str>, i64), AppError> {
    match caller {
        ReadCaller::Internal => {
            let id = credits::account_of(&Caller::Internal, requested, "query")?;
            Ok((None, id))
        }
        ReadCaller::User(claims) => Ok((
            Some(claims.session_id.as_str()),
            requested.unwrap_or(claims.user_id),
        )),
    }
}

/// GET /auth/me: the caller's own profile, or (admins) another user's.
pub async fn profile(
    state: &AppState,
    claims: &AccessClaims,
    user_id: Option<i64>,
) -> Result<User, AppError> {
    let Some(user_id) = user_id else {
        return Ok(auth::admit_session(state, claims).await?.user);
    };
    let read = state.store.read_user(&claims.session_id, user_id).await?;
    let current = auth::admit(state, claims, read.caller)?;
    if !current.is_admin() {
        return Err(AppError::forbidden("Only admins may look up other users"));
    }
    read.user.ok_or_else(AppError::user_not_found)
}

pub struct Balance {
    pub user_id: i64,
    pub cents: i64,
    pub updated_at: DateTime<Utc>,
    /// Cents reserved by active holds.
    pub held: i64,
}

/// GET /credits/balance: 0 (as of the account's creation) while it never had credits.
pub async fn balance(
    state: &AppState,
    caller: &ReadCaller,
    requested: Option<i64>,
) -> Result<Balance, AppError> {
    let (session_id, target) = target_of(caller, requested)?;
    let read = state
        .store
        .read_balance(session_id, target, requested.is_none())
        .await?;
    let caller = admit(state, caller, read.caller)?;
    let user_id = credits::account_of(&caller, requested, "query")?;
    let account = read
        .account
        .filter(|_| user_id == target)
        .ok_or_else(AppError::user_not_found)?;
    let (cents, updated_at) = account.balance.unwrap_or((0, account.user_created_at));
    Ok(Balance {
        user_id,
        cents,
        updated_at,
        held: account.held,
    })
}

pub struct History {
    pub transactions: Vec<CreditTransaction>,
    pub total_count: i64,
}

/// GET /credits/transactions: one page, newest first, and the account's total.
pub async fn history(
    state: &AppState,
    caller: &ReadCaller,
    requested: Option<i64>,
    skip: i64,
    limit: i64,
) -> Result<History, AppError> {
    let (session_id, target) = target_of(caller, requested)?;
    let read = state
        .store
        .read_transactions(session_id, target, skip, limit)
        .await?;
    let caller = admit(state, caller, read.caller)?;
    let user_id = credits::account_of(&caller, requested, "query")?;
    if user_id != target || !read.account_exists {
        return Err(AppError::user_not_found());
    }
    Ok(History {
        transactions: read.transactions,
        total_count: read.total_count,
    })
}

/// GET /auth/sessions: the caller's live sessions, newest first, and which one is theirs.
pub async fn live_sessions(
    state: &AppState,
    claims: &AccessClaims,
) -> Result<(String, Vec<Session>), AppError> {
    let read = state
        .store
        .read_live_sessions(&claims.session_id, now())
        .await?;
    let current = auth::admit(state, claims, read.caller)?;
    Ok((current.session_id, read.sessions))
}
