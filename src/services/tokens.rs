//! Access tokens (JWT) and opaque one-time tokens (refresh, email links).
//!
//! Signing: the current key of the shared `signing_keys` table (ES256, EdDSA, RS256), or
//! SECRET_KEY under HS*. Verification: any trusted key by `kid` (re-read on an unknown
//! one), checking alg, iss, aud and expiry; a verified token is remembered by its hash so
//! an asymmetric check happens once per token per instance. The session check is always
//! the caller's (DESIGN §6).

use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::{
    decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::services::signing_keys::{is_asymmetric, KeyPolicy, KeySet, SigningKeys};
use crate::services::verified_cache::VerifiedCache;
use crate::store::{Store, User};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The issuer (JWT_ISSUER). Absent only in HS* tokens of versions before DESIGN §13.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// The user's id, as a string (JWT subjects are strings).
    pub sub: String,
    pub username: String,
    pub is_admin: bool,
    #[serde(default)]
    pub email_verified: bool,
    /// The login session this token belongs to; checked on every request.
    pub sid: String,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    /// Authenticator assurance level (NIST 800-63B): "aal1", or "aal2" after a second factor.
    #[serde(default = "aal1")]
    pub aal: String,
    /// Authentication methods (RFC 8176): "pwd", "oidc", "otp", "hwk", ...
    #[serde(default)]
    pub amr: Vec<String>,
}

fn aal1() -> String {
    "aal1".into()
}

impl Claims {
    pub fn user_id(&self) -> Option<i64> {
        self.sub.parse().ok()
    }
}

/// How the session's user proved who they are: the `aal` and `amr` claims. The login flow
/// chooses it; second factors (DESIGN §14) pass e.g. `Assurance::new("aal2", &["pwd", "otp"])`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assurance {
    pub aal: String,
    pub amr: Vec<String>,
}

impl Assurance {
    pub fn new(aal: &str, amr: &[&str]) -> Self {
        Self {
            aal: aal.to_owned(),
            amr: amr.iter().map(|m| (*m).to_owned()).collect(),
        }
    }

    /// A password login (or registration): aal1, ["pwd"].
    pub fn password() -> Self {
        Self::new("aal1", &["pwd"])
    }

    /// A sign-in through an OpenID Connect provider: aal1, ["oidc"].
    pub fn provider() -> Self {
        Self::new("aal1", &["oidc"])
    }

