//! Starting a task from a code action, and following it to the end:
//! work-done progress with the plan's steps, approvals and plan approval
//! as `window/showMessageRequest`, every event as `redline/taskEvent`, and
//! the result delivered as a proposal to review (or a message, for an
//! answer such as "explain").

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use redline_agent::router::ModelRequestSpec;
use redline_agent::task::{FocusSpec, TaskSpec};
use redline_core::proposal::{HunkId, HunkStatus};
use redline_protocol::{
    ApprovalDecision, ApprovalRequest, PlanDecision, PlanStep, StepStatus, TaskEventKind, TaskId,
    TaskMode, TaskState,
};
use serde_json::{Value, json};
use tower_lsp_server::ls_types::notification::Progress;
use tower_lsp_server::ls_types::{
    MessageActionItem, MessageType, NumberOrString, ProgressParams, ProgressParamsValue,
    WorkDoneProgress, WorkDoneProgressBegin, WorkDoneProgressEnd, WorkDoneProgressReport,
};

use crate::review::{self, ReviewTask};
use crate::server::{
    ProposalUpdatedNotification, ProposalUpdatedParams, State, TaskArgs, TaskEventNotification,
    methods,
};
use crate::{Error, Result, from_proto, to_proto};

/// Selected text beyond this is cut from the context notes (the model can
/// read the file itself).
const SELECTION_CAP: usize = 8 * 1024;

/// What the driver needs to remember about a task it started.
#[derive(Clone, Debug)]
pub struct TaskInfo {
    pub prompt: String,
    pub file: PathBuf,
    /// The instruction comment the task must remove, as written.
    pub comment: Option<(u32, String)>,
}

