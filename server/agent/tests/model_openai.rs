//! The OpenAI-compatible client against the real mock model server over
//! loopback: streamed text and tool calls, usage, finish reasons, tool
//! result messages, faults and cancellation.

// clippy allows unwrap only inside #[test] fns; the helpers here are test code too.
#![allow(clippy::unwrap_used)]

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redline_agent::model::openai::{OpenAiClient, OpenAiConfig};
use redline_agent::model::retry::RetryPolicy;
use redline_agent::model::{
    ContentBlock, Message, ModelClient, ModelError, ModelRequest, ModelResponse, Role, StopReason,
    StreamEvent, SystemBlock, ToolSpec, Usage,
};
use redline_test_support::{MockModelServer, Outcome, Script};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn client(server: &MockModelServer, api_key: Option<&str>, max_attempts: u32) -> OpenAiClient {
    OpenAiClient::new(OpenAiConfig {
        base_url: format!("{}/v1", server.base_url()),
        api_key: api_key.map(str::to_owned),
        retry: RetryPolicy {
            max_attempts,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(40),
        },
        request_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_millis(300),
    })
    .unwrap()
}

fn request(prompt: &str) -> ModelRequest {
    ModelRequest {
        model: "qwen3:8b".to_owned(),
        system: vec![
            SystemBlock {
                text: "You are Redline.".to_owned(),
                cache: true,
            },
            SystemBlock {
                text: "Be brief.".to_owned(),
                cache: false,
            },
        ],
        tools: vec![ToolSpec {
            name: "read_file".to_owned(),
            description: "Read a file".to_owned(),
            input_schema: json!({"type": "object", "properties": {"path": {"type": "string"}}}),
        }],
        messages: vec![Message {
            role: Role::User,
            content: vec![ContentBlock::Text {
                text: prompt.to_owned(),
            }],
        }],
        max_tokens: 512,
    }
}

async fn script(value: serde_json::Value) -> MockModelServer {
    MockModelServer::start(Script::from_value(value).unwrap())
        .await
        .unwrap()
}

async fn send(
    client: &OpenAiClient,
    request: &ModelRequest,
) -> (Result<ModelResponse, ModelError>, Vec<StreamEvent>) {
    let events = Mutex::new(Vec::new());
    let sink = |event: StreamEvent| events.lock().unwrap().push(event);
    let result = client.send(request, &sink, &CancellationToken::new()).await;
    (result, events.into_inner().unwrap())
}

