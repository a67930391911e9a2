//! The Anthropic client against the real mock model server over loopback:
//! streaming, tools, usage, stop reasons, prompt caching, every scripted
//! fault, and cancellation.

// clippy allows unwrap only inside #[test] fns; the helpers here are test code too.
#![allow(clippy::unwrap_used)]

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redline_agent::model::anthropic::{AnthropicClient, AnthropicConfig};
use redline_agent::model::pricing::estimate_cost_usd;
use redline_agent::model::retry::RetryPolicy;
use redline_agent::model::{
    ContentBlock, Message, ModelClient, ModelError, ModelRequest, ModelResponse, Role, StopReason,
    StreamEvent, SystemBlock, ToolSpec, Usage,
};
use redline_test_support::{MockModelServer, Outcome, Script};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const KEY: &str = "sk-ant-test-key-0123456789";

fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(40),
    }
}

fn config(base_url: &str, max_attempts: u32) -> AnthropicConfig {
    AnthropicConfig {
        base_url: base_url.to_owned(),
        api_key: KEY.to_owned(),
        retry: fast_retry(max_attempts),
        request_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_millis(300),
        ..AnthropicConfig::default()
    }
}

fn client(server: &MockModelServer, max_attempts: u32) -> AnthropicClient {
    AnthropicClient::new(config(&server.base_url(), max_attempts)).unwrap()
}

fn request(prompt: &str) -> ModelRequest {
    ModelRequest {
        model: "claude-sonnet-4-6".to_owned(),
        system: vec![SystemBlock {
            text: "You are Redline.".to_owned(),
            cache: true,
        }],
        tools: vec![tool("read_file"), tool("edit_file")],
        messages: vec![Message {
            role: Role::User,
            content: vec![ContentBlock::Text {
                text: prompt.to_owned(),
            }],
        }],
        max_tokens: 1024,
    }
}

fn tool(name: &str) -> ToolSpec {
    ToolSpec {
        name: name.to_owned(),
        description: format!("{name} tool"),
        input_schema: json!({"type": "object", "properties": {"path": {"type": "string"}}}),
    }
}

async fn script(value: serde_json::Value) -> MockModelServer {
    MockModelServer::start(Script::from_value(value).unwrap())
        .await
        .unwrap()
}

