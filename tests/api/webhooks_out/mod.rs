//! Outgoing webhooks (DESIGN §16), judged by the official Standard Webhooks library: each
//! request reaches a Python receiver (receiver.py) that verifies it with `standardwebhooks`
//! and records what it saw. Installed by .ci/setup.d/48-standardwebhooks.sh.

mod delivery;
mod endpoints;
mod low_balance;
mod purchase;
mod restart;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{outside_tool, tools_dir, TestApp, TestUser};

pub struct Receiver {
    child: Child,
    pub url: String,
    secrets: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Receiver {
    /// `None` (test skipped) when the library is not installed.
    pub fn start(behaviour: &str) -> Option<Self> {
        let python = outside_tool(
            tools_dir().join("standardwebhooks-venv/bin/python"),
            "run .ci/setup.d/48-standardwebhooks.sh",
        )?;
        let dir = tempfile::tempdir().unwrap();
        let secrets = dir.path().join("secrets");
        let log = dir.path().join("log.jsonl");
        std::fs::write(&secrets, "").unwrap();
        std::fs::write(&log, "").unwrap();
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/api/webhooks_out/receiver.py"
        );
        let mut child = Command::new(python)
            .args([
                script,
                secrets.to_str().unwrap(),
                log.to_str().unwrap(),
                behaviour,
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("receiver starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line.trim().parse().expect("receiver prints its port");
        Some(Self {
            child,
            url: format!("http://127.0.0.1:{port}/hook"),
            secrets,
            log,
            _dir: dir,
        })
    }

    pub fn set_secrets(&self, secrets: &[&str]) {
        // Written aside and renamed: the receiver may read the file mid-delivery, and a
        // truncated file would refuse a correctly signed message.
        let staged = self.secrets.with_extension("new");
        std::fs::write(&staged, secrets.join("\n")).unwrap();
        std::fs::rename(&staged, &self.secrets).unwrap();
    }

    pub fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Waits until `done` holds for the requests seen so far (up to `within`).
    pub async fn wait_until(
        &self,
        within: Duration,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let until = std::time::Instant::now() + within;
        loop {
            let seen = self.requests();
            if done(&seen) || std::time::Instant::now() > until {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn wait_for_type(&self, event_type: &str) -> Vec<Value> {
        self.wait_until(Duration::from_secs(15), |r| {
            r.iter().any(|x| x["type"] == event_type)
        })
        .await
    }
}

/// Settings every webhook test uses: private addresses allowed (the receiver is local),
/// the retry schedule scaled down 1000× (5 s → 5 ms, 5 min → 300 ms, 30 min → 1.8 s),
/// a fast poll.
pub fn webhook_vars(vars: &mut std::collections::HashMap<String, String>) {
    vars.insert("WEBHOOK_ALLOW_PRIVATE_NETWORKS".into(), "true".into());
    vars.insert("WEBHOOK_RETRY_SCALE".into(), "0.001".into());
    vars.insert("WEBHOOK_POLL_MS".into(), "50".into());
}

/// Registers an endpoint for `events`; its secret goes to the receiver.
pub async fn register_endpoint(
    app: &TestApp,
    admin: &TestUser,
    receiver: &Receiver,
    events: &[&str],
) -> Value {
    let r = app
        .post(
            "/admin/webhooks",
            &json!({"url": receiver.url, "events": events}),
            Some(&admin.access),
        )
        .await;
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    receiver.set_secrets(&[body["secret"].as_str().unwrap()]);
    body
}
