//! The two wire dialects the mock speaks: Anthropic Messages and OpenAI chat
//! completions. Building responses (streamed events or one JSON body) from a
//! scripted turn, error bodies, and the request checks the real APIs make.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::script::{Item, Turn};

/// The turn to answer, resolved against a request.
pub(crate) struct Answer<'a> {
    pub turn: &'a Turn,
    pub conversation: usize,
    pub turn_index: usize,
    pub model: String,
    /// Default input token count when the script gives none.
    pub input_estimate: u64,
}

pub(crate) struct ResolvedUsage {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_creation: u64,
}

impl Answer<'_> {
    fn tool_id(&self, prefix: &str, position: usize, given: Option<&String>) -> String {
        match given {
            Some(id) => id.clone(),
            None => format!(
                "{prefix}_mock_{}_{}_{position}",
                self.conversation, self.turn_index
            ),
        }
    }

    fn stop_reason(&self) -> String {
        self.turn.stop_reason.clone().unwrap_or_else(|| {
            let calls_tool = self
                .turn
                .content
                .iter()
                .any(|item| matches!(item, Item::ToolUse(_)));
            if calls_tool { "tool_use" } else { "end_turn" }.to_owned()
        })
    }

    fn usage(&self) -> ResolvedUsage {
        let scripted = self.turn.usage.unwrap_or_default();
        let content_chars: usize = self
            .turn
            .content
            .iter()
            .map(|item| match item {
                Item::Text(text) => text.chars().count(),
                Item::ToolUse(tool) => tool.input.to_string().len() + tool.name.len(),
            })
            .sum();
        ResolvedUsage {
            input: scripted.input_tokens.unwrap_or(self.input_estimate),
            output: scripted
                .output_tokens
                .unwrap_or(content_chars as u64 / 4 + 1),
            cache_read: scripted.cache_read_input_tokens.unwrap_or(0),
            cache_creation: scripted.cache_creation_input_tokens.unwrap_or(0),
        }
    }

    fn chunks(&self, text: &str) -> Vec<String> {
        chunk(text, self.turn.chunk_size)
    }
}

/// Splits `text` into pieces of `size` characters (one piece without a size).
pub(crate) fn chunk(text: &str, size: Option<usize>) -> Vec<String> {
    let Some(size) = size.filter(|&s| s > 0) else {
        return vec![text.to_owned()];
    };
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(size)
        .map(|piece| piece.iter().collect())
        .collect()
}

pub(crate) fn sse(event: Option<&str>, data: &Value) -> String {
    match event {
        Some(name) => format!("event: {name}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}

/// Garbage that no SSE consumer can decode as JSON.
pub(crate) fn malformed_frame(anthropic: bool) -> String {
    if anthropic {
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_del\n\n"
            .to_owned()
    } else {
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\n\n".to_owned()
    }
}

// ---- Anthropic ----

pub(crate) fn anthropic_frames(answer: &Answer<'_>) -> Vec<String> {
    let usage = answer.usage();
    let mut frames = vec![
        sse(
            Some("message_start"),
            &json!({
                "type": "message_start",
                "message": {
                    "id": format!("msg_mock_{}_{}", answer.conversation, answer.turn_index),
                    "type": "message",
                    "role": "assistant",
                    "model": answer.model,
                    "content": [],
                    "stop_reason": null,
                    "stop_sequence": null,
                    "usage": {
                        "input_tokens": usage.input,
                        "cache_creation_input_tokens": usage.cache_creation,
                        "cache_read_input_tokens": usage.cache_read,
                        "output_tokens": 1,
                    },
                },
            }),
        ),
        sse(Some("ping"), &json!({"type": "ping"})),
    ];
    for (index, item) in answer.turn.content.iter().enumerate() {
        match item {
            Item::Text(text) => {
                frames.push(sse(
                    Some("content_block_start"),
                    &json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
                ));
                for piece in answer.chunks(text) {
                    frames.push(sse(
                        Some("content_block_delta"),
                        &json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}}),
                    ));
                }
            }
            Item::ToolUse(tool) => {
                let id = answer.tool_id("toolu", index, tool.id.as_ref());
                frames.push(sse(
                    Some("content_block_start"),
                    &json!({"type": "content_block_start", "index": index,
                            "content_block": {"type": "tool_use", "id": id, "name": tool.name, "input": {}}}),
                ));
                // An empty input streams no JSON at all, as the real API does
                // for tools without parameters.
                let is_empty_object = tool.input.as_object().is_some_and(|o| o.is_empty());
                if !is_empty_object {
                    for piece in answer.chunks(&tool.input.to_string()) {
                        frames.push(sse(
                            Some("content_block_delta"),
                            &json!({"type": "content_block_delta", "index": index,
                                    "delta": {"type": "input_json_delta", "partial_json": piece}}),
                        ));
                    }
                }
            }
        }
        frames.push(sse(
            Some("content_block_stop"),
            &json!({"type": "content_block_stop", "index": index}),
        ));
    }
    frames.push(sse(
        Some("message_delta"),
        &json!({"type": "message_delta", "delta": {"stop_reason": answer.stop_reason(), "stop_sequence": null},
                "usage": {"output_tokens": usage.output}}),
    ));
    frames.push(sse(Some("message_stop"), &json!({"type": "message_stop"})));
    frames
}

