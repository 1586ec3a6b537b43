//! Group commit of credit changes: several changes of ONE account applied in one
//! transaction. This file holds the part both backends share and that needs no database:
//! deciding, in arrival order and against the running balance, what becomes of each
//! change. The transaction around it (lock, look-ups, writes) is in `sql/credits.rs` and
//! the backends.

use std::collections::HashMap;

use super::{Activity, CreditKind, CreditTransaction, NewCredit, StoreError, StoreResult};

/// One change of a batch, with the audit row it writes when it is applied.
#[derive(Debug, Clone)]
pub struct BatchCredit {
    pub credit: NewCredit,
    pub activity: Activity,
}

/// What became of one change of a batch.
#[derive(Debug, Clone)]
pub enum BatchOutcome {
    /// Written: its own ledger row, with the balance right after it.
    Applied(CreditTransaction),
    /// Its reference_id was already in the ledger (or applied earlier in the same batch)
    /// with the same amount: the original transaction, nothing changed.
    Replayed(CreditTransaction),
    /// Its reference_id was already used with another amount.
    Conflict,
    /// A debit larger than the balance at its turn.
    Insufficient,
    /// An addition the balance's 64 bits cannot hold.
    Overflow,
    /// The account does not exist.
    NoSuchUser,
}

/// The decision for one change before anything is written.
#[derive(Debug, Clone, PartialEq)]
pub(in crate::store) enum Decision {
    Write {
        balance_after: i64,
    },
    /// The ledger already holds this key with this amount.
    Replay(Box<CreditTransaction>),
    /// An earlier change of this batch (by index) wrote this key with this amount.
    ReplayOf(usize),
    Conflict,
    Insufficient,
    Overflow,
}

/// The decisions for a batch and the balance after all of them.
#[derive(Debug)]
pub(in crate::store) struct BatchPlan {
    pub decisions: Vec<Decision>,
    pub balance: i64,
}

impl BatchPlan {
    /// Decides each change in order, as if they had come one after the other: a replay
    /// or a conflict by its idempotency key (user, type, reference_id) — against the
    /// ledger (`existing`, rows of this user) and the changes before it in the batch —
    /// then the balance rules (a debit needs the running balance to cover it; an
    /// addition must fit in 64 bits).
    #[cfg(test)]
    pub fn new(
        opening_balance: i64,
        existing: &[CreditTransaction],
        batch: &[BatchCredit],
    ) -> Self {
        Self::with_held(opening_balance, 0, existing, batch)
    }

    /// As `new`, with `held` cents reserved by active holds: a use (`credit_used`) spends
    /// only what is available (balance − held); refunds are not limited by holds.
    pub fn with_held(
        opening_balance: i64,
        held: i64,
        existing: &[CreditTransaction],
        batch: &[BatchCredit],
    ) -> Self {
        let ledger: HashMap<(&str, &str), &CreditTransaction> = existing
            .iter()
            .filter_map(|t| {
                let reference = t.reference_id.as_deref()?;
                Some(((t.transaction_type.as_str(), reference), t))
            })
            .collect();
        // Keys written by this batch so far: key → index of the change that wrote it.
        let mut written: HashMap<(&str, &str), usize> = HashMap::new();
        let mut balance = opening_balance;
        let mut decisions = Vec::with_capacity(batch.len());
        for (index, change) in batch.iter().enumerate() {
            let c = &change.credit;
            let key = c.reference_id.as_deref().map(|r| (c.kind.as_str(), r));
            if let Some(key) = key {
                if let Some(&earlier) = written.get(&key) {
                    decisions.push(if batch[earlier].credit.amount == c.amount {
                        Decision::ReplayOf(earlier)
                    } else {
                        Decision::Conflict
                    });
                    continue;
                }
                if let Some(original) = ledger.get(&key) {
                    decisions.push(if original.amount == c.amount {
                        Decision::Replay(Box::new((*original).clone()))
                    } else {
                        Decision::Conflict
                    });
                    continue;
                }
            }
            let reserved = if c.kind == CreditKind::Used { held } else { 0 };
            let after = if c.kind.debits() {
                (balance - reserved >= c.amount).then(|| balance - c.amount)
            } else {
                balance.checked_add(c.amount)
            };
            match after {
                Some(after) => {
                    balance = after;
                    if let Some(key) = key {
                        written.insert(key, index);
                    }
                    decisions.push(Decision::Write {
                        balance_after: after,
                    });
                }
                None if c.kind.debits() => decisions.push(Decision::Insufficient),
                None => decisions.push(Decision::Overflow),
            }
        }
        Self { decisions, balance }
    }

