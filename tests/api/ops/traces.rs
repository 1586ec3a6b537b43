//! OTLP/HTTP traces: a receiver in the test decodes the protobuf the binary exports and
//! finds one server span per request, in the trace named by the incoming traceparent.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use crate::logs::{base_env, ServerProcess};

type Received = Arc<Mutex<Vec<Span>>>;

async fn collect(State(received): State<Received>, body: Bytes) -> &'static str {
    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
    let mut spans = received.lock().unwrap();
    for resource in request.resource_spans {
        for scope in resource.scope_spans {
            spans.extend(scope.spans);
        }
    }
    ""
}

async fn start_receiver() -> (u16, Received) {
    let received = Received::default();
    let app = axum::Router::new()
        .route("/v1/traces", post(collect))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, received)
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|a| a.key == key).and_then(|a| {
        match a.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some(s.clone()),
            AnyValue::IntValue(i) => Some(i.to_string()),
            _ => None,
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_exports_a_span_in_the_incoming_trace() {
    let (port, received) = start_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(dir.path());
    env.insert(
        "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
        format!("http://127.0.0.1:{port}"),
    );
    env.insert("OTEL_BSP_SCHEDULE_DELAY".into(), "200".into());
    let server = ServerProcess::start(&env, dir.path()).await;
    let client = reqwest::Client::new();

    let parent_span = "00f067aa0ba902b7";
    let traces: Vec<String> = (1..=3)
        .map(|i| format!("4bf92f3577b34da6a3ce929d0e0e47{i:02x}"))
        .collect();
    let mut request_ids = Vec::new();
    for (trace, path) in traces.iter().zip(["/health/live", "/auth/me", "/nowhere"]) {
        let response = client
            .get(server.url(path))
            .header("traceparent", format!("00-{trace}-{parent_span}-01"))
            .send()
            .await
            .unwrap();
        request_ids.push(
            response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    // A request without traceparent starts a trace of its own.
    client.get(server.url("/health/live")).send().await.unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let request_spans = loop {
        let spans: Vec<Span> = received
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.name.starts_with("GET "))
            .cloned()
            .collect();
        if spans.len() >= 4 || tokio::time::Instant::now() > deadline {
            break spans;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        request_spans.len(),
        4,
        "one server span per request: {request_spans:#?}"
    );
    for ((trace, request_id), route) in
        traces
            .iter()
            .zip(&request_ids)
            .zip(["/health/live", "/auth/me", "unmatched"])
    {
        let span = request_spans
            .iter()
            .find(|s| hex::encode(&s.trace_id) == *trace)
            .unwrap_or_else(|| panic!("no span in trace {trace}: {request_spans:#?}"));
        assert_eq!(hex::encode(&span.parent_span_id), parent_span);
        assert_eq!(span.name, format!("GET {route}"));
        assert_eq!(
            attribute(span, "request_id").as_deref(),
            Some(request_id.as_str())
        );
        assert_eq!(attribute(span, "route").as_deref(), Some(route));
        assert_eq!(span.kind, 2, "SPAN_KIND_SERVER");
    }
    let own = request_spans
        .iter()
        .find(|s| !traces.contains(&hex::encode(&s.trace_id)))
        .expect("the request without traceparent");
    assert!(own.parent_span_id.is_empty(), "a root span");
    drop(server);
}
