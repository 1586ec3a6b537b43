//! The delivery worker (one per instance): leases due deliveries in batches, POSTs them
//! concurrently over one pooled client (10 s timeout, no redirects, public addresses only
//! unless allowed), records each outcome under its claim and schedules retries on Svix's
//! schedule. A delivery interrupted by a crash is retried when its lease ends (at least once).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, Semaphore};

use super::crypto::{sign, SecretBox};
use super::ssrf::{self, PublicOnlyResolver};
use crate::config::{Config, WebhookConfig};
use crate::store::{now, AttemptOutcome, DueDelivery, OutgoingMail, Store};

/// Delays after the 1st, 2nd, ... failed attempt; after the last one the delivery fails.
pub const RETRY_SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];
/// An endpoint failing this long (every delivery) is disabled and admins are mailed.
pub const DISABLE_AFTER: Duration = Duration::from_secs(5 * 24 * 3600);
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Longer than a send (10 s) with room: a claim never lapses mid-send.
const LEASE: Duration = Duration::from_secs(60);

pub struct WebhookWorker {
    store: Arc<dyn Store>,
    client: reqwest::Client,
    secrets: SecretBox,
    config: WebhookConfig,
    production: bool,
    wakeup: Arc<Notify>,
}

pub fn http_client(config: &WebhookConfig) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .timeout(SEND_TIMEOUT)
        .connect_timeout(SEND_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(config.concurrency)
        .user_agent(concat!("auth-service-webhooks/", env!("CARGO_PKG_VERSION")));
    if !config.allow_private_networks {
        builder = builder
            .dns_resolver(Arc::new(PublicOnlyResolver))
            .no_proxy();
    }
    Ok(builder.build()?)
}

