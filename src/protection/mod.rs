//! Abuse protection: per-client-IP rate limits and failed-login throttling (`login.rs`).
//!
//! Counters live in-process by default and in Redis when REDIS_URL is set, so every
//! instance shares them. Redis sits behind a circuit (`circuit.rs`): each call is bounded
//! by REDIS_TIMEOUT_MS, and after a failure each instance uses its own in-process counters
//! at once (limits still apply, per instance) until a background probe sees Redis answer;
//! /health reports redis as "degraded" meanwhile.

mod circuit;
pub mod client_ip;
pub mod login;
mod memory;
pub mod middleware;
mod redis;
pub mod sentinel;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use self::circuit::RedisCircuit;
use self::login::{LoginKeys, LoginPolicy, LoginTicket, EPOCH_TTL_MS};
use self::memory::MemoryCounters;
use crate::config::Config;

pub use self::login::{LOGIN_BASE_DELAY_MS, LOGIN_FAILURE_THRESHOLD, MAX_LOGIN_DELAY_MS};

const RATE_WINDOW_MS: u64 = 60_000;

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
    redis: Option<Arc<RedisCircuit>>,
    prefix: String,
    login_policy: LoginPolicy,
}

impl Limiter {
    /// Connects to Redis when configured; an unreachable Redis is not fatal.
    pub async fn new(config: &Config) -> Self {
        let redis = match &config.redis_url {
            Some(url) => Some(
                RedisCircuit::start(
                    url,
                    config.hardening.redis_timeout,
                    config.hardening.redis_probe_interval,
                )
                .await,
            ),
            None => None,
        };
        Self {
            memory: MemoryCounters::default(),
            redis,
            prefix: config.redis_key_prefix.clone(),
            login_policy: LoginPolicy::new(config.hardening.login_name_ceiling),
        }
    }

    /// Runs `call` on Redis if the circuit is closed; `None` means "count in-process".
    async fn on_redis<T, F, Fut>(&self, call: F) -> Option<T>
    where
        F: FnOnce(Arc<redis::RedisCounters>) -> Fut,
        Fut: std::future::Future<Output = ::redis::RedisResult<T>>,
    {
        let circuit = self.redis.as_ref()?;
        let counters = circuit.available()?;
        circuit.call(call(counters)).await
    }

    /// Counts a request of `client` in `bucket` against `limit` per minute.
    pub async fn hit(&self, bucket: &str, client: &str, limit: u32) -> RateDecision {
        let now = unix_millis();
        let window = now / RATE_WINDOW_MS;
        let key = format!("{}rl:{bucket}:{client}:{window}", self.prefix);
        let shared = {
            let key = key.clone();
            self.on_redis(|r| async move { r.hit(&key, RATE_WINDOW_MS + 1_000).await })
                .await
        };
        let count = shared.unwrap_or_else(|| self.memory.hit(&key, window));
        RateDecision {
            allowed: count <= limit,
            limit,
            remaining: limit.saturating_sub(count),
            reset_after_secs: ceil_secs(RATE_WINDOW_MS - now % RATE_WINDOW_MS),
        }
    }

    /// Counts a login attempt with `login_name` from `client` before its password is
    /// checked. `Err(seconds)` when the attempt must not be tried (429 with Retry-After).
    pub async fn reserve_login(&self, login_name: &str, client: &str) -> Result<LoginTicket, u64> {
        let keys = LoginKeys::new(&self.prefix, login_name, client);
        let policy = self.login_policy;
        let shared = {
            let keys = keys.clone();
            self.on_redis(|r| async move { r.reserve_login(&keys, &policy).await })
                .await
        };
        let (wait_ms, epoch) = shared.unwrap_or_else(|| self.memory.reserve_login(&keys, &policy));
        if wait_ms > 0 {
            return Err(ceil_secs(wait_ms));
        }
        Ok(LoginTicket {
            pair: keys.pair(&epoch),
            name: keys.name,
        })
    }

    /// The attempt succeeded: its name-and-address pair starts afresh.
    pub async fn login_succeeded(&self, ticket: &LoginTicket) {
        let (pair, name) = (ticket.pair.clone(), ticket.name.clone());
        let shared = self
            .on_redis(|r| async move { r.release_login(&pair, &name).await })
            .await;
        if shared.is_none() {
            self.memory.release_login(&ticket.pair, &ticket.name);
        }
    }

    /// After a password reset: every login name of the account starts afresh, from
    /// every address.
    pub async fn clear_login_throttle(&self, login_names: &[&str]) {
        for login_name in login_names {
            let keys = LoginKeys::new(&self.prefix, login_name, "");
            self.memory.clear_login(&keys);
            let k = keys.clone();
            self.on_redis(|r| async move {
                r.clear_login(&k.epoch, &k.name, &k.name_block, EPOCH_TTL_MS)
                    .await
            })
            .await;
        }
    }

    /// "disabled" without REDIS_URL, else "ok" or "degraded".
    pub async fn redis_status(&self) -> &'static str {
        if self.redis.is_none() {
            return "disabled";
        }
        match self.on_redis(|r| async move { r.ping().await }).await {
            Some(()) => "ok",
            None => "degraded",
        }
    }
}