/// Builds the task spec from the command, starts it and follows it in the
/// background; returns `{taskId}` at once.
pub fn start(state: &Arc<State>, command: &str, args: TaskArgs) -> Result<Value> {
    let bad = |message: &str| Error::BadArguments {
        command: command.to_owned(),
        message: message.to_owned(),
    };
    let uri = args.uri.clone().ok_or_else(|| bad("`uri` is required"))?;
    let lsp_range = args.range.ok_or_else(|| bad("`range` is required"))?;
    let path = from_proto::file_path(&uri)?;
    let shown_uri = || uri.as_str().to_owned();
    let encoding = state.documents.encoding();
    // Everything we need from the editor's copy, read under one lock.
    let (buffer_text, selection, lines, symbol) = {
        let documents = state.documents.lock();
        let open = documents
            .open
            .get(&uri)
            .ok_or_else(|| Error::UnknownDocument { uri: shown_uri() })?;
        if let Some(reason) = &open.out_of_sync {
            return Err(Error::OutOfSync {
                uri: shown_uri(),
                reason: reason.clone(),
            });
        }
        let document = &open.document;
        let range = from_proto::range(lsp_range);
        let position_error = |source| Error::Position {
            uri: shown_uri(),
            source,
        };
        let start = document
            .position_to_byte(range.start, encoding)
            .map_err(position_error)?;
        let end = document
            .position_to_byte(range.end, encoding)
            .map_err(position_error)?;
        if start > end {
            return Err(bad("`range` ends before it starts"));
        }
        let selection = document
            .rope()
            .get_byte_slice(start..end.min(start + SELECTION_CAP))
            .map(|s| s.to_string());
        let symbol = document.enclosing_symbol(start..end);
        let end_line = if range.end.character == 0 && range.end.line > range.start.line {
            range.end.line - 1
        } else {
            range.end.line
        };
        (
            document.text(),
            selection.unwrap_or_default(),
            (range.start.line, end_line),
            symbol,
        )
    };
    let file_label = relative_label(state, &path);
    let (first, last) = (lines.0 + 1, lines.1 + 1);
    let where_ = if first == last {
        format!("{file_label} line {first}")
    } else {
        format!("{file_label} lines {first}-{last}")
    };
    let symbol_name = args
        .symbol
        .clone()
        .or_else(|| symbol.as_ref().map(|s| s.name.clone()));
    let target = symbol_name
        .as_ref()
        .map(|s| format!("`{s}` in {file_label}"))
        .unwrap_or_else(|| where_.clone());
    let mut comment = None;
    let prompt = match command {
        methods::ASK => args
            .instruction
            .clone()
            .filter(|i| !i.trim().is_empty())
            .ok_or(Error::NoInstruction)?,
        methods::DO_COMMENT => {
            let instruction = args
                .instruction
                .clone()
                .filter(|i| !i.trim().is_empty())
                .ok_or(Error::NoInstruction)?;
            let line = args
                .comment_line
                .ok_or_else(|| bad("`commentLine` is required"))?;
            comment = Some((line, args.comment_text.clone().unwrap_or_default()));
            instruction
        }
        methods::FIX_DIAGNOSTICS => format!("Fix the problems reported in {where_}."),
        methods::EXPLAIN => format!(
            "Explain what the code in {where_} does and why, for a developer reading it for the first time. Answer in prose and do not change any file."
        ),
        methods::DOCUMENT => format!(
            "Write documentation comments for {target}, in the conventional style of its language. Change nothing else."
        ),
        methods::ADD_TESTS => {
            format!(
                "Add tests for {target}, following the project's existing test layout and conventions."
            )
        }
        methods::SIMPLIFY => {
            format!("Simplify the code in {where_} without changing its behaviour.")
        }
        other => return Err(Error::UnknownCommand(other.to_owned())),
    };
    let mut notes = vec![format!("The user is looking at {where_} in their editor.")];
    if !selection.trim().is_empty() {
        notes.push(format!("Selected text:\n```\n{selection}\n```"));
    }
    if let Some(symbol) = &symbol {
        notes.push(format!(
            "Enclosing symbol: {} `{}` (lines {}-{}).",
            symbol.kind,
            symbol.name,
            symbol.start.line + 1,
            symbol.end.line + 1
        ));
    }
    if !args.diagnostics.is_empty() {
        let list: Vec<String> = args
            .diagnostics
            .iter()
            .map(|d| {
                let source = d
                    .source
                    .as_deref()
                    .map(|s| format!("{s}: "))
                    .unwrap_or_default();
                format!("- line {}: {source}{}", d.range.start.line + 1, d.message)
            })
            .collect();
        notes.push(format!(
            "Diagnostics reported by the editor:\n{}",
            list.join("\n")
        ));
    }
    if let Some((line, text)) = &comment {
        notes.push(format!(
            "The instruction comes from the comment `{}` on line {} of {file_label}. Remove that comment as part of your change.",
            text.trim(),
            line + 1
        ));
    }
    let disk = std::fs::read_to_string(&path).ok();
    if disk.as_deref() != Some(buffer_text.as_str()) {
        notes.push(format!(
            "The editor has unsaved changes to {file_label}; the file on disk (which your tools read) may differ from what the user sees."
        ));
    }
    let mut folders = state.roots();
    if !folders.iter().any(|root| path.starts_with(root)) {
        // No workspace folder holds the file: grant its own folder only.
        if let Some(parent) = path.parent() {
            folders.push(parent.to_path_buf());
        }
    }
    let focus = disk.as_deref().map(|disk| {
        let disk_lines = u32::try_from(disk.lines().count())
            .unwrap_or(u32::MAX)
            .max(1);
        let end = last.min(disk_lines);
        FocusSpec {
            file: path.clone(),
            lines: Some((first.min(end), end)),
        }
    });
    let spec = TaskSpec {
        prompt: prompt.clone(),
        folders,
        focus,
        model: ModelRequestSpec::parse(args.model.as_deref().unwrap_or("auto")),
        mode: args.mode.unwrap_or(TaskMode::Direct),
        context_notes: notes,
    };
    let task = state.engine.start_task(spec)?;
    state
        .live
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(task.clone());
    let info = TaskInfo {
        prompt,
        file: path,
        comment,
    };
    tokio::spawn(drive(state.clone(), task.clone(), info));
    Ok(json!({ "taskId": task.0 }))
}

