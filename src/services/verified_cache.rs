//! Tokens this instance has verified already, by the SHA-256 of the token: an ES256 check
//! costs tens of microseconds, a hash and a map lookup well under one (DESIGN §8, §13).
//! Bounded; an entry is used only until the token's own expiry. It never replaces the
//! session check.

use std::collections::HashMap;
use std::sync::Mutex;

use super::tokens::Claims;

pub struct VerifiedCache {
    capacity: usize,
    entries: Mutex<HashMap<[u8; 32], Claims>>,
}

impl VerifiedCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, digest: &[u8; 32], now: i64) -> Option<Claims> {
        let entries = self.entries.lock().ok()?;
        entries.get(digest).filter(|c| c.exp > now).cloned()
    }

    pub fn put(&self, digest: [u8; 32], claims: &Claims) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= self.capacity {
            let now = chrono::Utc::now().timestamp();
            entries.retain(|_, c| c.exp > now);
            if entries.len() >= self.capacity {
                // Still full of live tokens: start over rather than grow without bound.
                entries.clear();
            }
        }
        entries.insert(digest, claims.clone());
    }

    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }
}
