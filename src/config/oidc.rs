//! Sign-in providers (DESIGN §10): `google` from GOOGLE_*, more from OIDC_PROVIDERS with
//! OIDC_<NAME>_ISSUER, _CLIENT_ID, _CLIENT_SECRET, _REDIRECT_URI, _DISPLAY_NAME.

use std::time::Duration;

use super::{err, ConfigError, Vars};
use crate::secret::Secret;

const GOOGLE_ISSUER: &str = "https://accounts.google.com";

#[derive(Debug, Clone)]
pub struct OidcProviderConfig {
    /// Lowercase name used in paths (`/auth/oauth/{name}/...`) and stored with identities.
    pub name: String,
    pub display_name: String,
    /// Discovery is at `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// `None`: FRONTEND_URL + `/auth/callback/{name}` (resolved by `redirect_uri`).
    pub redirect_uri: Option<String>,
}

impl OidcProviderConfig {
    /// Where the provider sends the browser back to, unless the client picks an allowed one.
    pub fn redirect_uri(&self, frontend_url: &str) -> String {
        self.redirect_uri
            .clone()
            .unwrap_or_else(|| format!("{frontend_url}/auth/callback/{}", self.name))
    }
}

#[derive(Debug, Clone, Default)]
pub struct OidcConfig {
    pub providers: Vec<OidcProviderConfig>,
    /// Extra redirect URIs a client may ask for (exact match).
    pub allowed_redirect_uris: Vec<String>,
    /// How long to wait before trying again to discover a provider that did not answer.
    pub discovery_retry: Duration,
}

impl OidcConfig {
    pub fn provider(&self, name: &str) -> Option<&OidcProviderConfig> {
        self.providers.iter().find(|p| p.name == name)
    }

    pub(super) fn from_vars<F: Fn(&str) -> Option<String>>(
        vars: &Vars<F>,
    ) -> Result<Self, ConfigError> {
        let mut providers = Vec::new();
        if let Some(client_id) = vars.string("GOOGLE_CLIENT_ID") {
            providers.push(OidcProviderConfig {
                name: "google".into(),
                display_name: "Google".into(),
                issuer: trim_issuer(&vars.or("GOOGLE_ISSUER", GOOGLE_ISSUER)),
                client_id,
                client_secret: Secret::new(vars.string("GOOGLE_CLIENT_SECRET").ok_or_else(
                    || err("GOOGLE_CLIENT_ID is set but GOOGLE_CLIENT_SECRET is not"),
                )?),
                redirect_uri: vars.string("GOOGLE_REDIRECT_URI"),
            });
        }
        for raw in vars.list("OIDC_PROVIDERS") {
            let name = raw.to_ascii_lowercase();
            if name.len() > 32
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(err(format!(
                    "OIDC_PROVIDERS: {raw:?} must be at most 32 letters, digits, '_' or '-'"
                )));
            }
            if providers
                .iter()
                .any(|p: &OidcProviderConfig| p.name == name)
            {
                return Err(err(format!("OIDC_PROVIDERS: {name:?} is configured twice")));
            }
            let prefix = format!("OIDC_{}_", name.to_ascii_uppercase().replace('-', "_"));
            let required = |what: &str| {
                vars.string(&format!("{prefix}{what}")).ok_or_else(|| {
                    err(format!(
                        "OIDC_PROVIDERS names {name:?} but {prefix}{what} is not set"
                    ))
                })
            };
            providers.push(OidcProviderConfig {
                issuer: trim_issuer(&required("ISSUER")?),
                client_id: required("CLIENT_ID")?,
                client_secret: Secret::new(required("CLIENT_SECRET")?),
                redirect_uri: vars.string(&format!("{prefix}REDIRECT_URI")),
                display_name: vars.or(&format!("{prefix}DISPLAY_NAME"), &raw),
                name,
            });
        }
        for p in &providers {
            if !(p.issuer.starts_with("https://") || p.issuer.starts_with("http://")) {
                return Err(err(format!(
                    "the issuer of provider {:?} must be an http(s) URL",
                    p.name
                )));
            }
        }
        Ok(Self {
            providers,
            allowed_redirect_uris: vars.list("ALLOWED_REDIRECT_URIS"),
            discovery_retry: Duration::from_secs(
                vars.parse::<u64>("OIDC_DISCOVERY_RETRY_SECONDS", 30)?
                    .max(1),
            ),
        })
    }
}

/// Issuers are compared exactly; a trailing slash in the setting is a typo, not a new issuer.
fn trim_issuer(issuer: &str) -> String {
    issuer.trim_end_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn oidc(pairs: &[(&str, &str)]) -> Result<OidcConfig, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        OidcConfig::from_vars(&Vars(|k: &str| map.get(k).cloned()))
    }

    #[test]
    fn no_settings_no_providers() {
        assert!(oidc(&[]).unwrap().providers.is_empty());
    }

    #[test]
    fn google_and_named_providers() {
        let c = oidc(&[
            ("GOOGLE_CLIENT_ID", "gid"),
            ("GOOGLE_CLIENT_SECRET", "gsecret"),
            ("OIDC_PROVIDERS", "GitLab, my-idp"),
            ("OIDC_GITLAB_ISSUER", "https://gitlab.com/"),
            ("OIDC_GITLAB_CLIENT_ID", "a"),
            ("OIDC_GITLAB_CLIENT_SECRET", "b"),
            ("OIDC_MY_IDP_ISSUER", "http://127.0.0.1:9000"),
            ("OIDC_MY_IDP_CLIENT_ID", "c"),
            ("OIDC_MY_IDP_CLIENT_SECRET", "d"),
            ("OIDC_MY_IDP_DISPLAY_NAME", "My IdP"),
            ("OIDC_MY_IDP_REDIRECT_URI", "https://app.example.com/cb"),
        ])
        .unwrap();
        let names: Vec<_> = c.providers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["google", "gitlab", "my-idp"]);
        let google = c.provider("google").unwrap();
        assert_eq!(google.issuer, GOOGLE_ISSUER);
        assert_eq!(
            google.redirect_uri("http://localhost:8080"),
            "http://localhost:8080/auth/callback/google"
        );
        assert_eq!(c.provider("gitlab").unwrap().issuer, "https://gitlab.com");
        assert_eq!(c.provider("gitlab").unwrap().display_name, "GitLab");
        let mine = c.provider("my-idp").unwrap();
        assert_eq!(mine.display_name, "My IdP");
        assert_eq!(mine.redirect_uri("x"), "https://app.example.com/cb");
    }

    #[test]
    fn incomplete_or_bad_settings_are_refused() {
        assert!(oidc(&[("GOOGLE_CLIENT_ID", "gid")]).is_err());
        assert!(oidc(&[("OIDC_PROVIDERS", "x")]).is_err());
        assert!(oidc(&[("OIDC_PROVIDERS", "a b")]).is_err());
        assert!(oidc(&[
            ("OIDC_PROVIDERS", "x"),
            ("OIDC_X_ISSUER", "ftp://x"),
            ("OIDC_X_CLIENT_ID", "a"),
            ("OIDC_X_CLIENT_SECRET", "b"),
        ])
        .is_err());
    }
}
