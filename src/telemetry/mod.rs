//! Logging: human-readable or JSON lines on stdout (JSON_LOGS), level from LOG_LEVEL
//! (RUST_LOG, when set, wins), optionally copied as JSON over TCP to Logstash.
//! Nothing secret is logged: request spans carry the path only, never the query or headers.
//! Also: Prometheus metrics (`metrics`), OTLP traces (`otel`), and the per-request layer
//! that feeds both and writes the access log (`request`).

pub mod metrics;
pub mod otel;
pub mod request;

pub use request::{layer as request_layer, RequestUser};

use std::io::Write;
use std::net::TcpStream;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::Config;

/// Dependencies whose debug output is noise, or could echo protocol details.
const QUIET_DEPENDENCIES: &str =
    "hyper=warn,hyper_util=warn,h2=warn,rustls=warn,sqlx=warn,lettre=warn,tower=warn";

pub fn filter_for(log_level: &str) -> EnvFilter {
    if let Ok(directives) = std::env::var("RUST_LOG") {
        if let Ok(filter) = EnvFilter::try_new(directives) {
            return filter;
        }
    }
    let level = match log_level.to_ascii_lowercase().as_str() {
        "critical" | "fatal" => "error".to_owned(),
        "warning" => "warn".to_owned(),
        other => other.to_owned(),
    };
    // `tower=warn` matches every target starting with "tower", tower_http's request log
    // included: name it again so the access log follows LOG_LEVEL.
    EnvFilter::try_new(format!("{level},{QUIET_DEPENDENCIES},tower_http={level}"))
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Installs the global subscriber. Safe to call more than once (later calls do nothing).
pub fn init(config: &Config) {
    let stdout = if config.json_logs {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .boxed()
    } else {
        // Colours only for a terminal: escape codes do not belong in files and collectors.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
        tracing_subscriber::fmt::layer()
            .compact()
            .with_ansi(ansi)
            .boxed()
    };
    let logstash = config.logstash.as_ref().map(|(host, port)| {
        tracing_subscriber::fmt::layer()
            .json()
            .with_ansi(false)
            .with_writer(LogstashWriter::spawn(format!("{host}:{port}")))
            .boxed()
    });
    let _ = tracing_subscriber::registry()
        .with(filter_for(&config.log_level))
        .with(stdout)
        .with(logstash)
        .with(otel::layer(config))
        .try_init();
}

/// Ships log lines to a TCP endpoint from a background thread. Logging never blocks a
/// request: when the queue is full (endpoint down for long), lines are dropped.
#[derive(Clone)]
struct LogstashWriter {
    lines: SyncSender<Vec<u8>>,
}

impl LogstashWriter {
    fn spawn(address: String) -> Self {
        let (lines, rx) = sync_channel(10_000);
        std::thread::Builder::new()
            .name("logstash".into())
            .spawn(move || ship(address, rx))
            .expect("spawning the logstash thread");
        Self { lines }
    }
}

fn ship(address: String, rx: Receiver<Vec<u8>>) {
    let mut connection: Option<TcpStream> = None;
    while let Ok(line) = rx.recv() {
        for _ in 0..2 {
            if connection.is_none() {
                connection = TcpStream::connect(&address).ok();
                if let Some(stream) = &connection {
                    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
                }
            }
            match connection.as_mut().map(|stream| stream.write_all(&line)) {
                Some(Ok(())) => break,
                _ => connection = None,
            }
        }
    }
}

impl Write for LogstashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.lines.try_send(buf.to_vec()) {
            Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                Ok(buf.len())
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogstashWriter {
    type Writer = LogstashWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
