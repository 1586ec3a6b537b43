//! Configuration: one struct, read from the environment (DESIGN §4), `.env` first.
//!
//! `Config::from_lookup` takes any name → value function so tests build configurations
//! without touching the process environment (tests run in parallel threads).

use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::Algorithm;

use crate::secret::Secret;

mod oidc;
pub use oidc::{OidcConfig, OidcProviderConfig};
mod server;
pub use server::{CorsPolicy, ServerConfig};
mod ops;
pub use ops::OpsConfig;
mod hardening_auth;
pub use hardening_auth::HardeningConfig;
mod billing;
pub use billing::BillingConfig;
mod web;
pub use web::WebConfig;
mod webhooks;
pub use webhooks::WebhookConfig;
mod jwt;
pub use jwt::JwtConfig;
mod secret_key;
use secret_key::resolve_secret_key;

const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordScheme {
    Bcrypt,
    Argon2id,
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub server: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Implicit TLS from the first byte (usually port 465).
    pub ssl_tls: bool,
    /// Upgrade a plain connection with STARTTLS (usually port 587).
    pub starttls: bool,
}

#[derive(Debug, Clone)]
pub struct MailConfig {
    /// `None`: mail is logged and written to `<DATA_DIR>/mail/*.eml`.
    pub smtp: Option<SmtpConfig>,
    pub from: String,
    /// First retry delay after a failed send; doubles per attempt up to `MAX_MAIL_BACKOFF`.
    pub retry_base: Duration,
    /// How often the outbox worker looks for due mail when nothing woke it.
    pub poll_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub environment: Environment,
    pub database_url: String,
    pub db_max_connections: u32,
    pub redis_url: Option<String>,
    pub host: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub secret_key: Secret,
    pub algorithm: Algorithm,
    pub access_token_expire_minutes: i64,
    pub session_lifetime_days: i64,
    /// MFA_STEP_UP_MINUTES (default 15, 1..=1440): how recent a second-factor check must
    /// be for the sensitive changes of an account with a factor (DESIGN §14).
    pub mfa_step_up_minutes: i64,
    pub password_hash: PasswordScheme,
    pub bcrypt_cost: u32,
    /// How many password hashes may be computed at once (each takes one core).
    pub hash_concurrency: usize,
    pub require_email_verification: bool,
    pub internal_api_keys: Vec<Secret>,
    pub mail: MailConfig,
    pub frontend_url: String,
    pub web: WebConfig,
    /// Connection limits and CORS.
    pub server: ServerConfig,
    pub rate_limit_auth_per_minute: u32,
    pub rate_limit_default_per_minute: u32,
    /// Peers whose X-Forwarded-For is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Namespace of this deployment's keys in a shared Redis.
    pub redis_key_prefix: String,
    pub log_level: String,
    pub json_logs: bool,
    /// `Some((host, port))` when ENABLE_LOGSTASH: JSON log lines are also sent over TCP.
    pub logstash: Option<(String, u16)>,
    /// Sign in with Google and other OpenID Connect providers (DESIGN §10).
    pub oidc: OidcConfig,
    pub ops: OpsConfig,
    /// Login throttle, Redis circuit, outbox lease, pruning.
    pub hardening: HardeningConfig,
    pub billing: BillingConfig,
    /// Outgoing webhooks (DESIGN §16).
    pub webhooks: WebhookConfig,
    /// Issuer, audience, signing-key refresh and retirement (DESIGN §13).
    pub jwt: JwtConfig,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

fn err(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

/// Reads typed values out of a name → value lookup, naming the variable in every error.
struct Vars<F: Fn(&str) -> Option<String>>(F);

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    fn string(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn or(&self, name: &str, default: &str) -> String {
        self.string(name).unwrap_or_else(|| default.to_owned())
    }

    fn parse<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, ConfigError> {
        match self.string(name) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|_| err(format!("{name}={raw:?} is not a valid value"))),
        }
    }

    fn flag(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.string(name).map(|v| v.to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if matches!(v.as_str(), "1" | "true" | "yes" | "on") => Ok(true),
            Some(v) if matches!(v.as_str(), "0" | "false" | "no" | "off") => Ok(false),
            Some(v) => Err(err(format!("{name}={v:?} is not a boolean"))),
        }
    }

