//! Password hashing: argon2id (default: m=19456 KiB, t=2, p=1, the OWASP minimum) or
//! bcrypt, always off the async runtime on PASSWORD_HASH_CONCURRENCY dedicated threads
//! (`HasherPool`), so a burst of logins queues for the cores instead of starving every
//! other request, and argon2id's memory stays at PASSWORD_HASH_CONCURRENCY × 19 MiB.

use std::sync::atomic::{AtomicU64, Ordering};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::OnceCell;

use crate::config::{Config, PasswordScheme};
use crate::domain::{check_bcrypt_hash, Password};
use crate::error::AppError;
use crate::services::hasher_pool::{HasherPool, Scratch};

/// bcrypt reads at most 72 bytes; longer input would be silently truncated.
pub const BCRYPT_MAX_BYTES: usize = 72;

/// argon2id's memory per hash in KiB (19 MiB), passes and lanes: OWASP's minimum.
pub const ARGON2_MEMORY_KIB: u32 = 19_456;
pub const ARGON2_ITERATIONS: u32 = 2;
pub const ARGON2_LANES: u32 = 1;

/// How every hash we produce today begins; any other stored hash is replaced at the next
/// successful login (when PASSWORD_HASH=argon2id).
const ARGON2_PREFIX: &str = "$argon2id$v=19$m=19456,t=2,p=1$";

pub struct PasswordService {
    scheme: PasswordScheme,
    bcrypt_cost: u32,
    hashers: HasherPool,
    /// Verified against for unknown users, so they cost what a wrong password costs.
    dummy_hash: OnceCell<String>,
    /// Password checks started (real or dummy): what a guesser gets to try.
    verifications: AtomicU64,
}

impl PasswordService {
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        Ok(Self {
            scheme: config.password_hash,
            bcrypt_cost: config.bcrypt_cost,
            hashers: HasherPool::new(config.hash_concurrency)?,
            dummy_hash: OnceCell::new(),
            verifications: AtomicU64::new(0),
        })
    }

    /// The rule that depends on the scheme: bcrypt cannot take more than 72 bytes.
    pub fn check_policy(&self, password: &Password, field: &str) -> Result<(), AppError> {
        if self.scheme == PasswordScheme::Bcrypt && password.expose().len() > BCRYPT_MAX_BYTES {
            return Err(AppError::validation(
                "body",
                field,
                format!("Password must be at most {BCRYPT_MAX_BYTES} bytes long"),
                "value_error",
            ));
        }
        Ok(())
    }

    /// Hashes a new password (checking the scheme's policy first).
    pub async fn hash(&self, password: &Password, field: &str) -> Result<String, AppError> {
        self.check_policy(password, field)?;
        let plain = password.expose().to_owned();
        let (scheme, cost) = (self.scheme, self.bcrypt_cost);
        Ok(self
            .run_blocking(move |_| hash_with(scheme, cost, &plain))
            .await?)
    }

    /// Checks `password` against a stored hash of either scheme.
    /// A hash that is neither argon2 nor a well-formed bcrypt hash within the service's cost
    /// limits (DESIGN §4) is never handed to the hasher: it is answered "wrong" after the
    /// dummy verification, so it costs what an unknown user costs, no less and no more.
    pub async fn verify(&self, password: &str, stored_hash: &str) -> anyhow::Result<bool> {
        if !stored_hash.starts_with("$argon2") && check_bcrypt_hash(stored_hash).is_err() {
            self.verify_dummy(password).await?;
            return Ok(false);
        }
        self.verify_trusted(password, stored_hash).await
    }

    async fn verify_trusted(&self, password: &str, stored_hash: &str) -> anyhow::Result<bool> {
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let plain = password.to_owned();
        let stored = stored_hash.to_owned();
        self.run_blocking(move |scratch| Ok(verify_with(&plain, &stored, scratch)))
            .await
    }

    /// Burns the time of one verification, for logins of accounts that do not exist.
    pub async fn verify_dummy(&self, password: &str) -> anyhow::Result<()> {
        let (scheme, cost) = (self.scheme, self.bcrypt_cost);
        let dummy = self
            .dummy_hash
            .get_or_try_init(|| {
                self.run_blocking(move |_| hash_with(scheme, cost, "dummy password for timing"))
            })
            .await?;
        self.verify_trusted(password, dummy).await?;
        Ok(())
    }

    /// How many password checks were started since the service began (tests and metrics:
    /// the throttle bounds how many guesses reach the hasher).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// True when the stored hash is not what we would produce today (other scheme, lower cost).
    pub fn needs_rehash(&self, stored_hash: &str) -> bool {
        match self.scheme {
            PasswordScheme::Argon2id => !stored_hash.starts_with(ARGON2_PREFIX),
            PasswordScheme::Bcrypt => {
                bcrypt_cost_of(stored_hash).is_none_or(|cost| cost < self.bcrypt_cost)
            }
        }
    }

    async fn run_blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Scratch) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        self.hashers.run(work).await
    }
}

