//! Failed-login throttling, keyed so that it neither locks owners out nor links names.
//!
//! - Every attempt is counted (reserved) BEFORE its password is checked, in one atomic
//!   step with the check of the block, so N parallel guesses cannot all be tried; a
//!   successful login gives its reservation back.
//! - Counts are kept per (login name, client address) pair, with the progressive delay
//!   after 5 failures, and per login name over all addresses with a much higher ceiling
//!   (LOGIN_NAME_FAILURE_CEILING): an attacker elsewhere cannot lock the owner out with a
//!   dozen guesses, and a distributed attack is still bounded.
//! - The key is the login name as typed (trimmed, lowercased), never the account: a
//!   username and its account's email count apart, so whether one name is throttled says
//!   nothing about whether another belongs to the same account (and unknown names behave
//!   exactly like known ones).
//! - A successful password reset starts the account's names afresh (a new epoch for their
//!   pair keys, the name-wide count cleared).

use sha2::{Digest, Sha256};

/// Failures of one name from one address after which the delay starts.
pub const LOGIN_FAILURE_THRESHOLD: u32 = 5;
pub const LOGIN_FAILURE_WINDOW_MS: u64 = 15 * 60 * 1000;
/// The delay after the threshold-th failure; it doubles with each further one.
pub const LOGIN_BASE_DELAY_MS: u64 = 2_000;
pub const MAX_LOGIN_DELAY_MS: u64 = 15 * 60 * 1000;
/// An epoch outlives every pair key of the epoch before it (window + longest delay).
pub const EPOCH_TTL_MS: u64 = 2 * 60 * 60 * 1000;

pub fn login_delay_ms(count: u32, threshold: u32) -> u64 {
    let doublings = count.saturating_sub(threshold).min(20);
    LOGIN_BASE_DELAY_MS
        .saturating_mul(1 << doublings)
        .min(MAX_LOGIN_DELAY_MS)
}

#[derive(Debug, Clone, Copy)]
pub struct LoginPolicy {
    pub window_ms: u64,
    pub pair_threshold: u32,
    pub name_ceiling: u32,
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
}

impl LoginPolicy {
    pub fn new(name_ceiling: u32) -> Self {
        Self {
            window_ms: LOGIN_FAILURE_WINDOW_MS,
            pair_threshold: LOGIN_FAILURE_THRESHOLD,
            name_ceiling,
            base_delay_ms: LOGIN_BASE_DELAY_MS,
            max_delay_ms: MAX_LOGIN_DELAY_MS,
        }
    }
}

/// The counter keys of one login name (hashed: no names or addresses in Redis keys).
#[derive(Debug, Clone)]
pub struct LoginKeys {
    pub epoch: String,
    pub name: String,
    pub name_block: String,
    /// Pair keys are `pair_base + epoch + ":" + client`.
    pub pair_base: String,
    pub client: String,
}

fn digest(value: &str) -> String {
    hex::encode(&Sha256::digest(value.as_bytes())[..16])
}

impl LoginKeys {
    pub fn new(prefix: &str, login_name: &str, client: &str) -> Self {
        let id = digest(&login_name.trim().to_lowercase());
        Self {
            epoch: format!("{prefix}le:{id}"),
            name: format!("{prefix}ln:{id}"),
            name_block: format!("{prefix}ln:{id}:b"),
            pair_base: format!("{prefix}lp:{id}:"),
            client: digest(client),
        }
    }

    pub fn pair(&self, epoch: &str) -> String {
        format!("{}{epoch}:{}", self.pair_base, self.client)
    }
}

/// A counted attempt; hand it back with `Limiter::login_succeeded`.
#[derive(Debug, Clone)]
pub struct LoginTicket {
    pub(super) pair: String,
    pub(super) name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_from_the_threshold_and_is_capped() {
        assert_eq!(login_delay_ms(5, 5), 2_000);
        assert_eq!(login_delay_ms(6, 5), 4_000);
        assert_eq!(login_delay_ms(7, 5), 8_000);
        assert_eq!(login_delay_ms(40, 5), MAX_LOGIN_DELAY_MS);
    }

    #[test]
    fn keys_follow_the_name_as_typed_not_the_account() {
        let a = LoginKeys::new("p:", " Alice ", "1.2.3.4");
        let b = LoginKeys::new("p:", "alice", "1.2.3.4");
        let c = LoginKeys::new("p:", "alice@example.com", "1.2.3.4");
        let d = LoginKeys::new("p:", "alice", "5.6.7.8");
        assert_eq!(a.name, b.name);
        assert_ne!(a.name, c.name);
        assert_eq!(a.pair("0"), b.pair("0"));
        assert_ne!(b.pair("0"), d.pair("0"));
        assert_ne!(b.pair("0"), b.pair("1"));
        assert!(!a.name.contains("alice"));
    }
}