fn relative_label(state: &State, path: &Path) -> String {
    state
        .roots()
        .iter()
        .find_map(|root| path.strip_prefix(root).ok())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Follows a task to its end.
async fn drive(state: Arc<State>, task: TaskId, info: TaskInfo) {
    let token = progress_begin(&state, &task, &info.prompt).await;
    let mut steps: Vec<PlanStep> = Vec::new();
    let mut answer = String::new();
    match state.engine.subscribe(&task) {
        Ok(mut subscription) => {
            let mut history = std::mem::take(&mut subscription.history).into_iter();
            loop {
                let event = match history.next() {
                    Some(event) => event,
                    None => match subscription.events.recv().await {
                        Some(event) => event,
                        None => break,
                    },
                };
                match &event.kind {
                    TaskEventKind::PlanUpdated { steps: new_steps } => {
                        steps = new_steps.clone();
                        let current = steps
                            .iter()
                            .find(|s| s.status == StepStatus::InProgress)
                            .map(|s| s.title.clone());
                        progress_report(&state, token.as_ref(), current, Some(percentage(&steps)))
                            .await;
                    }
                    TaskEventKind::StepStarted { title, .. } => {
                        progress_report(&state, token.as_ref(), Some(title.clone()), None).await;
                    }
                    TaskEventKind::ToolCall { summary, .. } => {
                        progress_report(&state, token.as_ref(), Some(summary.clone()), None).await;
                    }
                    TaskEventKind::Message { text } => answer = text.clone(),
                    TaskEventKind::ApprovalRequested { request } => {
                        tokio::spawn(ask_approval(state.clone(), task.clone(), request.clone()));
                    }
                    TaskEventKind::StateChanged {
                        state: TaskState::AwaitingPlanApproval,
                        ..
                    } => {
                        tokio::spawn(ask_plan(state.clone(), task.clone(), steps.clone()));
                    }
                    _ => {}
                }
                state
                    .client
                    .send_notification::<TaskEventNotification>(event)
                    .await;
            }
        }
        Err(e) => tracing::error!("cannot follow task {task}: {e}"),
    }
    let final_state = state.engine.wait(&task).await.unwrap_or(TaskState::Failed);
    state
        .live
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&task);
    let end_message = match final_state {
        TaskState::Proposed => "proposal ready for review".to_owned(),
        other => other.as_str().to_owned(),
    };
    progress_end(&state, token, end_message).await;
    match final_state {
        TaskState::Proposed => {
            if let Err(e) = deliver(&state, &task, &info).await {
                state
                    .client
                    .show_message(MessageType::ERROR, format!("Redline: {e}"))
                    .await;
            }
        }
        TaskState::Completed => {
            let text = if answer.trim().is_empty() {
                "Redline finished without changes.".to_owned()
            } else {
                answer
            };
            state.client.show_message(MessageType::INFO, text).await;
        }
        TaskState::Failed => {
            let error = state
                .engine
                .summary(&task)
                .ok()
                .and_then(|s| s.error)
                .unwrap_or_else(|| "unknown error".into());
            state
                .client
                .show_message(MessageType::ERROR, format!("Redline task failed: {error}"))
                .await;
        }
        TaskState::Cancelled => {
            state
                .client
                .show_message(MessageType::INFO, "Redline task cancelled")
                .await
        }
        _ => {}
    }
}

fn percentage(steps: &[PlanStep]) -> u32 {
    if steps.is_empty() {
        return 0;
    }
    let done = steps
        .iter()
        .filter(|s| s.status == StepStatus::Done)
        .count();
    u32::try_from(done * 100 / steps.len()).unwrap_or(100)
}

