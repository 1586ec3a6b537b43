//! The outbox worker: leases due messages, sends them, records the outcome. A failed send
//! is retried with exponential backoff, so nothing is lost while SMTP is down; leases keep
//! several instances from sending the same message.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::Notify;

use crate::config::{Config, SmtpConfig};
use crate::store::{now, QueuedMail, Store};

const BATCH: i64 = 20;
const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);

pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// Development: each message becomes a `.eml` file, and the log says where.
    Files(PathBuf),
}

impl Transport {
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        match &config.mail.smtp {
            Some(smtp) => Ok(Self::Smtp(smtp_transport(smtp)?)),
            None => Ok(Self::Files(config.data_dir.join("mail"))),
        }
    }

    async fn send(&self, message: Message, id: i64) -> anyhow::Result<()> {
        match self {
            Self::Smtp(smtp) => {
                smtp.send(message).await?;
            }
            Self::Files(dir) => {
                let path = dir.join(format!("{}-{id}.eml", now().format("%Y%m%dT%H%M%S%.6f")));
                write_private(dir, &path, &message.formatted()).await?;
                // The path, not the body: bodies hold one-time links, which never go to logs.
                tracing::info!(path = %path.display(), "MAIL_SERVER is not set: mail written to file");
            }
        }
        Ok(())
    }
}

/// Mail files hold live one-time links: readable by the service's user only (0600, in a
/// 0700 directory), whatever the umask.
async fn write_private(
    dir: &std::path::Path,
    path: &std::path::Path,
    contents: &[u8],
) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut dirs = tokio::fs::DirBuilder::new();
    dirs.recursive(true);
    #[cfg(unix)]
    dirs.mode(0o700);
    dirs.create(dir).await?;
    // Written under a hidden temporary name, then renamed: whoever watches for `*.eml`
    // (a person, a test, a script) never opens a half-written message.
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let partial = dir.join(format!(".{}.partial", name.unwrap_or_default()));
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(&partial).await?;
    let written = async {
        file.write_all(contents).await?;
        file.sync_all().await?;
        tokio::fs::rename(&partial, path).await
    }
    .await;
    if written.is_err() {
        let _ = tokio::fs::remove_file(&partial).await;
    }
    written
}

fn smtp_transport(smtp: &SmtpConfig) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    let builder = if smtp.ssl_tls {
        AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.server)?
    } else if smtp.starttls {
        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.server)?
    } else {
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.server)
    };
    let mut builder = builder
        .port(smtp.port)
        .timeout(Some(Duration::from_secs(15)));
    if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
    }
    Ok(builder.build())
}

pub struct OutboxWorker {
    store: Arc<dyn Store>,
    transport: Transport,
    from: Mailbox,
    retry_base: Duration,
    poll_interval: Duration,
    /// How long a claimed message is reserved for this worker (MAIL_LEASE_MS); renewed
    /// before each send, so a slow batch never outlives its claims.
    lease: Duration,
    wakeup: Arc<Notify>,
}

impl OutboxWorker {
    pub fn new(
        config: &Config,
        store: Arc<dyn Store>,
        wakeup: Arc<Notify>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            store,
            transport: Transport::from_config(config)?,
            from: config
                .mail
                .from
                .parse()
                .with_context(|| format!("MAIL_FROM={:?} is not an address", config.mail.from))?,
            retry_base: config.mail.retry_base,
            poll_interval: config.mail.poll_interval,
            lease: config.hardening.mail_lease,
            wakeup,
        })
    }

    /// Runs until the task is dropped. A message interrupted mid-send is retried when its
    /// lease ends (delivery is at least once).
    pub async fn run(self) {
        loop {
            match self.deliver_due().await {
                Ok(n) if n as i64 == BATCH => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "mail outbox: cannot read the queue"),
            }
            tokio::select! {
                _ = self.wakeup.notified() => {}
                _ = tokio::time::sleep(self.poll_interval) => {}
            }
        }
    }

    /// Sends what is due now; returns how many messages were claimed.
    ///
    /// Each batch is claimed under a token of its own. Before each send the message's
    /// lease is renewed, which succeeds only while the claim is still ours and unexpired:
    /// if sending earlier messages outlasted it, another worker may hold the message now,
    /// and this one leaves it alone. Outcomes are recorded only under our claim.
    pub async fn deliver_due(&self) -> anyhow::Result<usize> {
        let claim = uuid::Uuid::new_v4().to_string();
        let batch = self
            .store
            .claim_due_mail(now(), self.lease, BATCH, &claim)
            .await?;
        for mail in &batch {
            if !self
                .store
                .renew_mail_claim(mail.id, &claim, now(), self.lease)
                .await?
            {
                tracing::debug!(
                    mail_id = mail.id,
                    "mail claim lapsed; left to another worker"
                );
                continue;
            }
            let recorded = match self.send(mail).await {
                Ok(()) => {
                    crate::telemetry::metrics::mail_sent("sent");
                    self.store.mark_mail_sent(mail.id, &claim, now()).await?
                }
                Err(e) => {
                    crate::telemetry::metrics::mail_sent("failed");
                    let delay = self.backoff(mail.attempts);
                    tracing::warn!(mail_id = mail.id, attempts = mail.attempts, retry_in_ms = delay.as_millis() as u64,
                        error = %e, "mail delivery failed; will retry");
                    let retry_at = now()
                        + chrono::Duration::from_std(delay)
                            .unwrap_or(chrono::Duration::minutes(15));
                    self.store
                        .mark_mail_failed(mail.id, &claim, &format!("{e:#}"), retry_at)
                        .await?
                }
            };
            if !recorded {
                tracing::warn!(
                    mail_id = mail.id,
                    "mail claim lapsed during the send; MAIL_LEASE_MS is shorter than a send"
                );
            }
        }
        Ok(batch.len())
    }

    async fn send(&self, mail: &QueuedMail) -> anyhow::Result<()> {
        let message = Message::builder()
            .from(self.from.clone())
            .to(mail.recipient.parse()?)
            .subject(mail.subject.clone())
            .multipart(MultiPart::alternative_plain_html(
                mail.text_body.clone(),
                mail.html_body.clone(),
            ))?;
        self.transport.send(message, mail.id).await
    }

    fn backoff(&self, attempts: i64) -> Duration {
        let exponent = attempts.clamp(1, 20) as u32 - 1;
        self.retry_base
            .saturating_mul(2u32.saturating_pow(exponent))
            .min(MAX_BACKOFF)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A watcher polling the directory never sees a `.eml` shorter than the message.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mail_files_appear_only_complete() {
        let dir = tempfile::tempdir().unwrap();
        let mail = dir.path().join("mail");
        let body = vec![b'x'; 64 * 1024 * 1024];
        let expected = body.len() as u64;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watcher = {
            let (mail, stop) = (mail.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut partial_seen = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for entry in std::fs::read_dir(&mail).into_iter().flatten().flatten() {
                        let name = entry.file_name().to_string_lossy().into_owned();
                        let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
                        if name.ends_with(".eml") && len != expected {
                            partial_seen.push((name, len));
                        }
                    }
                }
                partial_seen
            })
        };
        for i in 0..3 {
            let path = mail.join(format!("m{i}.eml"));
            write_private(&mail, &path, &body).await.unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let partial_seen = watcher.join().unwrap();
        assert!(
            partial_seen.is_empty(),
            "{:?}",
            &partial_seen[..partial_seen.len().min(3)]
        );
        let names: Vec<_> = std::fs::read_dir(&mail)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 3, "no temporary file left: {names:?}");
    }
}
