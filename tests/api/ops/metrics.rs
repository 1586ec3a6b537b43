//! GET /metrics: exact counter and histogram movements after a known sequence of requests
//! (the real binary, so no other test shares its registry), a strict parse of the
//! exposition, bounded route labels, and METRICS_TOKEN.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_app_with, Backend, PASSWORD};
use crate::logs::{base_env, ServerProcess};

/// Series name with its sorted labels (`name{a="1",b="2"}`) → value.
type Samples = HashMap<String, f64>;

/// A strict reading of the Prometheus text format 0.0.4: every line is a `# HELP`, a
/// `# TYPE` (declared before its samples, with a known type) or a sample whose name was
/// declared, whose labels are well-formed and whose value is a number.
fn parse_exposition(text: &str) -> Samples {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = Samples::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap();
            let name = parts.next().expect("metric name after # HELP/TYPE");
            let value = parts.next().expect("text after the name");
            match kind {
                "HELP" => {}
                "TYPE" => {
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&value),
                        "bad type: {line}"
                    );
                    assert!(
                        types.insert(name.to_owned(), value.to_owned()).is_none(),
                        "TYPE twice: {line}"
                    );
                }
                _ => panic!("unknown comment: {line}"),
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels: {line}"));
                (name, parse_labels(inner, line))
            }
            None => (series, Vec::new()),
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        assert!(types.contains_key(family), "sample before its TYPE: {line}");
        let mut labels = labels;
        labels.sort();
        let key = if labels.is_empty() {
            name.to_owned()
        } else {
            let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            format!("{name}{{{}}}", inner.join(","))
        };
        assert!(
            samples.insert(key, value).is_none(),
            "duplicate series: {line}"
        );
    }
    samples
}

fn parse_labels(inner: &str, line: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut rest = inner;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("bad label: {line}"));
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad label name: {line}"
        );
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => panic!("dangling escape: {line}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value: {line}"),
            }
        };
        labels.push((name.to_owned(), value));
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    labels
}

fn get(samples: &Samples, key: &str) -> f64 {
    samples.get(key).copied().unwrap_or(0.0)
}

async fn scrape(client: &reqwest::Client, url: &str) -> Samples {
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    parse_exposition(&response.text().await.unwrap())
}

