//! Group commit: concurrent changes of ONE account share a transaction.
//!
//! Per account, at most one commit is in flight in this instance. A change that finds its
//! account idle is committed at once, alone (no timer: an idle service adds no latency).
//! Changes that arrive while a commit is in flight wait in the account's queue and go
//! together as the next batch (at most `MAX_BATCH`), in arrival order: one transaction,
//! one disk flush, one lock of the balance row for all of them, each change still decided
//! on its own (idempotency key, running balance) with its own ledger and audit rows (see
//! `store::credit_batch`). Each request is answered only after its batch committed; a
//! batch that fails fails all of its requests and changes nothing.
//!
//! The commits of an account run in a task of their own, not in any request's future: a
//! client that goes away drops only its receiver, and its change still commits (or not)
//! with its batch. Across instances the balance row's lock serialises the batches.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use super::{answer, apply_alone, Applied};
use crate::error::AppError;
use crate::store::{BatchCredit, Store};

/// The most changes one transaction carries: keeps the transaction, and the time the
/// balance row stays locked, short.
pub const MAX_BATCH: usize = 256;

type Answer = Result<Applied, AppError>;

struct Waiting {
    change: BatchCredit,
    reply: oneshot::Sender<Answer>,
}

/// The accounts with a commit in flight in this instance, each with the changes that
/// arrived meanwhile.
#[derive(Default)]
pub struct CreditBatches {
    accounts: Mutex<HashMap<i64, VecDeque<Waiting>>>,
}

impl CreditBatches {
    pub fn new() -> Self {
        Self::default()
    }

    /// Commits the change (alone or with others of its account) and answers once that
    /// commit is durable.
    pub async fn apply(self: &Arc<Self>, store: &Arc<dyn Store>, change: BatchCredit) -> Answer {
        let user_id = change.credit.user_id;
        let (reply, answered) = oneshot::channel();
        let waiting = Waiting { change, reply };
        let first = {
            let mut accounts = self.accounts();
            match accounts.get_mut(&user_id) {
                Some(queue) => {
                    queue.push_back(waiting);
                    None
                }
                None => {
                    accounts.insert(user_id, VecDeque::new());
                    Some(waiting)
                }
            }
        };
        if let Some(first) = first {
            tokio::spawn(commit_account(
                Arc::clone(self),
                Arc::clone(store),
                user_id,
                first,
            ));
        }
        answered.await.unwrap_or_else(|_| {
            Err(AppError::Internal(anyhow::anyhow!(
                "the credit commit ended without answering"
            )))
        })
    }

    /// `None` while no commit of the account is in flight here; else how many of its
    /// changes wait for the next one. (Tests use it to line requests up in one batch.)
    pub fn waiting(&self, user_id: i64) -> Option<usize> {
        self.accounts().get(&user_id).map(VecDeque::len)
    }

    fn accounts(&self) -> MutexGuard<'_, HashMap<i64, VecDeque<Waiting>>> {
        // Nothing panics while holding the lock; if something did, the map is still whole.
        self.accounts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The account's next batch. When nothing waits, the account becomes idle in the same
    /// critical section, so no change is ever queued without a task to commit it.
    fn next_batch(&self, user_id: i64) -> Vec<Waiting> {
        let mut accounts = self.accounts();
        let Some(queue) = accounts.get_mut(&user_id) else {
            return Vec::new();
        };
        if queue.is_empty() {
            accounts.remove(&user_id);
            return Vec::new();
        }
        let take = queue.len().min(MAX_BATCH);
        queue.drain(..take).collect()
    }
}

/// Marks the account idle if its task ends without doing so itself (a panic): the changes
/// still queued are dropped, so their requests get an error instead of waiting forever,
/// and the account's next change starts afresh.
struct InFlight {
    batches: Arc<CreditBatches>,
    user_id: i64,
    idle: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.idle {
            self.batches.accounts().remove(&self.user_id);
        }
    }
}

/// Commits the account's batches one after the other until none waits.
async fn commit_account(
    batches: Arc<CreditBatches>,
    store: Arc<dyn Store>,
    user_id: i64,
    first: Waiting,
) {
    let mut in_flight = InFlight {
        batches,
        user_id,
        idle: false,
    };
    let mut batch = vec![first];
    loop {
        commit(&*store, user_id, batch).await;
        batch = in_flight.batches.next_batch(user_id);
        if batch.is_empty() {
            in_flight.idle = true;
            return;
        }
    }
}

/// Commits one batch and answers each of its requests (a request whose client left has
/// dropped its receiver; sending to it is harmless).
async fn commit(store: &dyn Store, user_id: i64, mut batch: Vec<Waiting>) {
    // A use goes through the transaction even alone: it must see the holds (DESIGN §15)
    // after taking the balance lock, which one statement cannot on PostgreSQL.
    if batch.len() == 1 && !batch[0].change.credit.kind.debits() {
        // Alone: the single-statement path, as fast as before group commit existed.
        if let Some(only) = batch.pop() {
            let _ = only.reply.send(apply_alone(store, &only.change).await);
        }
        return;
    }
    let (changes, replies): (Vec<BatchCredit>, Vec<_>) =
        batch.into_iter().map(|w| (w.change, w.reply)).unzip();
    match store.apply_credit_batch(user_id, &changes).await {
        // One outcome per change (were one missing, its sender is dropped: an error).
        Ok(outcomes) => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(answer(outcome));
            }
        }
        Err(e) => {
            let error = AppError::from(e);
            for reply in replies {
                let _ = reply.send(Err(same_error(&error)));
            }
        }
    }
}

/// The batch's error for each of its requests (`AppError` is not `Clone`: it may hold a
/// database error).
fn same_error(error: &AppError) -> AppError {
    match error {
        AppError::Unavailable => AppError::Unavailable,
        // A full SQLite volume is the 503 `storage_full` for every request of the batch.
        AppError::StorageFull => AppError::StorageFull,
        AppError::BadRequest { code, detail } => AppError::BadRequest {
            code,
            detail: detail.clone(),
        },
        AppError::Validation(fields) => AppError::Validation(fields.clone()),
        AppError::NotFound { code, detail } => AppError::NotFound {
            code,
            detail: detail.clone(),
        },
        AppError::Conflict { code, detail } => AppError::Conflict {
            code,
            detail: detail.clone(),
        },
        other => AppError::Internal(anyhow::anyhow!("credit batch failed: {other:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every request of a failed batch gets the batch's answer, not a 500 in its place.
    #[test]
    fn each_request_of_a_failed_batch_gets_the_same_status() {
        for error in [
            AppError::StorageFull,
            AppError::Unavailable,
            AppError::bad_request("balance_overflow", "too many"),
        ] {
            assert_eq!(same_error(&error).status(), error.status());
        }
    }
}
