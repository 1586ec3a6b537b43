//! Issue 19 item 2: `/webhooks/stripe` refuses what it can before reading a body, and what
//! it buffers is bounded across all connections: many slow uploads keep the real
//! process's resident memory bounded, and signed events are still applied afterwards.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::support::{signature, unix_now, STRIPE_KEY, WEBHOOK_SECRET};
use crate::logs::{base_env, ServerProcess};

const FLOOD: usize = 240;
const DECLARED: usize = 1_000_000;

fn resident_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0)
        / 1024
}

fn head(port: u16, signature: Option<&str>, length: usize) -> String {
    let mut head = format!(
        "POST /webhooks/stripe HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n"
    );
    if let Some(sig) = signature {
        head.push_str(&format!("stripe-signature: {sig}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// The status line's code of whatever the server answered within `wait`, if anything.
async fn answered_within(stream: &mut TcpStream, wait: Duration) -> Option<u16> {
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(wait, stream.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf[..n]);
    text.split(' ').nth(1)?.parse().ok()
}

fn billing_env(dir: &std::path::Path) -> std::collections::HashMap<String, String> {
    let mut env = base_env(dir);
    env.insert("STRIPE_SECRET_KEY".into(), STRIPE_KEY.into());
    env.insert("STRIPE_WEBHOOK_SECRET".into(), WEBHOOK_SECRET.into());
    env.insert("STRIPE_API_BASE".into(), "http://127.0.0.1:9".into());
    env.insert("HTTP_IDLE_TIMEOUT_SECONDS".into(), "60".into());
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_webhook_uploads_leave_memory_bounded() {
    if !std::path::Path::new("/proc/self/status").exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&billing_env(dir.path()), dir.path()).await;
    let port = server.port;
    let before = resident_mib(server.pid());
    // Each upload: a signature of the right shape, a 1 MB body of which all but the last
    // byte is sent, then nothing.
    let shaped = format!("t={},v1={}", unix_now(), "ab".repeat(32));
    let mut flood = Vec::new();
    for _ in 0..FLOOD {
        let head = head(port, Some(&shaped), DECLARED);
        flood.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
            stream.write_all(head.as_bytes()).await.ok()?;
            let chunk = vec![b' '; 64 * 1024];
            let mut sent = 0;
            while sent + chunk.len() < DECLARED {
                if stream.write_all(&chunk).await.is_err() {
                    break;
                }
                sent += chunk.len();
            }
            let _ = stream.write_all(&vec![b' '; DECLARED - 1 - sent]).await;
            tokio::time::sleep(Duration::from_secs(4)).await;
            Some(stream)
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = resident_mib(server.pid());
    let mut streams = Vec::new();
    for upload in flood {
        streams.extend(upload.await.ok().flatten());
    }
    drop(streams);
    // Bound: the 8 MiB budget plus socket buffers; before, each stalled upload held its
    // ~1 MB in memory (240 MB here).
    assert!(
        during < before + 64,
        "{during} MiB resident under {FLOOD} slow uploads (was {before} MiB before)"
    );

    // Signed events are still applied once the flood is gone.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let body =
        serde_json::json!({"id": "evt_after_flood", "object": "event", "type": "ping.unused",
        "created": unix_now(), "livemode": false, "data": {"object": {}}})
        .to_string();
    let answer = reqwest::Client::new()
        .post(server.url("/webhooks/stripe"))
        .header("content-type", "application/json")
        .header(
            "stripe-signature",
            signature(WEBHOOK_SECRET, unix_now(), &body),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::OK);
}

/// Webhooks off, or a header that cannot be a signature: refused before the body is read
/// (the client has sent only the head and waits).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_refusals_come_before_the_body() {
    let dir = tempfile::tempdir().unwrap();
    let off = ServerProcess::start(&base_env(dir.path()), dir.path()).await;
    let mut stream = TcpStream::connect(("127.0.0.1", off.port)).await.unwrap();
    let shaped = format!("t={},v1={}", unix_now(), "ab".repeat(32));
    stream
        .write_all(head(off.port, Some(&shaped), DECLARED).as_bytes())
        .await
        .unwrap();
    assert_eq!(
        answered_within(&mut stream, Duration::from_secs(3)).await,
        Some(503),
        "billing off: 503 at once"
    );

    let dir = tempfile::tempdir().unwrap();
    let on = ServerProcess::start(&billing_env(dir.path()), dir.path()).await;
    let stale = format!("t={},v1={}", unix_now() - 3600, "ab".repeat(32));
    for sig in [None, Some("t=1,v1=zz"), Some("v1=00"), Some(stale.as_str())] {
        let mut stream = TcpStream::connect(("127.0.0.1", on.port)).await.unwrap();
        stream
            .write_all(head(on.port, sig, DECLARED).as_bytes())
            .await
            .unwrap();
        assert_eq!(
            answered_within(&mut stream, Duration::from_secs(3)).await,
            Some(400),
            "signature header {sig:?}: 400 at once"
        );
    }
}
