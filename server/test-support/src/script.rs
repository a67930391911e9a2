//! The script a [`crate::MockModelServer`] answers from: conversations of
//! scripted turns, with optional faults. Loadable from JSON and TOML; the
//! format is documented with examples in `docs/mock-model.md`.

use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Everything the mock answers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    #[serde(default)]
    pub conversations: Vec<Conversation>,
    /// When set, requests must present this key (`x-api-key` for Anthropic,
    /// `Authorization: Bearer` for OpenAI) or get a 401, like the real APIs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

/// One scripted conversation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conversation {
    /// A substring of the first user message that selects this conversation.
    /// Without it, the conversation goes to the first conversation (by its
    /// first user message) that no other conversation matched or claimed.
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub match_text: Option<String>,
    #[serde(default)]
    pub turns: Vec<Turn>,
}

/// One assistant response. Which turn answers a request is the number of
/// assistant messages already in it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Turn {
    #[serde(default)]
    pub content: Vec<Item>,
    /// Anthropic spelling (`end_turn`, `tool_use`, `max_tokens`,
    /// `stop_sequence`, `pause_turn`, `refusal`, or anything else verbatim);
    /// mapped for OpenAI. Default: `tool_use` if the turn calls a tool, else
    /// `end_turn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<ScriptUsage>,
    /// Split text and tool-input JSON into deltas of this many characters
    /// (default: one delta per item).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_size: Option<usize>,
    /// Pause between stream events, for slow streams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Applied to the first attempts of this turn, one per attempt, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<Fault>,
}

/// A content item of a turn: `{"text": "…"}` or `{"tool_use": {…}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Item {
    Text(String),
    ToolUse(ToolUse),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolUse {
    pub name: String,
    #[serde(default = "empty_object")]
    pub input: Value,
    /// Default: a stable id derived from conversation, turn and position,
    /// so a retried request gets the same id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// Token counts to report; missing fields get defaults (input ≈ request
/// bytes / 4, output ≈ content characters / 4, cache 0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptUsage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cache_read_input_tokens: Option<u64>,
    pub cache_creation_input_tokens: Option<u64>,
}

/// One failure injected into one attempt. Exactly one of `status`,
/// `disconnect_after_events`, `malformed`, `error_event`, `hang` is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// Answer with this HTTP status and the provider's error body
    /// (529 → `overloaded_error`, 429 → `rate_limit_error`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// With `status`: a `retry-after` header, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// With `status`: a `retry-after-ms` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// Send this many stream events, then drop the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnect_after_events: Option<usize>,
    /// Send garbage instead of the next event, then end the stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub malformed: Option<bool>,
    /// Send an error event of this type (e.g. `overloaded_error`) mid-stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_event: Option<String>,
    /// Send the headers (and `after_events` events), then nothing, forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hang: Option<bool>,
    /// For `malformed`, `error_event` and `hang`: how many good events come
    /// first (default 2 for the first two, 0 for `hang`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_events: Option<usize>,
}

/// A validated [`Fault`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FaultKind {
    Status {
        status: u16,
        retry_after: Option<u64>,
        retry_after_ms: Option<u64>,
    },
    Disconnect {
        after_events: usize,
    },
    Malformed {
        after_events: usize,
    },
    ErrorEvent {
        kind: String,
        after_events: usize,
    },
    Hang {
        after_events: usize,
    },
}

impl Fault {
    pub(crate) fn kind(&self) -> anyhow::Result<FaultKind> {
        let mut kinds = Vec::new();
        if let Some(status) = self.status {
            if !(400..=599).contains(&status) {
                bail!("status {status} is not an error status (400-599)");
            }
            kinds.push(FaultKind::Status {
                status,
                retry_after: self.retry_after,
                retry_after_ms: self.retry_after_ms,
            });
        }
        if let Some(after_events) = self.disconnect_after_events {
            kinds.push(FaultKind::Disconnect { after_events });
        }
        if self.malformed == Some(true) {
            kinds.push(FaultKind::Malformed {
                after_events: self.after_events.unwrap_or(2),
            });
        }
        if let Some(kind) = &self.error_event {
            kinds.push(FaultKind::ErrorEvent {
                kind: kind.clone(),
                after_events: self.after_events.unwrap_or(2),
            });
        }
        if self.hang == Some(true) {
            kinds.push(FaultKind::Hang {
                after_events: self.after_events.unwrap_or(0),
            });
        }
        match kinds.len() {
            1 => Ok(kinds.remove(0)),
            0 => bail!(
                "sets no fault (status, disconnect_after_events, malformed, error_event or hang)"
            ),
            _ => bail!("sets more than one fault; use one fault entry per attempt"),
        }
    }
}

