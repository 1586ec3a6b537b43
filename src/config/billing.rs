//! Billing settings (DESIGN §9). Without STRIPE_SECRET_KEY billing is off: its endpoints
//! answer 503 `billing_disabled`, and without STRIPE_WEBHOOK_SECRET so does the webhook.

use std::time::Duration;

use super::{err, ConfigError, Vars};
use crate::secret::Secret;

/// The Stripe API version every request pins (header `Stripe-Version`), so the shapes the
/// client and the webhook parser expect do not change under us. The last version with
/// `current_period_end` on the subscription itself.
pub const DEFAULT_STRIPE_API_VERSION: &str = "2024-06-20";

#[derive(Debug, Clone)]
pub struct BillingConfig {
    pub stripe_secret_key: Option<Secret>,
    /// Several while rotating: a signature by any of them is accepted.
    pub webhook_secrets: Vec<Secret>,
    pub api_base: String,
    pub api_version: String,
    /// `None`: FRONTEND_URL + /billing/success?session_id={CHECKOUT_SESSION_ID}.
    pub success_url: Option<String>,
    /// `None`: FRONTEND_URL + /billing/cancel.
    pub cancel_url: Option<String>,
    /// Bound on each call to Stripe (connect + answer).
    pub request_timeout: Duration,
    /// How far a webhook's signed timestamp may be from now.
    pub webhook_tolerance_secs: i64,
}

impl BillingConfig {
    pub(super) fn from_vars<F: Fn(&str) -> Option<String>>(
        vars: &Vars<F>,
    ) -> Result<Self, ConfigError> {
        let api_base = vars
            .or("STRIPE_API_BASE", "https://api.stripe.com")
            .trim_end_matches('/')
            .to_owned();
        if !(api_base.starts_with("https://") || api_base.starts_with("http://")) {
            return Err(err("STRIPE_API_BASE must be an http(s) URL"));
        }
        Ok(Self {
            stripe_secret_key: vars.string("STRIPE_SECRET_KEY").map(Secret::new),
            webhook_secrets: vars
                .list("STRIPE_WEBHOOK_SECRET")
                .into_iter()
                .map(Secret::new)
                .collect(),
            api_base,
            api_version: vars.or("STRIPE_API_VERSION", DEFAULT_STRIPE_API_VERSION),
            success_url: vars.string("BILLING_SUCCESS_URL"),
            cancel_url: vars.string("BILLING_CANCEL_URL"),
            request_timeout: Duration::from_secs(vars.parse("STRIPE_TIMEOUT_SECONDS", 20)?),
            webhook_tolerance_secs: 300,
        })
    }

    pub fn success_url(&self, frontend_url: &str) -> String {
        self.success_url.clone().unwrap_or_else(|| {
            format!("{frontend_url}/billing/success?session_id={{CHECKOUT_SESSION_ID}}")
        })
    }

    pub fn cancel_url(&self, frontend_url: &str) -> String {
        self.cancel_url
            .clone()
            .unwrap_or_else(|| format!("{frontend_url}/billing/cancel"))
    }
}
