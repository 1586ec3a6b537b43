//! OpenTelemetry traces over OTLP/HTTP (protobuf), when OTEL_EXPORTER_OTLP_ENDPOINT is set.
//! Every request span (see `request.rs`) and its children become OTLP spans; an incoming
//! W3C `traceparent` makes the request span its child, so the trace continues here.
//! When the endpoint is unset nothing is installed: no exporter thread, no per-span work
//! beyond what `tracing` already does. Built only with the `otel` cargo feature (default).

use axum::http::HeaderMap;

#[cfg(feature = "otel")]
mod enabled {
    use std::sync::OnceLock;

    use axum::http::HeaderMap;
    use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use opentelemetry_sdk::Resource;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use crate::config::Config;

    /// Set once traces are exported; `shutdown` flushes it.
    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

    pub type Layer<S> =
        tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>;

    pub fn layer<S>(config: &Config) -> Option<Layer<S>>
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        let endpoint = config.ops.otlp_endpoint.as_ref()?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!("{endpoint}/v1/traces"))
            .build();
        let exporter = match exporter {
            Ok(exporter) => exporter,
            Err(error) => {
                eprintln!("OTEL_EXPORTER_OTLP_ENDPOINT: traces disabled: {error}");
                return None;
            }
        };
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                Resource::builder()
                    .with_service_name(config.ops.service_name.clone())
                    .build(),
            )
            .build();
        let tracer = provider.tracer("auth-service");
        let _ = PROVIDER.set(provider);
        Some(tracing_opentelemetry::layer().with_tracer(tracer))
    }

    struct Headers<'a>(&'a HeaderMap);

    impl Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }

        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(|k| k.as_str()).collect()
        }
    }

    struct HeadersMut<'a>(&'a mut HeaderMap);

    impl Injector for HeadersMut<'_> {
        fn set(&mut self, key: &str, value: String) {
            if let (Ok(name), Ok(value)) = (
                axum::http::HeaderName::from_bytes(key.as_bytes()),
                axum::http::HeaderValue::from_str(&value),
            ) {
                self.0.insert(name, value);
            }
        }
    }

    pub fn link_to_incoming_trace(span: &tracing::Span, headers: &HeaderMap) {
        if PROVIDER.get().is_none() || !headers.contains_key("traceparent") {
            return;
        }
        let parent = TraceContextPropagator::new().extract(&Headers(headers));
        let _ = span.set_parent(parent);
    }

    pub fn inject_current_trace(headers: &mut HeaderMap) {
        if PROVIDER.get().is_none() {
            return;
        }
        let context = tracing::Span::current().context();
        TraceContextPropagator::new().inject_context(&context, &mut HeadersMut(headers));
    }

    pub fn shutdown() {
        if let Some(provider) = PROVIDER.get() {
            let _ = provider.shutdown();
        }
    }
}

/// The tracing layer that exports spans, when OTEL_EXPORTER_OTLP_ENDPOINT is set.
#[cfg(feature = "otel")]
pub use enabled::layer;

#[cfg(not(feature = "otel"))]
pub fn layer(config: &crate::config::Config) -> Option<tracing_subscriber::layer::Identity> {
    if config.ops.otlp_endpoint.is_some() {
        eprintln!("OTEL_EXPORTER_OTLP_ENDPOINT is set but this build has no `otel` feature");
    }
    None
}

/// Makes `span` a child of the trace named by an incoming `traceparent` header.
pub fn link_to_incoming_trace(span: &tracing::Span, headers: &HeaderMap) {
    #[cfg(feature = "otel")]
    enabled::link_to_incoming_trace(span, headers);
    #[cfg(not(feature = "otel"))]
    let _ = (span, headers);
}

/// Adds `traceparent` for the current span to an outgoing request's headers, so a service
/// this one calls continues the trace. Does nothing when traces are off.
pub fn inject_current_trace(headers: &mut HeaderMap) {
    #[cfg(feature = "otel")]
    enabled::inject_current_trace(headers);
    #[cfg(not(feature = "otel"))]
    let _ = headers;
}

/// Sends the spans still queued (at shutdown).
pub fn shutdown() {
    #[cfg(feature = "otel")]
    enabled::shutdown();
}
