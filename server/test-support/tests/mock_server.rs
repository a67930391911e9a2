//! The mock server over raw HTTP: non-streaming answers in both dialects,
//! and the standalone binary.

// clippy allows unwrap only inside #[test] fns; the helpers here are test code too.
#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;

use redline_test_support::{MockModelServer, Outcome, Script};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A minimal HTTP/1.1 POST; returns the status and the body as JSON.
async fn post(address: &str, path: &str, headers: &[(&str, &str)], body: &Value) -> (u16, Value) {
    let body = body.to_string();
    let mut stream = TcpStream::connect(address).await.unwrap();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn script() -> Script {
    Script::from_toml_str(
        r#"
        [[conversations]]
        match = "weather"
        [[conversations.turns]]
        content = [{ text = "Checking." }, { tool_use = { name = "forecast", input = { city = "Oslo" } } }]
        [[conversations.turns]]
        content = [{ text = "Sunny." }]
        usage = { input_tokens = 12, output_tokens = 3, cache_read_input_tokens = 100 }
        "#,
    )
    .unwrap()
}

#[tokio::test]
async fn non_streaming_anthropic_and_openai() {
    let server = MockModelServer::start(script()).await.unwrap();
    let address = server.address().to_string();
    let anthropic = json!({"model": "claude-haiku-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "weather?"}]});
    let (status, body) = post(
        &address,
        "/v1/messages",
        &[("anthropic-version", "2023-06-01"), ("x-api-key", "k")],
        &anthropic,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stop_reason"], "tool_use");
    assert_eq!(
        body["content"][1],
        json!({"type": "tool_use", "id": "toolu_mock_0_0_1", "name": "forecast", "input": {"city": "Oslo"}})
    );

    let openai = json!({"model": "llama", "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "forecast", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c", "content": "sun"}
    ]});
    let (status, body) = post(&address, "/v1/chat/completions", &[], &openai).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "Sunny.");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["prompt_tokens"], 112);
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 100);

    let requests = server.requests();
    assert_eq!(requests[0].headers["x-api-key"], "[redacted]");
    assert_eq!((requests[0].turn, requests[1].turn), (0, 1));
}

#[tokio::test]
async fn malformed_requests_get_400_like_the_real_api() {
    let server = MockModelServer::start(script()).await.unwrap();
    let address = server.address().to_string();
    let no_version = json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "weather"}]});
    let (status, body) = post(&address, "/v1/messages", &[], &no_version).await;
    assert_eq!(
        (status, body["error"]["type"].as_str()),
        (400, Some("invalid_request_error"))
    );
    let unpaired = json!({"model": "m", "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c9", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "user", "content": "well?"}
    ]});
    let (status, body) = post(&address, "/v1/chat/completions", &[], &unpaired).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did not have response messages: c9"),
        "{body}"
    );
    assert!(matches!(
        &server.requests()[1].outcome,
        Outcome::Rejected { status: 400, .. }
    ));
    let (status, _) = post(&address, "/v2/nothing", &[], &json!({})).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn binary_serves_a_script_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("script.json");
    std::fs::write(
        &path,
        r#"[{"turns": [{"content": [{"text": "from the binary"}]}]}]"#,
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_redline-mock-model"))
        .arg("--script")
        .arg(&path)
        .arg("--port")
        .arg("0")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let address = line
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("{line}"));
    let request =
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    let (status, body) = post(
        address,
        "/v1/messages",
        &[("anthropic-version", "2023-06-01")],
        &request,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["content"][0]["text"], "from the binary");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn binary_reports_a_bad_script() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("script.toml");
    std::fs::write(&path, "[[conversations]]\nturns = [{ faults = [{}] }]\n").unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_redline-mock-model"))
        .arg("--script")
        .arg(&path)
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("conversation 0, turn 0, fault 0"),
        "{stderr}"
    );
    assert!(stderr.contains("script.toml"), "{stderr}");
}
