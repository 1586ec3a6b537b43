//! What every handler can reach. Cheap to clone: all shared parts sit behind `Arc`s.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::config::Config;
use crate::services::mail::MailComposer;
use crate::services::passwords::PasswordService;
use crate::services::tokens::TokenService;
use crate::store::Store;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub passwords: Arc<PasswordService>,
    pub tokens: Arc<TokenService>,
    pub mail: Arc<MailComposer>,
    /// Wakes this instance's outbox worker when a request queued mail, so it goes out
    /// at once instead of at the next poll.
    pub mail_wakeup: Arc<Notify>,
}

impl AppState {
    pub fn new(config: Config, store: Arc<dyn Store>) -> anyhow::Result<Self> {
        Ok(Self {
            passwords: Arc::new(PasswordService::new(&config)),
            tokens: Arc::new(TokenService::new(&config)),
            mail: Arc::new(MailComposer::new(&config.frontend_url)?),
            mail_wakeup: Arc::new(Notify::new()),
            config: Arc::new(config),
            store,
        })
    }

    pub fn mail_queued(&self) {
        self.mail_wakeup.notify_one();
    }
}
