//! Memory stays bounded under a login storm with argon2id: each hash needs 19 MiB, the
//! PASSWORD_HASH_CONCURRENCY hasher threads reuse theirs during the storm and free it when
//! idle (when hashes ran on tokio's blocking pool, glibc kept one arena per thread that
//! ever hashed resident: about 400 MB after 72 logins).

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::join_all;
use crate::logs::{base_env, ServerProcess};

/// Resident memory of a process, in KiB, from /proc.
fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_storm_with_argon2id_leaves_memory_bounded() {
    if !std::path::Path::new("/proc/self/status").exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(dir.path());
    env.insert("PASSWORD_HASH".into(), "argon2id".into());
    env.insert("PASSWORD_HASH_CONCURRENCY".into(), "2".into());
    env.insert("RATE_LIMIT_AUTH_PER_MINUTE".into(), "0".into());
    let server = ServerProcess::start(&env, dir.path()).await;
    let client = reqwest::Client::new();
    let password = "correct horse battery staple";
    // Eight accounts, two logins each at a time: the failed-login guard allows only a
    // few attempts in flight per name.
    let names: Vec<String> = (0..8).map(|i| format!("storm{i}")).collect();
    let registrations = names.iter().map(|name| {
        client
            .post(server.url("/auth/register"))
            .json(&json!({"username": name, "email": format!("{name}@example.com"), "password": password}))
            .send()
    });
    for answer in join_all(registrations).await {
        assert_eq!(answer.unwrap().status(), StatusCode::CREATED);
    }
    for _ in 0..3 {
        let logins = names.iter().chain(names.iter()).map(|name| {
            client
                .post(server.url("/auth/login"))
                .form(&[("username", name.as_str()), ("password", password)])
                .send()
        });
        for answer in join_all(logins).await {
            assert_eq!(answer.unwrap().status(), StatusCode::OK);
        }
    }
    let resident_mib = resident_kib(server.pid()) / 1024;
    // The process itself is ~25 MB; two hashers hold 2 x 19 MiB only while hashing.
    assert!(
        resident_mib < 120,
        "{resident_mib} MiB resident after 56 argon2id hashes (bound: 2 x 19 MiB while hashing)"
    );
}
