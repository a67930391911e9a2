//! Client of Anthropic's Messages API (`POST /v1/messages`, streamed).
//!
//! Translates [`ModelRequest`] to the wire format (system blocks, tools with
//! prompt-caching breakpoints, messages with tool results first in the user
//! turn) and assembles the streamed events back into a [`ModelResponse`].
//! Retries, timeouts and cancellation live in [`super::retry`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
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

pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

/// How to reach the Messages API.
#[derive(Clone)]
pub struct AnthropicConfig {
    /// Scheme, host and optional path prefix; `/v1/messages` is appended.
    pub base_url: String,
    pub api_key: String,
    pub retry: RetryPolicy,
    /// Longest wait for the response headers of one attempt.
    pub request_timeout: Duration,
    /// Longest silence inside a streaming response (Anthropic pings every
    /// few seconds, so a long silence means a dead connection).
    pub idle_timeout: Duration,
    pub anthropic_version: String,
}

impl AnthropicConfig {
    pub fn new(api_key: impl Into<String>) -> AnthropicConfig {
        AnthropicConfig {
            api_key: api_key.into(),
            ..AnthropicConfig::default()
        }
    }
}

impl Default for AnthropicConfig {
    fn default() -> Self {
        AnthropicConfig {
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_key: String::new(),
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(90),
            anthropic_version: DEFAULT_ANTHROPIC_VERSION.to_owned(),
        }
    }
}

// Hand-written so the key never reaches a log line through `{:?}`.
impl fmt::Debug for AnthropicConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnthropicConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &"[redacted]")
            .field("retry", &self.retry)
            .field("request_timeout", &self.request_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("anthropic_version", &self.anthropic_version)
            .finish()
    }
}

/// A [`ModelClient`] for Anthropic's Messages API.
#[derive(Debug)]
pub struct AnthropicClient {
    transport: Transport,
}

impl AnthropicClient {
    /// Fails with [`ModelError::MissingApiKey`] when the key is empty.
    pub fn new(config: AnthropicConfig) -> Result<AnthropicClient, ModelError> {
        if config.api_key.trim().is_empty() {
            return Err(ModelError::MissingApiKey {
                env_var: "ANTHROPIC_API_KEY".to_owned(),
                section: "models.anthropic".to_owned(),
                config_hint: "the Redline config file".to_owned(),
            });
        }
        let url = format!("{}/v1/messages", config.base_url.trim_end_matches('/'));
        let mut headers = HeaderMap::new();
        let mut key =
            HeaderValue::from_str(config.api_key.trim()).map_err(|_| ModelError::Api {
                status: 0,
                kind: "authentication_error".to_owned(),
                message: "the API key contains characters that cannot be sent in a header"
                    .to_owned(),
            })?;
        key.set_sensitive(true);
        headers.insert("x-api-key", key);
        let version =
            HeaderValue::from_str(&config.anthropic_version).map_err(|_| ModelError::Api {
                status: 0,
                kind: "invalid_request_error".to_owned(),
                message: format!("invalid anthropic-version {:?}", config.anthropic_version),
            })?;
        headers.insert("anthropic-version", version);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let transport = Transport::new(
            config.retry,
            config.request_timeout,
            config.idle_timeout,
            Some(config.api_key.trim().to_owned()),
            url,
            headers,
        )?;
        Ok(AnthropicClient { transport })
    }

    async fn send_request(
        &self,
        request: &ModelRequest,
        sink: StreamSink<'_>,
        cancel: &CancellationToken,
    ) -> Result<ModelResponse, ModelError> {
        self.transport
            .send_json(
                &request_body(request),
                AnthropicDecoder::default,
                sink,
                cancel,
            )
            .await
    }
}

impl ModelClient for AnthropicClient {
    fn send<'a>(
        &'a self,
        request: &'a ModelRequest,
        sink: StreamSink<'a>,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<ModelResponse, ModelError>> {
        Box::pin(self.send_request(request, sink, cancel))
    }
}

fn ephemeral() -> Value {
    json!({"type": "ephemeral"})
}

