//! Operations settings (DESIGN §12): metrics, probes, start-up wait, traces, access log.

use std::time::Duration;

use super::{err, ConfigError, Vars};
use crate::secret::Secret;

#[derive(Debug, Clone)]
pub struct OpsConfig {
    /// When set, GET /metrics requires `Authorization: Bearer <token>`.
    pub metrics_token: Option<Secret>,
    /// How long start-up waits for the database before giving up.
    pub database_connect_timeout: Duration,
    /// One INFO line per request (ACCESS_LOG=false silences it).
    pub access_log: bool,
    /// OTLP/HTTP endpoint (e.g. `http://collector:4318`); traces are exported only when set.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of exported spans.
    pub service_name: String,
}

impl OpsConfig {
    pub(super) fn from_vars<F: Fn(&str) -> Option<String>>(
        vars: &Vars<F>,
    ) -> Result<Self, ConfigError> {
        let timeout: u64 = vars.parse("DATABASE_CONNECT_TIMEOUT_SECONDS", 30)?;
        if timeout > 3600 {
            return Err(err("DATABASE_CONNECT_TIMEOUT_SECONDS must be at most 3600"));
        }
        Ok(Self {
            metrics_token: vars.string("METRICS_TOKEN").map(Secret::new),
            database_connect_timeout: Duration::from_secs(timeout),
            access_log: vars.flag("ACCESS_LOG", true)?,
            otlp_endpoint: vars
                .string("OTEL_EXPORTER_OTLP_ENDPOINT")
                .map(|e| e.trim_end_matches('/').to_owned()),
            service_name: vars.or("OTEL_SERVICE_NAME", "auth-service"),
        })
    }
}