pub(crate) fn anthropic_message(answer: &Answer<'_>) -> Value {
    let usage = answer.usage();
    let content: Vec<Value> = answer
        .turn
        .content
        .iter()
        .enumerate()
        .map(|(index, item)| match item {
            Item::Text(text) => json!({"type": "text", "text": text}),
            Item::ToolUse(tool) => {
                json!({"type": "tool_use", "id": answer.tool_id("toolu", index, tool.id.as_ref()),
                                          "name": tool.name, "input": tool.input})
            }
        })
        .collect();
    json!({
        "id": format!("msg_mock_{}_{}", answer.conversation, answer.turn_index),
        "type": "message",
        "role": "assistant",
        "model": answer.model,
        "content": content,
        "stop_reason": answer.stop_reason(),
        "stop_sequence": null,
        "usage": {
            "input_tokens": usage.input,
            "output_tokens": usage.output,
            "cache_creation_input_tokens": usage.cache_creation,
            "cache_read_input_tokens": usage.cache_read,
        },
    })
}

pub(crate) fn anthropic_error(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

pub(crate) fn anthropic_error_event(kind: &str) -> String {
    sse(Some("error"), &anthropic_error(kind, &error_message(kind)))
}

pub(crate) fn error_kind_of_status(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

pub(crate) fn status_of_error_kind(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "permission_error" => 403,
        "not_found_error" => 404,
        "rate_limit_error" => 429,
        "overloaded_error" => 529,
        _ => 500,
    }
}

pub(crate) fn error_message(kind: &str) -> String {
    match kind {
        "overloaded_error" => "Overloaded".to_owned(),
        "rate_limit_error" => {
            "Number of request tokens has exceeded your per-minute rate limit (mock)".to_owned()
        }
        "api_error" => "Internal server error (mock)".to_owned(),
        "authentication_error" => "invalid x-api-key".to_owned(),
        other => format!("{other} (mock)"),
    }
}

/// Text of the first user message, for conversation matching.
pub(crate) fn first_user_text(body: &Value) -> String {
    let Some(messages) = body["messages"].as_array() else {
        return String::new();
    };
    let Some(first) = messages.iter().find(|m| m["role"] == "user") else {
        return String::new();
    };
    content_text(&first["content"])
}

fn content_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| p["type"] == "text")
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

pub(crate) fn assistant_count(body: &Value) -> usize {
    body["messages"].as_array().map_or(0, |messages| {
        messages.iter().filter(|m| m["role"] == "assistant").count()
    })
}

fn blocks(content: &Value) -> Vec<&Value> {
    match content {
        Value::Array(parts) => parts.iter().collect(),
        _ => Vec::new(),
    }
}

