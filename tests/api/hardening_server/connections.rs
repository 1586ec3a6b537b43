//! Slow clients cannot take the server down: stalled request heads are cut off, idle and
//! stalled connections are closed, and the number of open connections is capped below the
//! process's file-descriptor limit.

use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;
use crate::logs::{base_env, ServerProcess, BINARY};

/// Generous: only a server that never closes the socket runs into it.
const CLOSE_WAIT: Duration = Duration::from_secs(30);

/// A connection that sent the start of a request head and then nothing.
async fn stalled(port: u16) -> TcpStream {
    let mut socket = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    socket
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .expect("send a partial head");
    socket
}

/// Whether the server closes `socket` (EOF or reset) within `CLOSE_WAIT`; whatever it
/// sends first (a 408) is read and ignored.
async fn closed_by_server(socket: &mut TcpStream) -> bool {
    let mut sink = Vec::new();
    tokio::time::timeout(CLOSE_WAIT, socket.read_to_end(&mut sink))
        .await
        .is_ok()
}

/// This test holds 300 sockets; tests running beside it in this process must not run out
/// of descriptors because of it: the soft limit goes up to the hard one (only ever up).
fn raise_own_descriptor_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write only the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// The issue's reproduction: 300 stalled sockets against a server limited to 256 file
/// descriptors. Before, accept failed with "too many open files", the stalled sockets
/// were never closed and nothing else was answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_heads_under_a_low_descriptor_limit_do_not_stop_the_service() {
    raise_own_descriptor_limit();
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(dir.path());
    env.insert("HTTP_HEADER_READ_TIMEOUT_SECONDS".into(), "2".into());
    // MAX_CONNECTIONS is left to its default, derived from the descriptor limit.
    let script = r#"ulimit -n 256 && exec "$0" "$@""#;
    let server =
        ServerProcess::start_program("/bin/sh", &["-c", script, BINARY], &env, dir.path()).await;

    let mut sockets = Vec::new();
    for _ in 0..300 {
        sockets.push(stalled(server.port).await);
    }
    let r = client(Duration::from_secs(60))
        .get(server.url("/health"))
        .send()
        .await
        .expect("a normal request is answered despite 300 stalled connections");
    assert_eq!(r.status(), StatusCode::OK);

    for socket in &mut sockets {
        assert!(
            closed_by_server(socket).await,
            "a stalled connection stayed open"
        );
    }
    // And the service still serves.
    let r = client(Duration::from_secs(60))
        .get(server.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (stdout, stderr) = server.stop();
    assert!(
        !stderr.contains("panicked") && !stdout.contains("panicked"),
        "{stdout}\n{stderr}"
    );
}

/// At the cap, a new connection waits until a slot frees; closing one lets it through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let app = spawn_app_with(Backend::Sqlite, |vars| {
        vars.insert("MAX_CONNECTIONS".into(), "2".into());
        vars.insert("HTTP_HEADER_READ_TIMEOUT_SECONDS".into(), "600".into());
    })
    .await;
    let first = stalled(app.port).await;
    let second = stalled(app.port).await;
    let waiting = client(Duration::from_secs(3))
        .get(app.url("/health"))
        .send()
        .await;
    assert!(
        waiting.is_err(),
        "a third connection was served while two held both slots"
    );
    drop(first);
    let r = client(Duration::from_secs(60))
        .get(app.url("/health"))
        .send()
        .await
        .expect("served once a slot is free");
    assert_eq!(r.status(), StatusCode::OK);
    drop(second);
}

/// A keep-alive connection that sends nothing after its response is closed after the
/// header-read timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed() {
    let app = spawn_app_with(Backend::Sqlite, |vars| {
        vars.insert("HTTP_HEADER_READ_TIMEOUT_SECONDS".into(), "1".into());
    })
    .await;
    let mut socket = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    socket
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    socket.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    assert!(
        closed_by_server(&mut socket).await,
        "idle keep-alive connection kept open"
    );
}

/// A request whose body stops arriving is cut off by the idle timeout, well before the
/// 30 s request timeout would answer it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_uploads_are_closed_by_the_idle_timeout() {
    let app = spawn_app_with(Backend::Sqlite, |vars| {
        vars.insert("HTTP_IDLE_TIMEOUT_SECONDS".into(), "1".into());
    })
    .await;
    let mut socket = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    socket
        .write_all(
            b"POST /auth/login HTTP/1.1\r\nHost: localhost\r\n\
              Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"username\":",
        )
        .await
        .unwrap();
    let mut sink = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(20), socket.read_to_end(&mut sink)).await;
    assert!(closed.is_ok(), "stalled upload kept open");
    assert!(
        !String::from_utf8_lossy(&sink).contains("408"),
        "closed by the idle timeout, not answered by the request timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_validated_at_start() {
    for (name, value) in [
        ("MAX_CONNECTIONS", "0"),
        ("MAX_CONNECTIONS", "many"),
        ("HTTP_HEADER_READ_TIMEOUT_SECONDS", "0"),
        ("HTTP_IDLE_TIMEOUT_SECONDS", "-1"),
    ] {
        let out = super::run_to_exit(&[(name, value)]).await;
        assert_eq!(out.code, Some(2), "{name}={value}: {out:?}");
        assert!(out.stderr.contains(name), "{name}={value}: {out:?}");
    }
}