/// The JSON body of a streamed Messages request.
pub fn request_body(request: &ModelRequest) -> Value {
    let mut body = json!({
        "model": request.model,
        "max_tokens": request.max_tokens,
        "stream": true,
        "messages": wire_messages(&request.messages),
    });
    if !request.system.is_empty() {
        let system: Vec<Value> = request
            .system
            .iter()
            .map(|block| {
                let mut wire = json!({"type": "text", "text": block.text});
                if block.cache {
                    wire["cache_control"] = ephemeral();
                }
                wire
            })
            .collect();
        body["system"] = Value::Array(system);
    }
    if !request.tools.is_empty() {
        let last = request.tools.len() - 1;
        let tools: Vec<Value> = request
            .tools
            .iter()
            .enumerate()
            .map(|(i, tool)| {
                let mut wire = json!({
                    "name": tool.name,
                    "description": tool.description,
                    "input_schema": tool.input_schema,
                });
                // Tools come first in the cached prefix; a breakpoint on the
                // last one caches them all.
                if i == last {
                    wire["cache_control"] = ephemeral();
                }
                wire
            })
            .collect();
        body["tools"] = Value::Array(tools);
    }
    body
}

/// Messages in the shape the API accepts: empty text blocks dropped (the
/// API rejects them), consecutive messages of one role merged, and in user
/// messages the `tool_result` blocks first, as the API requires them to
/// directly answer the previous assistant turn's `tool_use` blocks.
pub fn wire_messages(messages: &[Message]) -> Vec<Value> {
    let mut merged: Vec<(Role, Vec<&ContentBlock>)> = Vec::new();
    for message in messages {
        let blocks: Vec<&ContentBlock> = message
            .content
            .iter()
            .filter(|block| !matches!(block, ContentBlock::Text { text } if text.is_empty()))
            .collect();
        if blocks.is_empty() {
            continue;
        }
        match merged.last_mut() {
            Some((role, existing)) if *role == message.role => existing.extend(blocks),
            _ => merged.push((message.role, blocks)),
        }
    }
    merged
        .into_iter()
        .map(|(role, mut blocks)| {
            if role == Role::User {
                // A stable sort keeps the order within each group.
                blocks.sort_by_key(|block| !matches!(block, ContentBlock::ToolResult { .. }));
            }
            let role = match role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            let content: Vec<Value> = blocks.into_iter().map(wire_block).collect();
            json!({"role": role, "content": content})
        })
        .collect()
}

fn wire_block(block: &ContentBlock) -> Value {
    match block {
        ContentBlock::Text { text } => json!({"type": "text", "text": text}),
        ContentBlock::ToolUse { id, name, input } => {
            // The API wants an object; a model that sent something else
            // gets it back wrapped rather than a rejected conversation.
            let input = if input.is_object() {
                input.clone()
            } else {
                json!({"value": input})
            };
            json!({"type": "tool_use", "id": id, "name": name, "input": input})
        }
        ContentBlock::ToolResult {
            tool_use_id,
            content,
            is_error,
        } => {
            let mut wire =
                json!({"type": "tool_result", "tool_use_id": tool_use_id, "content": content});
            if *is_error {
                wire["is_error"] = Value::Bool(true);
            }
            wire
        }
    }
}

/// Maps a wire `stop_reason`.
pub fn stop_reason(wire: &str) -> StopReason {
    match wire {
        "end_turn" => StopReason::EndTurn,
        "tool_use" => StopReason::ToolUse,
        "max_tokens" => StopReason::MaxTokens,
        "stop_sequence" => StopReason::StopSequence,
        "pause_turn" => StopReason::PauseTurn,
        "refusal" => StopReason::Refusal,
        other => StopReason::Other(other.to_owned()),
    }
}

#[derive(Debug)]
enum PartialBlock {
    Text(String),
    ToolUse {
        id: String,
        name: String,
        json: String,
    },
    /// Thinking, server tools and future block types: not modelled, skipped.
    Ignored,
}

/// Assembles one streamed message.
#[derive(Debug, Default)]
struct AnthropicDecoder {
    model: String,
    blocks: BTreeMap<u64, PartialBlock>,
    stop_reason: Option<StopReason>,
    usage: Usage,
    started: bool,
}

impl AnthropicDecoder {
    /// Usage fields present in `wire` replace the running values: the
    /// counts in `message_delta` are cumulative, not increments.
    fn merge_usage(&mut self, wire: &Value) {
        let fields: [(&str, &mut u64); 4] = [
            ("input_tokens", &mut self.usage.input_tokens),
            ("output_tokens", &mut self.usage.output_tokens),
            (
                "cache_read_input_tokens",
                &mut self.usage.cache_read_input_tokens,
            ),
            (
                "cache_creation_input_tokens",
                &mut self.usage.cache_creation_input_tokens,
            ),
        ];
        for (name, slot) in fields {
            if let Some(value) = wire[name].as_u64() {
                *slot = value;
            }
        }
    }
}

fn malformed(what: &str, data: &str) -> Failure {
    let mut shown: String = data.chars().take(120).collect();
    if shown.len() < data.len() {
        shown.push('…');
    }
    Failure::stream(format!("malformed {what} event: {shown}"))
}

