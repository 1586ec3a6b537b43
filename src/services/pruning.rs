//! Deletes what can never be used again: ended sessions (expired or revoked) with their
//! retired refresh-token hashes, used or expired emailed tokens once no limit counts them,
//! audit rows older than AUDIT_RETENTION_DAYS when that is set (by default the trail
//! is kept forever), and outbox rows sent more than a week ago (bodies already wiped). Every instance runs it; the deletes are idempotent, so instances
//! running it at once only repeat each other's work.

use std::sync::Arc;

use crate::config::HardeningConfig;
use crate::store::{now, PruneReport, Store, StoreResult};

/// One pass, now.
pub async fn prune_once(store: &dyn Store, config: &HardeningConfig) -> StoreResult<PruneReport> {
    let now = now();
    let audit_before = config
        .audit_retention_days
        .map(|days| now - chrono::Duration::days(days));
    store.prune(now, audit_before).await
}

/// Runs a pass every PRUNE_INTERVAL_SECONDS until the task is dropped.
pub async fn run(store: Arc<dyn Store>, config: HardeningConfig) {
    let mut ticks = tokio::time::interval(config.prune_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate: wait one interval, starting instances have enough to do.
    ticks.tick().await;
    loop {
        ticks.tick().await;
        match prune_once(store.as_ref(), &config).await {
            Ok(report) if report != PruneReport::default() => tracing::info!(
                sessions = report.sessions,
                email_tokens = report.email_tokens,
                activities = report.activities,
                sent_mail = report.sent_mail,
                "pruned what can never be used again"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "pruning failed; will try again"),
        }
    }
}