/// Sends `request` and collects what reached the sink.
async fn send(
    client: &AnthropicClient,
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

fn retries(events: &[StreamEvent]) -> Vec<(u32, u64, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Retrying {
                attempt,
                delay_ms,
                reason,
            } => Some((*attempt, *delay_ms, reason.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn text_streams_to_the_sink_in_order() {
    let server = script(
        json!([{"turns": [{"content": [{"text": "Hello, streaming world! ✓"}], "chunk_size": 4}]}]),
    )
    .await;
    let (result, events) = send(&client(&server, 3), &request("hi")).await;
    let response = result.unwrap();
    assert_eq!(
        text_deltas(&events),
        ["Hell", "o, s", "trea", "ming", " wor", "ld! ", "✓"]
    );
    assert_eq!(
        response.content,
        [ContentBlock::Text {
            text: "Hello, streaming world! ✓".to_owned()
        }]
    );
    assert_eq!(response.stop_reason, StopReason::EndTurn);
    assert_eq!(response.model, "claude-sonnet-4-6");

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let recorded = &requests[0];
    assert_eq!(recorded.path, "/v1/messages");
    assert_eq!(recorded.headers["x-api-key"], "[redacted]");
    assert_eq!(recorded.headers["anthropic-version"], "2023-06-01");
    assert_eq!(recorded.headers["content-type"], "application/json");
    assert_eq!(recorded.body["stream"], json!(true));
    assert_eq!(recorded.body["max_tokens"], json!(1024));
    assert!(server.exhausted_requests().is_empty());
}

#[tokio::test]
async fn tool_use_input_is_assembled_from_chunked_json() {
    let input = json!({"path": "src/lib.rs", "range": [1, 20], "note": "ünïcode"});
    let server = script(json!([{"turns": [{
        "content": [{"text": "Let me look."}, {"tool_use": {"name": "read_file", "input": input}}, {"tool_use": {"name": "list", "id": "toolu_fixed"}}],
        "chunk_size": 5
    }]}]))
    .await;
    let (result, events) = send(&client(&server, 3), &request("read it")).await;
    let response = result.unwrap();
    assert_eq!(response.stop_reason, StopReason::ToolUse);
    assert_eq!(
        response.content,
        [
            ContentBlock::Text {
                text: "Let me look.".to_owned()
            },
            ContentBlock::ToolUse {
                id: "toolu_mock_0_0_1".to_owned(),
                name: "read_file".to_owned(),
                input
            },
            ContentBlock::ToolUse {
                id: "toolu_fixed".to_owned(),
                name: "list".to_owned(),
                input: json!({})
            },
        ]
    );
    let starts: Vec<&StreamEvent> = events
        .iter()
        .filter(|e| matches!(e, StreamEvent::ToolUseStarted { .. }))
        .collect();
    assert_eq!(
        starts,
        [
            &StreamEvent::ToolUseStarted {
                id: "toolu_mock_0_0_1".to_owned(),
                name: "read_file".to_owned()
            },
            &StreamEvent::ToolUseStarted {
                id: "toolu_fixed".to_owned(),
                name: "list".to_owned()
            },
        ]
    );
}

#[tokio::test]
async fn usage_counts_cache_tokens() {
    let server = script(json!([{"turns": [{"content": [{"text": "ok"}], "usage": {
        "input_tokens": 120, "output_tokens": 42, "cache_read_input_tokens": 9000, "cache_creation_input_tokens": 1500
    }}]}]))
    .await;
    let (result, _) = send(&client(&server, 3), &request("hi")).await;
    let response = result.unwrap();
    let expected = Usage {
        input_tokens: 120,
        output_tokens: 42,
        cache_read_input_tokens: 9000,
        cache_creation_input_tokens: 1500,
    };
    assert_eq!(response.usage, expected);
    // 120*3 + 1500*3.75 + 9000*0.3 + 42*15 micro-dollars
    let cost = estimate_cost_usd(&response.model, &response.usage).unwrap();
    assert!((cost - 0.009315).abs() < 1e-9, "{cost}");
}

#[tokio::test]
async fn every_stop_reason_is_mapped() {
    let cases = [
        ("end_turn", StopReason::EndTurn),
        ("tool_use", StopReason::ToolUse),
        ("max_tokens", StopReason::MaxTokens),
        ("stop_sequence", StopReason::StopSequence),
        ("pause_turn", StopReason::PauseTurn),
        ("refusal", StopReason::Refusal),
        (
            "brand_new_reason",
            StopReason::Other("brand_new_reason".to_owned()),
        ),
    ];
    let conversations: Vec<_> = cases
        .iter()
        .map(|(wire, _)| json!({"match": format!("case {wire}"), "turns": [{"content": [{"text": "x"}], "stop_reason": wire}]}))
        .collect();
    let server = script(json!(conversations)).await;
    let client = client(&server, 1);
    for (wire, expected) in cases {
        let (result, _) = send(&client, &request(&format!("case {wire}"))).await;
        assert_eq!(result.unwrap().stop_reason, expected, "{wire}");
    }
}

#[tokio::test]
async fn cache_control_marks_the_last_tool_and_cached_system_blocks() {
    let server = script(json!([{"turns": [{"content": [{"text": "ok"}]}]}])).await;
    let mut request = request("hi");
    request.system = vec![
        SystemBlock {
            text: "stable instructions".to_owned(),
            cache: true,
        },
        SystemBlock {
            text: "AGENTS.md".to_owned(),
            cache: true,
        },
        SystemBlock {
            text: "today is Monday".to_owned(),
            cache: false,
        },
    ];
    send(&client(&server, 1), &request).await.0.unwrap();
    let body = &server.requests()[0].body;
    let ephemeral = json!({"type": "ephemeral"});
    let system_marks: Vec<bool> = body["system"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["cache_control"] == ephemeral)
        .collect();
    assert_eq!(system_marks, [true, true, false]);
    let tool_marks: Vec<bool> = body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["cache_control"] == ephemeral)
        .collect();
    assert_eq!(tool_marks, [false, true]);
    assert_eq!(body["tools"][0]["input_schema"]["type"], "object");
}

#[tokio::test]
async fn tool_results_lead_the_next_user_message() {
    let server = script(json!([{"turns": [
        {"content": [{"tool_use": {"name": "read_file", "input": {"path": "a.md"}}}]},
        {"content": [{"text": "Done."}]}
    ]}]))
    .await;
    let client = client(&server, 1);
    let mut request = request("summarise a.md");
    let first = send(&client, &request).await.0.unwrap();
    let ContentBlock::ToolUse { id, .. } = &first.content[0] else {
        panic!("expected a tool call: {first:?}")
    };
    request.messages.push(Message {
        role: Role::Assistant,
        content: first.content.clone(),
    });
    // The engine may put the user's follow-up text before the result, and
    // send it as two messages; the client must still lead with the result.
    request.messages.push(Message {
        role: Role::User,
        content: vec![ContentBlock::Text {
            text: "be brief".to_owned(),
        }],
    });
    request.messages.push(Message {
        role: Role::User,
        content: vec![ContentBlock::ToolResult {
            tool_use_id: id.clone(),
            content: "# A".to_owned(),
            is_error: false,
        }],
    });
    let second = send(&client, &request).await.0.unwrap();
    assert_eq!(
        second.content,
        [ContentBlock::Text {
            text: "Done.".to_owned()
        }]
    );
    let recorded = server.requests();
    assert_eq!(recorded[1].outcome, Outcome::Answered);
    let messages = recorded[1].body["messages"].as_array().unwrap().clone();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[2]["content"][0]["type"], "tool_result");
    assert_eq!(messages[2]["content"][1]["text"], "be brief");
}

#[tokio::test]
async fn an_unpaired_tool_call_is_rejected_and_not_retried() {
    let server = script(
        json!([{"turns": [{"content": [{"text": "never"}]}, {"content": [{"text": "never"}]}]}]),
    )
    .await;
    let mut request = request("hi");
    request.messages.push(Message {
        role: Role::Assistant,
        content: vec![ContentBlock::ToolUse {
            id: "toolu_1".to_owned(),
            name: "read_file".to_owned(),
            input: json!({}),
        }],
    });
    request.messages.push(Message {
        role: Role::User,
        content: vec![ContentBlock::Text {
            text: "go on".to_owned(),
        }],
    });
    let error = send(&client(&server, 3), &request).await.0.unwrap_err();
    let ModelError::Api {
        status: 400,
        kind,
        message,
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(kind, "invalid_request_error");
    assert!(
        message.contains("`tool_use` ids were found without `tool_result` blocks"),
        "{message}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn rate_limit_waits_for_retry_after() {
    let server = script(json!([{"turns": [{"content": [{"text": "after the wait"}], "faults": [{"status": 429, "retry_after": 1}]}]}])).await;
    let started = Instant::now();
    let (result, events) = send(&client(&server, 3), &request("hi")).await;
    let elapsed = started.elapsed();
    assert_eq!(
        result.unwrap().content,
        [ContentBlock::Text {
            text: "after the wait".to_owned()
        }]
    );
    assert!(
        elapsed >= Duration::from_millis(1000),
        "retried after {elapsed:?}, before retry-after"
    );
    assert!(elapsed < Duration::from_millis(1800), "took {elapsed:?}");
    let retries = retries(&events);
    assert_eq!(retries.len(), 1);
    assert_eq!((retries[0].0, retries[0].1), (2, 1000));
    assert!(retries[0].2.contains("429"), "{}", retries[0].2);
    assert_eq!(server.requests().len(), 2);
}

/// Each fault once, then a good answer: the client must get the answer.
#[tokio::test]
async fn every_fault_is_survived_by_retrying() {
    let faults = [
        (
            "overloaded 529",
            json!({"status": 529}),
            "(529): Overloaded",
        ),
        ("server error 500", json!({"status": 500}), "500"),
        (
            "retry-after-ms",
            json!({"status": 503, "retry_after_ms": 20}),
            "503",
        ),
        (
            "disconnect",
            json!({"disconnect_after_events": 3}),
            "connection lost",
        ),
        ("malformed", json!({"malformed": true}), "malformed"),
        (
            "error event",
            json!({"error_event": "overloaded_error"}),
            "error event in the stream: Overloaded",
        ),
        (
            "internal failure event",
            json!({"error_event": "api_error"}),
            "(500): error event in the stream",
        ),
        (
            "hang",
            json!({"hang": true, "after_events": 1}),
            "sent nothing for 300 ms",
        ),
    ];
    let conversations: Vec<_> = faults
        .iter()
        .map(|(name, fault, _)| {
            json!({"match": name, "turns": [{"content": [{"text": format!("survived {name}")}], "faults": [fault]}]})
        })
        .collect();
    let server = script(json!(conversations)).await;
    let client = client(&server, 3);
    for (name, _, reason) in faults {
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
        let retries = retries(&events);
        assert_eq!(retries.len(), 1, "{name}: {retries:?}");
        assert!(
            retries[0].2.contains(reason),
            "{name}: {:?} should mention {reason:?}",
            retries[0].2
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{name} took {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn a_stream_broken_after_text_was_shown_is_replayed_without_duplicates() {
    // message_start, ping, block start, then 3 of the 6 text deltas.
    let server = script(json!([{"turns": [{
        "content": [{"text": "abcdefghijklmnopqr"}, {"tool_use": {"name": "read_file", "input": {"path": "x"}}}],
        "chunk_size": 3,
        "faults": [{"disconnect_after_events": 6}, {"disconnect_after_events": 11}]
    }]}]))
    .await;
    let (result, events) = send(&client(&server, 4), &request("hi")).await;
    let response = result.unwrap();
    assert_eq!(response.stop_reason, StopReason::ToolUse);
    assert_eq!(text_deltas(&events).concat(), "abcdefghijklmnopqr");
    let shown: Vec<String> = events
        .iter()
        .map(|e| match e {
            StreamEvent::TextDelta(t) => format!("text:{t}"),
            StreamEvent::ToolUseStarted { name, .. } => format!("tool:{name}"),
            StreamEvent::Retrying { attempt, .. } => format!("retry:{attempt}"),
        })
        .collect();
    assert_eq!(
        shown,
        [
            "text:abc",
            "text:def",
            "text:ghi",
            "retry:2",
            "text:jkl",
            "text:mno",
            "text:pqr",
            "tool:read_file",
            "retry:3"
        ]
    );
}

#[tokio::test]
async fn exhausted_budget_reports_the_last_error() {
    let server = script(json!([{"turns": [{"content": [{"text": "too late"}],
        "faults": [{"status": 529}, {"status": 500}, {"status": 500}]}]}]))
    .await;
    let (result, events) = send(&client(&server, 3), &request("hi")).await;
    let error = result.unwrap_err();
    let ModelError::RetriesExhausted { attempts: 3, last } = &error else {
        panic!("{error:?}")
    };
    assert!(last.contains("(500)"), "{last}");
    assert_eq!(
        error.to_string(),
        "model API still failing after 3 attempts: model API rejected the request (500): Internal server error (mock)"
    );
    assert_eq!(retries(&events).len(), 2);
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn a_hanging_stream_exhausts_the_budget_with_a_timeout() {
    let server = script(json!([{"turns": [{"content": [{"text": "x"}], "faults": [{"hang": true}, {"hang": true}]}]}])).await;
    let started = Instant::now();
    let error = send(&client(&server, 2), &request("hi"))
        .await
        .0
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("the model sent nothing for 300 ms"),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_fatal_error_event_is_not_retried() {
    let server = script(json!([{"turns": [{"content": [{"text": "x"}], "faults": [{"error_event": "invalid_request_error"}]}]}])).await;
    let error = send(&client(&server, 3), &request("hi"))
        .await
        .0
        .unwrap_err();
    let ModelError::Api {
        status: 400, kind, ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(kind, "invalid_request_error");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_rejected_key_says_so_without_printing_it() {
    let mut script =
        Script::from_value(json!([{"turns": [{"content": [{"text": "x"}]}]}])).unwrap();
    script.api_key = Some("the-right-key".to_owned());
    let server = MockModelServer::start(script).await.unwrap();
    let error = send(&client(&server, 3), &request("hi"))
        .await
        .0
        .unwrap_err();
    let text = error.to_string();
    assert_eq!(
        text,
        "model API rejected the request (401): the API key was rejected: invalid x-api-key"
    );
    assert!(!text.contains(KEY));
    assert!(!format!("{:?}", config("http://x", 1)).contains(KEY));
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn an_empty_key_is_a_missing_key() {
    let error = AnthropicClient::new(AnthropicConfig::new("")).unwrap_err();
    assert!(
        matches!(error, ModelError::MissingApiKey { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("ANTHROPIC_API_KEY"), "{error}");
}

#[tokio::test]
async fn no_response_headers_is_a_request_timeout() {
    // A server that accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let acceptor = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let mut config = config(&format!("http://{address}"), 2);
    config.request_timeout = Duration::from_millis(200);
    let client = AnthropicClient::new(config).unwrap();
    let started = Instant::now();
    let error = send(&client, &request("hi")).await.0.unwrap_err();
    assert!(
        error.to_string().contains("no response from http://"),
        "{error}"
    );
    assert!(error.to_string().contains("within 200 ms"), "{error}");
    assert!(started.elapsed() < Duration::from_millis(1000));
    acceptor.abort();
}

#[tokio::test]
async fn a_refused_connection_is_a_network_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let client = AnthropicClient::new(config(&format!("http://{address}"), 2)).unwrap();
    let error = send(&client, &request("hi")).await.0.unwrap_err();
    let ModelError::RetriesExhausted { attempts: 2, last } = &error else {
        panic!("{error:?}")
    };
    assert!(
        last.starts_with(&format!(
            "cannot reach the model at http://{address}/v1/messages"
        )),
        "{last}"
    );
}

#[tokio::test]
async fn cancel_mid_stream_returns_promptly() {
    let server = script(json!([{"turns": [{"content": [{"text": "a slow answer that takes seconds"}], "chunk_size": 1, "delay_ms": 100}]}])).await;
    let client = client(&server, 3);
    let request = request("hi");
    let cancel = CancellationToken::new();
    let (first_delta_tx, first_delta_rx) = std::sync::mpsc::channel::<()>();
    let first_delta_tx = Mutex::new(Some(first_delta_tx));
    let sink = |event: StreamEvent| {
        if matches!(event, StreamEvent::TextDelta(_))
            && let Some(tx) = first_delta_tx.lock().unwrap().take()
        {
            tx.send(()).unwrap();
        }
    };
    let canceller = async {
        while first_delta_rx.try_recv().is_err() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        cancel.cancel();
        Instant::now()
    };
    let (result, cancelled_at) = tokio::join!(client.send(&request, &sink, &cancel), canceller);
    let latency = cancelled_at.elapsed();
    assert!(matches!(result, Err(ModelError::Cancelled)), "{result:?}");
    assert!(
        latency < Duration::from_millis(100),
        "cancel took {latency:?}"
    );
}

#[tokio::test]
async fn cancel_during_backoff_returns_promptly() {
    let server = script(json!([{"turns": [{"content": [{"text": "x"}], "faults": [{"status": 429, "retry_after": 30}]}]}])).await;
    let client = client(&server, 3);
    let request = request("hi");
    let cancel = CancellationToken::new();
    let sink = |event: StreamEvent| {
        if matches!(event, StreamEvent::Retrying { .. }) {
            cancel.cancel();
        }
    };
    let started = Instant::now();
    let result = client.send(&request, &sink, &cancel).await;
    assert!(matches!(result, Err(ModelError::Cancelled)), "{result:?}");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn twenty_conversations_run_in_parallel() {
    let conversations: Vec<_> = (0..20)
        .map(|i| json!({"turns": [{"content": [{"text": format!("answer {i}")}], "chunk_size": 2, "delay_ms": 5,
                                   "faults": if i % 5 == 0 { json!([{"status": 529}]) } else { json!([]) }}]}))
        .collect();
    let server = script(json!(conversations)).await;
    let client = client(&server, 3);
    let tasks = (0..20).map(|i| {
        let client = &client;
        async move {
            let (result, _) = send(client, &request(&format!("task {i}"))).await;
            let ContentBlock::Text { text } = &result.unwrap().content[0] else {
                panic!("expected text")
            };
            text.clone()
        }
    });
    let answers = futures::future::join_all(tasks).await;
    // Unmatched conversations are claimed in arrival order, so compare sets.
    let mut sorted = answers.clone();
    sorted.sort();
    let mut expected: Vec<String> = (0..20).map(|i| format!("answer {i}")).collect();
    expected.sort();
    assert_eq!(sorted, expected);
    assert!(server.exhausted_requests().is_empty());
}

#[tokio::test]
async fn an_exhausted_script_is_recorded() {
    let server = script(json!([{"turns": [{"content": [{"text": "only turn"}]}]}])).await;
    let client = client(&server, 1);
    let mut request = request("hi");
    request.messages.push(Message {
        role: Role::Assistant,
        content: vec![ContentBlock::Text {
            text: "only turn".to_owned(),
        }],
    });
    request.messages.push(Message {
        role: Role::User,
        content: vec![ContentBlock::Text {
            text: "more".to_owned(),
        }],
    });
    let response = send(&client, &request).await.0.unwrap();
    assert_eq!(
        response.content,
        [ContentBlock::Text {
            text: "(script exhausted)".to_owned()
        }]
    );
    assert_eq!(server.exhausted_requests().len(), 1);
}