fn ids_of<'a>(blocks: &[&'a Value], kind: &str, field: &str) -> Vec<&'a str> {
    blocks
        .iter()
        .filter(|b| b["type"] == kind)
        .filter_map(|b| b[field].as_str())
        .collect()
}

/// The checks the Messages API makes that catch engine bugs, with messages
/// modelled on the real ones.
pub(crate) fn validate_anthropic(body: &Value) -> Result<(), String> {
    if !body.is_object() {
        return Err("request body must be a JSON object".into());
    }
    if !body["model"].is_string() {
        return Err("model: Field required".into());
    }
    if !body["max_tokens"].is_u64() {
        return Err("max_tokens: Field required".into());
    }
    let Some(messages) = body["messages"].as_array().filter(|m| !m.is_empty()) else {
        return Err("messages: at least one message is required".into());
    };
    if messages[0]["role"] != "user" {
        return Err("messages.0.role: the first message must use the \"user\" role".into());
    }
    if let Some(tools) = body["tools"].as_array() {
        for (i, tool) in tools.iter().enumerate() {
            if !tool["name"].is_string() || !tool["input_schema"].is_object() {
                return Err(format!(
                    "tools.{i}: a tool needs a name and an input_schema object"
                ));
            }
        }
    }
    for (i, message) in messages.iter().enumerate() {
        let role = message["role"].as_str().unwrap_or_default();
        if role != "user" && role != "assistant" {
            return Err(format!(
                "messages.{i}.role: Input should be 'user' or 'assistant'"
            ));
        }
        let content = &message["content"];
        if content.as_str().is_some_and(str::is_empty) {
            return Err(format!(
                "messages.{i}: all messages must have non-empty content"
            ));
        }
        let blocks = blocks(content);
        if content.is_array() && blocks.is_empty() {
            return Err(format!(
                "messages.{i}: all messages must have non-empty content"
            ));
        }
        for (j, block) in blocks.iter().enumerate() {
            if block["type"] == "text" && block["text"].as_str().is_none_or(str::is_empty) {
                return Err(format!(
                    "messages.{i}.content.{j}.text: text content blocks must be non-empty"
                ));
            }
        }
        let results = ids_of(&blocks, "tool_result", "tool_use_id");
        if role == "assistant" && !results.is_empty() {
            return Err(format!(
                "messages.{i}: tool_result blocks are only allowed in user messages"
            ));
        }
        if role == "user" && !results.is_empty() {
            let previous_uses: BTreeSet<&str> = match i.checked_sub(1).map(|p| &messages[p]) {
                Some(previous) if previous["role"] == "assistant" => {
                    ids_of(&blocks_of(previous), "tool_use", "id")
                        .into_iter()
                        .collect()
                }
                _ => BTreeSet::new(),
            };
            let unexpected: Vec<&str> = results
                .iter()
                .copied()
                .filter(|id| !previous_uses.contains(id))
                .collect();
            if !unexpected.is_empty() {
                return Err(format!(
                    "messages.{i}.content.0: unexpected `tool_use_id` found in `tool_result` blocks: {}. \
                     Each `tool_result` block must have a corresponding `tool_use` block in the previous message.",
                    unexpected.join(", ")
                ));
            }
        }
        if role == "assistant" {
            let uses = ids_of(&blocks, "tool_use", "id");
            if uses.is_empty() {
                continue;
            }
            let next = messages.get(i + 1);
            let leading_results: BTreeSet<&str> = match next {
                Some(next) if next["role"] == "user" => blocks_of(next)
                    .iter()
                    .take_while(|b| b["type"] == "tool_result")
                    .filter_map(|b| b["tool_use_id"].as_str())
                    .collect(),
                _ => BTreeSet::new(),
            };
            let missing: Vec<&str> = uses
                .iter()
                .copied()
                .filter(|id| !leading_results.contains(id))
                .collect();
            if !missing.is_empty() {
                return Err(format!(
                    "messages.{}: `tool_use` ids were found without `tool_result` blocks immediately after: {}. \
                     Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
                    i + 1,
                    missing.join(", ")
                ));
            }
        }
    }
    Ok(())
}