    /// As a session row keeps it: "aal2 pwd otp".
    pub fn to_stored(&self) -> String {
        std::iter::once(self.aal.as_str())
            .chain(self.amr.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A session row's assurance; anything unreadable counts as the weakest (aal1, pwd).
    pub fn from_stored(stored: &str) -> Self {
        let mut parts = stored.split_whitespace();
        match (parts.next(), parts.clone().next()) {
            (Some(aal @ ("aal1" | "aal2")), Some(_)) => Self {
                aal: aal.to_owned(),
                amr: parts.map(str::to_owned).collect(),
            },
            _ => Self::password(),
        }
    }
}

pub struct AccessToken {
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: i64,
}

pub struct TokenService {
    algorithm: Algorithm,
    issuer: String,
    audience: String,
    hmac_encoding: EncodingKey,
    hmac_decoding: DecodingKey,
    access_ttl: chrono::Duration,
    keys: Arc<SigningKeys>,
    current: RwLock<Arc<KeySet>>,
    cache: VerifiedCache,
    /// When an unknown kid last made this instance re-read the keys (at most once a second,
    /// so garbage kids cannot turn into database load).
    last_unknown_reload: Mutex<Option<Instant>>,
}

impl TokenService {
    /// Makes sure the keys exist (first start, algorithm switch), reads them, and re-reads
    /// them in the background every SIGNING_KEYS_REFRESH_SECONDS.
    pub async fn start(config: &Config, store: Arc<dyn Store>) -> anyhow::Result<Arc<Self>> {
        let secret = config.secret_key.expose().as_bytes();
        let access_ttl = chrono::Duration::seconds(config.jwt.access_ttl_seconds);
        let retire_after = access_ttl + chrono::Duration::from_std(config.jwt.retire_grace)?;
        let keys = Arc::new(SigningKeys::new(
            store,
            secret,
            KeyPolicy {
                algorithm: config.algorithm,
                retire_after,
            },
        )?);
        keys.ensure().await?;
        let set = keys.load().await?;
        let service = Arc::new(Self {
            algorithm: config.algorithm,
            issuer: config.jwt.issuer.clone(),
            audience: config.jwt.audience.clone(),
            hmac_encoding: EncodingKey::from_secret(secret),
            hmac_decoding: DecodingKey::from_secret(secret),
            access_ttl,
            keys,
            current: RwLock::new(Arc::new(set)),
            cache: VerifiedCache::new(50_000),
            last_unknown_reload: Mutex::new(None),
        });
        let weak = Arc::downgrade(&service);
        let every = config.jwt.keys_refresh;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(service) = weak.upgrade() else {
                    return;
                };
                if let Err(e) = service.keys.retire().await {
                    tracing::warn!(error = %e, "retiring signing keys failed");
                }
                if let Err(e) = service.reload().await {
                    tracing::warn!(error = %e, "re-reading signing keys failed; keeping the last ones");
                }
            }
        });
        Ok(service)
    }

    pub fn signing_keys(&self) -> &SigningKeys {
        &self.keys
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    fn key_set(&self) -> Arc<KeySet> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Re-reads the keys now (after a rotation, on an unknown kid, every minute).
    pub async fn reload(&self) -> anyhow::Result<()> {
        let set = Arc::new(self.keys.load().await?);
        let shrank = {
            let old = self.key_set();
            old.verifiers
                .keys()
                .any(|kid| !set.verifiers.contains_key(kid))
        };
        match self.current.write() {
            Ok(mut guard) => *guard = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
        if shrank {
            // A key stopped being trusted: forget what it verified.
            self.cache.clear();
        }
        Ok(())
    }

    /// The published JWKS document.
    pub fn jwks(&self) -> serde_json::Value {
        self.key_set().jwks.clone()
    }

    /// Issues an access token that never outlives its session.
    pub fn issue_access(
        &self,
        user: &User,
        session_id: &str,
        session_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
        assurance: &Assurance,
    ) -> anyhow::Result<AccessToken> {
        let exp = (now + self.access_ttl).min(session_expires_at);
        let claims = Claims {
            iss: Some(self.issuer.clone()),
            aud: Some(self.audience.clone()),
            sub: user.id.to_string(),
            username: user.username.clone(),
            is_admin: user.is_admin,
            email_verified: user.is_verified,
            sid: session_id.to_owned(),
            jti: uuid::Uuid::new_v4().to_string(),
            iat: now.timestamp(),
            exp: exp.timestamp(),
            aal: assurance.aal.clone(),
            amr: assurance.amr.clone(),
        };
        let set = self.key_set();
        let token = match (&set.signer, is_asymmetric(self.algorithm)) {
            (Some((kid, alg, key)), true) => {
                let mut header = Header::new(*alg);
                header.kid = Some(kid.clone());
                encode(&header, &claims, key)?
            }
            (None, true) => anyhow::bail!("no current signing key loaded"),
            _ => encode(&Header::new(self.algorithm), &claims, &self.hmac_encoding)?,
        };
        Ok(AccessToken {
            token,
            expires_in: (exp - now).num_seconds().max(0),
        })
    }

    /// Signature, algorithm, kid, issuer, audience and expiry checks; the session check is
    /// the caller's.
    pub async fn verify_access(&self, token: &str) -> Option<Claims> {
        let now = Utc::now().timestamp();
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(claims) = self.cache.get(&digest, now) {
            return Some(claims);
        }
        let header = decode_header(token).ok()?;
        let claims = if is_hmac(header.alg) {
            self.verify_hmac(token, header.alg)?
        } else {
            let kid = header.kid?;
            let mut set = self.key_set();
            if !set.verifiers.contains_key(&kid) && self.may_reload_for_unknown_kid() {
                if let Err(e) = self.reload().await {
                    tracing::warn!(error = %e, "re-reading signing keys failed");
                }
                set = self.key_set();
            }
            let verifier = set.verifiers.get(&kid)?;
            if verifier.alg != header.alg {
                return None;
            }
            let mut validation = Validation::new(verifier.alg);
            validation.leeway = 0;
            validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
            validation.set_issuer(&[&self.issuer]);
            validation.set_audience(&[&self.audience]);
            decode::<Claims>(token, &verifier.key, &validation)
                .ok()?
                .claims
        };
        self.cache.put(digest, &claims);
        Some(claims)
    }

    /// HS* tokens: the configured HMAC algorithm, or, after a switch to asymmetric keys,
    /// those signed with SECRET_KEY while they can still be live. Tokens of versions before
    /// issuer and audience existed lack both; when present they must match.
    fn verify_hmac(&self, token: &str, alg: Algorithm) -> Option<Claims> {
        if is_asymmetric(self.algorithm) {
            let until = self.key_set().hs_accepted_until?;
            if Utc::now() >= until {
                return None;
            }
        } else if alg != self.algorithm {
            return None;
        }
        let mut validation = Validation::new(alg);
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        let claims = decode::<Claims>(token, &self.hmac_decoding, &validation)
            .ok()?
            .claims;
        let iss_ok = claims.iss.as_deref().is_none_or(|iss| iss == self.issuer);
        let aud_ok = claims.aud.as_deref().is_none_or(|aud| aud == self.audience);
        (iss_ok && aud_ok).then_some(claims)
    }

    /// The claims of a token this instance has just issued (its signature is not
    /// checked: never use this on a token that came from a request).
    pub fn claims_of_fresh_token(&self, token: &str) -> Option<Claims> {
        let payload = token.split('.').nth(1)?;
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
    }

    fn may_reload_for_unknown_kid(&self) -> bool {
        let Ok(mut last) = self.last_unknown_reload.lock() else {
            return false;
        };
        let due = last.is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(1));
        if due {
            *last = Some(Instant::now());
        }
        due
    }
}

fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// 32 random bytes, URL-safe: for refresh tokens and emailed links.
pub fn new_opaque_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored instead of a token: its SHA-256, hex. A database leak yields no usable token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opaque_tokens_are_random_and_hashes_stable() {
        let (a, b) = (new_opaque_token(), new_opaque_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_ne!(hash_token(&a), hash_token(&b));
        assert_eq!(hash_token(&a).len(), 64);
    }

    #[test]
    fn assurance_of_a_password_and_a_provider_sign_in() {
        assert_eq!(Assurance::password(), Assurance::new("aal1", &["pwd"]));
        let strong = Assurance::new("aal2", &["oidc", "otp"]);
        assert_eq!(strong.to_stored(), "aal2 oidc otp");
        assert_eq!(Assurance::from_stored(&strong.to_stored()), strong);
        for unreadable in ["", "aal2", "aal3 pwd", "  "] {
            assert_eq!(Assurance::from_stored(unreadable), Assurance::password());
        }
        assert_eq!(Assurance::provider().amr, vec!["oidc".to_owned()]);
    }
}