impl Script {
    /// A script from JSON: an object `{"conversations": [...]}` or just the
    /// list of conversations.
    pub fn from_json_str(text: &str) -> anyhow::Result<Script> {
        let value: Value = serde_json::from_str(text).context("script is not valid JSON")?;
        Script::from_value(value)
    }

    /// A script from a JSON value (handy with `serde_json::json!` in tests).
    pub fn from_value(value: Value) -> anyhow::Result<Script> {
        let value = match value {
            Value::Array(conversations) => serde_json::json!({ "conversations": conversations }),
            other => other,
        };
        let script: Script =
            serde_json::from_value(value).context("script does not match the script format")?;
        script.validate()?;
        Ok(script)
    }

    pub fn from_toml_str(text: &str) -> anyhow::Result<Script> {
        let script: Script = toml::from_str(text).context("script is not a valid TOML script")?;
        script.validate()?;
        Ok(script)
    }

    /// Loads a `.toml` file as TOML and anything else as JSON.
    pub fn load(path: &Path) -> anyhow::Result<Script> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read script {}", path.display()))?;
        let script = if path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("toml"))
        {
            Script::from_toml_str(&text)
        } else {
            Script::from_json_str(&text)
        };
        script.with_context(|| format!("in script {}", path.display()))
    }

    /// A script of one conversation answering every first message.
    pub fn single(turns: Vec<Turn>) -> Script {
        Script {
            conversations: vec![Conversation {
                match_text: None,
                turns,
            }],
            api_key: None,
        }
    }

    /// Checks every fault names exactly one failure.
    pub fn validate(&self) -> anyhow::Result<()> {
        for (c, conversation) in self.conversations.iter().enumerate() {
            for (t, turn) in conversation.turns.iter().enumerate() {
                if turn.chunk_size == Some(0) {
                    bail!("conversation {c}, turn {t}: chunk_size must be at least 1");
                }
                for (f, fault) in turn.faults.iter().enumerate() {
                    fault
                        .kind()
                        .with_context(|| format!("conversation {c}, turn {t}, fault {f}"))?;
                }
            }
        }
        Ok(())
    }
}

impl Turn {
    /// A turn answering with one text.
    pub fn text(text: impl Into<String>) -> Turn {
        Turn {
            content: vec![Item::Text(text.into())],
            ..Turn::default()
        }
    }

    /// A turn calling one tool.
    pub fn tool_use(name: impl Into<String>, input: Value) -> Turn {
        Turn {
            content: vec![Item::ToolUse(ToolUse {
                name: name.into(),
                input,
                id: None,
            })],
            ..Turn::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_toml_agree() {
        let json = Script::from_json_str(
            r#"[{"match": "weekly report", "turns": [
                {"content": [{"text": "Reading."}, {"tool_use": {"name": "read", "input": {"path": "a.md"}}}],
                 "chunk_size": 3, "faults": [{"status": 429, "retry_after": 1}, {"hang": true}]},
                {"content": [{"text": "Done."}], "usage": {"input_tokens": 10}}
            ]}]"#,
        )
        .unwrap();
        let toml = Script::from_toml_str(
            r#"
            [[conversations]]
            match = "weekly report"

            [[conversations.turns]]
            content = [{ text = "Reading." }, { tool_use = { name = "read", input = { path = "a.md" } } }]
            chunk_size = 3
            faults = [{ status = 429, retry_after = 1 }, { hang = true }]

            [[conversations.turns]]
            content = [{ text = "Done." }]
            usage = { input_tokens = 10 }
            "#,
        )
        .unwrap();
        assert_eq!(json, toml);
    }

    #[test]
    fn bad_scripts_say_where() {
        fn check(json: &str, expect: &str) {
            let err = format!("{:#}", Script::from_json_str(json).unwrap_err());
            assert!(err.contains(expect), "{err}");
        }
        check(
            r#"[{"turns": [{"faults": [{}]}]}]"#,
            "conversation 0, turn 0, fault 0: sets no fault",
        );
        check(
            r#"[{"turns": [{"faults": [{"status": 500, "hang": true}]}]}]"#,
            "more than one fault",
        );
        check(
            r#"[{"turns": [{"faults": [{"status": 200}]}]}]"#,
            "not an error status",
        );
        check(
            r#"[{"turns": [{"contents": []}]}]"#,
            "unknown field `contents`",
        );
        check(
            r#"[{"turns": [{"chunk_size": 0}]}]"#,
            "chunk_size must be at least 1",
        );
    }
}
