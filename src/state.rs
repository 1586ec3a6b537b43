//! What every handler can reach. Cheap to clone: one `Arc` (axum clones the state for
//! every extractor and middleware layer of every request; with one `Arc` per part that was
//! ten atomic increments and decrements each time, 2–3 % of the machine in a read
//! benchmark's profile).

use std::sync::Arc;

use tokio::sync::Notify;

use crate::config::Config;
use crate::protection::Limiter;
use crate::services::billing::stripe::StripeClient;
use crate::services::credits::CreditBatches;
use crate::services::identity::OidcProviders;
use crate::services::mail::MailComposer;
use crate::services::passwords::PasswordService;
use crate::services::tokens::TokenService;
use crate::services::webhooks::Webhooks;
use crate::store::Store;

#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The parts of [`AppState`], reached through it by `Deref` (`state.config`, ...). A part
/// has an `Arc` of its own only where something outlives a request without the whole state:
/// the workers (store, config, mail wake-up), the group-commit tasks (credit batches), the
/// provider refresher (identity).
pub struct Shared {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub passwords: PasswordService,
    /// Signing keys, shared by the key refresher task.
    pub tokens: Arc<TokenService>,
    pub mail: MailComposer,
    pub limiter: Limiter,
    /// Wakes this instance's outbox worker when a request queued mail, so it goes out
    /// at once instead of at the next poll.
    pub mail_wakeup: Arc<Notify>,
    /// Sign-in providers: discovery and keys, cached (DESIGN §10).
    pub identity: Arc<OidcProviders>,
    /// `None` when billing is off (no STRIPE_SECRET_KEY).
    pub stripe: Option<StripeClient>,
    /// Credit changes of each account waiting to be committed together (group commit).
    pub credit_batches: Arc<CreditBatches>,
    /// The bytes `/webhooks/stripe` may buffer at once, across all connections.
    pub webhook_intake: crate::services::billing::intake::IntakeBudget,
    /// Outgoing webhooks: endpoint management (DESIGN §16).
    pub webhooks: Webhooks,
    /// Wakes this instance's webhook worker (a test event, a retry).
    pub webhook_wakeup: Arc<Notify>,
}

impl AppState {
    pub async fn new(config: Config, store: Arc<dyn Store>) -> anyhow::Result<Self> {
        let webhook_wakeup = Arc::new(Notify::new());
        Ok(Self(Arc::new(Shared {
            webhooks: Webhooks::new(&config, store.clone(), webhook_wakeup.clone()),
            webhook_wakeup,
            limiter: Limiter::new(&config).await,
            passwords: PasswordService::new(&config)?,
            tokens: TokenService::start(&config, store.clone()).await?,
            mail: MailComposer::new(&config.frontend_url)?,
            mail_wakeup: Arc::new(Notify::new()),
            identity: OidcProviders::start(&config.oidc)?,
            stripe: StripeClient::from_config(&config.billing)?,
            credit_batches: Arc::new(CreditBatches::new()),
            webhook_intake: Default::default(),
            config: Arc::new(config),
            store,
        })))
    }

    pub fn mail_queued(&self) {
        self.mail_wakeup.notify_one();
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}