impl StreamDecoder for AnthropicDecoder {
    fn on_event(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<Flow, Failure> {
        if event.event == "ping" {
            return Ok(Flow::Continue);
        }
        let data: Value =
            serde_json::from_str(&event.data).map_err(|_| malformed(&event.event, &event.data))?;
        // The `type` inside the data is authoritative; the SSE event name
        // only repeats it.
        let kind = data["type"].as_str().unwrap_or(&event.event);
        match kind {
            "message_start" => {
                let message = &data["message"];
                self.started = true;
                if let Some(model) = message["model"].as_str() {
                    self.model = model.to_owned();
                }
                self.merge_usage(&message["usage"]);
            }
            "content_block_start" => {
                let index = data["index"]
                    .as_u64()
                    .ok_or_else(|| malformed(kind, &event.data))?;
                let block = &data["content_block"];
                let partial = match block["type"].as_str() {
                    Some("text") => {
                        PartialBlock::Text(block["text"].as_str().unwrap_or_default().to_owned())
                    }
                    Some("tool_use") => {
                        let id = block["id"].as_str().unwrap_or_default().to_owned();
                        let name = block["name"].as_str().unwrap_or_default().to_owned();
                        out.push(StreamEvent::ToolUseStarted {
                            id: id.clone(),
                            name: name.clone(),
                        });
                        PartialBlock::ToolUse {
                            id,
                            name,
                            json: String::new(),
                        }
                    }
                    _ => PartialBlock::Ignored,
                };
                if let PartialBlock::Text(text) = &partial
                    && !text.is_empty()
                {
                    out.push(StreamEvent::TextDelta(text.clone()));
                }
                self.blocks.insert(index, partial);
            }
            "content_block_delta" => {
                let index = data["index"]
                    .as_u64()
                    .ok_or_else(|| malformed(kind, &event.data))?;
                let delta = &data["delta"];
                match (self.blocks.get_mut(&index), delta["type"].as_str()) {
                    (Some(PartialBlock::Text(text)), Some("text_delta")) => {
                        let piece = delta["text"].as_str().unwrap_or_default();
                        if !piece.is_empty() {
                            text.push_str(piece);
                            out.push(StreamEvent::TextDelta(piece.to_owned()));
                        }
                    }
                    (Some(PartialBlock::ToolUse { json, .. }), Some("input_json_delta")) => {
                        json.push_str(delta["partial_json"].as_str().unwrap_or_default());
                    }
                    (None, _) => {
                        return Err(Failure::stream(format!(
                            "delta for content block {index}, which never started"
                        )));
                    }
                    // Thinking/signature deltas and deltas of ignored blocks.
                    _ => {}
                }
            }
            "content_block_stop" => {}
            "message_delta" => {
                if let Some(reason) = data["delta"]["stop_reason"].as_str() {
                    self.stop_reason = Some(stop_reason(reason));
                }
                self.merge_usage(&data["usage"]);
            }
            "message_stop" => return Ok(Flow::Done),
            "error" => {
                let error_kind = data["error"]["type"]
                    .as_str()
                    .unwrap_or("api_error")
                    .to_owned();
                let message = data["error"]["message"]
                    .as_str()
                    .unwrap_or("no message")
                    .to_owned();
                let error = ModelError::Api {
                    status: status_of_error_kind(&error_kind),
                    kind: error_kind.clone(),
                    message: format!("error event in the stream: {message}"),
                };
                return Err(if is_retryable_error_kind(&error_kind) {
                    Failure::retryable(error)
                } else {
                    Failure::fatal(error)
                });
            }
            // Event types added after this client was written.
            _ => tracing::debug!(event = kind, "ignoring unknown stream event"),
        }
        Ok(Flow::Continue)
    }

    fn finish(&mut self, saw_end: bool) -> Result<ModelResponse, Failure> {
        if !saw_end {
            return Err(Failure::stream(if self.started {
                "the response ended before message_stop".to_owned()
            } else {
                "the response ended before message_start".to_owned()
            }));
        }
        let mut content = Vec::new();
        for (index, block) in std::mem::take(&mut self.blocks) {
            match block {
                PartialBlock::Text(text) if !text.is_empty() => {
                    content.push(ContentBlock::Text { text })
                }
                PartialBlock::ToolUse { id, name, json } => {
                    let input = if json.trim().is_empty() {
                        json!({})
                    } else {
                        serde_json::from_str(&json).map_err(|err| {
                            Failure::stream(format!(
                                "input of tool call {name} (block {index}) is not valid JSON: {err}"
                            ))
                        })?
                    };
                    content.push(ContentBlock::ToolUse { id, name, input });
                }
                _ => {}
            }
        }
        let stop_reason = self.stop_reason.clone().ok_or_else(|| {
            Failure::stream("the response ended without a stop_reason".to_owned())
        })?;
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

    fn user(blocks: Vec<ContentBlock>) -> Message {
        Message {
            role: Role::User,
            content: blocks,
        }
    }

    fn assistant(blocks: Vec<ContentBlock>) -> Message {
        Message {
            role: Role::Assistant,
            content: blocks,
        }
    }

    fn text(t: &str) -> ContentBlock {
        ContentBlock::Text { text: t.to_owned() }
    }

    fn result(id: &str) -> ContentBlock {
        ContentBlock::ToolResult {
            tool_use_id: id.to_owned(),
            content: "ok".to_owned(),
            is_error: false,
        }
    }

    #[test]
    fn tool_results_go_first_and_same_roles_merge() {
        let messages = vec![
            user(vec![text("fix it")]),
            assistant(vec![
                text("Reading."),
                ContentBlock::ToolUse {
                    id: "t1".into(),
                    name: "read".into(),
                    input: json!({"path": "a"}),
                },
                ContentBlock::ToolUse {
                    id: "t2".into(),
                    name: "read".into(),
                    input: json!(null),
                },
            ]),
            user(vec![text("also this"), result("t1")]),
            user(vec![
                ContentBlock::ToolResult {
                    tool_use_id: "t2".into(),
                    content: "no such file".into(),
                    is_error: true,
                },
                text(""),
            ]),
            assistant(vec![text("")]),
        ];
        let wire = serde_json::to_string_pretty(&wire_messages(&messages)).unwrap();
        expect_test::expect![[r#"
            [
              {
                "content": [
                  {
                    "text": "fix it",
                    "type": "text"
                  }
                ],
                "role": "user"
              },
              {
                "content": [
                  {
                    "text": "Reading.",
                    "type": "text"
                  },
                  {
                    "id": "t1",
                    "input": {
                      "path": "a"
                    },
                    "name": "read",
                    "type": "tool_use"
                  },
                  {
                    "id": "t2",
                    "input": {
                      "value": null
                    },
                    "name": "read",
                    "type": "tool_use"
                  }
                ],
                "role": "assistant"
              },
              {
                "content": [
                  {
                    "content": "ok",
                    "tool_use_id": "t1",
                    "type": "tool_result"
                  },
                  {
                    "content": "no such file",
                    "is_error": true,
                    "tool_use_id": "t2",
                    "type": "tool_result"
                  },
                  {
                    "text": "also this",
                    "type": "text"
                  }
                ],
                "role": "user"
              }
            ]"#]]
        .assert_eq(&wire);
    }

    #[test]
    fn cache_breakpoints() {
        let request = ModelRequest {
            model: "claude-sonnet-4-6".into(),
            system: vec![
                SystemBlock {
                    text: "stable".into(),
                    cache: true,
                },
                SystemBlock {
                    text: "per task".into(),
                    cache: false,
                },
            ],
            tools: ["a", "b"]
                .iter()
                .map(|n| ToolSpec {
                    name: (*n).into(),
                    description: "d".into(),
                    input_schema: json!({"type": "object"}),
                })
                .collect(),
            messages: vec![user(vec![text("hi")])],
            max_tokens: 100,
        };
        let body = request_body(&request);
        assert_eq!(
            body["system"][0]["cache_control"],
            json!({"type": "ephemeral"})
        );
        assert_eq!(body["system"][1].get("cache_control"), None);
        assert_eq!(body["tools"][0].get("cache_control"), None);
        assert_eq!(
            body["tools"][1]["cache_control"],
            json!({"type": "ephemeral"})
        );
        assert_eq!(body["stream"], json!(true));
        assert_eq!(body["max_tokens"], json!(100));
    }

    #[test]
    fn stop_reasons() {
        let got: Vec<StopReason> = [
            "end_turn",
            "tool_use",
            "max_tokens",
            "stop_sequence",
            "pause_turn",
            "refusal",
            "model_context_window_exceeded",
        ]
        .iter()
        .map(|r| stop_reason(r))
        .collect();
        assert_eq!(
            got,
            [
                StopReason::EndTurn,
                StopReason::ToolUse,
                StopReason::MaxTokens,
                StopReason::StopSequence,
                StopReason::PauseTurn,
                StopReason::Refusal,
                StopReason::Other("model_context_window_exceeded".into()),
            ]
        );
    }
}
