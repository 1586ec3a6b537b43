//! `auth-service healthcheck`: a minimal HTTP/1.1 GET of /health/live on the local server,
//! so a container image needs no curl or wget.

use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::Config;

const TIMEOUT: Duration = Duration::from_secs(3);

/// The address to reach a server listening on `host`: a wildcard means this machine.
fn target(host: &str, port: u16) -> String {
    match host {
        "" | "0.0.0.0" => format!("127.0.0.1:{port}"),
        "::" | "[::]" => format!("[::1]:{port}"),
        h if h.contains(':') && !h.starts_with('[') => format!("[{h}]:{port}"),
        h => format!("{h}:{port}"),
    }
}

pub async fn check(config: &Config) -> anyhow::Result<()> {
    let address = target(&config.host, config.port);
    let status = tokio::time::timeout(TIMEOUT, get_status(&address, "/health/live"))
        .await
        .with_context(|| format!("no answer from {address} within {} s", TIMEOUT.as_secs()))??;
    if status != 200 {
        bail!("{address}/health/live answered {status}");
    }
    println!("ok");
    Ok(())
}

async fn get_status(address: &str, path: &str) -> anyhow::Result<u16> {
    let mut stream = TcpStream::connect(address)
        .await
        .with_context(|| format!("cannot connect to {address}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = [0u8; 64];
    let mut read = 0;
    while read < 12 {
        let n = stream.read(&mut head[read..]).await?;
        if n == 0 {
            break;
        }
        read += n;
    }
    parse_status(&head[..read]).with_context(|| format!("{address} did not answer HTTP"))
}

/// The status code of an `HTTP/1.x NNN ...` status line.
fn parse_status(head: &[u8]) -> Option<u16> {
    let line = std::str::from_utf8(head.get(..12)?).ok()?;
    if !line.starts_with("HTTP/1.") {
        return None;
    }
    line.get(9..12)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_hosts_mean_this_machine() {
        assert_eq!(target("0.0.0.0", 8080), "127.0.0.1:8080");
        assert_eq!(target("::", 80), "[::1]:80");
        assert_eq!(target("10.0.0.5", 80), "10.0.0.5:80");
        assert_eq!(target("fd00::1", 80), "[fd00::1]:80");
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(parse_status(b"HTTP/1.1 503 Service"), Some(503));
        assert_eq!(parse_status(b"SSH-2.0-OpenSSH"), None);
        assert_eq!(parse_status(b"HTTP/1"), None);
    }
}
