//! The agent loop: ask the model, run the tools it calls, stage every edit
//! into the task's proposal, repeat until it is done or a budget runs out.
//!
//! Nothing here writes to the user's files: writing tools change the staged
//! `Workspace`, and the proposal is rebuilt from it after each edit.

use redline_core::instructions::{self, InstructionQuery};
use redline_core::path::{RelPath, Root};
use redline_core::proposal::Proposal;
use redline_core::syntax::{self, Language};
use redline_protocol::{
    PlanDecision, PlanStep, StepStatus, TaskEventKind, TaskMode, TaskState, UsageSummary,
};
use serde_json::{Value, json};

use crate::commands;
use crate::engine::TaskContext;
use crate::model::{
    ContentBlock, Message, ModelError, ModelRequest, Role, StopReason, StreamEvent, ToolSpec,
    Usage, pricing,
};
use crate::prompt::{self, PromptInput};
use crate::task::{Focus, TaskSpec};
use crate::tools::{self, ToolOutput};
use crate::workspace::Workspace;

/// Everything `Engine::start_task` validated.
pub(crate) struct TaskSetup {
    pub spec: TaskSpec,
    pub roots: Vec<Root>,
    pub focus: Option<Focus>,
    pub model: String,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum LoopError {
    #[error("cancelled")]
    Cancelled,
    #[error(transparent)]
    Model(ModelError),
    #[error("the model refused the request{0}")]
    Refused(String),
    #[error("stopped after {0} turns without finishing (raise [engine] max_turns in redline.toml)")]
    TurnBudget(u32),
    #[error(
        "stopped after using {used} tokens, over the task budget of {budget} (raise [engine] max_task_tokens)"
    )]
    TokenBudget { used: u64, budget: u64 },
    #[error("the model stopped for an unknown reason `{0}`")]
    UnknownStop(String),
}

const WRITING_TOOLS: &[&str] = &[
    "edit",
    "write_file",
    "create_file",
    "delete",
    "rename",
    "apply_patch",
    commands::RUN_COMMAND,
];

