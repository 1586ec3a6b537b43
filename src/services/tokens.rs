//! Access tokens (JWT) and opaque one-time tokens (refresh, email links).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::store::User;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id, as a string (JWT subjects are strings).
    pub sub: String,
    pub username: String,
    pub is_admin: bool,
    /// The login session this token belongs to; checked on every request.
    pub sid: String,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
}

impl Claims {
    pub fn user_id(&self) -> Option<i64> {
        self.sub.parse().ok()
    }
}

pub struct AccessToken {
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: i64,
}

pub struct TokenService {
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    access_ttl: chrono::Duration,
}

impl TokenService {
    pub fn new(config: &Config) -> Self {
        let secret = config.secret_key.expose().as_bytes();
        // Only the configured algorithm is accepted: no `none`, no algorithm switching.
        let mut validation = Validation::new(config.algorithm);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        Self {
            algorithm: config.algorithm,
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl: config.access_token_ttl(),
        }
    }

    /// Issues an access token that never outlives its session.
    pub fn issue_access(
        &self,
        user: &User,
        session_id: &str,
        session_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<AccessToken> {
        let exp = (now + self.access_ttl).min(session_expires_at);
        let claims = Claims {
            sub: user.id.to_string(),
            username: user.username.clone(),
            is_admin: user.is_admin,
            sid: session_id.to_owned(),
            jti: uuid::Uuid::new_v4().to_string(),
            iat: now.timestamp(),
            exp: exp.timestamp(),
        };
        let token = encode(&Header::new(self.algorithm), &claims, &self.encoding)?;
        Ok(AccessToken {
            token,
            expires_in: (exp - now).num_seconds().max(0),
        })
    }

    /// Signature, algorithm and expiry checks; the session check is the caller's.
    pub fn decode_access(&self, token: &str) -> Option<Claims> {
        decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|data| data.claims)
    }
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
}