fn blocks_of(message: &Value) -> Vec<&Value> {
    blocks(&message["content"])
}

// ---- OpenAI ----

fn openai_finish_reason(stop_reason: &str) -> String {
    match stop_reason {
        "end_turn" | "stop_sequence" => "stop",
        "tool_use" => "tool_calls",
        "max_tokens" => "length",
        "refusal" => "content_filter",
        other => other,
    }
    .to_owned()
}

fn openai_usage(usage: &ResolvedUsage) -> Value {
    let prompt = usage.input + usage.cache_read;
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": usage.output,
        "total_tokens": prompt + usage.output,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read},
    })
}

pub(crate) fn openai_frames(answer: &Answer<'_>, include_usage: bool) -> Vec<String> {
    let id = format!(
        "chatcmpl-mock-{}-{}",
        answer.conversation, answer.turn_index
    );
    let chunk = |delta: Value, finish: Value| {
        sse(
            None,
            &json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": answer.model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
        )
    };
    let mut frames = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    let mut call_index = 0;
    for (position, item) in answer.turn.content.iter().enumerate() {
        match item {
            Item::Text(text) => {
                for piece in answer.chunks(text) {
                    frames.push(chunk(json!({"content": piece}), Value::Null));
                }
            }
            Item::ToolUse(tool) => {
                let call_id = answer.tool_id("call", position, tool.id.as_ref());
                frames.push(chunk(
                    json!({"tool_calls": [{"index": call_index, "id": call_id, "type": "function",
                                            "function": {"name": tool.name, "arguments": ""}}]}),
                    Value::Null,
                ));
                for piece in answer.chunks(&tool.input.to_string()) {
                    frames.push(chunk(
                        json!({"tool_calls": [{"index": call_index, "function": {"arguments": piece}}]}),
                        Value::Null,
                    ));
                }
                call_index += 1;
            }
        }
    }
    frames.push(chunk(
        json!({}),
        Value::String(openai_finish_reason(&answer.stop_reason())),
    ));
    if include_usage {
        frames.push(sse(
            None,
            &json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": answer.model,
                    "choices": [], "usage": openai_usage(&answer.usage())}),
        ));
    }
    frames.push("data: [DONE]\n\n".to_owned());
    frames
}

pub(crate) fn openai_completion(answer: &Answer<'_>) -> Value {
    let mut text = String::new();
    let mut calls = Vec::new();
    for (position, item) in answer.turn.content.iter().enumerate() {
        match item {
            Item::Text(t) => text.push_str(t),
            Item::ToolUse(tool) => calls.push(json!({
                "id": answer.tool_id("call", position, tool.id.as_ref()),
                "type": "function",
                "function": {"name": tool.name, "arguments": tool.input.to_string()},
            })),
        }
    }
    let mut message = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { Value::String(text) }});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    json!({
        "id": format!("chatcmpl-mock-{}-{}", answer.conversation, answer.turn_index),
        "object": "chat.completion",
        "created": 0,
        "model": answer.model,
        "choices": [{"index": 0, "message": message, "finish_reason": openai_finish_reason(&answer.stop_reason())}],
        "usage": openai_usage(&answer.usage()),
    })
}

pub(crate) fn openai_error(kind: &str, message: &str) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
}

pub(crate) fn openai_error_event(kind: &str) -> String {
    sse(None, &openai_error(kind, &error_message(kind)))
}