    fn list(&self, name: &str) -> Vec<String> {
        self.string(name)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Config {
    /// Loads `.env` (if present) into the process environment, then reads it.
    pub fn from_env() -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars(lookup);
        let environment = match vars
            .or("ENVIRONMENT", "development")
            .to_ascii_lowercase()
            .as_str()
        {
            "production" | "prod" => Environment::Production,
            "development" | "dev" | "test" | "testing" | "local" => Environment::Development,
            other => {
                return Err(err(format!(
                    "ENVIRONMENT={other:?} is not known: use development or production"
                )))
            }
        };
        let data_dir = PathBuf::from(vars.or("DATA_DIR", "./data"));
        let default_db = format!("sqlite://{}/auth.db", data_dir.display());
        let database_url = normalize_database_url(&vars.or("DATABASE_URL", &default_db))?;

        let algorithm = match vars.or("ALGORITHM", "ES256").to_ascii_uppercase().as_str() {
            "ES256" => Algorithm::ES256,
            "EDDSA" => Algorithm::EdDSA,
            "RS256" => Algorithm::RS256,
            "HS256" => Algorithm::HS256,
            "HS384" => Algorithm::HS384,
            "HS512" => Algorithm::HS512,
            other => {
                return Err(err(format!(
                    "ALGORITHM={other:?}: use ES256, EdDSA, RS256, HS256, HS384 or HS512"
                )))
            }
        };
        let password_hash = match vars
            .or("PASSWORD_HASH", "argon2id")
            .to_ascii_lowercase()
            .as_str()
        {
            "bcrypt" => PasswordScheme::Bcrypt,
            "argon2id" | "argon2" => PasswordScheme::Argon2id,
            other => {
                return Err(err(format!(
                    "PASSWORD_HASH={other:?}: use bcrypt or argon2id"
                )))
            }
        };
        let bcrypt_cost: u32 = vars.parse("BCRYPT_COST", 12)?;
        let costs = crate::domain::MIN_BCRYPT_COST..=crate::domain::MAX_BCRYPT_COST;
        if !costs.contains(&bcrypt_cost) {
            return Err(err(format!(
                "BCRYPT_COST must be between {} and {}",
                costs.start(),
                costs.end()
            )));
        }
        let access_token_expire_minutes: i64 = vars.parse("ACCESS_TOKEN_EXPIRE_MINUTES", 60)?;
        let session_lifetime_days: i64 = vars.parse("SESSION_LIFETIME_DAYS", 30)?;
        if access_token_expire_minutes < 1 || session_lifetime_days < 1 {
            return Err(err(
                "ACCESS_TOKEN_EXPIRE_MINUTES and SESSION_LIFETIME_DAYS must be at least 1",
            ));
        }
        let mfa_step_up_minutes: i64 = vars.parse("MFA_STEP_UP_MINUTES", 15)?;
        if !(1..=1440).contains(&mfa_step_up_minutes) {
            return Err(err("MFA_STEP_UP_MINUTES must be between 1 and 1440"));
        }
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);

        let smtp = match vars.string("MAIL_SERVER") {
            None => None,
            Some(server) => Some(SmtpConfig {
                server,
                port: vars.parse("MAIL_PORT", 587)?,
                username: vars.string("MAIL_USERNAME"),
                password: vars.string("MAIL_PASSWORD").map(Secret::new),
                ssl_tls: vars.flag("MAIL_SSL_TLS", false)?,
                starttls: vars.flag("MAIL_STARTTLS", true)?,
            }),
        };
        let mail = MailConfig {
            smtp,
            from: vars.or("MAIL_FROM", "auth-service <noreply@localhost>"),
            retry_base: Duration::from_millis(vars.parse("MAIL_RETRY_BASE_MS", 2_000)?),
            poll_interval: Duration::from_millis(vars.parse("MAIL_POLL_INTERVAL_MS", 1_000)?),
        };

        let logstash = if vars.flag("ENABLE_LOGSTASH", false)? {
            let host = vars
                .string("SYSLOG_HOST")
                .ok_or_else(|| err("ENABLE_LOGSTASH needs SYSLOG_HOST"))?;
            Some((host, vars.parse("SYSLOG_PORT", 5000)?))
        } else {
            None
        };

        let web = WebConfig::from_vars(&vars)?;
        let port = vars.parse("PORT", 8080)?;
        let jwt = JwtConfig::from_vars(&vars, &web.own_address(port), access_token_expire_minutes)?;
        let config = Config {
            environment,
            secret_key: resolve_secret_key(vars.string("SECRET_KEY"), environment, &data_dir)?,
            database_url,
            db_max_connections: vars.parse("DB_MAX_CONNECTIONS", 8)?,
            redis_url: checked_redis_url(vars.string("REDIS_URL"))?,
            host: vars.or("HOST", "127.0.0.1"),
            port,
            data_dir,
            algorithm,
            access_token_expire_minutes,
            session_lifetime_days,
            mfa_step_up_minutes,
            password_hash,
            bcrypt_cost,
            hash_concurrency: vars.parse("PASSWORD_HASH_CONCURRENCY", cores)?.max(1),
            require_email_verification: vars.flag("REQUIRE_EMAIL_VERIFICATION", true)?,
            internal_api_keys: vars
                .list("INTERNAL_API_KEYS")
                .into_iter()
                .map(Secret::new)
                .collect(),
            mail,
            frontend_url: vars
                .string("FRONTEND_URL")
                .unwrap_or_else(|| web.own_address(port))
                .trim_end_matches('/')
                .to_owned(),
            web,
            server: ServerConfig::from_vars(&vars, vars.parse("DB_MAX_CONNECTIONS", 8)?)?,
            rate_limit_auth_per_minute: vars.parse("RATE_LIMIT_AUTH_PER_MINUTE", 100)?,
            rate_limit_default_per_minute: vars.parse("RATE_LIMIT_DEFAULT_PER_MINUTE", 1000)?,
            trusted_proxies: crate::protection::client_ip::parse_trusted(
                &vars.list("TRUSTED_PROXIES"),
            )
            .map_err(err)?,
            redis_key_prefix: vars.or("REDIS_KEY_PREFIX", "auth-service:"),
            log_level: checked_log_level(vars.or("LOG_LEVEL", "INFO"))?,
            json_logs: vars.flag("JSON_LOGS", false)?,
            logstash,
            oidc: OidcConfig::from_vars(&vars)?,
            ops: OpsConfig::from_vars(&vars)?,
            hardening: HardeningConfig::from_vars(&vars)?,
            billing: BillingConfig::from_vars(&vars)?,
            webhooks: WebhookConfig::from_vars(&vars)?,
            jwt,
        };
        config.refuse_unsafe_production_settings()?;
        Ok(config)
    }

