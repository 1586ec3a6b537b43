//! What `/webhooks/stripe` may hold in memory. The endpoint is exempt from per-IP limits
//! (Stripe delivers from a few shared addresses), so its bound is on bytes: every body is
//! buffered only after a reservation of its size from one budget shared by all
//! connections, and a delivery that does not fit now is refused at once (429, Stripe
//! retries) instead of waiting with its connection open.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The largest body accepted (the contract's 1 MiB limit, as for every route).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Bytes of webhook bodies buffered at once, across all connections: eight bodies of the
/// 1 MiB maximum (Stripe's events are a few KiB; a burst of hundreds fits).
pub const BUFFER_BUDGET_BYTES: usize = 8 * 1024 * 1024;

/// A body must arrive within this once its reservation is made, so slow uploads cannot
/// sit on the budget.
pub const BODY_DEADLINE: Duration = Duration::from_secs(10);

/// Reservations are counted in KiB (a semaphore's permits are `u32`).
const UNIT: usize = 1024;

#[derive(Clone)]
pub struct IntakeBudget {
    units: Arc<Semaphore>,
}

impl Default for IntakeBudget {
    fn default() -> Self {
        Self::new(BUFFER_BUDGET_BYTES)
    }
}

impl IntakeBudget {
    pub fn new(bytes: usize) -> Self {
        Self {
            units: Arc::new(Semaphore::new(bytes.div_ceil(UNIT))),
        }
    }

    /// Reserves room for `bytes`, or `None` when the budget cannot hold them now. The
    /// room is given back when the reservation is dropped.
    pub fn reserve(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let units = u32::try_from(bytes.max(1).div_ceil(UNIT)).ok()?;
        self.units.clone().try_acquire_many_owned(units).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_one_budget() {
        let budget = IntakeBudget::new(4 * UNIT);
        let a = budget.reserve(3 * UNIT).expect("fits");
        assert!(budget.reserve(2 * UNIT).is_none(), "over the budget");
        let b = budget.reserve(UNIT).expect("the rest fits");
        drop(a);
        assert!(budget.reserve(3 * UNIT).is_some(), "given back on drop");
        drop(b);
        assert!(budget.reserve(usize::MAX).is_none());
    }
}
