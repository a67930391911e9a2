//! Wire types of the Redline protocol, shared by every transport (CLI JSON
//! output, LSP `redline/*` methods, the Office WebSocket, ACP).
//!
//! Data only: no logic, no IO. camelCase on the wire, `type`-tagged enums,
//! string ids. The engine emits these types directly as its event stream so
//! every front end renders the same thing.

use serde::{Deserialize, Serialize};

/// Identifies a task (`t-` + 16 hex digits).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(pub String);

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which model tier a task runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ModelTier {
    Fast,
    Deep,
    #[default]
    Auto,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum TaskMode {
    /// The model proposes a plan and waits for approval before working.
    PlanFirst,
    #[default]
    Direct,
}

/// Task lifecycle. `completed` is a task that finished without changing any
/// file (an answer, an explanation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskState {
    Queued,
    Planning,
    AwaitingPlanApproval,
    Running,
    AwaitingApproval,
    Proposed,
    Completed,
    Applied,
    PartiallyApplied,
    Rejected,
    Failed,
    Cancelled,
}

impl TaskState {
    /// True while the agent may still act (cancel applies).
    pub fn is_live(self) -> bool {
        matches!(
            self,
            TaskState::Queued
                | TaskState::Planning
                | TaskState::AwaitingPlanApproval
                | TaskState::Running
                | TaskState::AwaitingApproval
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Planning => "planning",
            TaskState::AwaitingPlanApproval => "awaiting-plan-approval",
            TaskState::Running => "running",
            TaskState::AwaitingApproval => "awaiting-approval",
            TaskState::Proposed => "proposed",
            TaskState::Completed => "completed",
            TaskState::Applied => "applied",
            TaskState::PartiallyApplied => "partially-applied",
            TaskState::Rejected => "rejected",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<TaskState> {
        serde_json::from_value(serde_json::Value::String(text.to_owned())).ok()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    Pending,
    InProgress,
    Done,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanStep {
    pub title: String,
    pub status: StepStatus,
}

/// Token use and estimated cost, cumulative for the task.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageSummary {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub cache_creation_input_tokens: u64,
    /// `None` when the model's price is unknown (local models).
    pub cost_usd: Option<f64>,
}

/// What an approval asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRequest {
    pub id: String,
    /// The tool asking, e.g. `run_command`.
    pub tool: String,
    /// One line a person can judge, e.g. `run \`npm test\` in the sandbox`.
    pub summary: String,
    /// The policy pattern "always allow" would persist.
    pub pattern: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalDecision {
    AllowOnce,
    AlwaysAllow,
    Deny,
}

/// A plan decision from the user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum PlanDecision {
    Approve,
    /// Revise: an edited plan or an extra instruction.
    Steer {
        instruction: String,
    },
    Cancel,
}

/// One entry of a task's ordered event stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskEvent {
    pub task_id: TaskId,
    /// Strictly increasing within a task, from 1.
    pub seq: u64,
    pub at_ms: i64,
    #[serde(flatten)]
    pub kind: TaskEventKind,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum TaskEventKind {
    StateChanged {
        state: TaskState,
        detail: Option<String>,
    },
    /// The model, tier and why it was chosen.
    ModelChosen {
        model: String,
        tier: ModelTier,
        reason: String,
    },
    /// Instruction files the task reads, in order.
    InstructionsLoaded {
        files: Vec<String>,
        warnings: Vec<String>,
    },
    PlanUpdated {
        steps: Vec<PlanStep>,
    },
    StepStarted {
        index: usize,
        title: String,
    },
    StepFinished {
        index: usize,
        title: String,
    },
    MessageDelta {
        text: String,
    },
    /// The full text of an assistant message once it is complete.
    Message {
        text: String,
    },
    ToolCall {
        call_id: String,
        tool: String,
        summary: String,
    },
    ToolResult {
        call_id: String,
        tool: String,
        summary: String,
        is_error: bool,
    },
    ApprovalRequested {
        request: ApprovalRequest,
    },
    ApprovalAnswered {
        id: String,
        decision: ApprovalDecision,
    },
    ProposalUpdated {
        proposal_id: String,
        files: usize,
        hunks: usize,
    },
    Retrying {
        attempt: u32,
        delay_ms: u64,
        reason: String,
    },
    Usage {
        usage: UsageSummary,
    },
    Applied {
        apply_id: String,
        files: usize,
        stale_hunks: usize,
    },
    Undone {
        apply_id: String,
        files: usize,
    },
}

/// A task as listed by `tasks` / `task/list`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSummary {
    pub id: TaskId,
    pub state: TaskState,
    pub prompt: String,
    pub folders: Vec<String>,
    pub model: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub proposal_id: Option<String>,
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_camel_case_and_type_tagged() {
        let event = TaskEvent {
            task_id: TaskId("t-1".into()),
            seq: 3,
            at_ms: 10,
            kind: TaskEventKind::ToolResult {
                call_id: "c1".into(),
                tool: "edit".into(),
                summary: "staged".into(),
                is_error: false,
            },
        };
        expect_test::expect![[r#"{"taskId":"t-1","seq":3,"atMs":10,"type":"toolResult","callId":"c1","tool":"edit","summary":"staged","isError":false}"#]]
            .assert_eq(&serde_json::to_string(&event).unwrap());
        let state = serde_json::to_string(&TaskState::AwaitingPlanApproval).unwrap();
        assert_eq!(state, "\"awaiting-plan-approval\"");
        assert_eq!(
            TaskState::parse("partially-applied"),
            Some(TaskState::PartiallyApplied)
        );
        for state in [
            TaskState::Queued,
            TaskState::Cancelled,
            TaskState::AwaitingApproval,
        ] {
            assert_eq!(TaskState::parse(state.as_str()), Some(state));
        }
    }
}