    fn refuse_unsafe_production_settings(&self) -> Result<(), ConfigError> {
        if self.environment != Environment::Production {
            return Ok(());
        }
        if self.password_hash == PasswordScheme::Bcrypt && self.bcrypt_cost < 10 {
            return Err(err("ENVIRONMENT=production refuses BCRYPT_COST below 10"));
        }
        if self.mail.smtp.is_none() {
            // Chosen over refusing to start: a first production trial without SMTP still
            // runs, but nobody can miss that its mail goes to files, not to people.
            eprintln!(
                "WARNING: ENVIRONMENT=production without MAIL_SERVER: NO MAIL IS SENT. \
                 Verification and reset links are written to files in {} instead; \
                 set MAIL_SERVER to deliver them.",
                self.data_dir.join("mail").display()
            );
        }
        Ok(())
    }

    pub fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }

    pub fn access_token_ttl(&self) -> chrono::Duration {
        chrono::Duration::minutes(self.access_token_expire_minutes)
    }

    pub fn session_lifetime(&self) -> chrono::Duration {
        chrono::Duration::days(self.session_lifetime_days)
    }
}

/// LOG_LEVEL as Python's logging names them (and `trace`); anything else is refused
/// rather than silently replaced.
fn checked_log_level(level: String) -> Result<String, ConfigError> {
    const KNOWN: [&str; 8] = [
        "trace", "debug", "info", "warn", "warning", "error", "critical", "fatal",
    ];
    if KNOWN.contains(&level.to_ascii_lowercase().as_str()) {
        Ok(level)
    } else {
        Err(err(format!(
            "LOG_LEVEL={level:?} is not known: use DEBUG, INFO, WARNING, ERROR or CRITICAL"
        )))
    }
}

/// REDIS_URL must parse as a Redis URL (redis://, rediss://, unix://); checked at start
/// without connecting (an unreachable Redis is handled at run time).
fn checked_redis_url(url: Option<String>) -> Result<Option<String>, ConfigError> {
    use redis::IntoConnectionInfo;
    match url {
        Some(url) if crate::protection::sentinel::is_sentinel_url(&url) => {
            match crate::protection::sentinel::parse(&url) {
                Ok(_) => Ok(Some(url)),
                Err(why) => Err(err(format!("REDIS_URL: {why}"))),
            }
        }
        Some(url) => match url.as_str().into_connection_info() {
            Ok(_) => Ok(Some(url)),
            Err(e) => Err(err(format!(
                "REDIS_URL is not a Redis URL ({}): expected redis://HOST:PORT[/DB]",
                e.category()
            ))),
        },
        None => Ok(None),
    }
}

