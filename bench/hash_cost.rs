//! The hashing bound for login throughput (DESIGN §8): how long ONE bcrypt verify at the
//! benchmark's cost takes on this machine, and what `cores ÷ that time` allows per second.
//!
//!     cargo build --release --example hash_cost
//!     target/release/examples/hash_cost [N verifies, default 16] [cost, default 12]
//!
//! It also runs the same N verifies on every core at once and reports that throughput,
//! which shows whether the cores really hash in parallel (SMT, thermal limits, neighbours).
//! The last line is machine readable (key=value) and is what bench/run.sh parses.

use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u32 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(16)
        .max(1);
    let cost: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(12);
    let cores = std::thread::available_parallelism()
        .map(|c| c.get())
        .unwrap_or(1);

    let password = "bench-password-123";
    let hash = bcrypt::hash(password, cost).expect("bcrypt hash");
    // One untimed verify: page in, warm caches and frequency.
    assert!(bcrypt::verify(password, &hash).expect("bcrypt verify"));

    // Sequential: one core, N verifies.
    let started = Instant::now();
    for _ in 0..n {
        assert!(bcrypt::verify(password, &hash).expect("bcrypt verify"));
    }
    let verify_s = started.elapsed().as_secs_f64() / f64::from(n);
    let bound_per_s = cores as f64 / verify_s;

    // Parallel: every core, N verifies each.
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..cores {
            scope.spawn(|| {
                for _ in 0..n {
                    assert!(bcrypt::verify(password, &hash).expect("bcrypt verify"));
                }
            });
        }
    });
    let parallel_per_s = (cores as f64 * f64::from(n)) / started.elapsed().as_secs_f64();

    println!(
        "bcrypt cost {cost}: one verify takes {:.1} ms (mean of {n})",
        verify_s * 1e3
    );
    println!(
        "hashing bound: {cores} cores / {:.1} ms = {bound_per_s:.2} verifies/s",
        verify_s * 1e3
    );
    println!("measured with {cores} threads at once: {parallel_per_s:.2} verifies/s");
    println!(
        "HASH_COST cost={cost} n={n} cores={cores} verify_ms={:.3} bound_per_s={bound_per_s:.3} parallel_per_s={parallel_per_s:.3}",
        verify_s * 1e3
    );
}
