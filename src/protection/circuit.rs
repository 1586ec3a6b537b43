//! The Redis connection behind a circuit breaker. Every call is bounded by a short
//! timeout (REDIS_TIMEOUT_MS); the first failure or timeout opens the circuit, so the
//! requests after it use in-process counters at once instead of each waiting for Redis. A
//! background probe closes the circuit again when Redis answers.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use super::redis::RedisCounters;

pub struct RedisCircuit {
    url: String,
    timeout: Duration,
    probe_interval: Duration,
    counters: RwLock<Option<Arc<RedisCounters>>>,
    /// True while Redis is in use (the circuit is closed).
    closed: AtomicBool,
    probing: AtomicBool,
}

impl RedisCircuit {
    /// Connects (bounded); an unreachable Redis opens the circuit and starts the probe.
    pub async fn start(url: &str, timeout: Duration, probe_interval: Duration) -> Arc<Self> {
        let circuit = Arc::new(Self {
            url: url.to_owned(),
            timeout,
            probe_interval,
            counters: RwLock::new(None),
            closed: AtomicBool::new(false),
            probing: AtomicBool::new(false),
        });
        if circuit.try_recover().await {
            return circuit;
        }
        tracing::error!(
            "REDIS_URL is set but Redis is unreachable: limits are per instance until it answers"
        );
        circuit.start_probe();
        circuit
    }

    /// A slower bound for connecting and probing, which are off the request path.
    fn probe_timeout(&self) -> Duration {
        (self.timeout * 10).max(Duration::from_millis(500))
    }

    /// The counters while the circuit is closed; `None` means "use in-process counters".
    pub fn available(&self) -> Option<Arc<RedisCounters>> {
        if !self.closed.load(Ordering::Acquire) {
            return None;
        }
        self.counters
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Runs one Redis call within the timeout; a failure opens the circuit.
    pub async fn call<T>(
        self: &Arc<Self>,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Option<T> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(e)) => {
                self.trip(&e);
                None
            }
            Err(_) => {
                self.trip(&format_args!("no answer within {:?}", self.timeout));
                None
            }
        }
    }

    fn trip(self: &Arc<Self>, error: &dyn std::fmt::Display) {
        if self.closed.swap(false, Ordering::AcqRel) {
            tracing::warn!(error = %error, "Redis unreachable: falling back to in-process limits");
        }
        if super::sentinel::is_sentinel_url(&self.url) {
            // The master may have changed (or been demoted: READONLY): ask the sentinels
            // again on the next probe instead of reconnecting to the same address.
            *self.counters.write().unwrap_or_else(|e| e.into_inner()) = None;
        }
        self.start_probe();
    }

    fn start_probe(self: &Arc<Self>) {
        if self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        // A weak reference: the probe ends with the limiter that owns the circuit.
        let weak: Weak<Self> = Arc::downgrade(self);
        let interval = self.probe_interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(circuit) = weak.upgrade() else {
                    return;
                };
                if circuit.try_recover().await {
                    circuit.probing.store(false, Ordering::Release);
                    tracing::info!("Redis reachable again: limits are shared across instances");
                    return;
                }
            }
        });
    }

    /// Connects if needed and pings; closes the circuit when Redis answers.
    async fn try_recover(&self) -> bool {
        let bound = self.probe_timeout();
        let existing = self
            .counters
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let counters = match existing {
            Some(counters) => counters,
            None => {
                match tokio::time::timeout(bound, RedisCounters::connect(&self.url, bound)).await {
                    Ok(Ok(counters)) => {
                        let counters = Arc::new(counters);
                        *self.counters.write().unwrap_or_else(|e| e.into_inner()) =
                            Some(counters.clone());
                        counters
                    }
                    _ => return false,
                }
            }
        };
        let answered = matches!(
            tokio::time::timeout(bound, counters.ping()).await,
            Ok(Ok(()))
        );
        if answered {
            self.closed.store(true, Ordering::Release);
        }
        answered
    }
}
