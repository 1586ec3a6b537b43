//! Access-token settings of DESIGN §13: issuer, audience, key refresh and retirement.

use std::time::Duration;

use super::{err, ConfigError, Vars};

#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// `iss` of every access token (JWT_ISSUER, else PUBLIC_URL, else http://localhost:PORT).
    pub issuer: String,
    /// `aud` of every access token (JWT_AUDIENCE).
    pub audience: String,
    /// Access-token life in seconds (ACCESS_TOKEN_EXPIRE_MINUTES × 60, or
    /// ACCESS_TOKEN_EXPIRE_SECONDS when set: short lives for tests of expiry and retirement).
    pub access_ttl_seconds: i64,
    /// Added to the token life before a previous key retires (SIGNING_KEY_RETIRE_GRACE_SECONDS).
    pub retire_grace: Duration,
    /// How often each instance re-reads the keys (SIGNING_KEYS_REFRESH_SECONDS, at most 60).
    pub keys_refresh: Duration,
}

impl JwtConfig {
    pub(super) fn from_vars<F: Fn(&str) -> Option<String>>(
        vars: &Vars<F>,
        own_address: &str,
        access_token_expire_minutes: i64,
    ) -> Result<Self, ConfigError> {
        let access_ttl_seconds: i64 = vars.parse(
            "ACCESS_TOKEN_EXPIRE_SECONDS",
            access_token_expire_minutes * 60,
        )?;
        if access_ttl_seconds < 1 {
            return Err(err("ACCESS_TOKEN_EXPIRE_SECONDS must be at least 1"));
        }
        let refresh: u64 = vars.parse("SIGNING_KEYS_REFRESH_SECONDS", 60)?;
        if !(1..=60).contains(&refresh) {
            return Err(err("SIGNING_KEYS_REFRESH_SECONDS must be between 1 and 60"));
        }
        let grace: u64 = vars.parse("SIGNING_KEY_RETIRE_GRACE_SECONDS", 300)?;
        Ok(Self {
            issuer: vars
                .or("JWT_ISSUER", own_address)
                .trim_end_matches('/')
                .to_owned(),
            audience: vars.or("JWT_AUDIENCE", "authenticated"),
            access_ttl_seconds,
            retire_grace: Duration::from_secs(grace),
            keys_refresh: Duration::from_secs(refresh),
        })
    }
}
