//! In-process counters: the default, and the fallback while Redis is unreachable. They
//! implement the same operations as the Redis scripts, each under one lock.

use std::collections::HashMap;
use std::sync::Mutex;

use super::login::{login_delay_ms, LoginKeys, LoginPolicy, EPOCH_TTL_MS};
use super::unix_millis;

/// Entries beyond this trigger a sweep of the stale ones.
const SWEEP_AT: usize = 10_000;

#[derive(Default)]
pub struct MemoryCounters {
    /// key → (window id, hits in that window)
    windows: Mutex<HashMap<String, (u64, u32)>>,
    logins: Mutex<Logins>,
}

#[derive(Default)]
struct Logins {
    counters: HashMap<String, Counter>,
    /// epoch key → (epoch, expires at ms)
    epochs: HashMap<String, (u64, u64)>,
}

struct Counter {
    count: u32,
    expires_ms: u64,
    blocked_until_ms: u64,
}

impl Logins {
    fn blocked_for(&self, key: &str, now: u64) -> u64 {
        self.counters
            .get(key)
            .map_or(0, |c| c.blocked_until_ms.saturating_sub(now))
    }

    fn count(&mut self, key: &str, threshold: u32, policy: &LoginPolicy, now: u64) {
        let c = self.counters.entry(key.to_owned()).or_insert(Counter {
            count: 0,
            expires_ms: now + policy.window_ms,
            blocked_until_ms: 0,
        });
        if now >= c.expires_ms {
            c.count = 0;
            c.expires_ms = now + policy.window_ms;
        }
        c.count = c.count.saturating_add(1);
        if c.count >= threshold {
            c.blocked_until_ms = now + login_delay_ms(c.count, threshold);
        }
    }

    fn epoch(&self, key: &str, now: u64) -> u64 {
        self.epochs
            .get(key)
            .filter(|(_, expires)| *expires > now)
            .map_or(0, |(epoch, _)| *epoch)
    }

    fn sweep(&mut self, now: u64) {
        if self.counters.len() > SWEEP_AT {
            self.counters
                .retain(|_, c| now < c.expires_ms || now < c.blocked_until_ms);
        }
        if self.epochs.len() > SWEEP_AT {
            self.epochs.retain(|_, (_, expires)| now < *expires);
        }
    }
}

impl MemoryCounters {
    /// Counts a hit in window `window`; returns the hits so far in it.
    pub fn hit(&self, key: &str, window: u64) -> u32 {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() > SWEEP_AT {
            windows.retain(|_, (w, _)| *w >= window);
        }
        let entry = windows.entry(key.to_owned()).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1
    }

    /// The in-process twin of the Redis `RESERVE` script: `(wait_ms, epoch)`.
    pub fn reserve_login(&self, keys: &LoginKeys, policy: &LoginPolicy) -> (u64, String) {
        let now = unix_millis();
        let mut logins = self.logins.lock().unwrap_or_else(|e| e.into_inner());
        logins.sweep(now);
        let epoch = logins.epoch(&keys.epoch, now).to_string();
        let pair = keys.pair(&epoch);
        let wait = logins
            .blocked_for(&pair, now)
            .max(logins.blocked_for(&keys.name, now));
        if wait > 0 {
            return (wait, epoch);
        }
        logins.count(&pair, policy.pair_threshold, policy, now);
        logins.count(&keys.name, policy.name_ceiling, policy, now);
        (0, epoch)
    }

    pub fn release_login(&self, pair: &str, name: &str) {
        let mut logins = self.logins.lock().unwrap_or_else(|e| e.into_inner());
        logins.counters.remove(pair);
        if let Some(c) = logins.counters.get_mut(name) {
            c.count = c.count.saturating_sub(1);
        }
    }

    pub fn clear_login(&self, keys: &LoginKeys) {
        let now = unix_millis();
        let mut logins = self.logins.lock().unwrap_or_else(|e| e.into_inner());
        let next = logins.epoch(&keys.epoch, now) + 1;
        logins
            .epochs
            .insert(keys.epoch.clone(), (next, now + EPOCH_TTL_MS));
        logins.counters.remove(&keys.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_reservations_then_blocked_and_success_releases() {
        let counters = MemoryCounters::default();
        let policy = LoginPolicy::new(100);
        let keys = LoginKeys::new("p:", "acct", "ip");
        for _ in 0..5 {
            assert_eq!(counters.reserve_login(&keys, &policy).0, 0);
        }
        let (wait, epoch) = counters.reserve_login(&keys, &policy);
        assert!(wait > 0 && wait <= 2_000);
        let other_ip = LoginKeys::new("p:", "acct", "other");
        assert_eq!(counters.reserve_login(&other_ip, &policy).0, 0);
        counters.release_login(&keys.pair(&epoch), &keys.name);
        assert_eq!(counters.reserve_login(&keys, &policy).0, 0);
    }

    #[test]
    fn the_name_ceiling_covers_every_address_and_clearing_resets_it() {
        let counters = MemoryCounters::default();
        let policy = LoginPolicy::new(10);
        for i in 0..10 {
            let keys = LoginKeys::new("p:", "acct", &format!("ip{i}"));
            assert_eq!(counters.reserve_login(&keys, &policy).0, 0);
        }
        let fresh = LoginKeys::new("p:", "acct", "fresh-ip");
        assert!(counters.reserve_login(&fresh, &policy).0 > 0);
        counters.clear_login(&fresh);
        assert_eq!(counters.reserve_login(&fresh, &policy).0, 0);
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
