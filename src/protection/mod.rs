//! Abuse protection: per-client-IP rate limits and per-account failed-login throttling.
//!
//! Counters live in-process by default and in Redis when REDIS_URL is set, so every
//! instance shares them. If Redis becomes unreachable the service keeps serving: each
//! instance falls back to its own in-process counters (limits still apply, per instance)
//! and /health reports redis as "degraded" until Redis answers again.

pub mod client_ip;
mod memory;
pub mod middleware;
mod redis;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use self::memory::MemoryCounters;
use self::redis::RedisCounters;
use crate::config::Config;

/// Failures within the window after which an account is throttled.
pub const LOGIN_FAILURE_THRESHOLD: u32 = 5;
pub const LOGIN_FAILURE_WINDOW_MS: u64 = 15 * 60 * 1000;
/// The delay after the threshold-th failure; it doubles with each further one.
pub const LOGIN_BASE_DELAY_MS: u64 = 2_000;
pub const MAX_LOGIN_DELAY_MS: u64 = 15 * 60 * 1000;
const RATE_WINDOW_MS: u64 = 60_000;
const REDIS_RETRY_INTERVAL: Duration = Duration::from_secs(5);

pub fn login_delay_ms(failures: u32) -> u64 {
    let doublings = failures.saturating_sub(LOGIN_FAILURE_THRESHOLD).min(20);
    LOGIN_BASE_DELAY_MS
        .saturating_mul(1 << doublings)
        .min(MAX_LOGIN_DELAY_MS)
}

pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

fn ceil_secs(ms: u64) -> u64 {
    ms.div_ceil(1000).max(1)
}

/// The outcome of counting one request against a limit.
#[derive(Debug, Clone, Copy)]
pub struct RateDecision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the window resets.
    pub reset_after_secs: u64,
}

pub struct Limiter {
    memory: MemoryCounters,
    redis_url: Option<String>,
    redis: OnceCell<RedisCounters>,
    last_redis_attempt: Mutex<Option<Instant>>,
    degraded: AtomicBool,
    prefix: String,
}

impl Limiter {
    /// Connects to Redis when configured; an unreachable Redis is not fatal.
    pub async fn new(config: &Config) -> Self {
        let limiter = Self {
            memory: MemoryCounters::default(),
            redis_url: config.redis_url.clone(),
            redis: OnceCell::new(),
            last_redis_attempt: Mutex::new(None),
            degraded: AtomicBool::new(false),
            prefix: config.redis_key_prefix.clone(),
        };
        if limiter.redis_url.is_some() && limiter.redis().await.is_none() {
            tracing::error!("REDIS_URL is set but Redis is unreachable: limits are per instance until it answers");
        }
        limiter
    }

