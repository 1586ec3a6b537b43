//! Outgoing webhooks settings (DESIGN §16).

use std::time::Duration;

use super::{err, ConfigError, Vars};

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// WEBHOOK_ALLOW_PRIVATE_NETWORKS: endpoints may resolve to loopback/private addresses.
    pub allow_private_networks: bool,
    /// WEBHOOK_RETRY_SCALE: multiplies the retry schedule and the 5-day disable window.
    /// 1 in production; tests set e.g. 0.001 so a whole schedule runs in seconds.
    pub retry_scale: f64,
    /// WEBHOOK_POLL_MS: how often an idle worker looks for due deliveries.
    pub poll_interval: Duration,
    /// WEBHOOK_CONCURRENCY: sends in flight per instance.
    pub concurrency: usize,
    /// CREDITS_LOW_BALANCE_THRESHOLD, in cents: `credits.low_balance` is produced when an
    /// account's available credits go from at least this to below it. `None`: never.
    pub low_balance_threshold: Option<i64>,
}

impl WebhookConfig {
    pub(super) fn from_vars<F: Fn(&str) -> Option<String>>(
        vars: &Vars<F>,
    ) -> Result<Self, ConfigError> {
        let retry_scale: f64 = vars.parse("WEBHOOK_RETRY_SCALE", 1.0)?;
        if !(retry_scale > 0.0 && retry_scale <= 1.0) {
            return Err(err("WEBHOOK_RETRY_SCALE must be > 0 and at most 1"));
        }
        let poll: u64 = vars.parse("WEBHOOK_POLL_MS", 1000)?;
        let concurrency: usize = vars.parse("WEBHOOK_CONCURRENCY", 64)?;
        if !(10..=60_000).contains(&poll) || !(1..=1024).contains(&concurrency) {
            return Err(err(
                "WEBHOOK_POLL_MS must be 10..60000 and WEBHOOK_CONCURRENCY 1..1024",
            ));
        }
        let low_balance_threshold = vars
            .string("CREDITS_LOW_BALANCE_THRESHOLD")
            .map(|raw| {
                crate::domain::Credits::parse(&raw)
                    .map(|c| c.cents())
                    .map_err(|why| {
                        err(format!(
                            "CREDITS_LOW_BALANCE_THRESHOLD must be an amount of credits above 0 \
                         (e.g. 5 or 2.50): {why}"
                        ))
                    })
            })
            .transpose()?;
        Ok(Self {
            low_balance_threshold,
            allow_private_networks: vars.flag("WEBHOOK_ALLOW_PRIVATE_NETWORKS", false)?,
            retry_scale,
            poll_interval: Duration::from_millis(poll),
            concurrency,
        })
    }
}
