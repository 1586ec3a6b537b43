//! The README's ```sh blocks, in order, run with bash against a fresh instance of the real
//! binary started as the README says (no configuration but the internal key its credits
//! section needs), in an empty working directory. Each block ends with checks (`grep` on
//! the answer), and the script runs with `set -euo pipefail`, so a step that does not do
//! what the text says fails the test. Two substitutions only: the instance's port for
//! `localhost:8080` (tests run in parallel), and the built binary for `cargo run --release -q --`.

use std::collections::HashMap;
use std::process::Stdio;

use crate::logs::{ServerProcess, BINARY};

/// The ```sh blocks of a Markdown text, in order.
fn sh_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim_end() == "```sh" => current = Some(String::new()),
            Some(block) if line.trim_end() == "```" => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

#[test]
fn sh_blocks_are_found_in_order() {
    let text = "a\n```sh\necho 1\n```\n```console\nnot me\n```\n```sh\necho 2\n```\n";
    assert_eq!(sh_blocks(text), vec!["echo 1\n", "echo 2\n"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_examples_run_as_written() {
    let readme = include_str!("../../README.md");
    let blocks = sh_blocks(readme);
    assert!(
        blocks.len() >= 4,
        "the README has its examples in ```sh blocks"
    );

    let dir = tempfile::tempdir().unwrap();
    // What the README's run command sets; the rest is the fresh-clone default (SQLite in
    // ./data, a generated key, mail to ./data/mail). bcrypt at cost 4 keeps it quick.
    let env: HashMap<String, String> = [
        ("PATH", std::env::var("PATH").unwrap_or_default()),
        (
            "INTERNAL_API_KEYS",
            "service-key-from-INTERNAL_API_KEYS".into(),
        ),
        ("PASSWORD_HASH", "bcrypt".into()),
        ("BCRYPT_COST", "4".into()),
        ("MAIL_POLL_INTERVAL_MS", "100".into()),
        ("PORT", "0".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let server = ServerProcess::start(&env, dir.path()).await;

    let mut script = String::from("set -euo pipefail\n");
    for (i, block) in blocks.iter().enumerate() {
        let block = block
            .replace("localhost:8080", &format!("127.0.0.1:{}", server.port))
            .replace("cargo run --release -q --", BINARY);
        script.push_str(&format!("echo '=== README block {}'\n{block}\n", i + 1));
    }
    script.push_str("echo '=== README done'\n");

    // `timeout` bounds a step that hangs (a server that never answers) to 2 minutes.
    let run_env: HashMap<String, String> = env
        .iter()
        .filter(|(k, _)| k.as_str() != "PORT")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let cwd = dir.path().to_owned();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("timeout")
            .args(["120", "bash", "-c", &script])
            .env_clear()
            .envs(&run_env)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .output()
    })
    .await
    .expect("the runner thread")
    .expect("bash runs");
    let (out, err) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    let status = output.status;
    let last_block = out.lines().rev().find(|l| l.starts_with("=== README"));
    assert!(
        status.success() && out.contains("=== README done"),
        "README examples failed (last started: {last_block:?})\n--- stdout\n{out}\n--- stderr\n{err}\n--- server\n{}",
        server.output()
    );
    for expected in [
        "\"username\":\"alice\"",
        "Email verified successfully",
        "\"transaction_type\":\"credit_added\"",
        "\"balance\":8.25",
        "created admin admin",
        "\"is_active\":false",
        "User deleted successfully",
    ] {
        assert!(
            out.contains(expected),
            "README output lacks {expected}\n{out}"
        );
    }
}