fn text_deltas(events: &[StreamEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn text_streams_with_usage() {
    let server = script(
        json!([{"turns": [{"content": [{"text": "Local models work too."}], "chunk_size": 6,
        "usage": {"input_tokens": 30, "output_tokens": 7, "cache_read_input_tokens": 70}}]}]),
    )
    .await;
    let (result, events) = send(&client(&server, None, 1), &request("hi")).await;
    let response = result.unwrap();
    assert_eq!(text_deltas(&events), ["Local ", "models", " work ", "too."]);
    assert_eq!(
        response.content,
        [ContentBlock::Text {
            text: "Local models work too.".to_owned()
        }]
    );
    assert_eq!(response.stop_reason, StopReason::EndTurn);
    assert_eq!(response.model, "qwen3:8b");
    // prompt_tokens 100 of which 70 cached → 30 uncached input, 70 cache reads.
    assert_eq!(
        response.usage,
        Usage {
            input_tokens: 30,
            output_tokens: 7,
            cache_read_input_tokens: 70,
            cache_creation_input_tokens: 0
        }
    );

    let recorded = &server.requests()[0];
    assert_eq!(recorded.path, "/v1/chat/completions");
    assert!(
        !recorded.headers.contains_key("authorization"),
        "no key, no Authorization header"
    );
    let body = &recorded.body;
    assert_eq!(body["stream"], json!(true));
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
    assert_eq!(
        body["messages"][0],
        json!({"role": "system", "content": "You are Redline.\n\nBe brief."})
    );
    assert_eq!(body["tools"][0]["type"], "function");
    assert_eq!(body["tools"][0]["function"]["name"], "read_file");
    assert_eq!(body["tools"][0]["function"]["parameters"]["type"], "object");
}

#[tokio::test]
async fn streamed_tool_calls_are_assembled_by_index() {
    let server = script(json!([{"turns": [{
        "content": [
            {"text": "Reading both."},
            {"tool_use": {"name": "read_file", "input": {"path": "a/b.rs", "lines": [3, 9]}}},
            {"tool_use": {"name": "read_file", "input": {"path": "ç.md"}, "id": "call_given"}}
        ],
        "chunk_size": 4
    }]}]))
    .await;
    let (result, events) = send(&client(&server, Some("sk-local"), 1), &request("read")).await;
    let response = result.unwrap();
    assert_eq!(response.stop_reason, StopReason::ToolUse);
    assert_eq!(
        response.content,
        [
            ContentBlock::Text {
                text: "Reading both.".to_owned()
            },
            ContentBlock::ToolUse {
                id: "call_mock_0_0_1".to_owned(),
                name: "read_file".to_owned(),
                input: json!({"path": "a/b.rs", "lines": [3, 9]}),
            },
            ContentBlock::ToolUse {
                id: "call_given".to_owned(),
                name: "read_file".to_owned(),
                input: json!({"path": "ç.md"})
            },
        ]
    );
    let starts: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolUseStarted { id, name } => Some(format!("{id}:{name}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        starts,
        ["call_mock_0_0_1:read_file", "call_given:read_file"]
    );
    assert_eq!(server.requests()[0].headers["authorization"], "[redacted]");
}

#[tokio::test]
async fn tool_results_become_tool_messages() {
    let server = script(json!([{"turns": [
        {"content": [{"tool_use": {"name": "read_file", "input": {"path": "a"}}}]},
        {"content": [{"text": "It says hi."}]}
    ]}]))
    .await;
    let client = client(&server, None, 1);
    let mut request = request("what is in a?");
    let first = send(&client, &request).await.0.unwrap();
    let ContentBlock::ToolUse { id, .. } = &first.content[0] else {
        panic!("{first:?}")
    };
    request.messages.push(Message {
        role: Role::Assistant,
        content: first.content.clone(),
    });
    request.messages.push(Message {
        role: Role::User,
        content: vec![
            ContentBlock::Text {
                text: "thanks".to_owned(),
            },
            ContentBlock::ToolResult {
                tool_use_id: id.clone(),
                content: "hi".to_owned(),
                is_error: false,
            },
        ],
    });
    let second = send(&client, &request).await.0.unwrap();
    assert_eq!(
        second.content,
        [ContentBlock::Text {
            text: "It says hi.".to_owned()
        }]
    );
    let recorded = server.requests();
    assert_eq!(recorded[1].outcome, Outcome::Answered);
    let roles: Vec<&str> = recorded[1].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool", "user"]);
}

#[tokio::test]
async fn finish_reasons_are_mapped() {
    let cases = [
        ("end_turn", StopReason::EndTurn),
        ("max_tokens", StopReason::MaxTokens),
        ("refusal", StopReason::Refusal),
        ("tool_use", StopReason::ToolUse),
    ];
    let conversations: Vec<_> = cases
        .iter()
        .map(|(reason, _)| json!({"match": format!("case {reason}"), "turns": [{"content": [{"text": "x"}], "stop_reason": reason}]}))
        .collect();
    let server = script(json!(conversations)).await;
    let client = client(&server, None, 1);
    for (reason, expected) in cases {
        let response = send(&client, &request(&format!("case {reason}")))
            .await
            .0
            .unwrap();
        assert_eq!(response.stop_reason, expected, "{reason}");
    }
}

#[tokio::test]
async fn faults_are_survived_by_retrying() {
    let faults = [
        ("rate limited", json!({"status": 429, "retry_after_ms": 50})),
        ("disconnect", json!({"disconnect_after_events": 2})),
        ("malformed", json!({"malformed": true})),
        ("error chunk", json!({"error_event": "server_error"})),
        ("hang", json!({"hang": true})),
    ];
    let conversations: Vec<_> = faults
        .iter()
        .map(|(name, fault)| json!({"match": name, "turns": [{"content": [{"text": format!("survived {name}")}], "chunk_size": 3, "faults": [fault]}]}))
        .collect();
    let server = script(json!(conversations)).await;
    let client = client(&server, None, 3);
    for (name, _) in faults {
        let started = Instant::now();
        let (result, events) = send(&client, &request(name)).await;
        let response = result.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            response.content,
            [ContentBlock::Text {
                text: format!("survived {name}")
            }],
            "{name}"
        );
        assert_eq!(
            text_deltas(&events).concat(),
            format!("survived {name}"),
            "{name}: text shown once"
        );
        let retried = events
            .iter()
            .filter(|e| matches!(e, StreamEvent::Retrying { .. }))
            .count();
        assert_eq!(retried, 1, "{name}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{name}: {:?}",
            started.elapsed()
        );
    }
    let waited = server
        .requests()
        .iter()
        .any(|r| matches!(&r.outcome, Outcome::Fault(f) if f.contains("retry_after_ms: Some(50)")));
    assert!(waited);
}

#[tokio::test]
async fn a_rejected_key_is_reported_once() {
    let mut script =
        Script::from_value(json!([{"turns": [{"content": [{"text": "x"}]}]}])).unwrap();
    script.api_key = Some("right".to_owned());
    let server = MockModelServer::start(script).await.unwrap();
    let error = send(&client(&server, Some("wrong-key-123"), 3), &request("hi"))
        .await
        .0
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "model API rejected the request (401): the API key was rejected: Incorrect API key provided"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn cancel_mid_stream_returns_promptly() {
    let server = script(json!([{"turns": [{"content": [{"text": "slow local model output"}], "chunk_size": 1, "delay_ms": 100}]}])).await;
    let client = client(&server, None, 3);
    let request = request("hi");
    let cancel = CancellationToken::new();
    let sink = |event: StreamEvent| {
        if matches!(event, StreamEvent::TextDelta(_)) && !cancel.is_cancelled() {
            cancel.cancel();
        }
    };
    let cancelled_at = Mutex::new(None);
    let watcher = async {
        cancel.cancelled().await;
        *cancelled_at.lock().unwrap() = Some(Instant::now());
    };
    let (result, ()) = tokio::join!(client.send(&request, &sink, &cancel), watcher);
    let latency = cancelled_at.lock().unwrap().unwrap().elapsed();
    assert!(matches!(result, Err(ModelError::Cancelled)), "{result:?}");
    assert!(
        latency < Duration::from_millis(100),
        "cancel took {latency:?}"
    );
}