/// Maps the URL schemes the original accepted onto the ones sqlx understands.
fn normalize_database_url(url: &str) -> Result<String, ConfigError> {
    for prefix in ["postgresql+asyncpg://", "postgresql://", "postgres://"] {
        if let Some(rest) = url.strip_prefix(prefix) {
            return Ok(format!("postgres://{rest}"));
        }
    }
    if let Some(rest) = url.strip_prefix("sqlite+aiosqlite://") {
        return Ok(format!("sqlite://{rest}"));
    }
    if url.starts_with("sqlite:") {
        return Ok(url.to_owned());
    }
    Err(err(format!(
        "DATABASE_URL must start with postgres://, postgresql:// or sqlite:// (got scheme of {:?})",
        url.split("://").next().unwrap_or_default()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn production_refuses_missing_or_short_secret() {
        assert!(config(&[("ENVIRONMENT", "production")]).is_err());
        assert!(config(&[("ENVIRONMENT", "production"), ("SECRET_KEY", "short")]).is_err());
        let ok = config(&[
            ("ENVIRONMENT", "production"),
            ("SECRET_KEY", &"k".repeat(32)),
        ])
        .unwrap();
        assert_eq!(ok.environment, Environment::Production);
    }

    #[test]
    fn development_generates_and_persists_a_secret() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_str().unwrap();
        let first = config(&[("DATA_DIR", data_dir)]).unwrap();
        let second = config(&[("DATA_DIR", data_dir)]).unwrap();
        assert!(first.secret_key.expose().len() >= MIN_SECRET_BYTES);
        assert_eq!(first.secret_key, second.secret_key);
    }

    #[test]
    fn defaults_follow_the_design() {
        let c = config(&[("SECRET_KEY", &"k".repeat(32))]).unwrap();
        assert_eq!(c.database_url, "sqlite://./data/auth.db");
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 8080));
        assert_eq!(c.password_hash, PasswordScheme::Argon2id);
        assert_eq!(c.bcrypt_cost, 12);
        assert_eq!(c.algorithm, Algorithm::ES256);
        assert_eq!(c.access_token_expire_minutes, 60);
        assert_eq!(c.session_lifetime_days, 30);
        assert!(c.require_email_verification);
        assert!(c.mail.smtp.is_none());
        assert_eq!(
            (
                c.rate_limit_auth_per_minute,
                c.rate_limit_default_per_minute
            ),
            (100, 1000)
        );
    }

    #[test]
    fn mailed_links_default_to_the_services_own_pages() {
        let k = "k".repeat(32);
        let c = config(&[("SECRET_KEY", &k), ("PORT", "9000")]).unwrap();
        assert_eq!(c.frontend_url, "http://localhost:9000");
        assert!(c.web.enabled && !c.web.https());
        let c = config(&[
            ("SECRET_KEY", &k),
            ("PUBLIC_URL", "https://id.example.org/"),
        ])
        .unwrap();
        assert_eq!(c.frontend_url, "https://id.example.org");
        assert!(c.web.https());
        let c = config(&[
            ("SECRET_KEY", &k),
            ("PUBLIC_URL", "https://id.example.org"),
            ("FRONTEND_URL", "https://app.example.org/"),
        ])
        .unwrap();
        assert_eq!(c.frontend_url, "https://app.example.org");
        assert!(config(&[("SECRET_KEY", &k), ("PUBLIC_URL", "id.example.org")]).is_err());
        assert!(
            !config(&[("SECRET_KEY", &k), ("WEB_UI", "false")])
                .unwrap()
                .web
                .enabled
        );
    }

    #[test]
    fn database_url_schemes() {
        let k = "k".repeat(32);
        let c = config(&[
            ("SECRET_KEY", &k),
            ("DATABASE_URL", "postgresql+asyncpg://u@h/db"),
        ])
        .unwrap();
        assert_eq!(c.database_url, "postgres://u@h/db");
        assert!(config(&[("SECRET_KEY", &k), ("DATABASE_URL", "mysql://u@h/db")]).is_err());
    }

    #[test]
    fn bad_values_name_the_variable() {
        let k = "k".repeat(32);
        let e = config(&[("SECRET_KEY", &k), ("PORT", "eighty")]).unwrap_err();
        assert!(e.to_string().contains("PORT"));
        assert!(config(&[("SECRET_KEY", &k), ("ALGORITHM", "PS512")]).is_err());
        assert!(config(&[("SECRET_KEY", &k), ("BCRYPT_COST", "3")]).is_err());
    }
}