/// Runs one task to its end state.
pub(crate) async fn run(context: &TaskContext, setup: TaskSetup) -> Result<TaskState, LoopError> {
    let plan_first = setup.spec.mode == TaskMode::PlanFirst;
    context.set_state(
        if plan_first {
            TaskState::Planning
        } else {
            TaskState::Running
        },
        None,
    );

    let root_paths: Vec<_> = setup.roots.iter().map(|r| r.path().to_path_buf()).collect();
    let found = instructions::discover(&InstructionQuery {
        global_file: context.inner.global_instructions.as_deref(),
        roots: &root_paths,
        focus: setup.focus.as_ref().map(|f| (f.root, f.path.clone())),
        cap_bytes: instructions::DEFAULT_CAP_BYTES,
    });
    let instruction_files: Vec<String> = found
        .files
        .iter()
        .map(|f| f.path.display().to_string())
        .collect();
    context.set_detail("instructionFiles", json!(instruction_files));
    context.emit(TaskEventKind::InstructionsLoaded {
        files: instruction_files,
        warnings: found.warnings.clone(),
    });

    let mut workspace = Workspace::new(setup.roots.clone());
    let focus_text = setup.focus.as_ref().and_then(|focus| {
        workspace
            .read(focus.root, &focus.path)
            .ok()
            .flatten()
            .and_then(|bytes| String::from_utf8(bytes).ok())
    });
    let system = prompt::system_blocks(&PromptInput {
        roots: &setup.roots,
        instructions: &found.text,
        focus: setup.focus.as_ref(),
        focus_text: focus_text.as_deref(),
        context_notes: &setup.spec.context_notes,
        plan_first,
    });
    let sandbox =
        commands::CommandRunner::new(context.inner.sandbox.clone(), &context.inner.config);
    let mut tool_specs = tools::file_tool_specs();
    tool_specs.push(plan_tool_spec());
    if let Some(spec) = sandbox.tool_spec() {
        tool_specs.push(spec);
    }

    let config = &context.inner.config;
    // One request for the whole task: each turn appends to its messages
    // instead of rebuilding prompt, tools and history.
    let mut request = ModelRequest {
        model: setup.model.clone(),
        system,
        tools: tool_specs,
        messages: vec![Message {
            role: Role::User,
            content: vec![ContentBlock::Text {
                text: setup.spec.prompt.clone(),
            }],
        }],
        max_tokens: config.max_output_tokens,
    };
    let mut run = RunState {
        plan_approved: !plan_first,
        plan: Vec::new(),
        proposal: None,
        usage: Usage::default(),
    };
    let cancel = context.task.cancel.clone();
    for _turn in 0..config.max_turns {
        if cancel.is_cancelled() {
            return Err(LoopError::Cancelled);
        }
        let sink_context = context.clone();
        let sink = move |event: StreamEvent| match event {
            StreamEvent::TextDelta(text) => sink_context.emit(TaskEventKind::MessageDelta { text }),
            StreamEvent::ToolUseStarted { .. } => {}
            StreamEvent::Retrying {
                attempt,
                delay_ms,
                reason,
            } => sink_context.emit(TaskEventKind::Retrying {
                attempt,
                delay_ms,
                reason,
            }),
        };
        let response = match context.inner.model.send(&request, &sink, &cancel).await {
            Ok(response) => response,
            Err(ModelError::Cancelled) => return Err(LoopError::Cancelled),
            Err(e) => return Err(LoopError::Model(e)),
        };
        run.usage.add(&response.usage);
        context.emit(TaskEventKind::Usage {
            usage: usage_summary(&setup.model, &run.usage),
        });
        context.set_detail("usage", json!(usage_summary(&setup.model, &run.usage)));
        let used = run.usage.input_tokens + run.usage.output_tokens;
        let text: String = response
            .content
            .iter()
            .filter_map(|b| match b {
                ContentBlock::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        if !text.is_empty() {
            context.emit(TaskEventKind::Message { text: text.clone() });
        }
        let tool_uses: Vec<(String, String, Value)> = response
            .content
            .iter()
            .filter_map(|b| match b {
                ContentBlock::ToolUse { id, name, input } => {
                    Some((id.clone(), name.clone(), input.clone()))
                }
                _ => None,
            })
            .collect();
        request.messages.push(Message {
            role: Role::Assistant,
            content: response.content.clone(),
        });
        if used > config.max_task_tokens {
            return Err(LoopError::TokenBudget {
                used,
                budget: config.max_task_tokens,
            });
        }
        match response.stop_reason {
            StopReason::EndTurn | StopReason::StopSequence if tool_uses.is_empty() => {
                return Ok(finish(context, &run));
            }
            StopReason::Refusal => {
                let why = if text.is_empty() {
                    String::new()
                } else {
                    format!(": {text}")
                };
                return Err(LoopError::Refused(why));
            }
            StopReason::PauseTurn => continue,
            StopReason::Other(reason) => return Err(LoopError::UnknownStop(reason)),
            StopReason::MaxTokens if tool_uses.is_empty() => {
                request.messages.push(Message {
                    role: Role::User,
                    content: vec![ContentBlock::Text {
                        text: "Your reply was cut off at the output limit. Continue exactly where you stopped.".into(),
                    }],
                });
            }
            _ => {
                let mut results = Vec::with_capacity(tool_uses.len());
                for (id, name, input) in tool_uses {
                    let output = call_tool(
                        context,
                        &mut workspace,
                        &sandbox,
                        &mut run,
                        &id,
                        &name,
                        &input,
                    )
                    .await?;
                    results.push(ContentBlock::ToolResult {
                        tool_use_id: id,
                        content: output.content,
                        is_error: output.is_error,
                    });
                }
                request.messages.push(Message {
                    role: Role::User,
                    content: results,
                });
            }
        }
    }
    Err(LoopError::TurnBudget(config.max_turns))
}

struct RunState {
    plan_approved: bool,
    plan: Vec<PlanStep>,
    proposal: Option<Proposal>,
    usage: Usage,
}

fn finish(context: &TaskContext, run: &RunState) -> TaskState {
    match &run.proposal {
        Some(proposal) if !proposal.changes.is_empty() => {
            context.set_detail("proposalId", json!(proposal.id.0));
            TaskState::Proposed
        }
        _ => TaskState::Completed,
    }
}

fn usage_summary(model: &str, usage: &Usage) -> UsageSummary {
    UsageSummary {
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        cache_read_input_tokens: usage.cache_read_input_tokens,
        cache_creation_input_tokens: usage.cache_creation_input_tokens,
        cost_usd: pricing::estimate_cost_usd(model, usage),
    }
}

async fn call_tool(
    context: &TaskContext,
    workspace: &mut Workspace,
    sandbox: &commands::CommandRunner,
    run: &mut RunState,
    call_id: &str,
    name: &str,
    input: &Value,
) -> Result<ToolOutput, LoopError> {
    let summary = summarize_call(name, input);
    context.emit(TaskEventKind::ToolCall {
        call_id: call_id.to_owned(),
        tool: name.to_owned(),
        summary: summary.clone(),
    });
    context.inner.audit(
        "agent",
        "tool.call",
        &context.id().0,
        &json!({ "tool": name, "summary": summary }),
    );
    let output = if name == "update_plan" {
        update_plan(context, run, input).await?
    } else if !run.plan_approved && WRITING_TOOLS.contains(&name) {
        error_output(
            "the plan is not approved yet: call update_plan with your plan first; the user must approve it before you change files",
        )
    } else if name == commands::RUN_COMMAND {
        sandbox.run(context, workspace, input).await?
    } else {
        match tools::call_file_tool(workspace, name, input) {
            Some(output) => output,
            None => error_output(&format!(
                "unknown tool `{name}`; available tools: {}",
                available_tools(sandbox).join(", ")
            )),
        }
    };
    let output = if output.edited.is_empty() {
        output
    } else {
        after_edit(context, workspace, run, output)
    };
    context.emit(TaskEventKind::ToolResult {
        call_id: call_id.to_owned(),
        tool: name.to_owned(),
        summary: first_line(&output.content, 160),
        is_error: output.is_error,
    });
    Ok(output)
}

/// Re-checks edited files for new syntax errors (so the model can repair
/// them) and rebuilds the proposal from the staged workspace.
fn after_edit(
    context: &TaskContext,
    workspace: &Workspace,
    run: &mut RunState,
    mut output: ToolOutput,
) -> ToolOutput {
    for (root, path) in &output.edited {
        if let Some(report) = syntax_report(workspace, *root, path) {
            output.content.push_str("\n\n");
            output.content.push_str(&report);
        }
    }
    let roots = workspace
        .roots()
        .iter()
        .map(|r| r.path().to_path_buf())
        .collect();
    let proposal = Proposal::build(
        context.proposal_id(),
        roots,
        workspace.staged_files(),
        run.proposal.as_ref(),
    );
    let hunks = proposal.changes.iter().map(|c| c.hunks.len()).sum();
    context.save_proposal(&proposal);
    context.emit(TaskEventKind::ProposalUpdated {
        proposal_id: proposal.id.0.clone(),
        files: proposal.changes.len(),
        hunks,
    });
    run.proposal = Some(proposal);
    output
}

/// Reports syntax errors the staged content has and the original did not.
fn syntax_report(workspace: &Workspace, root: usize, path: &RelPath) -> Option<String> {
    let language = Language::from_path(path.as_str());
    if language == Language::PlainText {
        return None;
    }
    let staged = workspace.read(root, path).ok()??;
    let staged = String::from_utf8(staged).ok()?;
    let after = syntax::syntax_errors(language, &staged);
    if after.is_empty() {
        return None;
    }
    let before = workspace
        .staged(root, path)
        .and_then(|staged| staged.original.as_ref())
        .and_then(|original| String::from_utf8(original.bytes.clone()).ok())
        .map(|text| syntax::syntax_errors(language, &text).len())
        .unwrap_or(0);
    if after.len() <= before {
        return None;
    }
    let listed: Vec<String> = after
        .iter()
        .take(5)
        .map(|e| format!("- {}", e.message))
        .collect();
    Some(format!(
        "syntax check: {path} now has {} syntax error(s) (it had {before}); fix them:\n{}",
        after.len(),
        listed.join("\n")
    ))
}

async fn update_plan(
    context: &TaskContext,
    run: &mut RunState,
    input: &Value,
) -> Result<ToolOutput, LoopError> {
    let Some(steps) = input.get("steps").and_then(Value::as_array) else {
        return Ok(error_output(
            "update_plan needs `steps`: an array of {\"title\": string, \"status\": \"pending\"|\"in-progress\"|\"done\"}",
        ));
    };
    let mut plan = Vec::with_capacity(steps.len());
    for (index, step) in steps.iter().enumerate() {
        let Some(title) = step.get("title").and_then(Value::as_str) else {
            return Ok(error_output(&format!(
                "update_plan: step {} has no `title` string",
                index + 1
            )));
        };
        let status = match step
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("pending")
        {
            "pending" => StepStatus::Pending,
            "in-progress" | "in_progress" => StepStatus::InProgress,
            "done" | "completed" => StepStatus::Done,
            other => {
                return Ok(error_output(&format!(
                    "update_plan: step {} has status `{other}`; use pending, in-progress or done",
                    index + 1
                )));
            }
        };
        plan.push(PlanStep {
            title: title.to_owned(),
            status,
        });
    }
    for (index, step) in plan.iter().enumerate() {
        let before = run
            .plan
            .get(index)
            .filter(|s| s.title == step.title)
            .map(|s| s.status);
        if step.status == StepStatus::InProgress && before != Some(StepStatus::InProgress) {
            context.emit(TaskEventKind::StepStarted {
                index,
                title: step.title.clone(),
            });
        }
        if step.status == StepStatus::Done && before != Some(StepStatus::Done) {
            context.emit(TaskEventKind::StepFinished {
                index,
                title: step.title.clone(),
            });
        }
    }
    run.plan = plan.clone();
    context.emit(TaskEventKind::PlanUpdated { steps: plan });
    if run.plan_approved {
        return Ok(text_output("plan updated"));
    }
    let decision = context.register_plan_decision();
    context.set_state(TaskState::AwaitingPlanApproval, None);
    let decision = tokio::select! {
        decision = decision => decision.unwrap_or(PlanDecision::Cancel),
        () = context.task.cancel.cancelled() => PlanDecision::Cancel,
    };
    match decision {
        PlanDecision::Approve => {
            run.plan_approved = true;
            context.set_state(TaskState::Running, None);
            Ok(text_output(
                "The user approved the plan. Carry it out now, marking steps as you go.",
            ))
        }
        PlanDecision::Steer { instruction } => {
            context.set_state(TaskState::Planning, Some("plan steered".into()));
            Ok(text_output(&format!(
                "The user wants a different plan: {instruction}\nRevise the plan and call update_plan again."
            )))
        }
        PlanDecision::Cancel => Err(LoopError::Cancelled),
    }
}

fn plan_tool_spec() -> ToolSpec {
    ToolSpec {
        name: "update_plan".into(),
        description: "Share or update your plan: a short list of steps with their status. In plan-first mode the user approves the first plan before you may edit.".into(),
        input_schema: json!({
            "type": "object",
            "properties": {
                "steps": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "title": { "type": "string" },
                            "status": { "type": "string", "enum": ["pending", "in-progress", "done"] }
                        },
                        "required": ["title", "status"],
                        "additionalProperties": false
                    }
                }
            },
            "required": ["steps"],
            "additionalProperties": false
        }),
    }
}

