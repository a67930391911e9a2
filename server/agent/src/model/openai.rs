//! Client of OpenAI-compatible chat completions (`POST {base}/chat/completions`,
//! streamed), the API local servers speak: Ollama, llama.cpp, vLLM.
//!
//! System blocks become one system message, tool results become `tool`
//! messages placed before the user's text, tools are `function` tools, and
//! streamed `tool_calls` fragments are assembled by their index.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::retry::{
    Failure, Flow, RetryPolicy, StreamDecoder, Transport, is_retryable_error_kind,
    status_of_error_kind,
};
use super::sse::SseEvent;
use super::{
    ContentBlock, Message, ModelClient, ModelError, ModelRequest, ModelResponse, Role, StopReason,
    StreamEvent, StreamSink, Usage,
};

pub const DEFAULT_BASE_URL: &str = "http://localhost:11434/v1";

/// How to reach an OpenAI-compatible server.
#[derive(Clone)]
pub struct OpenAiConfig {
    /// Up to and including the API version, e.g. `http://localhost:11434/v1`;
    /// `/chat/completions` is appended.
    pub base_url: String,
    /// Sent as `Authorization: Bearer`; local servers usually need none.
    pub api_key: Option<String>,
    pub retry: RetryPolicy,
    /// Longest wait for response headers; local servers may load the model
    /// first, so the default is generous.
    pub request_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        OpenAiConfig {
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_key: None,
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(120),
        }
    }
}

// Hand-written so the key never reaches a log line through `{:?}`.
impl fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("retry", &self.retry)
            .field("request_timeout", &self.request_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

/// A [`ModelClient`] for OpenAI-compatible chat completions.
#[derive(Debug)]
pub struct OpenAiClient {
    transport: Transport,
}

impl OpenAiClient {
    pub fn new(config: OpenAiConfig) -> Result<OpenAiClient, ModelError> {
        let url = format!("{}/chat/completions", config.base_url.trim_end_matches('/'));
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let api_key = config
            .api_key
            .as_deref()
            .map(str::trim)
            .filter(|key| !key.is_empty());
        if let Some(key) = api_key {
            let mut value =
                HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| ModelError::Api {
                    status: 0,
                    kind: "authentication_error".to_owned(),
                    message: "the API key contains characters that cannot be sent in a header"
                        .to_owned(),
                })?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let transport = Transport::new(
            config.retry,
            config.request_timeout,
            config.idle_timeout,
            api_key.map(str::to_owned),
            url,
            headers,
        )?;
        Ok(OpenAiClient { transport })
    }

    async fn send_request(
        &self,
        request: &ModelRequest,
        sink: StreamSink<'_>,
        cancel: &CancellationToken,
    ) -> Result<ModelResponse, ModelError> {
        self.transport
            .send_json(&request_body(request), OpenAiDecoder::default, sink, cancel)
            .await
    }
}

impl ModelClient for OpenAiClient {
    fn send<'a>(
        &'a self,
        request: &'a ModelRequest,
        sink: StreamSink<'a>,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<ModelResponse, ModelError>> {
        Box::pin(self.send_request(request, sink, cancel))
    }
}

/// The JSON body of a streamed chat completion request.
pub fn request_body(request: &ModelRequest) -> Value {
    let mut messages = Vec::new();
    if !request.system.is_empty() {
        let system: Vec<&str> = request
            .system
            .iter()
            .map(|block| block.text.as_str())
            .collect();
        messages.push(json!({"role": "system", "content": system.join("\n\n")}));
    }
    for message in &request.messages {
        messages.extend(wire_message(message));
    }
    let mut body = json!({
        "model": request.model,
        "max_tokens": request.max_tokens,
        "stream": true,
        "stream_options": {"include_usage": true},
        "messages": messages,
    });
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                json!({
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": tool.input_schema,
                    },
                })
            })
            .collect();
        body["tools"] = Value::Array(tools);
    }
    body
}