    /// The changes to write, in order, with their balance after.
    pub fn writes<'a>(
        &'a self,
        batch: &'a [BatchCredit],
    ) -> impl Iterator<Item = (&'a BatchCredit, i64)> + 'a {
        self.decisions
            .iter()
            .zip(batch)
            .filter_map(|(d, change)| match d {
                Decision::Write { balance_after } => Some((change, *balance_after)),
                _ => None,
            })
    }

    pub fn has_writes(&self) -> bool {
        self.decisions
            .iter()
            .any(|d| matches!(d, Decision::Write { .. }))
    }

    /// The outcome of every change, given the rows written for `writes()` in the same
    /// order. Checks that each row is the change it stands for (amount, type, reference,
    /// balance after), so a mismatch fails the batch before it commits.
    pub fn outcomes(
        self,
        batch: &[BatchCredit],
        rows: Vec<CreditTransaction>,
    ) -> StoreResult<Vec<BatchOutcome>> {
        let mismatch = || {
            StoreError::Other(sqlx::Error::Protocol(
                "the ledger rows written do not match the batch".into(),
            ))
        };
        let mut rows = rows.into_iter();
        let mut written: HashMap<usize, CreditTransaction> = HashMap::new();
        let mut outcomes = Vec::with_capacity(batch.len());
        for (index, (decision, change)) in self.decisions.into_iter().zip(batch).enumerate() {
            let outcome = match decision {
                Decision::Write { balance_after } => {
                    let row = rows.next().ok_or_else(mismatch)?;
                    let c = &change.credit;
                    if row.amount != c.amount
                        || row.balance_after != balance_after
                        || row.transaction_type != c.kind.as_str()
                        || row.reference_id != c.reference_id
                    {
                        return Err(mismatch());
                    }
                    written.insert(index, row.clone());
                    BatchOutcome::Applied(row)
                }
                Decision::Replay(original) => BatchOutcome::Replayed(*original),
                Decision::ReplayOf(earlier) => {
                    BatchOutcome::Replayed(written.get(&earlier).cloned().ok_or_else(mismatch)?)
                }
                Decision::Conflict => BatchOutcome::Conflict,
                Decision::Insufficient => BatchOutcome::Insufficient,
                Decision::Overflow => BatchOutcome::Overflow,
            };
            outcomes.push(outcome);
        }
        if rows.next().is_some() {
            return Err(mismatch());
        }
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::now;

    fn change(kind: CreditKind, cents: i64, reference: Option<&str>) -> BatchCredit {
        BatchCredit {
            credit: NewCredit {
                user_id: 1,
                kind,
                amount: cents,
                reference_id: reference.map(str::to_owned),
                description: None,
                created_at: now(),
            },
            activity: Activity {
                user_id: Some(1),
                event: "credits_use",
                ip: None,
                user_agent: None,
                details: "{}".into(),
                created_at: now(),
            },
        }
    }

    fn row(id: i64, c: &BatchCredit, balance_after: i64) -> CreditTransaction {
        CreditTransaction {
            id,
            user_id: 1,
            amount: c.credit.amount,
            transaction_type: c.credit.kind.as_str().into(),
            reference_id: c.credit.reference_id.clone(),
            description: None,
            balance_after,
            created_at: c.credit.created_at,
        }
    }

    use CreditKind::{Added, Used};

    #[test]
    fn each_change_is_checked_against_the_running_balance_in_order() {
        let batch = [
            change(Used, 200, None),
            change(Used, 200, None),
            change(Added, 500, None),
            change(Used, 200, None),
        ];
        let plan = BatchPlan::new(300, &[], &batch);
        assert_eq!(
            plan.decisions,
            [
                Decision::Write { balance_after: 100 },
                Decision::Insufficient,
                Decision::Write { balance_after: 600 },
                Decision::Write { balance_after: 400 },
            ]
        );
        assert_eq!(plan.balance, 400);
    }

    #[test]
    fn a_negative_balance_covers_no_debit() {
        let batch = [change(Used, 1, None), change(Added, 5, None)];
        let plan = BatchPlan::new(-3, &[], &batch);
        assert_eq!(
            plan.decisions,
            [Decision::Insufficient, Decision::Write { balance_after: 2 }]
        );
    }

    #[test]
    fn an_addition_that_does_not_fit_is_refused_alone() {
        let batch = [change(Added, 2, None), change(Added, 1, None)];
        let plan = BatchPlan::new(i64::MAX - 1, &[], &batch);
        assert_eq!(
            plan.decisions,
            [
                Decision::Overflow,
                Decision::Write {
                    balance_after: i64::MAX
                }
            ]
        );
    }

    #[test]
    fn references_replay_or_conflict_within_the_batch_and_against_the_ledger() {
        let earlier = row(7, &change(Used, 100, Some("old")), 900);
        let batch = [
            change(Used, 50, Some("a")),
            change(Used, 50, Some("a")),
            change(Used, 60, Some("a")),
            change(Added, 50, Some("a")),
            change(Used, 100, Some("old")),
            change(Used, 101, Some("old")),
        ];
        let plan = BatchPlan::new(1000, std::slice::from_ref(&earlier), &batch);
        assert_eq!(
            plan.decisions,
            [
                Decision::Write { balance_after: 950 },
                Decision::ReplayOf(0),
                Decision::Conflict,
                // Another type is another key.
                Decision::Write {
                    balance_after: 1000
                },
                Decision::Replay(Box::new(earlier.clone())),
                Decision::Conflict,
            ]
        );
        let rows: Vec<_> = plan
            .writes(&batch)
            .enumerate()
            .map(|(i, (c, after))| row(10 + i as i64, c, after))
            .collect();
        let outcomes = plan.outcomes(&batch, rows).unwrap();
        let ids: Vec<_> = outcomes
            .iter()
            .map(|o| match o {
                BatchOutcome::Applied(t) => format!("applied {}", t.id),
                BatchOutcome::Replayed(t) => format!("replayed {}", t.id),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            ids,
            [
                "applied 10",
                "replayed 10",
                "Conflict",
                "applied 11",
                "replayed 7",
                "Conflict"
            ]
        );
    }

    #[test]
    fn a_refused_change_frees_its_reference_for_a_later_one() {
        let batch = [
            change(Used, 500, Some("k")),
            change(Added, 500, None),
            change(Used, 500, Some("k")),
        ];
        let plan = BatchPlan::new(100, &[], &batch);
        assert_eq!(
            plan.decisions,
            [
                Decision::Insufficient,
                Decision::Write { balance_after: 600 },
                Decision::Write { balance_after: 100 },
            ]
        );
    }

    #[test]
    fn rows_that_do_not_match_the_plan_fail_the_batch() {
        let batch = [change(Used, 5, None), change(Used, 6, None)];
        let plan = BatchPlan::new(100, &[], &batch);
        let swapped = vec![row(2, &batch[1], 94), row(1, &batch[0], 95)];
        assert!(plan.outcomes(&batch, swapped).is_err());
        let plan = BatchPlan::new(100, &[], &batch);
        assert!(plan.outcomes(&batch, vec![row(1, &batch[0], 95)]).is_err());
    }
}
