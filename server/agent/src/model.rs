//! The model seam: the engine talks to any model through [`ModelClient`].
//!
//! Requests and responses are Redline's own types, close to Anthropic's
//! Messages API (the default provider); each client translates them to its
//! wire format. Streaming deltas reach the engine through a callback as they
//! arrive, so the user sees text live while the full response is assembled.

pub mod anthropic;
pub mod openai;
pub mod pricing;
pub mod retry;
pub mod sse;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// A tool the model may call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the tool's input object.
    pub input_schema: Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        content: String,
        is_error: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: Vec<ContentBlock>,
}

/// A block of the system prompt. `cache` marks the end of a stable prefix
/// (Anthropic prompt caching puts `cache_control` on it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SystemBlock {
    pub text: String,
    pub cache: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelRequest {
    /// Provider model id, e.g. `claude-sonnet-4-6`.
    pub model: String,
    pub system: Vec<SystemBlock>,
    pub tools: Vec<ToolSpec>,
    pub messages: Vec<Message>,
    pub max_tokens: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndTurn,
    ToolUse,
    MaxTokens,
    StopSequence,
    /// A server-side tool loop paused; send the response back to continue.
    PauseTurn,
    Refusal,
    /// A reason this client does not know, kept verbatim.
    Other(String),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub cache_creation_input_tokens: u64,
}

impl Usage {
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_read_input_tokens += other.cache_read_input_tokens;
        self.cache_creation_input_tokens += other.cache_creation_input_tokens;
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelResponse {
    pub content: Vec<ContentBlock>,
    pub stop_reason: StopReason,
    pub usage: Usage,
    /// The model id the provider reports.
    pub model: String,
}

/// What a client reports while a response streams in.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamEvent {
    TextDelta(String),
    ToolUseStarted {
        id: String,
        name: String,
    },
    /// A retryable failure; the client waits `delay_ms` and tries again.
    Retrying {
        attempt: u32,
        delay_ms: u64,
        reason: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("no API key: set {env_var} or `api_key` under [{section}] in {config_hint}")]
    MissingApiKey {
        env_var: String,
        section: String,
        config_hint: String,
    },
    #[error("model request cancelled")]
    Cancelled,
    #[error("model API rejected the request ({status}): {message}")]
    Api {
        status: u16,
        kind: String,
        message: String,
    },
    #[error("model API still failing after {attempts} attempts: {last}")]
    RetriesExhausted { attempts: u32, last: String },
    #[error("model stream broken: {0}")]
    Stream(String),
    #[error("model request timed out: {0}")]
    Timeout(String),
    #[error("cannot reach the model at {url}: {message}")]
    Network { url: String, message: String },
}

/// Streams deltas to the engine as they arrive.
pub type StreamSink<'a> = &'a (dyn Fn(StreamEvent) + Send + Sync);

/// A model provider. Implementations retry transient failures themselves and
/// return promptly with [`ModelError::Cancelled`] once `cancel` fires.
pub trait ModelClient: Send + Sync {
    fn send<'a>(
        &'a self,
        request: &'a ModelRequest,
        sink: StreamSink<'a>,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<ModelResponse, ModelError>>;
}