/// Series of a closed label set are there at 0 before their first event, so an alert on
/// `rate(logins_total{outcome="throttled"}[5m])` has data on a fresh instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labelled_series_exist_at_zero_before_their_first_event() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&base_env(dir.path()), dir.path()).await;
    let samples = scrape(&reqwest::Client::new(), &server.url("/metrics")).await;
    for series in [
        "logins_total{outcome=\"success\"}",
        "logins_total{outcome=\"throttled\"}",
        "credit_operations_total{outcome=\"insufficient\",type=\"credit_used\"}",
        "credit_operations_total{outcome=\"success\",type=\"credit_added\"}",
        "mail_sent_total{outcome=\"failed\"}",
        "rate_limited_total{bucket=\"auth\"}",
        "stripe_events_total{outcome=\"invalid_signature\",type=\"other\"}",
        "webhook_deliveries_total{outcome=\"failed\"}",
    ] {
        assert_eq!(samples.get(series), Some(&0.0), "{series} at 0");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_and_histograms_move_by_exactly_the_requests_made() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(dir.path());
    env.insert("INTERNAL_API_KEYS".into(), "metrics-test-key".into());
    env.insert("REQUIRE_EMAIL_VERIFICATION".into(), "false".into());
    let server = ServerProcess::start(&env, dir.path()).await;
    let client = reqwest::Client::new();
    let metrics_url = server.url("/metrics");
    let before = scrape(&client, &metrics_url).await;

    let registered = client
        .post(server.url("/auth/register"))
        .json(
            &json!({"username": "metricuser", "email": "metric@example.com", "password": PASSWORD}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), StatusCode::CREATED);
    let login = |password: &'static str| {
        client
            .post(server.url("/auth/login"))
            .form(&[("username", "metricuser"), ("password", password)])
            .send()
    };
    let ok = login(PASSWORD).await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let token = ok.json::<serde_json::Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..2 {
        assert_eq!(
            login("wrong password!").await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // Distinct raw paths: one route template, one "unmatched" series.
    for name in ["metricuser", "someone-else", "third.user"] {
        client
            .get(server.url(&format!("/auth/users/{name}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
    }
    for path in ["/no/such/path", "/another/unknown/1", "/random-123"] {
        let r = client.get(server.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    let added = client
        .post(server.url("/credits/add"))
        .header("X-API-Key", "metrics-test-key")
        .json(&json!({"amount": 5, "user_id": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), StatusCode::OK);
    let used = client
        .post(server.url("/credits/use"))
        .bearer_auth(&token)
        .json(&json!({"amount": 50}))
        .send()
        .await
        .unwrap();
    assert_eq!(used.status(), StatusCode::BAD_REQUEST);

    let after = scrape(&client, &metrics_url).await;
    let delta = |key: &str| get(&after, key) - get(&before, key);
    let requests = |method: &str, route: &str, status: u16| {
        delta(&format!(
            "http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}}"
        ))
    };
    assert_eq!(requests("POST", "/auth/register", 201), 1.0);
    assert_eq!(requests("POST", "/auth/login", 200), 1.0);
    assert_eq!(requests("POST", "/auth/login", 401), 2.0);
    let users_route = "/auth/users/{username}";
    let users_total: f64 = after
        .iter()
        .filter(|(k, _)| {
            k.starts_with("http_requests_total{") && k.contains(&format!("route=\"{users_route}\""))
        })
        .map(|(k, v)| v - get(&before, k))
        .sum();
    assert_eq!(users_total, 3.0);
    assert_eq!(requests("GET", "unmatched", 404), 3.0);
    assert_eq!(requests("POST", "/credits/add", 200), 1.0);
    assert_eq!(requests("POST", "/credits/use", 400), 1.0);
    // The scrape before this one is counted too.
    assert_eq!(requests("GET", "/metrics", 200), 1.0);

    // Histogram: count, +Inf bucket and sum move with the requests; buckets are cumulative.
    let login_hist = |suffix: &str| delta(&format!("http_request_duration_seconds_{suffix}"));
    assert_eq!(login_hist("count{route=\"/auth/login\"}"), 3.0);
    assert_eq!(login_hist("bucket{le=\"+Inf\",route=\"/auth/login\"}"), 3.0);
    assert!(login_hist("sum{route=\"/auth/login\"}") > 0.0);
    assert_eq!(
        delta("http_request_duration_seconds_count{route=\"unmatched\"}"),
        3.0
    );
    let mut buckets: Vec<(f64, f64)> = after
        .iter()
        .filter_map(|(k, v)| {
            let rest = k.strip_prefix("http_request_duration_seconds_bucket{le=\"")?;
            let (le, labels) = rest.split_once('"')?;
            (labels == ",route=\"/auth/login\"}")
                .then(|| (le.parse::<f64>().unwrap_or(f64::INFINITY), *v))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
    assert!(buckets.len() >= 10, "{buckets:?}");
    assert!(
        buckets.windows(2).all(|w| w[0].1 <= w[1].1),
        "not cumulative: {buckets:?}"
    );

    assert_eq!(delta("logins_total{outcome=\"success\"}"), 1.0);
    assert_eq!(delta("logins_total{outcome=\"invalid_credentials\"}"), 2.0);
    assert_eq!(
        delta("credit_operations_total{outcome=\"success\",type=\"credit_added\"}"),
        1.0
    );
    assert_eq!(
        delta("credit_operations_total{outcome=\"insufficient\",type=\"credit_used\"}"),
        1.0
    );
    assert_eq!(
        get(
            &after,
            &format!("build_info{{version=\"{}\"}}", env!("CARGO_PKG_VERSION"))
        ),
        1.0
    );

    // Cardinality: no raw path or parameter value ever becomes a label.
    for raw in ["someone-else", "third.user", "/no/such/path", "random-123"] {
        assert!(
            !after.keys().any(|k| k.contains(raw)),
            "{raw} became a label"
        );
    }
    let series = |s: &Samples| {
        s.keys()
            .filter(|k| k.starts_with("http_requests_total"))
            .count()
    };
    for i in 0..20 {
        client
            .get(server.url(&format!("/unknown/{i}")))
            .send()
            .await
            .unwrap();
        client
            .get(server.url(&format!("/auth/users/u{i}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
    }
    let later = scrape(&client, &metrics_url).await;
    assert!(
        series(&later) <= series(&after) + 1,
        "series grew with distinct paths"
    );

    // Sampled gauges are there (the sampler runs at start and every few seconds).
    assert!(
        get(&later, "db_pool_connections{state=\"max\"}") >= 1.0,
        "pool not sampled"
    );
    assert!(later.contains_key("mail_outbox_pending"));
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_token_is_required_when_set() {
    let app = spawn_app_with(Backend::Sqlite, |vars| {
        vars.insert("METRICS_TOKEN".into(), "scrape-secret-123".into());
    })
    .await;
    let url = app.url("/metrics");
    let status = |auth: Option<&'static str>| {
        let mut request = app.client.get(&url);
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(status(None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(Some("Bearer wrong")).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        status(Some("Bearer scrape-secret-12")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(Some("Basic scrape-secret-123")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(Some("scrape-secret-123")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(Some("Bearer scrape-secret-123")).await,
        StatusCode::OK
    );
    assert_eq!(
        status(Some("bearer scrape-secret-123")).await,
        StatusCode::OK
    );
}

#[test]
fn the_parser_rejects_malformed_expositions() {
    for bad in [
        "x_total 1\n",                                    // no TYPE
        "# TYPE x counter\nx_total{a=\"1\" 1\n",          // unclosed labels
        "# TYPE x counter\nx{a=1} 1\n",                   // unquoted value
        "# TYPE x counter\nx one\n",                      // not a number
        "# TYPE x widget\nx 1\n",                         // unknown type
        "# TYPE x counter\nx{a=\"1\"} 1\nx{a=\"1\"} 2\n", // duplicate series
    ] {
        assert!(
            std::panic::catch_unwind(|| parse_exposition(bad)).is_err(),
            "{bad:?} accepted"
        );
    }
    let good =
        parse_exposition("# HELP x A counter.\n# TYPE x counter\nx{b=\"2\",a=\"q\\\"1\"} 3\n");
    assert_eq!(good.get("x{a=\"q\"1\",b=\"2\"}"), Some(&3.0));
}
