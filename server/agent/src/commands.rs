//! The `run_command` tool: runs a command in the sandbox over the task's
//! staged view, and stages whatever the command changed.
//!
//! Offered to the model only when a sandbox backend works on this machine; a
//! task never runs commands on the host.

use std::sync::Arc;
use std::time::Duration;

use redline_protocol::{ApprovalDecision, ApprovalRequest, TaskEventKind, TaskState};
use serde_json::{Value, json};

use crate::agent_loop::{LoopError, error_output};
use crate::config::{CommandPolicy, Config};
use crate::engine::TaskContext;
use crate::model::ToolSpec;
use crate::tools::ToolOutput;
use crate::workspace::Workspace;

pub const RUN_COMMAND: &str = "run_command";

/// Output the model sees per stream; the rest is cut with a marker.
const MODEL_OUTPUT_BYTES: usize = 16 * 1024;

pub(crate) struct CommandRunner {
    sandbox: Option<Arc<dyn redline_vm::Sandbox>>,
    timeout: Duration,
    policy: CommandPolicy,
    /// "Always allow" answers, for the rest of this task.
    always_allowed: std::sync::atomic::AtomicBool,
    approvals_asked: std::sync::atomic::AtomicU32,
}

impl CommandRunner {
    pub(crate) fn new(sandbox: Option<Arc<dyn redline_vm::Sandbox>>, config: &Config) -> Self {
        let sandbox = if config.command_policy == CommandPolicy::Deny {
            None
        } else {
            sandbox
        };
        CommandRunner {
            sandbox,
            timeout: config.command_timeout,
            policy: config.command_policy,
            always_allowed: std::sync::atomic::AtomicBool::new(false),
            approvals_asked: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// Asks the user before a command runs when the policy says `ask`.
    async fn approve(&self, context: &TaskContext, command: &str) -> Result<bool, LoopError> {
        use std::sync::atomic::Ordering;
        if self.policy == CommandPolicy::Allow || self.always_allowed.load(Ordering::SeqCst) {
            return Ok(true);
        }
        let number = self.approvals_asked.fetch_add(1, Ordering::SeqCst) + 1;
        let request = ApprovalRequest {
            id: format!("approval-{number}"),
            tool: RUN_COMMAND.into(),
            summary: format!("run `{command}` in the sandbox"),
            pattern: RUN_COMMAND.into(),
        };
        let answer = context.register_approval(&request.id);
        // The task is awaiting approval before anyone hears of the request,
        // so a front end that answers at once sees a consistent state.
        context.set_state(TaskState::AwaitingApproval, Some(request.summary.clone()));
        context.emit(TaskEventKind::ApprovalRequested {
            request: request.clone(),
        });
        let decision = tokio::select! {
            decision = answer => decision.unwrap_or(ApprovalDecision::Deny),
            () = context.task.cancel.cancelled() => return Err(LoopError::Cancelled),
        };
        context.emit(TaskEventKind::ApprovalAnswered {
            id: request.id,
            decision,
        });
        context.set_state(TaskState::Running, None);
        if decision == ApprovalDecision::AlwaysAllow {
            self.always_allowed.store(true, Ordering::SeqCst);
        }
        Ok(decision != ApprovalDecision::Deny)
    }

    pub(crate) fn tool_spec(&self) -> Option<ToolSpec> {
        self.sandbox.as_ref()?;
        Some(ToolSpec {
            name: RUN_COMMAND.into(),
            description: "Run a command in an isolated sandbox that sees the granted folders with your staged changes applied. Files the command creates, changes or deletes become part of your proposal (nothing touches the user's files). No network. Each granted folder is mounted at /work/<folder name>; the working directory defaults to the first folder.".into(),
            input_schema: json!({
                "type": "object",
                "properties": {
                    "command": { "type": "string", "description": "Shell command, run with `sh -c`." },
                    "cwd": { "type": "string", "description": "Directory relative to the first granted folder." },
                    "timeout_secs": { "type": "integer", "minimum": 1, "maximum": 600 }
                },
                "required": ["command"],
                "additionalProperties": false
            }),
        })
    }

    pub(crate) async fn run(
        &self,
        context: &TaskContext,
        workspace: &mut Workspace,
        input: &Value,
    ) -> Result<ToolOutput, LoopError> {
        let Some(sandbox) = self.sandbox.clone() else {
            return Ok(error_output(
                "run_command is not available: no sandbox works on this machine (see `redline doctor`)",
            ));
        };
        let Some(command) = input
            .get("command")
            .and_then(Value::as_str)
            .filter(|c| !c.trim().is_empty())
        else {
            return Ok(error_output(
                "run_command needs `command`: a non-empty shell command string",
            ));
        };
        if !self.approve(context, command).await? {
            return Ok(error_output(&format!(
                "the user denied running `{command}`; do not retry it"
            )));
        }
        let timeout = input
            .get("timeout_secs")
            .and_then(Value::as_u64)
            .map(|s| Duration::from_secs(s.clamp(1, 600)))
            .unwrap_or(self.timeout);
        let cwd = match input.get("cwd").and_then(Value::as_str) {
            None | Some("") | Some(".") => None,
            Some(raw) => match workspace.resolve(raw) {
                Ok(resolved) => Some(resolved),
                Err(e) => return Ok(error_output(&format!("run_command: bad cwd: {e}"))),
            },
        };
        let job = crate::sandbox_job::Job {
            roots: workspace
                .roots()
                .iter()
                .map(|r| r.path().to_path_buf())
                .collect(),
            staged: staged_entries(workspace),
            command: command.to_owned(),
            cwd,
            timeout,
        };
        let cancel = context.task.cancel.clone();
        let result = crate::sandbox_job::run(sandbox, job, cancel).await;
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(crate::sandbox_job::JobError::Cancelled) => return Err(LoopError::Cancelled),
            Err(e) => return Ok(error_output(&format!("run_command failed to start: {e}"))),
        };
        let mut edited = Vec::new();
        for change in outcome.changes {
            let before = workspace.read(change.root, &change.path).ok().flatten();
            if before == change.content {
                continue;
            }
            match workspace.set_staged_entry(change.root, &change.path, change.content, change.mode)
            {
                Ok(()) => edited.push((change.root, change.path)),
                Err(e) => {
                    return Ok(error_output(&format!(
                        "run_command: cannot stage the command's change to {}: {e}",
                        change.path
                    )));
                }
            }
        }
        if !edited.is_empty() {
            context.emit(TaskEventKind::Message {
                text: format!(
                    "`{command}` changed {} file(s); staged into the proposal",
                    edited.len()
                ),
            });
        }
        let mut content = format!("$ {command}\n{}\n", outcome.status_line);
        append_stream(
            &mut content,
            "stdout",
            &outcome.stdout,
            outcome.stdout_truncated,
        );
        append_stream(
            &mut content,
            "stderr",
            &outcome.stderr,
            outcome.stderr_truncated,
        );
        if !edited.is_empty() {
            let names: Vec<String> = edited.iter().map(|(_, p)| p.to_string()).collect();
            content.push_str(&format!(
                "staged changes from the command: {}\n",
                names.join(", ")
            ));
        }
        Ok(ToolOutput {
            content,
            is_error: !outcome.success,
            edited,
        })
    }
}

/// Summarizes a command's output for the model: head and tail kept, middle
/// cut with a marker that says how much was dropped.
fn append_stream(out: &mut String, name: &str, bytes: &[u8], truncated_at_source: bool) {
    if bytes.is_empty() {
        return;
    }
    let text = String::from_utf8_lossy(bytes);
    out.push_str(&format!("--- {name} ---\n"));
    if text.len() <= MODEL_OUTPUT_BYTES {
        out.push_str(&text);
    } else {
        let half = MODEL_OUTPUT_BYTES / 2;
        let mut head = half;
        while !text.is_char_boundary(head) {
            head -= 1;
        }
        let mut tail = text.len() - half;
        while !text.is_char_boundary(tail) {
            tail += 1;
        }
        out.push_str(&text[..head]);
        out.push_str(&format!(
            "\n[… {} bytes of {name} omitted …]\n",
            tail - head
        ));
        out.push_str(&text[tail..]);
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    if truncated_at_source {
        out.push_str(&format!("[{name} was cut at the sandbox's output cap]\n"));
    }
}

/// The workspace's staged changes in the sandbox's terms.
fn staged_entries(workspace: &Workspace) -> Vec<redline_vm::StagedEntry> {
    workspace
        .staged_paths()
        .into_iter()
        .filter_map(|(root, path)| {
            let staged = workspace.staged(root, &path)?;
            Some(redline_vm::StagedEntry {
                root,
                content: staged.current.clone(),
                mode: staged.mode,
                path,
            })
        })
        .collect()
}

/// A one-line description of a run_command call.
pub(crate) fn describe(input: &Value) -> String {
    input
        .get("command")
        .and_then(Value::as_str)
        .unwrap_or("")
        .chars()
        .take(120)
        .collect()
}