    async fn redis(&self) -> Option<&RedisCounters> {
        let url = self.redis_url.as_deref()?;
        if let Some(counters) = self.redis.get() {
            return Some(counters);
        }
        {
            let mut last = self
                .last_redis_attempt
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|at| at.elapsed() < REDIS_RETRY_INTERVAL) {
                self.degraded.store(true, Ordering::Relaxed);
                return None;
            }
            *last = Some(Instant::now());
        }
        match RedisCounters::connect(url).await {
            Ok(counters) => {
                let _ = self.redis.set(counters);
                self.degraded.store(false, Ordering::Relaxed);
                self.redis.get()
            }
            Err(e) => {
                self.degrade(&e);
                None
            }
        }
    }

    fn degrade(&self, error: &dyn std::fmt::Display) {
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %error, "Redis unreachable: falling back to in-process limits");
        }
    }

    fn recovered(&self) {
        if self.degraded.swap(false, Ordering::Relaxed) {
            tracing::info!("Redis reachable again: limits are shared across instances");
        }
    }

    /// Counts a request of `client` in `bucket` against `limit` per minute.
    pub async fn hit(&self, bucket: &str, client: &str, limit: u32) -> RateDecision {
        let now = unix_millis();
        let window = now / RATE_WINDOW_MS;
        let key = format!("{}rl:{bucket}:{client}:{window}", self.prefix);
        let count = match self.redis().await {
            Some(redis) => match redis.hit(&key, RATE_WINDOW_MS + 1_000).await {
                Ok(n) => {
                    self.recovered();
                    n
                }
                Err(e) => {
                    self.degrade(&e);
                    self.memory.hit(&key, window)
                }
            },
            None => self.memory.hit(&key, window),
        };
        RateDecision {
            allowed: count <= limit,
            limit,
            remaining: limit.saturating_sub(count),
            reset_after_secs: ceil_secs(RATE_WINDOW_MS - now % RATE_WINDOW_MS),
        }
    }

    fn account_keys(&self, account: &str) -> (String, String) {
        // Hashed: no usernames or email addresses in Redis keys.
        let id = &hex::encode(Sha256::digest(account.to_lowercase().as_bytes()))[..32];
        (
            format!("{}lf:{id}", self.prefix),
            format!("{}lb:{id}", self.prefix),
        )
    }

    /// Seconds the account must still wait, if it is throttled.
    pub async fn login_blocked_for(&self, account: &str) -> Option<u64> {
        let (_, block_key) = self.account_keys(account);
        let ms = match self.redis().await {
            Some(redis) => match redis.blocked_for_ms(&block_key).await {
                Ok(ms) => ms,
                Err(e) => {
                    self.degrade(&e);
                    self.memory.blocked_for_ms(&block_key)
                }
            },
            None => self.memory.blocked_for_ms(&block_key),
        };
        (ms > 0).then(|| ceil_secs(ms))
    }

    /// Records a failed login; from the threshold on, the account is blocked for a while
    /// (the failing attempt itself is still answered 401).
    pub async fn login_failed(&self, account: &str) {
        let (count_key, block_key) = self.account_keys(account);
        if let Some(redis) = self.redis().await {
            match redis.failed(&count_key, &block_key).await {
                Ok(_) => return,
                Err(e) => self.degrade(&e),
            }
        }
        self.memory.failed(&block_key);
    }

    pub async fn login_succeeded(&self, account: &str) {
        let (count_key, block_key) = self.account_keys(account);
        if let Some(redis) = self.redis().await {
            if let Err(e) = redis.succeeded(&count_key, &block_key).await {
                self.degrade(&e);
            }
        }
        self.memory.succeeded(&block_key);
    }

    /// "disabled" without REDIS_URL, else "ok" or "degraded".
    pub async fn redis_status(&self) -> &'static str {
        if self.redis_url.is_none() {
            return "disabled";
        }
        let Some(redis) = self.redis().await else {
            return "degraded";
        };
        match tokio::time::timeout(Duration::from_secs(2), redis.ping()).await {
            Ok(Ok(())) => {
                self.recovered();
                "ok"
            }
            Ok(Err(e)) => {
                self.degrade(&e);
                "degraded"
            }
            Err(_) => {
                self.degrade(&"ping timed out");
                "degraded"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_from_the_threshold_and_is_capped() {
        assert_eq!(login_delay_ms(5), 2_000);
        assert_eq!(login_delay_ms(6), 4_000);
        assert_eq!(login_delay_ms(7), 8_000);
        assert_eq!(login_delay_ms(40), MAX_LOGIN_DELAY_MS);
    }

    #[test]
    fn memory_counters_throttle_after_five_failures() {
        let counters = MemoryCounters::default();
        for _ in 0..4 {
            assert_eq!(counters.failed("acct"), 0);
        }
        assert_eq!(counters.failed("acct"), 2_000);
        assert!(counters.blocked_for_ms("acct") > 0);
        assert_eq!(counters.blocked_for_ms("other"), 0);
        counters.succeeded("acct");
        assert_eq!(counters.blocked_for_ms("acct"), 0);
    }

    #[test]
    fn memory_windows_count_per_key() {
        let counters = MemoryCounters::default();
        assert_eq!(counters.hit("a", 1), 1);
        assert_eq!(counters.hit("a", 1), 2);
        assert_eq!(counters.hit("b", 1), 1);
        assert_eq!(counters.hit("a", 2), 1, "a new window starts from zero");
    }
}