impl WebhookWorker {
    pub fn new(
        config: &Config,
        store: Arc<dyn Store>,
        wakeup: Arc<Notify>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            client: http_client(&config.webhooks)?,
            secrets: SecretBox::new(config.secret_key.expose()),
            config: config.webhooks.clone(),
            production: config.environment == crate::config::Environment::Production,
            store,
            wakeup,
        })
    }

    fn scaled(&self, d: Duration) -> chrono::Duration {
        chrono::Duration::from_std(d.mul_f64(self.config.retry_scale))
            .unwrap_or(chrono::Duration::hours(10))
    }

    /// Runs until the task is dropped.
    pub async fn run(self) {
        let this = Arc::new(self);
        loop {
            match this.clone().deliver_due().await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "webhooks: cannot read the queue"),
            }
            tokio::select! {
                _ = this.wakeup.notified() => {}
                _ = tokio::time::sleep(this.config.poll_interval) => {}
            }
        }
    }

    /// Claims one batch and sends it, `concurrency` at a time; returns how many were claimed.
    pub async fn deliver_due(self: Arc<Self>) -> anyhow::Result<usize> {
        let claim = uuid::Uuid::new_v4().to_string();
        let limit = (self.config.concurrency * 4) as i64;
        let batch = self
            .store
            .claim_due_deliveries(now(), LEASE, limit, &claim)
            .await?;
        let n = batch.len();
        let permits = Arc::new(Semaphore::new(self.config.concurrency));
        let mut tasks = tokio::task::JoinSet::new();
        for d in batch {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let this = self.clone();
            let claim = claim.clone();
            tasks.spawn(async move {
                let _permit = permit;
                if let Err(e) = this.attempt(&d, &claim).await {
                    tracing::warn!(delivery_id = d.id, error = %e, "webhooks: cannot record an attempt");
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        Ok(n)
    }

    async fn attempt(&self, d: &DueDelivery, claim: &str) -> anyhow::Result<()> {
        let sent = self.send(d).await;
        let at = now();
        let outcome = match sent {
            Ok(code) if (200..300).contains(&code) => AttemptOutcome {
                status_code: Some(code),
                error: None,
                retry: None,
            },
            Ok(code) => self.failure(d, Some(code), format!("answered {code}"), at),
            Err(e) => self.failure(d, None, e, at),
        };
        let label = match outcome.retry {
            None => "delivered",
            Some(Some(_)) => "retry",
            Some(None) => "failed",
        };
        crate::telemetry::metrics::webhook_delivery(label);
        if !self.store.record_attempt(d.id, claim, &outcome, at).await? {
            tracing::warn!(
                delivery_id = d.id,
                "webhook claim lapsed before the outcome was recorded"
            );
            return Ok(());
        }
        if outcome.retry.is_none() {
            self.store.endpoint_succeeded(d.endpoint_id).await?;
        } else {
            tracing::info!(
                delivery_id = d.id,
                endpoint_id = d.endpoint_id,
                attempts = d.attempts,
                error = outcome.error.as_deref().unwrap_or(""),
                "webhook delivery failed"
            );
            let before = at - self.scaled(DISABLE_AFTER);
            if let Some(ep) = self
                .store
                .endpoint_failed(d.endpoint_id, at, before)
                .await?
            {
                self.tell_admins(ep.id, &ep.url, at).await?;
            }
        }
        Ok(())
    }

    fn failure(
        &self,
        d: &DueDelivery,
        code: Option<i64>,
        error: String,
        at: DateTime<Utc>,
    ) -> AttemptOutcome {
        // `attempts` counts this one already (incremented by the claim).
        let index = usize::try_from(d.attempts - 1).unwrap_or(0);
        let retry = RETRY_SCHEDULE
            .get(index)
            .map(|delay| at + self.scaled(*delay));
        AttemptOutcome {
            status_code: code,
            error: Some(error.chars().take(500).collect()),
            retry: Some(retry),
        }
    }

    /// POSTs the event; the status code, or why there was none.
    async fn send(&self, d: &DueDelivery) -> Result<i64, String> {
        // Checked again at send time: settings may have changed since the endpoint was saved.
        if let Some(problem) =
            ssrf::url_problem(&d.url, self.production, self.config.allow_private_networks)
        {
            return Err(problem);
        }
        let timestamp = now().timestamp();
        let mut signatures = Vec::new();
        let current = self
            .secrets
            .open(&d.secret_enc)
            .ok_or("the endpoint's secret cannot be decrypted")?;
        signatures.extend(sign(&current, &d.event_id, timestamp, &d.payload));
        if let (Some(old), Some(until)) = (&d.old_secret_enc, d.old_secret_expires_at) {
            if until > now() {
                if let Some(old) = self.secrets.open(old) {
                    signatures.extend(sign(&old, &d.event_id, timestamp, &d.payload));
                }
            }
        }
        let response = self
            .client
            .post(&d.url)
            .header("content-type", "application/json")
            .header("webhook-id", &d.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signatures.join(" "))
            .body(d.payload.clone())
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        let code = i64::from(response.status().as_u16());
        // The body is not needed; reading a little lets the connection be reused.
        let _ = tokio::time::timeout(Duration::from_secs(1), response.bytes()).await;
        Ok(code)
    }

    async fn tell_admins(
        &self,
        endpoint_id: i64,
        url: &str,
        at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        tracing::warn!(
            endpoint_id,
            url,
            "webhook endpoint disabled after 5 days of failed deliveries"
        );
        let text = format!(
            "Every delivery to the webhook endpoint {endpoint_id} ({url}) has failed for 5 days, so it \
             has been disabled. Pending deliveries are kept; re-enable it in /admin/webhooks once it answers again."
        );
        let mail: Vec<OutgoingMail> = self
            .store
            .admin_emails()
            .await?
            .into_iter()
            .map(|to| OutgoingMail {
                recipient: to,
                subject: "Webhook endpoint disabled".into(),
                html_body: format!("<p>{}</p>", text.replace('<', "&lt;")),
                text_body: text.clone(),
            })
            .collect();
        self.store.queue_mail(&mail, at).await?;
        Ok(())
    }
}

/// The error and its causes ("error sending request: ... : resolves only to private ...").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
