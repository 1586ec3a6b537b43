//! The accept loop. `axum::serve` cannot bound slow clients (no header-read timeout, no
//! cap on connections), so connections are served with hyper's HTTP/1 builder directly,
//! as axum's "serve with hyper" example does:
//! - a connection is accepted only while fewer than `max_connections` are open (a
//!   semaphore permit per connection); the rest wait in the kernel's listen backlog, so a
//!   flood cannot exhaust the process's file descriptors;
//! - a request head must arrive within `header_read_timeout` (hyper's timer also runs while
//!   an idle keep-alive connection waits for its next request);
//! - a connection on which nothing moves for `idle_timeout` is dropped (stalled uploads,
//!   clients that stop reading their response);
//! - on shutdown the listener closes, idle connections close at once, and requests in
//!   flight finish before `serve` returns.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::middleware::AddExtension;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tower::Service;

use crate::config::ServerConfig;

/// How long the loop pauses after an accept error such as "too many open files", so it
/// does not spin while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
const ACCEPT_ERROR_LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
struct Limits {
    header_read_timeout: Duration,
    idle_timeout: Duration,
}

/// Serves `router` on `listener` until `shutdown` completes and every open connection
/// has finished.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: &ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let limits = Limits {
        header_read_timeout: config.header_read_timeout,
        idle_timeout: config.idle_timeout,
    };
    let max = config.max_connections;
    let slots = Arc::new(Semaphore::new(max));
    let (stop_tx, stop_rx) = watch::channel(());
    let mut make_service = router.into_make_service_with_connect_info::<SocketAddr>();
    let mut last_error_log: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        // A free slot first, then a connection: at the cap nothing more is accepted.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_closed) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_error(&e, &mut last_error_log).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = match make_service.call(remote).await {
            Ok(service) => service,
            Err(never) => match never {},
        };
        tokio::spawn(serve_connection(
            stream,
            TowerToHyperService::new(service),
            limits,
            stop_rx.clone(),
            slot,
        ));
    }
    drop(listener);
    drop(stop_rx);
    // Tells every connection to finish its request in flight and close.
    let _ = stop_tx.send(());
    // Every connection holds a slot until it ends: all slots back means all ended.
    let _ = slots.acquire_many(max as u32).await;
    Ok(())
}

/// Connection-level errors (the peer gave up before we accepted) are normal; anything else,
/// usually running out of file descriptors, is logged now and then and waited out.
async fn accept_error(e: &io::Error, last_log: &mut Option<Instant>) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    if last_log.is_none_or(|at| at.elapsed() >= ACCEPT_ERROR_LOG_EVERY) {
        tracing::warn!(error = %e, "cannot accept connections; lower MAX_CONNECTIONS or raise the open-files limit");
        *last_log = Some(Instant::now());
    }
    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
}

/// What serves one connection: the router, with the peer's address for `ConnectInfo`.
type ConnectionService = AddExtension<Router, ConnectInfo<SocketAddr>>;

async fn serve_connection(
    stream: TcpStream,
    service: TowerToHyperService<ConnectionService>,
    limits: Limits,
    mut stop: watch::Receiver<()>,
    _slot: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked {
        inner: stream,
        activity: activity.clone(),
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(connection);
    let mut stopping = false;
    loop {
        let idle_deadline = activity.last() + limits.idle_timeout;
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            _ = stop.changed(), if !stopping => {
                connection.as_mut().graceful_shutdown();
                stopping = true;
            }
            () = tokio::time::sleep_until(idle_deadline.into()) => {
                if activity.last() + limits.idle_timeout <= Instant::now() {
                    tracing::debug!("closing a connection idle for {:?}", limits.idle_timeout);
                    break;
                }
            }
        }
    }
}

/// When a byte last moved on a connection.
struct Activity {
    opened: Instant,
    /// Milliseconds after `opened`.
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.opened.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.opened + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// The TCP stream, noting every read or write that moved bytes.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