/// The chat completions checks that catch tool-call pairing bugs.
pub(crate) fn validate_openai(body: &Value) -> Result<(), String> {
    if !body["model"].is_string() {
        return Err("you must provide a model parameter".into());
    }
    let Some(messages) = body["messages"].as_array().filter(|m| !m.is_empty()) else {
        return Err("'messages' must contain at least one message".into());
    };
    let mut open_calls: Vec<String> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let role = message["role"].as_str().unwrap_or_default();
        if role == "tool" {
            let id = message["tool_call_id"].as_str().unwrap_or_default();
            let Some(position) = open_calls.iter().position(|open| open == id) else {
                return Err(format!(
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message \
                     with 'tool_calls' (messages.[{i}], tool_call_id {id:?})"
                ));
            };
            open_calls.remove(position);
            continue;
        }
        if !open_calls.is_empty() {
            return Err(format!(
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each \
                 'tool_call_id'. The following tool_call_ids did not have response messages: {}",
                open_calls.join(", ")
            ));
        }
        match role {
            "system" | "user" | "developer" => {}
            "assistant" => {
                open_calls = message["tool_calls"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|call| call["id"].as_str().map(str::to_owned))
                    .collect();
            }
            other => return Err(format!("messages.[{i}].role: invalid role {other:?}")),
        }
    }
    if !open_calls.is_empty() {
        return Err(format!(
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each \
             'tool_call_id'. The following tool_call_ids did not have response messages: {}",
            open_calls.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks() {
        assert_eq!(chunk("héllo", Some(2)), ["hé", "ll", "o"]);
        assert_eq!(chunk("abc", None), ["abc"]);
        assert_eq!(chunk("", Some(3)), Vec::<String>::new());
    }

    fn check_anthropic(messages: Value, expect: &str) {
        let body = json!({"model": "m", "max_tokens": 10, "messages": messages});
        let got = match validate_anthropic(&body) {
            Ok(()) => "ok".to_owned(),
            Err(message) => message,
        };
        assert!(got.starts_with(expect), "got {got:?}, expected {expect:?}");
    }

    #[test]
    fn anthropic_pairing() {
        let tool_use = json!({"role": "assistant", "content": [
            {"type": "text", "text": "x"}, {"type": "tool_use", "id": "a", "name": "n", "input": {}}]});
        let result = |id: &str| json!({"type": "tool_result", "tool_use_id": id, "content": "r"});
        check_anthropic(json!([{"role": "user", "content": "hi"}]), "ok");
        check_anthropic(
            json!([{"role": "user", "content": "hi"}, tool_use, {"role": "user", "content": [result("a"), {"type": "text", "text": "t"}]}]),
            "ok",
        );
        check_anthropic(
            json!([{"role": "user", "content": "hi"}, tool_use, {"role": "user", "content": [{"type": "text", "text": "t"}, result("a")]}]),
            "messages.2: `tool_use` ids were found without `tool_result` blocks immediately after: a.",
        );
        check_anthropic(
            json!([{"role": "user", "content": "hi"}, tool_use]),
            "messages.2: `tool_use` ids were found without",
        );
        check_anthropic(
            json!([{"role": "user", "content": "hi"}, tool_use, {"role": "user", "content": [result("a"), result("b")]}]),
            "messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: b.",
        );
        check_anthropic(
            json!([{"role": "assistant", "content": "hi"}]),
            "messages.0.role",
        );
        check_anthropic(
            json!([{"role": "user", "content": [{"type": "text", "text": ""}]}]),
            "messages.0.content.0.text: text content blocks must be non-empty",
        );
    }

    #[test]
    fn openai_pairing() {
        fn check(messages: Value, expect: &str) {
            let got = match validate_openai(&json!({"model": "m", "messages": messages})) {
                Ok(()) => "ok".to_owned(),
                Err(message) => message,
            };
            assert!(got.starts_with(expect), "got {got:?}, expected {expect:?}");
        }
        let call = json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "n", "arguments": "{}"}}]});
        check(
            json!([{"role": "user", "content": "hi"}, call, {"role": "tool", "tool_call_id": "c1", "content": "r"}]),
            "ok",
        );
        check(
            json!([{"role": "user", "content": "hi"}, call, {"role": "user", "content": "r"}]),
            "An assistant message with 'tool_calls'",
        );
        check(
            json!([{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "c1", "content": "r"}]),
            "Invalid parameter",
        );
    }
}
