//! The hashing bound for login throughput (DESIGN §8): how long ONE password verify takes
//! on this machine with each hash the service can be configured with, and what
//! `cores ÷ that time` allows per second:
//!
//! - argon2id with the parameters of DESIGN §4 (m=19456 KiB, t=2, p=1: the OWASP minimum,
//!   the `argon2` crate's defaults and the service's default `PASSWORD_HASH`);
//! - bcrypt at the given cost (`PASSWORD_HASH=bcrypt`, `BCRYPT_COST`, default 12).
//!
//! ```text
//! cargo build --release --example hash_cost
//! target/release/examples/hash_cost [N, default 16] [bcrypt cost, default 12] [scheme]
//! ```
//!
//! N bcrypt verifies are timed, and 4 × N argon2id verifies (each is ~10× cheaper, so both
//! take similar time). `scheme` (argon2id or bcrypt) names the hash the login run uses; it
//! is only echoed, so the output says which bound applies.
//!
//! Each hash is also verified N times on every core at once, which shows whether the cores
//! really hash in parallel (SMT, thermal limits, neighbours). The `HASH_COST` lines, one per
//! scheme, are machine readable (key=value) and are what bench/run.sh parses.

use std::time::Instant;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

const PASSWORD: &str = "bench-password-123";
/// DESIGN §4: m=19456 KiB, t=2, p=1.
const ARGON2_M_KIB: u32 = 19_456;
const ARGON2_T: u32 = 2;
const ARGON2_P: u32 = 1;

/// One timed scheme: a label for the `HASH_COST` line and a verify of the fixed password.
struct Scheme {
    fields: String,
    title: String,
    samples: u32,
    verify: Box<dyn Fn() -> bool + Sync>,
}

fn bcrypt_scheme(cost: u32, samples: u32) -> Scheme {
    let hash = bcrypt::hash(PASSWORD, cost).expect("bcrypt hash");
    Scheme {
        fields: format!("scheme=bcrypt cost={cost}"),
        title: format!("bcrypt cost {cost}"),
        samples,
        verify: Box::new(move || bcrypt::verify(PASSWORD, &hash).expect("bcrypt verify")),
    }
}

fn argon2id_scheme(samples: u32) -> Scheme {
    let params = Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, None).expect("argon2 params");
    let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let salt = SaltString::generate(&mut OsRng);
    let hash = hasher
        .hash_password(PASSWORD.as_bytes(), &salt)
        .expect("argon2id hash")
        .to_string();
    Scheme {
        fields: format!("scheme=argon2id params=m{ARGON2_M_KIB},t{ARGON2_T},p{ARGON2_P}"),
        title: format!("argon2id m={ARGON2_M_KIB} KiB, t={ARGON2_T}, p={ARGON2_P}"),
        samples,
        // The parameters come from the stored hash, as when the service verifies a login.
        verify: Box::new(move || {
            let parsed = PasswordHash::new(&hash).expect("argon2id hash string");
            Argon2::default()
                .verify_password(PASSWORD.as_bytes(), &parsed)
                .is_ok()
        }),
    }
}

/// Times one scheme: mean of `samples` sequential verifies on one core, then `samples`
/// verifies on each of `cores` threads at once. Prints the human lines and the HASH_COST one.
fn time_scheme(scheme: &Scheme, cores: usize, used: bool) {
    let n = scheme.samples;
    // One untimed verify: page in, warm caches and frequency.
    assert!((scheme.verify)(), "verify of the right password failed");

    let started = Instant::now();
    for _ in 0..n {
        assert!((scheme.verify)());
    }
    let verify_s = started.elapsed().as_secs_f64() / f64::from(n);
    let bound_per_s = cores as f64 / verify_s;

    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..cores {
            scope.spawn(|| {
                for _ in 0..n {
                    assert!((scheme.verify)());
                }
            });
        }
    });
    let parallel_per_s = (cores as f64 * f64::from(n)) / started.elapsed().as_secs_f64();

    let mark = if used { " (the login run's hash)" } else { "" };
    println!(
        "{}{mark}: one verify takes {:.1} ms (mean of {n})",
        scheme.title,
        verify_s * 1e3
    );
    println!(
        "  hashing bound: {cores} cores / {:.1} ms = {bound_per_s:.2} verifies/s; \
         measured with {cores} threads at once: {parallel_per_s:.2} verifies/s",
        verify_s * 1e3
    );
    println!(
        "HASH_COST {} used={} n={n} cores={cores} verify_ms={:.3} bound_per_s={bound_per_s:.3} parallel_per_s={parallel_per_s:.3}",
        scheme.fields,
        u8::from(used),
        verify_s * 1e3
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u32 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(16)
        .max(1);
    let cost: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(12);
    let used = args
        .next()
        .unwrap_or_else(|| "argon2id".to_owned())
        .to_ascii_lowercase();
    let cores = std::thread::available_parallelism()
        .map(|c| c.get())
        .unwrap_or(1);

    let schemes = [argon2id_scheme(n.saturating_mul(4)), bcrypt_scheme(cost, n)];
    for scheme in &schemes {
        let is_used = scheme.fields.starts_with(&format!("scheme={used} "));
        time_scheme(scheme, cores, is_used);
    }
}
