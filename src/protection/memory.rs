//! In-process counters: the default, and the fallback while Redis is unreachable.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{login_delay_ms, unix_millis, LOGIN_FAILURE_THRESHOLD, LOGIN_FAILURE_WINDOW_MS};

/// Entries beyond this trigger a sweep of the stale ones.
const SWEEP_AT: usize = 10_000;

#[derive(Default)]
pub struct MemoryCounters {
    /// key → (window id, hits in that window)
    windows: Mutex<HashMap<String, (u64, u32)>>,
    failures: Mutex<HashMap<String, Failures>>,
}

struct Failures {
    count: u32,
    window_started_ms: u64,
    blocked_until_ms: u64,
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

    pub fn blocked_for_ms(&self, account: &str) -> u64 {
        let now = unix_millis();
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures
            .get(account)
            .map_or(0, |f| f.blocked_until_ms.saturating_sub(now))
    }

    pub fn failed(&self, account: &str) -> u64 {
        let now = unix_millis();
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() > SWEEP_AT {
            failures.retain(|_, f| {
                now < f.window_started_ms + LOGIN_FAILURE_WINDOW_MS || now < f.blocked_until_ms
            });
        }
        let f = failures.entry(account.to_owned()).or_insert(Failures {
            count: 0,
            window_started_ms: now,
            blocked_until_ms: 0,
        });
        if now >= f.window_started_ms + LOGIN_FAILURE_WINDOW_MS {
            *f = Failures {
                count: 0,
                window_started_ms: now,
                blocked_until_ms: 0,
            };
        }
        f.count += 1;
        if f.count < LOGIN_FAILURE_THRESHOLD {
            return 0;
        }
        let delay = login_delay_ms(f.count);
        f.blocked_until_ms = now + delay;
        delay
    }

    pub fn succeeded(&self, account: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(account);
    }
}