async fn progress_begin(state: &State, task: &TaskId, prompt: &str) -> Option<NumberOrString> {
    if !state.features().work_done_progress {
        return None;
    }
    let token = NumberOrString::String(format!("redline/{}", task.0));
    if let Err(e) = state.client.create_work_done_progress(token.clone()).await {
        tracing::debug!("the client refused a progress token: {e}");
        return None;
    }
    state
        .progress_tokens
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(format!("redline/{}", task.0), task.clone());
    let title: String = prompt.chars().take(80).collect();
    let begin = WorkDoneProgress::Begin(WorkDoneProgressBegin {
        title: format!("Redline: {title}"),
        cancellable: Some(true),
        message: Some("starting".into()),
        percentage: Some(0),
    });
    send_progress(state, &token, begin).await;
    Some(token)
}

async fn progress_report(
    state: &State,
    token: Option<&NumberOrString>,
    message: Option<String>,
    percentage: Option<u32>,
) {
    let Some(token) = token else { return };
    let report = WorkDoneProgress::Report(WorkDoneProgressReport {
        cancellable: Some(true),
        message,
        percentage,
    });
    send_progress(state, token, report).await;
}

async fn progress_end(state: &State, token: Option<NumberOrString>, message: String) {
    let Some(token) = token else { return };
    send_progress(
        state,
        &token,
        WorkDoneProgress::End(WorkDoneProgressEnd {
            message: Some(message),
        }),
    )
    .await;
    if let NumberOrString::String(key) = &token {
        state
            .progress_tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

async fn send_progress(state: &State, token: &NumberOrString, value: WorkDoneProgress) {
    state
        .client
        .send_notification::<Progress>(ProgressParams {
            token: token.clone(),
            value: ProgressParamsValue::WorkDone(value),
        })
        .await;
}

const ALLOW_ONCE: &str = "Allow once";
const ALWAYS_ALLOW: &str = "Always allow";
const DENY: &str = "Deny";

async fn ask_approval(state: Arc<State>, task: TaskId, request: ApprovalRequest) {
    let actions = [ALLOW_ONCE, ALWAYS_ALLOW, DENY].map(|title| MessageActionItem {
        title: title.into(),
        properties: Default::default(),
    });
    let message = format!(
        "Redline wants to {} (tool {}). Allow?",
        request.summary, request.tool
    );
    let answer = state
        .client
        .show_message_request(MessageType::WARNING, message, Some(actions.to_vec()))
        .await;
    // No answer (dismissed, or a client without message requests) denies.
    let decision = match answer.ok().flatten().map(|item| item.title) {
        Some(title) if title == ALLOW_ONCE => ApprovalDecision::AllowOnce,
        Some(title) if title == ALWAYS_ALLOW => ApprovalDecision::AlwaysAllow,
        _ => ApprovalDecision::Deny,
    };
    if let Err(e) = state.engine.answer_approval(&task, &request.id, decision) {
        tracing::warn!("cannot answer approval {} of {task}: {e}", request.id);
    }
}

const APPROVE_PLAN: &str = "Approve plan";
const CANCEL: &str = "Cancel";

async fn ask_plan(state: Arc<State>, task: TaskId, steps: Vec<PlanStep>) {
    let mut message = "Redline's plan:".to_owned();
    for (index, step) in steps.iter().enumerate() {
        message.push_str(&format!("\n{}. {}", index + 1, step.title));
    }
    let actions = [APPROVE_PLAN, CANCEL].map(|title| MessageActionItem {
        title: title.into(),
        properties: Default::default(),
    });
    let answer = state
        .client
        .show_message_request(MessageType::INFO, message, Some(actions.to_vec()))
        .await;
    let decision = match answer.ok().flatten().map(|item| item.title) {
        Some(title) if title == APPROVE_PLAN => PlanDecision::Approve,
        _ => PlanDecision::Cancel,
    };
    if let Err(e) = state.engine.decide_plan(&task, decision) {
        tracing::warn!("cannot decide the plan of {task}: {e}");
    }
}

/// Hands a finished task's proposal to the editor for review.
async fn deliver(state: &Arc<State>, task: &TaskId, info: &TaskInfo) -> Result<()> {
    let Some(proposal) = state.engine.proposal(task)? else {
        return Ok(());
    };
    if proposal.is_empty() {
        state
            .client
            .show_message(MessageType::INFO, "Redline finished without changes.")
            .await;
        return Ok(());
    }
    if let Some((line, text)) = &info.comment {
        let kept = proposal.changes.iter().any(|change| {
            review::new_path(&proposal, change) == info.file
                && matches!(&change.new, Some(redline_core::proposal::FileContent::Text(new)) if new.contains(text.trim()))
        });
        let untouched = !proposal
            .changes
            .iter()
            .any(|change| review::new_path(&proposal, change) == info.file);
        if kept || untouched {
            state
                .client
                .show_message(
                    MessageType::WARNING,
                    format!("Redline: the proposal keeps the instruction comment on line {}; remove it yourself", line + 1),
                )
                .await;
        }
    }
    let counts = proposal.counts();
    let files = proposal.changes.len();
    state.review().tasks.insert(
        task.clone(),
        ReviewTask {
            proposal: proposal.clone(),
            prompt: info.prompt.clone(),
        },
    );
    state
        .client
        .send_notification::<ProposalUpdatedNotification>(ProposalUpdatedParams {
            task_id: task.clone(),
            prompt: info.prompt.clone(),
            proposal: proposal.clone(),
        })
        .await;
    state.refresh_diagnostics().await;
    let features = state.features();
    if features.change_annotations {
        let pending: Vec<HunkId> = proposal.hunks().map(|(_, h)| h.id.clone()).collect();
        match state.edit_parts(task, &pending) {
            Ok((parts, _stale)) if !parts.is_empty() => {
                let edit = to_proto::workspace_edit(&parts, true, true);
                match state.client.apply_edit(edit).await {
                    Ok(response) if response.applied => reconcile(state, task).await?,
                    Ok(response) => tracing::info!(
                        "the editor did not apply the proposal of {task} ({}); it stays pending",
                        response.failure_reason.unwrap_or_default()
                    ),
                    Err(e) => tracing::warn!("workspace/applyEdit failed for {task}: {e}"),
                }
                return Ok(());
            }
            Ok(_) => {}
            Err(e) => {
                tracing::info!("cannot preview {task} as one edit ({e}); review hunk by hunk")
            }
        }
    }
    let hunks = counts.pending;
    state
        .client
        .show_message(
            MessageType::INFO,
            format!(
                "Redline proposes {hunks} change{} in {files} file{}: review each with the code actions \"Accept change\" / \"Reject change\" on the hints",
                if hunks == 1 { "" } else { "s" },
                if files == 1 { "" } else { "s" }
            ),
        )
        .await;
    Ok(())
}

/// After the editor applied the annotated proposal (the user may have
/// unticked hunks), records which hunks landed.
async fn reconcile(state: &Arc<State>, task: &TaskId) -> Result<()> {
    // The editor sends the resulting didChange/didOpen notifications around
    // the time it answers; give them a moment to arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let Some(entry) = state.review().tasks.get(task).cloned() else {
        return Ok(());
    };
    let mut by_status: Vec<(HunkStatus, Vec<HunkId>)> = vec![
        (HunkStatus::Accepted, Vec::new()),
        (HunkStatus::Rejected, Vec::new()),
        (HunkStatus::Stale, Vec::new()),
    ];
    for change in &entry.proposal.changes {
        let current = state.current(&review::review_path(&entry.proposal, change));
        let renamed = state.current(&review::new_path(&entry.proposal, change));
        for hunk in change
            .hunks
            .iter()
            .filter(|h| h.status == HunkStatus::Pending)
        {
            let status = review::reconcile(change, hunk, &current, &renamed);
            if let Some((_, ids)) = by_status.iter_mut().find(|(s, _)| *s == status) {
                ids.push(hunk.id.clone());
            }
        }
    }
    let mut proposal = None;
    for (status, ids) in by_status {
        if !ids.is_empty() {
            proposal = Some(state.engine.resolve_hunks(task, &ids, status)?);
        }
    }
    if let Some(proposal) = proposal {
        state.proposal_changed(task, proposal).await;
    }
    Ok(())
}
