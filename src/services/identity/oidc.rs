//! The OpenID Connect side of sign-in: discovery documents and signing keys (cached,
//! discovery retried in the background), the code-for-token exchange, and verification of
//! ID tokens (signature by the provider's JWKS, iss, aud, exp/iat with a small skew, nonce).
//! Crypto is jsonwebtoken's; this module only fetches and decides.

use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{OidcConfig, OidcProviderConfig};
use crate::error::AppError;

/// Whole-request limit for every call to a provider; the connect limit is shorter.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Clock difference tolerated between us and the provider (exp, iat).
pub const CLOCK_SKEW_SECONDS: u64 = 60;
/// An unknown `kid` refetches the key set, at most this often (a flood of tokens with
/// made-up key ids must not become a flood of requests to the provider).
const JWKS_MIN_REFETCH: Duration = Duration::from_secs(30);
/// Keys are refetched anyway when older than this (providers retire keys).
const JWKS_MAX_AGE: Duration = Duration::from_secs(3600);
/// Asymmetric algorithms only: `none` and HS* (a key anyone with the client secret
/// could forge with) are refused before any key is looked at.
const ACCEPTED_ALGORITHMS: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];
const GOOGLE_ISSUER: &str = "https://accounts.google.com";

/// The parts of a discovery document we use.
#[derive(Debug, Clone, Deserialize)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
}

#[derive(Default)]
struct KeyCache {
    keys: Vec<Jwk>,
    fetched_at: Option<Instant>,
}

/// One configured provider and what we learned about it.
pub struct Provider {
    pub config: OidcProviderConfig,
    metadata: RwLock<Option<Arc<ProviderMetadata>>>,
    /// A mutex, not a lock for readers: concurrent misses wait for one refetch.
    keys: tokio::sync::Mutex<KeyCache>,
}

impl Provider {
    fn cached_metadata(&self) -> Option<Arc<ProviderMetadata>> {
        self.metadata.read().ok().and_then(|m| m.clone())
    }

    pub fn is_discovered(&self) -> bool {
        self.cached_metadata().is_some()
    }
}

/// The claims of an ID token we act on, after verification.
#[derive(Debug, Clone, Deserialize)]
pub struct IdTokenClaims {
    pub sub: String,
    #[serde(default)]
    pub email: Option<String>,
    /// Google once sent this as a string; both forms are read.
    #[serde(default, deserialize_with = "bool_or_string")]
    pub email_verified: bool,
    #[serde(default)]
    pub nonce: Option<String>,
    pub iat: i64,
    #[serde(default)]
    pub azp: Option<String>,
}

fn bool_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Bool(b) => b,
        serde_json::Value::String(s) => s.eq_ignore_ascii_case("true"),
        _ => false,
    })
}

#[derive(Deserialize)]
struct TokenResponse {
    id_token: Option<String>,
}

#[derive(Deserialize)]
struct KeySetDocument {
    keys: Vec<serde_json::Value>,
}

pub struct OidcProviders {
    providers: Vec<Arc<Provider>>,
    http: reqwest::Client,
    retry: Duration,
}

fn unavailable(provider: &str) -> AppError {
    // 503 with our own code (the variant billing uses for a switched-off feature).
    AppError::Disabled {
        code: "provider_unavailable",
        detail: format!("The sign-in provider {provider} cannot be reached; try again later"),
    }
}

fn provider_error(provider: &str) -> AppError {
    AppError::BadGateway {
        code: "provider_unavailable",
        detail: format!("The sign-in provider {provider} answered with an error"),
    }
}

/// The flow failed in a way the client cannot fix by retrying the same request.
pub fn oauth_failed(detail: impl Into<String>) -> AppError {
    AppError::bad_request("oauth_failed", detail)
}

impl OidcProviders {
    /// Builds the registry and starts discovering its providers in the background.
    pub fn start(config: &OidcConfig) -> anyhow::Result<Arc<Self>> {
        let providers = Arc::new(Self::new(config)?);
        providers.spawn_discovery();
        Ok(providers)
    }

