//! Operations (DESIGN §12): metrics, probes, start-up against a late or absent database,
//! migrations under concurrent start-up, OTLP traces, the access log.

mod access_log;
mod memory;
mod metrics;
mod probes;
mod proxy;
mod startup;
#[cfg(feature = "otel")]
mod traces;