fn available_tools(sandbox: &commands::CommandRunner) -> Vec<String> {
    let mut names: Vec<String> = tools::file_tool_specs()
        .into_iter()
        .map(|s| s.name)
        .collect();
    names.push("update_plan".into());
    if let Some(spec) = sandbox.tool_spec() {
        names.push(spec.name);
    }
    names
}

/// One line describing a tool call for progress displays and the audit log.
fn summarize_call(name: &str, input: &Value) -> String {
    let field = |key: &str| input.get(key).and_then(Value::as_str);
    let detail = match name {
        "rename" => match (field("from"), field("to")) {
            (Some(from), Some(to)) => format!("{from} → {to}"),
            _ => String::new(),
        },
        "search" => field("pattern")
            .map(|p| format!("/{p}/"))
            .unwrap_or_default(),
        commands::RUN_COMMAND => commands::describe(input),
        "update_plan" => input
            .get("steps")
            .and_then(Value::as_array)
            .map(|s| format!("{} steps", s.len()))
            .unwrap_or_default(),
        "apply_patch" => "patch".into(),
        _ => field("path").unwrap_or("").to_owned(),
    };
    if detail.is_empty() {
        name.to_owned()
    } else {
        format!("{name} {detail}")
    }
}

fn first_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() <= max {
        line.to_owned()
    } else {
        format!("{}…", line.chars().take(max).collect::<String>())
    }
}

pub(crate) fn error_output(message: &str) -> ToolOutput {
    ToolOutput {
        content: message.to_owned(),
        is_error: true,
        edited: Vec::new(),
    }
}

pub(crate) fn text_output(message: &str) -> ToolOutput {
    ToolOutput {
        content: message.to_owned(),
        is_error: false,
        edited: Vec::new(),
    }
}