/// argon2id with the parameters of DESIGN §4 (stated here rather than left to the crate's
/// defaults, so a dependency update cannot change them silently).
fn argon2id() -> anyhow::Result<Argon2<'static>> {
    let params = Params::new(ARGON2_MEMORY_KIB, ARGON2_ITERATIONS, ARGON2_LANES, None)
        .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_with(scheme: PasswordScheme, bcrypt_cost: u32, plain: &str) -> anyhow::Result<String> {
    match scheme {
        PasswordScheme::Bcrypt => Ok(bcrypt::hash(plain, bcrypt_cost)?),
        PasswordScheme::Argon2id => {
            let salt = SaltString::generate(&mut OsRng);
            argon2id()?
                .hash_password(plain.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))
        }
    }
}

fn verify_with(plain: &str, stored: &str, scratch: &mut Scratch) -> bool {
    if stored.starts_with(ARGON2_PREFIX) {
        return verify_current_argon2id(plain, stored, scratch).unwrap_or(false);
    }
    if stored.starts_with("$argon2") {
        // The stored string names its own algorithm and parameters; verifying follows them.
        return PasswordHash::new(stored)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(plain.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
    }
    if plain.len() > BCRYPT_MAX_BYTES {
        // No such password can have been stored under bcrypt; still spend the time.
        let _ = bcrypt::verify(&plain.as_bytes()[..BCRYPT_MAX_BYTES], stored);
        return false;
    }
    bcrypt::verify(plain, stored).unwrap_or(false)
}

/// A hash with today's parameters, computed in the hasher thread's reused memory (the
/// crate's own verify allocates 19 MiB each time). `None` when the string is malformed.
fn verify_current_argon2id(plain: &str, stored: &str, scratch: &mut Scratch) -> Option<bool> {
    let parsed = PasswordHash::new(stored).ok()?;
    let expected = parsed.hash?;
    let mut salt = [0u8; 64];
    let salt = parsed.salt?.decode_b64(&mut salt).ok()?;
    let params = Params::new(
        ARGON2_MEMORY_KIB,
        ARGON2_ITERATIONS,
        ARGON2_LANES,
        Some(expected.len()),
    )
    .ok()?;
    let blocks = params.block_count();
    let mut computed = vec![0u8; expected.len()];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into_with_memory(
            plain.as_bytes(),
            salt,
            &mut computed,
            scratch.blocks(blocks),
        )
        .ok()?;
    // Output's equality is constant-time.
    Some(argon2::password_hash::Output::new(&computed).ok()? == expected)
}

fn bcrypt_cost_of(stored: &str) -> Option<u32> {
    // "$2b$12$..." → 12
    let mut parts = stored.split('$');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(""), Some(version), Some(cost)) if version.starts_with('2') => cost.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(scheme: &str, cost: &str) -> PasswordService {
        let key = "k".repeat(32);
        let config = Config::from_lookup(|name| match name {
            "SECRET_KEY" => Some(key.clone()),
            "PASSWORD_HASH" => Some(scheme.into()),
            "BCRYPT_COST" => Some(cost.into()),
            _ => None,
        })
        .unwrap();
        PasswordService::new(&config).unwrap()
    }

    fn pw(s: &str) -> Password {
        Password::parse(s.to_owned()).unwrap()
    }

    /// A malformed or over-cost hash answers "wrong" after the dummy's work: never sooner
    /// than an unknown user (which would tell a guesser the account exists), never later.
    #[tokio::test]
    async fn malformed_hashes_cost_the_dummy_verification() {
        let svc = service("bcrypt", "10");
        svc.verify_dummy("warm up").await.unwrap();
        let timed = |stored: &'static str| {
            let svc = &svc;
            async move {
                let started = std::time::Instant::now();
                for _ in 0..3 {
                    assert!(!svc.verify("guess", stored).await.unwrap());
                }
                started.elapsed()
            }
        };
        let started = std::time::Instant::now();
        for _ in 0..3 {
            svc.verify_dummy("guess").await.unwrap();
        }
        let unknown_user = started.elapsed();
        for stored in [
            "$2b$12$tooshort",
            "$2$",
            "not a hash",
            "$2b$31$abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0",
        ] {
            let took = timed(stored).await;
            assert!(
                took * 2 > unknown_user && took < unknown_user * 4,
                "{stored}: {took:?} against the dummy's {unknown_user:?}"
            );
        }
    }

    #[tokio::test]
    async fn bcrypt_round_trip_and_cost() {
        let svc = service("bcrypt", "4");
        let hash = svc.hash(&pw("correct horse"), "password").await.unwrap();
        assert!(hash.starts_with("$2b$04$"));
        assert!(svc.verify("correct horse", &hash).await.unwrap());
        assert!(!svc.verify("wrong horse", &hash).await.unwrap());
    }

    #[tokio::test]
    async fn bcrypt_refuses_more_than_72_bytes_instead_of_truncating() {
        let svc = service("bcrypt", "4");
        assert!(svc.hash(&pw(&"a".repeat(72)), "password").await.is_ok());
        let err = svc
            .hash(&pw(&"a".repeat(73)), "password")
            .await
            .unwrap_err();
        assert!(matches!(err, AppError::Validation(_)));
    }

    #[tokio::test]
    async fn argon2id_hashes_and_upgrades_old_bcrypt_hashes() {
        let bcrypt_svc = service("bcrypt", "4");
        let old = bcrypt_svc
            .hash(&pw("correct horse"), "password")
            .await
            .unwrap();
        let svc = service("argon2id", "4");
        assert!(svc.needs_rehash(&old));
        assert!(svc.verify("correct horse", &old).await.unwrap());
        let new = svc.hash(&pw("correct horse"), "password").await.unwrap();
        assert!(new.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{new}");
        assert!(!svc.needs_rehash(&new));
        assert!(svc.verify("correct horse", &new).await.unwrap());
        // argon2id has no 72-byte limit
        assert!(svc.hash(&pw(&"a".repeat(100)), "password").await.is_ok());
    }

    #[test]
    fn lower_bcrypt_cost_needs_rehash() {
        let svc = service("bcrypt", "12");
        assert!(svc.needs_rehash("$2b$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234"));
        assert!(!svc.needs_rehash("$2b$12$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234"));
    }

    #[test]
    fn default_scheme_is_argon2id() {
        let key = "k".repeat(32);
        let config = Config::from_lookup(|n| (n == "SECRET_KEY").then(|| key.clone())).unwrap();
        let svc = PasswordService::new(&config).unwrap();
        assert_eq!(svc.scheme, PasswordScheme::Argon2id);
    }

    #[test]
    fn argon2id_with_other_parameters_needs_rehash() {
        let svc = service("argon2id", "4");
        // A hash made with weaker parameters (m=4096) is verified but replaced.
        assert!(
            svc.needs_rehash("$argon2id$v=19$m=4096,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
        );
        assert!(
            svc.needs_rehash("$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
        );
    }

    #[tokio::test]
    async fn bcrypt_setting_verifies_and_replaces_argon2_hashes() {
        let argon = service("argon2id", "4")
            .hash(&pw("correct horse"), "password")
            .await
            .unwrap();
        let svc = service("bcrypt", "4");
        assert!(svc.verify("correct horse", &argon).await.unwrap());
        assert!(!svc.verify("wrong horse", &argon).await.unwrap());
        assert!(svc.needs_rehash(&argon));
    }
}
