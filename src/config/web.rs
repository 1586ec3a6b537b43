//! Settings of the service's own web pages (DESIGN §11).

use super::{err, ConfigError, Vars};

#[derive(Debug, Clone)]
pub struct WebConfig {
    /// WEB_UI (default true): serve the pages under /, /login, /account, ...
    pub enabled: bool,
    /// PUBLIC_URL: the address users reach the service at, without a trailing slash.
    pub public_url: Option<String>,
}

impl WebConfig {
    pub(super) fn from_vars<F: Fn(&str) -> Option<String>>(
        vars: &Vars<F>,
    ) -> Result<Self, ConfigError> {
        let public_url = vars
            .string("PUBLIC_URL")
            .map(|url| url.trim_end_matches('/').to_owned());
        if let Some(url) = &public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(err("PUBLIC_URL must start with http:// or https://"));
            }
        }
        Ok(Self {
            enabled: vars.flag("WEB_UI", true)?,
            public_url,
        })
    }

    /// Browsers reach us over HTTPS: the cookie gets `Secure` and the `__Host-` prefix.
    pub fn https(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|url| url.starts_with("https://"))
    }

    /// The service's own address: PUBLIC_URL, else http://localhost:PORT. The default
    /// FRONTEND_URL, so mailed links open these pages.
    pub fn own_address(&self, port: u16) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://localhost:{port}"))
    }
}
