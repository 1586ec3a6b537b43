//! The access log, captured from the real binary: one INFO line per request with method,
//! route, status, latency, client ip, request id and user id; ACCESS_LOG=false silences it.

use serde_json::{json, Value};

use crate::helpers::PASSWORD;
use crate::logs::{base_env, strip_ansi, ServerProcess};

fn access_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "access")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_json_line_per_request_with_the_user_and_the_forwarded_client() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(dir.path());
    env.insert("JSON_LOGS".into(), "true".into());
    env.insert("TRUSTED_PROXIES".into(), "127.0.0.1/32".into());
    let server = ServerProcess::start(&env, dir.path()).await;
    let client = reqwest::Client::new();
    let registered: Value = client
        .post(server.url("/auth/register"))
        .json(&json!({"username": "logged", "email": "logged@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = registered["access_token"].as_str().unwrap();
    let me = client
        .get(server.url("/auth/me?secret_query=hunter2"))
        .bearer_auth(token)
        .header("X-Forwarded-For", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let me_id = me.headers()["x-request-id"].to_str().unwrap().to_owned();
    let me_user: Value = me.json().await.unwrap();
    client
        .get(server.url("/does/not/exist"))
        .send()
        .await
        .unwrap();
    let (stdout, _) = server.stop();

    let lines = access_lines(&stdout);
    assert_eq!(lines.len(), 3, "one line per request:\n{stdout}");
    let fields: Vec<&Value> = lines.iter().map(|l| &l["fields"]).collect();
    assert!(lines.iter().all(|l| l["level"] == "INFO"));
    assert_eq!(fields[0]["route"], "/auth/register");
    assert_eq!(fields[0]["status"], 201);
    let me_line = fields[1];
    assert_eq!(me_line["method"], "GET");
    assert_eq!(me_line["route"], "/auth/me");
    assert_eq!(me_line["status"], 200);
    assert_eq!(me_line["request_id"], me_id.as_str());
    assert_eq!(me_line["client_ip"], "203.0.113.9");
    assert_eq!(me_line["user_id"], me_user["id"]);
    assert!(
        me_line["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{me_line}"
    );
    assert_eq!(fields[2]["route"], "unmatched");
    assert_eq!(fields[2]["status"], 404);
    assert_eq!(fields[2]["client_ip"], "127.0.0.1");
    assert!(fields[2].get("user_id").is_none());
    assert!(
        !stdout.contains("hunter2"),
        "the query string is never logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_false_silences_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(dir.path());
    env.insert("ACCESS_LOG".into(), "false".into());
    let server = ServerProcess::start(&env, dir.path()).await;
    for _ in 0..3 {
        reqwest::get(server.url("/health/live")).await.unwrap();
    }
    let (stdout, stderr) = server.stop();
    let output = strip_ansi(&format!("{stdout}{stderr}"));
    assert!(output.contains("listening on"), "logging is on:\n{output}");
    assert!(
        !output.contains("request completed"),
        "access log printed:\n{output}"
    );
}
