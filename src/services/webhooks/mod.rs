//! Outgoing webhooks (DESIGN §16): endpoints admins register, their secrets, the test
//! event. Events themselves are written by the store inside the changes they report; the
//! worker (`worker.rs`) delivers them.

pub mod crypto;
pub mod ssrf;
pub mod worker;

use std::sync::Arc;

use crate::config::{Config, Environment};
use crate::error::AppError;
use crate::store::{
    now, subscription_column, Event, Store, WebhookEndpoint, WebhookEndpointChange, EVENT_TYPES,
};

pub use worker::WebhookWorker;

/// How long a rotated-out secret keeps signing alongside the new one.
pub const ROTATION_OVERLAP: chrono::Duration = chrono::Duration::hours(24);
const MAX_DESCRIPTION: usize = 500;

/// Endpoint management: the store, the secret box and the URL rules; nothing else.
pub struct Webhooks {
    store: Arc<dyn Store>,
    secrets: crypto::SecretBox,
    production: bool,
    allow_private: bool,
    wakeup: Arc<tokio::sync::Notify>,
}

/// A created endpoint with its secret (shown this once).
pub struct CreatedEndpoint {
    pub endpoint: WebhookEndpoint,
    pub secret: String,
}

impl Webhooks {
    pub fn new(config: &Config, store: Arc<dyn Store>, wakeup: Arc<tokio::sync::Notify>) -> Self {
        Self {
            store,
            secrets: crypto::SecretBox::new(config.secret_key.expose()),
            production: config.environment == Environment::Production,
            allow_private: config.webhooks.allow_private_networks,
            wakeup,
        }
    }

    pub fn check_url(&self, url: &str) -> Result<(), AppError> {
        match ssrf::url_problem(url, self.production, self.allow_private) {
            Some(problem) => Err(AppError::validation("body", "url", problem, "value_error")),
            None => Ok(()),
        }
    }

    pub fn check_events(events: &[String]) -> Result<String, AppError> {
        if events.is_empty() || events.len() > EVENT_TYPES.len() {
            return Err(AppError::validation(
                "body",
                "events",
                "events must list 1 or more event types, or [\"*\"]",
                "value_error",
            ));
        }
        if let Some(bad) = events
            .iter()
            .find(|e| *e != "*" && !EVENT_TYPES.contains(&e.as_str()))
        {
            return Err(AppError::validation(
                "body",
                "events",
                format!("unknown event type {bad:?}"),
                "value_error",
            ));
        }
        Ok(subscription_column(events))
    }

    fn check_description(d: Option<&str>) -> Result<(), AppError> {
        if d.is_some_and(|d| d.chars().count() > MAX_DESCRIPTION) {
            return Err(AppError::validation(
                "body",
                "description",
                format!("description must be at most {MAX_DESCRIPTION} characters"),
                "value_error",
            ));
        }
        Ok(())
    }

    pub async fn create(
        &self,
        url: &str,
        events: &[String],
        description: Option<&str>,
    ) -> Result<CreatedEndpoint, AppError> {
        self.check_url(url)?;
        let events = Self::check_events(events)?;
        Self::check_description(description)?;
        let secret = crypto::new_secret();
        let endpoint = self
            .store
            .create_endpoint(
                url,
                &events,
                description,
                &self.secrets.seal(&secret),
                now(),
            )
            .await?;
        Ok(CreatedEndpoint { endpoint, secret })
    }

    pub async fn update(
        &self,
        id: i64,
        url: Option<&str>,
        events: Option<&[String]>,
        description: Option<Option<&str>>,
        enabled: Option<bool>,
    ) -> Result<WebhookEndpoint, AppError> {
        if let Some(url) = url {
            self.check_url(url)?;
        }
        let events = events.map(Self::check_events).transpose()?;
        Self::check_description(description.flatten())?;
        let change = WebhookEndpointChange {
            url: url.map(str::to_owned),
            events,
            description: description.map(|d| d.map(str::to_owned)),
            enabled,
        };
        let updated = self.store.update_endpoint(id, &change, now()).await?;
        if enabled == Some(true) {
            self.wakeup.notify_one();
        }
        updated.ok_or_else(|| AppError::not_found("Webhook endpoint not found"))
    }

    pub async fn rotate(&self, id: i64) -> Result<String, AppError> {
        let secret = crypto::new_secret();
        let at = now();
        if !self
            .store
            .rotate_endpoint_secret(id, &self.secrets.seal(&secret), at + ROTATION_OVERLAP, at)
            .await?
        {
            return Err(AppError::not_found("Webhook endpoint not found"));
        }
        Ok(secret)
    }

    pub async fn endpoint(&self, id: i64) -> Result<WebhookEndpoint, AppError> {
        self.store
            .endpoint(id)
            .await?
            .ok_or_else(|| AppError::not_found("Webhook endpoint not found"))
    }

    pub async fn send_test(&self, id: i64) -> Result<String, AppError> {
        self.endpoint(id).await?;
        let event = Event::test();
        self.store.record_event_for(&event, id).await?;
        self.wakeup.notify_one();
        Ok(event.id)
    }

    /// Deletes the endpoint with its deliveries.
    pub async fn delete(&self, id: i64) -> Result<(), AppError> {
        if !self.store.delete_endpoint(id).await? {
            return Err(AppError::not_found("Webhook endpoint not found"));
        }
        Ok(())
    }

    /// Every endpoint (the admin page and list).
    pub async fn endpoints(&self) -> Result<Vec<WebhookEndpoint>, AppError> {
        Ok(self.store.endpoints().await?)
    }

    /// The endpoint's latest deliveries, newest first.
    pub async fn deliveries(
        &self,
        id: i64,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<crate::store::WebhookDelivery>, AppError> {
        self.endpoint(id).await?;
        Ok(self.store.deliveries(id, status, limit).await?)
    }

    pub async fn retry(&self, id: i64, delivery_id: i64) -> Result<(), AppError> {
        if !self.store.retry_delivery(id, delivery_id, now()).await? {
            return Err(AppError::not_found("Delivery not found"));
        }
        self.wakeup.notify_one();
        Ok(())
    }
}
