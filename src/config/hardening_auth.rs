//! Settings of the login throttle, the Redis circuit, the outbox lease and pruning.

use std::time::Duration;

use super::{err, ConfigError, Vars};

#[derive(Debug, Clone)]
pub struct HardeningConfig {
    /// Failed logins per login name, from every address together, after which the name is
    /// throttled for everyone (the per name-and-address threshold is 5).
    pub login_name_ceiling: u32,
    /// The most any one Redis call may take before the limiter falls back to in-process counters.
    pub redis_timeout: Duration,
    /// How often a degraded limiter probes Redis to switch back.
    pub redis_probe_interval: Duration,
    /// How long a claimed outbox message is reserved for its worker (renewed before each send).
    pub mail_lease: Duration,
    /// How often each instance deletes what can never be used again.
    pub prune_interval: Duration,
    /// Audit rows older than this many days are deleted; `None` keeps them forever.
    pub audit_retention_days: Option<i64>,
    /// How often each instance marks credit holds past their expiry (DESIGN §15).
    pub credit_expiry_interval: Duration,
}

impl HardeningConfig {
    pub(super) fn from_vars<F: Fn(&str) -> Option<String>>(
        vars: &Vars<F>,
    ) -> Result<Self, ConfigError> {
        let ceiling: u32 = vars.parse("LOGIN_NAME_FAILURE_CEILING", 100)?;
        if ceiling < 5 {
            return Err(err("LOGIN_NAME_FAILURE_CEILING must be at least 5"));
        }
        let redis_timeout_ms: u64 = vars.parse("REDIS_TIMEOUT_MS", 50)?;
        let lease_ms: u64 = vars.parse("MAIL_LEASE_MS", 120_000)?;
        if lease_ms < 1_000 {
            return Err(err("MAIL_LEASE_MS must be at least 1000"));
        }
        let retention: i64 = vars.parse("AUDIT_RETENTION_DAYS", 0)?;
        if retention < 0 {
            return Err(err("AUDIT_RETENTION_DAYS must be 0 (keep forever) or more"));
        }
        Ok(Self {
            login_name_ceiling: ceiling,
            redis_timeout: Duration::from_millis(redis_timeout_ms.max(1)),
            redis_probe_interval: Duration::from_millis(
                vars.parse::<u64>("REDIS_PROBE_INTERVAL_MS", 1_000)?.max(10),
            ),
            mail_lease: Duration::from_millis(lease_ms),
            prune_interval: Duration::from_secs(
                vars.parse::<u64>("PRUNE_INTERVAL_SECONDS", 3_600)?.max(1),
            ),
            audit_retention_days: (retention > 0).then_some(retention),
            credit_expiry_interval: Duration::from_millis(
                vars.parse::<u64>("CREDIT_EXPIRY_INTERVAL_MS", 10_000)?
                    .max(50),
            ),
        })
    }
}