/// One Redline message as chat messages: a user turn's tool results come
/// first as `tool` messages (they answer the previous assistant message's
/// calls), then its text; an assistant turn is one message with text and
/// `tool_calls`.
pub fn wire_message(message: &Message) -> Vec<Value> {
    let text: String = message
        .content
        .iter()
        .filter_map(|block| match block {
            ContentBlock::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n\n");
    match message.role {
        Role::User => {
            let mut out: Vec<Value> = message
                .content
                .iter()
                .filter_map(|block| match block {
                    ContentBlock::ToolResult { tool_use_id, content, is_error } => {
                        // Chat completions have no error flag; say it in words.
                        let content =
                            if *is_error { format!("Error: {content}") } else { content.clone() };
                        Some(json!({"role": "tool", "tool_call_id": tool_use_id, "content": content}))
                    }
                    _ => None,
                })
                .collect();
            if !text.is_empty() {
                out.push(json!({"role": "user", "content": text}));
            }
            out
        }
        Role::Assistant => {
            let calls: Vec<Value> = message
                .content
                .iter()
                .filter_map(|block| match block {
                    ContentBlock::ToolUse { id, name, input } => Some(json!({
                        "id": id,
                        "type": "function",
                        "function": {"name": name, "arguments": input.to_string()},
                    })),
                    _ => None,
                })
                .collect();
            let mut wire = json!({
                "role": "assistant",
                "content": if text.is_empty() { Value::Null } else { Value::String(text) },
            });
            if !calls.is_empty() {
                wire["tool_calls"] = Value::Array(calls);
            }
            vec![wire]
        }
    }
}

/// Maps a wire `finish_reason`.
pub fn finish_reason(wire: &str) -> StopReason {
    match wire {
        "stop" => StopReason::EndTurn,
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "length" => StopReason::MaxTokens,
        "content_filter" => StopReason::Refusal,
        other => StopReason::Other(other.to_owned()),
    }
}

#[derive(Debug, Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
    announced: bool,
}

/// Assembles one streamed completion.
#[derive(Debug, Default)]
struct OpenAiDecoder {
    model: String,
    text: String,
    calls: BTreeMap<u64, PartialCall>,
    finish_reason: Option<String>,
    usage: Usage,
}

impl StreamDecoder for OpenAiDecoder {
    fn on_event(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<Flow, Failure> {
        let data = event.data.trim();
        if data == "[DONE]" {
            return Ok(Flow::Done);
        }
        let chunk: Value = serde_json::from_str(data).map_err(|_| {
            let shown: String = data.chars().take(120).collect();
            Failure::stream(format!("malformed chunk: {shown}"))
        })?;
        if let Some(error) = chunk.get("error").filter(|e| !e.is_null()) {
            let kind = error["type"]
                .as_str()
                .or_else(|| error["code"].as_str())
                .unwrap_or("api_error")
                .to_owned();
            let message = error["message"]
                .as_str()
                .or_else(|| error.as_str())
                .unwrap_or("no message");
            let failure = ModelError::Api {
                status: status_of_error_kind(&kind),
                kind: kind.clone(),
                message: format!("error in the stream: {message}"),
            };
            return Err(if is_retryable_error_kind(&kind) {
                Failure::retryable(failure)
            } else {
                Failure::fatal(failure)
            });
        }
        if let Some(model) = chunk["model"].as_str().filter(|m| !m.is_empty()) {
            self.model = model.to_owned();
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            let prompt = usage["prompt_tokens"].as_u64().unwrap_or(0);
            let cached = usage["prompt_tokens_details"]["cached_tokens"]
                .as_u64()
                .unwrap_or(0);
            // Anthropic-style accounting: input excludes cache reads, so
            // pricing treats both providers alike.
            self.usage.input_tokens = prompt.saturating_sub(cached);
            self.usage.cache_read_input_tokens = cached;
            self.usage.output_tokens = usage["completion_tokens"].as_u64().unwrap_or(0);
        }
        let Some(choices) = chunk["choices"].as_array() else {
            return Ok(Flow::Continue);
        };
        for choice in choices
            .iter()
            .filter(|c| c["index"].as_u64().unwrap_or(0) == 0)
        {
            let delta = &choice["delta"];
            if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
                self.text.push_str(text);
                out.push(StreamEvent::TextDelta(text.to_owned()));
            }
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                let index = call["index"].as_u64().unwrap_or(self.calls.len() as u64);
                let partial = self.calls.entry(index).or_default();
                if let Some(id) = call["id"].as_str().filter(|id| !id.is_empty()) {
                    partial.id = id.to_owned();
                }
                if let Some(name) = call["function"]["name"].as_str() {
                    partial.name.push_str(name);
                }
                if let Some(arguments) = call["function"]["arguments"].as_str() {
                    partial.arguments.push_str(arguments);
                }
                if !partial.announced && !partial.name.is_empty() {
                    partial.announced = true;
                    if partial.id.is_empty() {
                        // Some local servers send no id; the engine needs one
                        // to pair the result with the call.
                        partial.id = format!("call_{index}");
                    }
                    out.push(StreamEvent::ToolUseStarted {
                        id: partial.id.clone(),
                        name: partial.name.clone(),
                    });
                }
            }
            if let Some(reason) = choice["finish_reason"].as_str() {
                self.finish_reason = Some(reason.to_owned());
            }
        }
        Ok(Flow::Continue)
    }

    fn finish(&mut self, saw_end: bool) -> Result<ModelResponse, Failure> {
        // Some servers close without `[DONE]`; a finish_reason is a complete
        // answer then, missing only the usage chunk.
        let Some(reason) = self.finish_reason.clone() else {
            return Err(Failure::stream(if saw_end {
                "the response ended without a finish_reason"
            } else {
                "the response ended before its finish_reason"
            }));
        };
        let mut content = Vec::new();
        if !self.text.is_empty() {
            content.push(ContentBlock::Text {
                text: std::mem::take(&mut self.text),
            });
        }
        for (index, call) in std::mem::take(&mut self.calls) {
            let id = if call.id.is_empty() {
                format!("call_{index}")
            } else {
                call.id
            };
            let input = if call.arguments.trim().is_empty() {
                json!({})
            } else {
                serde_json::from_str(&call.arguments).map_err(|err| {
                    Failure::stream(format!(
                        "arguments of tool call {} (index {index}) are not valid JSON: {err}",
                        call.name
                    ))
                })?
            };
            content.push(ContentBlock::ToolUse {
                id,
                name: call.name,
                input,
            });
        }
        let has_calls = content
            .iter()
            .any(|b| matches!(b, ContentBlock::ToolUse { .. }));
        let stop_reason = match finish_reason(&reason) {
            // Older Ollama versions report "stop" even when they called tools.
            StopReason::EndTurn if has_calls => StopReason::ToolUse,
            other => other,
        };
        Ok(ModelResponse {
            content,
            stop_reason,
            usage: self.usage,
            model: self.model.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SystemBlock, ToolSpec};

    #[test]
    fn request_shape() {
        let request = ModelRequest {
            model: "qwen3".into(),
            system: vec![
                SystemBlock {
                    text: "one".into(),
                    cache: true,
                },
                SystemBlock {
                    text: "two".into(),
                    cache: false,
                },
            ],
            tools: vec![ToolSpec {
                name: "read".into(),
                description: "Read a file".into(),
                input_schema: json!({"type": "object"}),
            }],
            messages: vec![
                Message {
                    role: Role::User,
                    content: vec![ContentBlock::Text { text: "hi".into() }],
                },
                Message {
                    role: Role::Assistant,
                    content: vec![ContentBlock::ToolUse {
                        id: "c1".into(),
                        name: "read".into(),
                        input: json!({"path": "a"}),
                    }],
                },
                Message {
                    role: Role::User,
                    content: vec![
                        ContentBlock::Text {
                            text: "and?".into(),
                        },
                        ContentBlock::ToolResult {
                            tool_use_id: "c1".into(),
                            content: "gone".into(),
                            is_error: true,
                        },
                    ],
                },
            ],
            max_tokens: 50,
        };
        let wire = serde_json::to_string_pretty(&request_body(&request)).unwrap();
        expect_test::expect![[r#"
            {
              "max_tokens": 50,
              "messages": [
                {
                  "content": "one\n\ntwo",
                  "role": "system"
                },
                {
                  "content": "hi",
                  "role": "user"
                },
                {
                  "content": null,
                  "role": "assistant",
                  "tool_calls": [
                    {
                      "function": {
                        "arguments": "{\"path\":\"a\"}",
                        "name": "read"
                      },
                      "id": "c1",
                      "type": "function"
                    }
                  ]
                },
                {
                  "content": "Error: gone",
                  "role": "tool",
                  "tool_call_id": "c1"
                },
                {
                  "content": "and?",
                  "role": "user"
                }
              ],
              "model": "qwen3",
              "stream": true,
              "stream_options": {
                "include_usage": true
              },
              "tools": [
                {
                  "function": {
                    "description": "Read a file",
                    "name": "read",
                    "parameters": {
                      "type": "object"
                    }
                  },
                  "type": "function"
                }
              ]
            }"#]]
        .assert_eq(&wire);
    }

    #[test]
    fn finish_reasons() {
        let got: Vec<StopReason> = ["stop", "tool_calls", "length", "content_filter", "eos"]
            .iter()
            .map(|r| finish_reason(r))
            .collect();
        assert_eq!(
            got,
            [
                StopReason::EndTurn,
                StopReason::ToolUse,
                StopReason::MaxTokens,
                StopReason::Refusal,
                StopReason::Other("eos".into()),
            ]
        );
    }

    fn decode(events: &[&str]) -> (Vec<StreamEvent>, Result<ModelResponse, Failure>) {
        let mut decoder = OpenAiDecoder::default();
        let mut out = Vec::new();
        let mut saw_end = false;
        for data in events {
            let event = SseEvent {
                event: "message".into(),
                data: (*data).into(),
                id: None,
            };
            match decoder.on_event(&event, &mut out) {
                Ok(Flow::Done) => {
                    saw_end = true;
                    break;
                }
                Ok(Flow::Continue) => {}
                Err(failure) => return (out, Err(failure)),
            }
        }
        (out, decoder.finish(saw_end))
    }

    #[test]
    fn ollama_style_whole_tool_call_without_id_and_stop() {
        let (events, response) = decode(&[
            r#"{"model":"llama3","choices":[{"index":0,"delta":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"read","arguments":"{\"path\":\"x\"}"}}]},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        ]);
        assert_eq!(
            events,
            [StreamEvent::ToolUseStarted {
                id: "call_0".into(),
                name: "read".into()
            }]
        );
        let response = response.unwrap();
        assert_eq!(response.stop_reason, StopReason::ToolUse);
        assert_eq!(
            response.content,
            [ContentBlock::ToolUse {
                id: "call_0".into(),
                name: "read".into(),
                input: json!({"path": "x"})
            }]
        );
        assert_eq!(response.model, "llama3");
    }

    #[test]
    fn stream_error_chunk() {
        let (_, response) =
            decode(&[r#"{"error":{"message":"model not loaded","type":"invalid_request_error"}}"#]);
        let failure = response.unwrap_err();
        assert!(!failure.retryable);
        assert_eq!(
            failure.error.to_string(),
            "model API rejected the request (400): error in the stream: model not loaded"
        );
    }
}