    pub fn new(config: &OidcConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("auth-service/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            providers: config
                .providers
                .iter()
                .map(|c| {
                    Arc::new(Provider {
                        config: c.clone(),
                        metadata: RwLock::new(None),
                        keys: tokio::sync::Mutex::new(KeyCache::default()),
                    })
                })
                .collect(),
            http,
            retry: config.discovery_retry,
        })
    }

    pub fn all(&self) -> &[Arc<Provider>] {
        &self.providers
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Provider>> {
        self.providers.iter().find(|p| p.config.name == name)
    }

    /// Discovers every provider in the background, retrying those that fail; not fatal,
    /// and /health shows them as degraded meanwhile. The task ends with the service.
    pub fn spawn_discovery(self: &Arc<Self>) {
        if self.providers.is_empty() {
            return;
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(this) = weak.upgrade() else { return };
                let mut pending = false;
                for provider in &this.providers {
                    if !provider.is_discovered() && this.discover(provider).await.is_err() {
                        pending = true;
                    }
                }
                let retry = this.retry;
                drop(this);
                if !pending {
                    return;
                }
                tokio::time::sleep(retry).await;
            }
        });
    }

    /// The discovery document, fetched now if it is not cached yet.
    pub async fn metadata(&self, provider: &Provider) -> Result<Arc<ProviderMetadata>, AppError> {
        if let Some(metadata) = provider.cached_metadata() {
            return Ok(metadata);
        }
        self.discover(provider).await
    }

    async fn discover(&self, provider: &Provider) -> Result<Arc<ProviderMetadata>, AppError> {
        let name = &provider.config.name;
        let url = format!(
            "{}/.well-known/openid-configuration",
            provider.config.issuer
        );
        let metadata: ProviderMetadata = match self.get_json(&url).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(provider = %name, error = %e, "OpenID Connect discovery failed");
                return Err(unavailable(name));
            }
        };
        if metadata.issuer.trim_end_matches('/') != provider.config.issuer {
            tracing::warn!(provider = %name, issuer = %metadata.issuer,
                "discovery document names another issuer; provider left unavailable");
            return Err(unavailable(name));
        }
        let metadata = Arc::new(metadata);
        if let Ok(mut slot) = provider.metadata.write() {
            *slot = Some(metadata.clone());
        }
        tracing::info!(provider = %name, "OpenID Connect provider discovered");
        Ok(metadata)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> anyhow::Result<T> {
        let response = self.http.get(url).send().await?.error_for_status()?;
        Ok(response.json().await?)
    }

    /// Redeems the authorization code (with the PKCE verifier) for the ID token.
    pub async fn exchange_code(
        &self,
        provider: &Provider,
        code: &str,
        redirect_uri: &str,
        code_verifier: &str,
    ) -> Result<String, AppError> {
        let metadata = self.metadata(provider).await?;
        let name = &provider.config.name;
        let config = &provider.config;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", code_verifier),
        ];
        // client_secret_basic is the default of the spec; a provider that only lists
        // client_secret_post gets the credentials in the form instead.
        let post_only = !metadata.token_endpoint_auth_methods_supported.is_empty()
            && metadata
                .token_endpoint_auth_methods_supported
                .iter()
                .any(|m| m == "client_secret_post")
            && !metadata
                .token_endpoint_auth_methods_supported
                .iter()
                .any(|m| m == "client_secret_basic");
        let mut request = self.http.post(&metadata.token_endpoint);
        if post_only {
            form.push(("client_id", &config.client_id));
            form.push(("client_secret", config.client_secret.expose()));
        } else {
            // RFC 6749 §2.3.1: both parts form-encoded before Basic encoding.
            let id: String = form_urlencoded::byte_serialize(config.client_id.as_bytes()).collect();
            let secret: String =
                form_urlencoded::byte_serialize(config.client_secret.expose().as_bytes()).collect();
            request = request.basic_auth(id, Some(secret));
        }
        let response = request.form(&form).send().await.map_err(|e| {
            tracing::warn!(provider = %name, error = %e, "token request failed");
            unavailable(name)
        })?;
        let status = response.status();
        if status.is_client_error() {
            // invalid_grant and friends: a used, expired or forged code.
            tracing::info!(provider = %name, %status, "provider refused the authorization code");
            return Err(oauth_failed("The provider refused the authorization code"));
        }
        if !status.is_success() {
            tracing::warn!(provider = %name, %status, "token endpoint failed");
            return Err(provider_error(name));
        }
        let body: TokenResponse = response.json().await.map_err(|e| {
            tracing::warn!(provider = %name, error = %e, "unreadable token response");
            provider_error(name)
        })?;
        body.id_token
            .ok_or_else(|| oauth_failed("The provider returned no ID token"))
    }

    /// Verifies the ID token's signature and claims; `nonce_hash` is what was stored with
    /// the state.
    pub async fn verify_id_token(
        &self,
        provider: &Provider,
        id_token: &str,
        nonce_hash: &str,
    ) -> Result<IdTokenClaims, AppError> {
        let invalid = || oauth_failed("The ID token is not valid");
        let metadata = self.metadata(provider).await?;
        // An unknown `alg` (including "none") does not even parse as a header.
        let header = jsonwebtoken::decode_header(id_token).map_err(|_| invalid())?;
        if !ACCEPTED_ALGORITHMS.contains(&header.alg) {
            return Err(invalid());
        }
        let jwk = self
            .key_for(provider, &metadata, header.kid.as_deref())
            .await?
            .ok_or_else(invalid)?;
        // A key published for one algorithm is not used with another.
        if jwk
            .common
            .key_algorithm
            .is_some_and(|a| a.to_string().parse::<Algorithm>().ok() != Some(header.alg))
        {
            return Err(invalid());
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| invalid())?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = CLOCK_SKEW_SECONDS;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.set_audience(&[&provider.config.client_id]);
        let mut issuers = vec![metadata.issuer.clone()];
        if provider.config.issuer == GOOGLE_ISSUER {
            // Google documents both forms of its issuer in ID tokens.
            issuers.push("accounts.google.com".into());
        }
        validation.set_issuer(&issuers);
        let claims = jsonwebtoken::decode::<IdTokenClaims>(id_token, &key, &validation)
            .map_err(|e| {
                tracing::info!(provider = %provider.config.name, error = %e, "ID token refused");
                invalid()
            })?
            .claims;
        let now = chrono::Utc::now().timestamp();
        if claims.iat > now + CLOCK_SKEW_SECONDS as i64 {
            return Err(invalid());
        }
        if claims
            .azp
            .as_deref()
            .is_some_and(|azp| azp != provider.config.client_id)
        {
            return Err(invalid());
        }
        let nonce_ok = claims.nonce.as_deref().is_some_and(|nonce| {
            let presented = hex::encode(Sha256::digest(nonce.as_bytes()));
            bool::from(presented.as_bytes().ct_eq(nonce_hash.as_bytes()))
        });
        if !nonce_ok {
            return Err(oauth_failed("The ID token does not belong to this sign-in"));
        }
        Ok(claims)
    }

    /// The provider's key with this id (or its only key when the token names none); the
    /// set is refetched when it is old, or on an unknown id at most every JWKS_MIN_REFETCH.
    async fn key_for(
        &self,
        provider: &Provider,
        metadata: &ProviderMetadata,
        kid: Option<&str>,
    ) -> Result<Option<Jwk>, AppError> {
        let mut cache = provider.keys.lock().await;
        let age = cache.fetched_at.map(|t| t.elapsed());
        let found = |cache: &KeyCache| match kid {
            Some(kid) => cache
                .keys
                .iter()
                .find(|k| k.common.key_id.as_deref() == Some(kid))
                .cloned(),
            None if cache.keys.len() == 1 => cache.keys.first().cloned(),
            None => None,
        };
        let stale = age.is_none_or(|a| a > JWKS_MAX_AGE);
        if !stale {
            if let Some(key) = found(&cache) {
                return Ok(Some(key));
            }
            if age.is_some_and(|a| a < JWKS_MIN_REFETCH) {
                return Ok(None);
            }
        }
        let name = &provider.config.name;
        let document: KeySetDocument = self.get_json(&metadata.jwks_uri).await.map_err(|e| {
            tracing::warn!(provider = %name, error = %e, "JWKS fetch failed");
            provider_error(name)
        })?;
        // Keys of types we cannot use (e.g. encryption keys of other kinds) are skipped,
        // not fatal for the whole set.
        cache.keys = document
            .keys
            .into_iter()
            .filter_map(|k| serde_json::from_value::<Jwk>(k).ok())
            .collect();
        cache.fetched_at = Some(Instant::now());
        Ok(found(&cache))
    }
}

/// The PKCE S256 challenge of a verifier.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}
